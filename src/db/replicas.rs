//! Read-replica rotation with health and lag checks.
//!
//! A background task probes every replica each `REPLICA_HEALTH_INTERVAL_MS`. It records
//! the primary's WAL position with the time it was read, then asks each replica how far it
//! has replayed. The replica's lag is the age of the newest recorded primary position it
//! has already replayed: it has everything the primary had then. This holds on an idle
//! store (no false alarm because the last transaction is old) and on a busy one (a replica
//! a few bytes behind at each probe is not "behind since forever"), and a replica whose
//! WAL receiver lost the primary is seen lagging even though its own positions agree.
//!
//! A replica that is unreachable, not in recovery, or more than `REPLICA_MAX_LAG_MS`
//! behind leaves the rotation; it rejoins on the first probe that finds it healthy. Probes
//! use a connection of their own, so a busy pool never looks like a sick replica. When the
//! primary cannot be read, lag cannot be judged and replicas stay as they are.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::sql_types::{Bool, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use serde::Serialize;

use super::DbSettings;
use super::{PgPool, PoolInfo, build_pool, pool_gauges, redact};

/// One replica: its pool and what the last probe found.
pub struct Replica {
    /// The URL without its password, for logs and `/readyz`.
    pub name: String,
    /// `replica-0`, `replica-1`, … in `DATABASE_REPLICA_URLS` order (metric labels).
    pub info: Arc<PoolInfo>,
    pub pool: PgPool,
    /// One connection for health probes only.
    probe_pool: PgPool,
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
    /// Recent primary WAL positions and when they were read, oldest first.
    history: std::sync::Mutex<VecDeque<(Instant, u64)>>,
    interval: Duration,
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
    #[diesel(sql_type = Nullable<Text>)]
    replay_lsn: Option<String>,
}

/// Parses a WAL position (`16/B374D848`) into a byte offset.
fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl ReplicaRouter {
    pub fn new(config: &DbSettings, primary: PgPool) -> anyhow::Result<Arc<Self>> {
        let replicas = config
            .replica_urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let info = PoolInfo::new(&format!("replica-{i}"), "replica", url);
                let probe = PoolInfo::new(&format!("replica-{i}-probe"), "probe", url);
                Ok(Arc::new(Replica {
                    name: redact(url),
                    pool: build_pool(
                        &super::session_url(url, config.generic_plans),
                        config.pool_size,
                        config.connect_timeout,
                        info.clone(),
                    )?,
                    probe_pool: build_pool(url, 1, config.connect_timeout, probe)?,
                    info,
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
            history: std::sync::Mutex::new(VecDeque::new()),
            interval: config.replica_health_interval,
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

    /// Replicas are configured (whether or not they are in the rotation now).
    pub fn configured(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// Pool gauges of every replica, and `gateway_db_replica_lag_seconds` /
    /// `gateway_db_replica_healthy` (a replica never measured has no lag series).
    pub fn record_gauges(&self) {
        for r in &self.replicas {
            let label = r.info.label.clone();
            pool_gauges(&label, &r.pool);
            let healthy = if r.is_healthy() { 1.0 } else { 0.0 };
            metrics::gauge!("gateway_db_replica_healthy", "replica" => label.clone()).set(healthy);
            let lag = r.lag_ms.load(Ordering::Relaxed);
            if lag != u64::MAX {
                metrics::gauge!("gateway_db_replica_lag_seconds", "replica" => label)
                    .set(lag as f64 / 1000.0);
            }
        }
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
        let primary_known = match self.primary_lsn().await {
            Ok(lsn) => {
                self.record(Instant::now(), lsn);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the primary's WAL position");
                false
            }
        };
        let probes = self.replicas.iter().map(|replica| async move {
            let timeout = self.max_lag.max(Duration::from_secs(1));
            match tokio::time::timeout(timeout, probe(replica)).await {
                Ok(Ok(state)) => self.judge(replica, state, primary_known),
                Ok(Err(e)) => replica.mark_down(&e.to_string()),
                Err(_) => replica.mark_down("health probe timed out"),
            }
        });
        futures::future::join_all(probes).await;
    }

    fn record(&self, at: Instant, lsn: u64) {
        let keep = self.max_lag + self.interval * 2;
        if let Ok(mut history) = self.history.lock() {
            history.push_back((at, lsn));
            while history.len() > 2
                && history
                    .front()
                    .is_some_and(|(t, _)| at.duration_since(*t) > keep)
            {
                history.pop_front();
            }
            while history.len() > 4096 {
                history.pop_front();
            }
        }
    }

    /// How far behind a replica that has replayed up to `replay` is.
    fn lag(&self, replay: u64, now: Instant) -> Duration {
        let Ok(history) = self.history.lock() else {
            return Duration::MAX;
        };
        match history.iter().rev().find(|(_, lsn)| *lsn <= replay) {
            // It has everything the primary had at `t`.
            Some((t, _)) if Some(t) == history.back().map(|(t, _)| t) => Duration::ZERO,
            Some((t, _)) => now.duration_since(*t),
            // Behind every position still remembered.
            None => history
                .front()
                .map(|(t, _)| now.duration_since(*t))
                .unwrap_or_default(),
        }
    }

    fn judge(&self, replica: &Replica, state: ReplayState, primary_known: bool) {
        if !state.in_recovery {
            replica.mark_down("not in recovery: this server is not a replica");
            return;
        }
        if !primary_known {
            // Lag cannot be judged without the primary; reachability is all we know.
            if replica.lag_ms.load(Ordering::Relaxed) != u64::MAX {
                replica.mark_up(replica.lag_ms.load(Ordering::Relaxed));
            }
            return;
        }
        let Some(replay) = state.replay_lsn.as_deref().and_then(parse_lsn) else {
            replica.mark_down("the replica reports no replay position");
            return;
        };
        let lag_ms = self
            .lag(replay, Instant::now())
            .as_millis()
            .min(u64::MAX as u128 - 1) as u64;
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

    async fn primary_lsn(&self) -> anyhow::Result<u64> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.primary.get().await?;
        let row: PrimaryPosition = sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
            .get_result(&mut conn)
            .await?;
        parse_lsn(&row.lsn).ok_or_else(|| anyhow::anyhow!("unreadable WAL position {}", row.lsn))
    }

    /// Runs the probe loop every `interval` until the router is dropped (it holds only a
    /// weak reference).
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

async fn probe(replica: &Replica) -> anyhow::Result<ReplayState> {
    use diesel_async::RunQueryDsl;
    let mut conn = replica.probe_pool.get().await?;
    let state = sql_query(
        "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn()::text AS replay_lsn",
    )
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

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn wal_positions_parse_to_byte_offsets() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
