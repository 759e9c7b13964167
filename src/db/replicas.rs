//! Read-replica rotation with health and lag checks.
//!
//! A background task probes every replica each `REPLICA_HEALTH_INTERVAL_MS`: it reads the
//! primary's current WAL position, then asks the replica how far its replay is behind that
//! position (bytes) and how old its last replayed transaction is (time). A replica that is
//! unreachable, not in recovery, or more than `REPLICA_MAX_LAG_MS` behind leaves the
//! rotation; it rejoins on the first probe that finds it healthy again. Lag is measured
//! against the primary's position, so a replica whose WAL receiver lost the primary is
//! detected as lagging even though its own receive and replay positions agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use diesel::sql_types::{Bool, Double, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use serde::Serialize;

use super::{PgPool, build_pool, redact};
use crate::config::Config;

/// One replica: its pool and what the last probe found.
pub struct Replica {
    /// The URL without its password, for logs and `/readyz`.
    pub name: String,
    pub pool: PgPool,
    healthy: AtomicBool,
    /// Replay lag in milliseconds at the last probe (`u64::MAX` when unknown).
    lag_ms: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Replica {
    /// Takes the replica out of rotation until the next successful probe.
    pub fn mark_down(&self, reason: &str) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(replica = %self.name, reason, "replica left the rotation");
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_string());
        }
    }

    fn mark_up(&self, lag_ms: u64) {
        self.lag_ms.store(lag_ms, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!(replica = %self.name, lag_ms, "replica joined the rotation");
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct ReplicaStatus {
    pub name: String,
    pub healthy: bool,
    pub lag_ms: Option<u64>,
    pub last_error: Option<String>,
}

pub struct ReplicaRouter {
    replicas: Vec<Arc<Replica>>,
    next: AtomicUsize,
    primary: PgPool,
    max_lag: Duration,
}

#[derive(QueryableByName)]
struct PrimaryPosition {
    #[diesel(sql_type = Text)]
    lsn: String,
}

#[derive(QueryableByName)]
struct ReplayState {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
    #[diesel(sql_type = Nullable<Double>)]
    behind_bytes: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    replay_age_ms: Option<f64>,
}

impl ReplicaRouter {
    pub fn new(config: &Config, primary: PgPool) -> anyhow::Result<Arc<Self>> {
        let replicas = config
            .replica_urls
            .iter()
            .map(|url| {
                Ok(Arc::new(Replica {
                    name: redact(url),
                    pool: build_pool(url, config.pool_size, config.connect_timeout)?,
                    // Out of rotation until the first probe has measured it.
                    healthy: AtomicBool::new(false),
                    lag_ms: AtomicU64::new(u64::MAX),
                    last_error: std::sync::Mutex::new(Some("not probed yet".into())),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Arc::new(Self {
            replicas,
            next: AtomicUsize::new(0),
            primary,
            max_lag: config.replica_max_lag,
        }))
    }

    /// The next healthy replica in round-robin order, or `None` (read from the primary).
    pub fn pick(&self) -> Option<Arc<Replica>> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .find(|r| r.is_healthy())
            .cloned()
    }

    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .map(|r| {
                let lag = r.lag_ms.load(Ordering::Relaxed);
                ReplicaStatus {
                    name: r.name.clone(),
                    healthy: r.is_healthy(),
                    lag_ms: (lag != u64::MAX).then_some(lag),
                    last_error: r.last_error.lock().ok().and_then(|e| e.clone()),
                }
            })
            .collect()
    }

    /// Probes every replica once; the health task calls this on a timer.
    pub async fn probe_all(&self) {
        if self.replicas.is_empty() {
            return;
        }
        let primary_lsn = match self.primary_lsn().await {
            Ok(lsn) => Some(lsn),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the primary's WAL position");
                None
            }
        };
        let probes = self.replicas.iter().map(|replica| {
            let lsn = primary_lsn.clone();
            async move {
                let timeout = self.max_lag.max(Duration::from_secs(1));
                match tokio::time::timeout(timeout, probe(replica, lsn)).await {
                    Ok(Ok(state)) => self.judge(replica, state),
                    Ok(Err(e)) => replica.mark_down(&e.to_string()),
                    Err(_) => replica.mark_down("health probe timed out"),
                }
            }
        });
        futures::future::join_all(probes).await;
    }

    fn judge(&self, replica: &Replica, state: ReplayState) {
        if !state.in_recovery {
            replica.mark_down("not in recovery: this server is not a replica");
            return;
        }
        // Caught up with the primary's position at probe time: no lag, however old the
        // last transaction is (an idle primary writes nothing to replay).
        let lag_ms = match state.behind_bytes {
            Some(bytes) if bytes <= 0.0 => 0,
            _ => state
                .replay_age_ms
                .map(|ms| ms.max(0.0) as u64)
                .unwrap_or(u64::MAX),
        };
        if lag_ms > self.max_lag.as_millis() as u64 {
            replica.lag_ms.store(lag_ms, Ordering::Relaxed);
            replica.mark_down(&format!(
                "replication lag {lag_ms} ms exceeds REPLICA_MAX_LAG_MS={}",
                self.max_lag.as_millis()
            ));
        } else {
            replica.mark_up(lag_ms);
        }
    }

    async fn primary_lsn(&self) -> anyhow::Result<String> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.primary.get().await?;
        let row: PrimaryPosition = sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
            .get_result(&mut conn)
            .await?;
        Ok(row.lsn)
    }

    /// Runs the probe loop until the process ends.
    pub fn spawn_health_task(self: &Arc<Self>, interval: Duration) {
        if self.replicas.is_empty() {
            return;
        }
        let router = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(router) = router.upgrade() else {
                    break;
                };
                router.probe_all().await;
            }
        });
    }
}

async fn probe(replica: &Replica, primary_lsn: Option<String>) -> anyhow::Result<ReplayState> {
    use diesel_async::RunQueryDsl;
    let mut conn = replica.pool.get().await?;
    // Without the primary's position only the age of the last replay can be judged.
    let state = sql_query(
        "SELECT pg_is_in_recovery() AS in_recovery, \
                CASE WHEN $1::text IS NULL THEN NULL \
                     ELSE pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())::float8 END AS behind_bytes, \
                (EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS replay_age_ms",
    )
    .bind::<Nullable<Text>, _>(primary_lsn)
    .get_result::<ReplayState>(&mut conn)
    .await;
    match state {
        Ok(state) => Ok(state),
        Err(e) => {
            // Drop a broken connection rather than returning it to the pool.
            let _ = deadpool::managed::Object::take(conn);
            Err(e.into())
        }
    }
}
