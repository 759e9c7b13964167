//! Hears PostgreSQL's `cache_invalidation` notifications and invalidates their tags.
//!
//! Triggers notify every committed change (see `migrations/*_cache/up.sql`), whoever made
//! it, so each gateway learns of every change straight from the database: invalidation
//! does not depend on the writer reaching Redis, and in-process tiers stay correct while
//! Redis is down. Notifications arriving together are applied as one batch.
//!
//! A listener that (re)connects may have missed notifications: it drops its in-process
//! tier, and when no other gateway was listening meanwhile, moves the shared tier to a
//! new epoch. So does a gateway that could not write an invalidation to Redis.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
use tokio::sync::watch;

use super::ResponseCache;

pub const CHANNEL: &str = "cache_invalidation";
const LISTEN: &str = "LISTEN cache_invalidation";
/// A batch is applied after this long without news, or at this many tags.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
const BATCH_TAGS: usize = 2_000;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Moves every gateway's shared tier to a new epoch (the notification tells the others).
async fn bump_epoch(database_url: &str) -> anyhow::Result<i64> {
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    Ok(sql_query("SELECT cache_bump_epoch() AS n")
        .get_result::<Count>(&mut conn)
        .await?
        .n)
}

/// Decides when a lost invalidation needs a new epoch: not again while Redis has taken
/// nothing since the last move (nothing could have been written to the new epoch).
struct EpochGuard {
    successes_at_bump: Option<u64>,
}

impl EpochGuard {
    async fn lost_invalidation(&mut self, cache: &ResponseCache, database_url: &str) {
        let successes = cache.redis.as_ref().map_or(0, |r| {
            std::sync::atomic::AtomicU64::load(&r.successes, std::sync::atomic::Ordering::Relaxed)
        });
        if self.successes_at_bump == Some(successes) {
            return;
        }
        match bump_epoch(database_url).await {
            Ok(epoch) => {
                tracing::warn!(
                    epoch,
                    "an invalidation could not reach Redis: every gateway moves to a new cache epoch"
                );
                cache.set_epoch(epoch);
                self.successes_at_bump = Some(successes);
            }
            Err(e) => {
                tracing::error!(error = %e, "an invalidation could not reach Redis and the cache epoch could not be moved");
            }
        }
    }
}

/// Runs until `shutdown` turns true. `ready` turns true once the first LISTEN is in place.
pub async fn run(
    cache: Arc<ResponseCache>,
    database_url: String,
    ready: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(100);
    let mut guard = EpochGuard {
        successes_at_bump: None,
    };
    loop {
        let session = async {
            let mut conn = AsyncPgConnection::establish(&database_url).await?;
            let pid = sql_query("SELECT pg_backend_pid()::int8 AS n")
                .get_result::<Count>(&mut conn)
                .await?
                .n;
            // LISTEN is the last statement of this session: other gateways recognise
            // listeners by it in pg_stat_activity.
            sql_query(LISTEN).execute(&mut conn).await?;
            let mut side = AsyncPgConnection::establish(&database_url).await?;
            let others = sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> $1 AND query = $2",
            )
            .bind::<BigInt, _>(pid)
            .bind::<diesel::sql_types::Text, _>(LISTEN)
            .get_result::<Count>(&mut side)
            .await?
            .n;
            // Read after LISTEN: a later move of the epoch is heard. With nobody else
            // listening, nobody heard the changes made meanwhile: a new epoch.
            let epoch_sql = if others == 0 {
                "SELECT cache_bump_epoch() AS n"
            } else {
                "SELECT epoch AS n FROM cache_epoch"
            };
            let epoch = sql_query(epoch_sql).get_result::<Count>(&mut side).await?.n;
            Ok::<_, anyhow::Error>((conn, others, epoch))
        };
        match session.await {
            Ok((mut conn, others, epoch)) => {
                delay = Duration::from_millis(100);
                cache.invalidate_local_all();
                cache.set_epoch(epoch);
                cache.set_listening(true);
                let _ = ready.send(true);
                tracing::debug!(others, "listening for cache invalidations");
                let stream = conn.notifications_stream();
                tokio::pin!(stream);
                loop {
                    let first = tokio::select! {
                        n = stream.next() => n,
                        _ = shutdown.changed() => return,
                    };
                    let mut tags = BTreeSet::new();
                    match first {
                        Some(Ok(n)) => add(&mut tags, &n.payload),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "cache invalidation listener lost its connection");
                            break;
                        }
                        None => break,
                    }
                    let mut broken = false;
                    while tags.len() < BATCH_TAGS {
                        match tokio::time::timeout(BATCH_WINDOW, stream.next()).await {
                            Ok(Some(Ok(n))) => add(&mut tags, &n.payload),
                            Ok(Some(Err(_)) | None) => {
                                broken = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let epochs: Vec<i64> = tags
                        .iter()
                        .filter_map(|t| t.strip_prefix("epoch:")?.parse().ok())
                        .collect();
                    tags.retain(|t| !t.starts_with("epoch:"));
                    if let Some(epoch) = epochs.into_iter().max() {
                        cache.set_epoch(epoch);
                    }
                    let tags: Vec<String> = if tags.len() >= BATCH_TAGS || tags.contains("*") {
                        vec!["*".to_string()]
                    } else {
                        tags.into_iter().collect()
                    };
                    if !cache.invalidate(&tags).await {
                        guard.lost_invalidation(&cache, &database_url).await;
                    }
                    if broken {
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "cannot listen for cache invalidations");
            }
        }
        // Until it listens again, this gateway cannot trust what it holds.
        cache.set_listening(false);
        cache.invalidate_local_all();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn add(tags: &mut BTreeSet<String>, payload: &str) {
    tags.extend(payload.split_ascii_whitespace().map(str::to_string));
}
