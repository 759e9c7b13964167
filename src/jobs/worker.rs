//! Workers: one claim loop per queue, running up to that queue's concurrency of jobs.
//!
//! A claimed job is leased for the job timeout plus [`LEASE_SLACK`]; the worker itself
//! abandons a handler that runs past the timeout and schedules a retry, and a job whose
//! worker died is put back by whichever worker sees its lease expired. Completion and
//! failure are fenced by `locked_by` and `attempts`, so a worker that lost its lease
//! cannot overwrite the outcome of the attempt that replaced it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{BigInt, Double, Integer, Jsonb, Text};
use diesel_async::RunQueryDsl;
use rand::Rng;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::Kind;
use super::{Handler, JobError};
use crate::db::PgPool;

/// Added to the job timeout to form the lease, so a slow commit is not mistaken for a
/// dead worker.
pub const LEASE_SLACK: Duration = Duration::from_secs(5);

/// How the workers run (`JOB_*`, `IMPORT_TIMEOUT_MS`, `SHUTDOWN_GRACE_MS`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Queue name and how many of its jobs run at once.
    pub queues: Vec<(String, usize)>,
    /// How often an idle queue looks for due jobs.
    pub poll_interval: Duration,
    /// A handler running longer is abandoned and its job retried.
    pub job_timeout: Duration,
    /// The same for the `imports` queue, whose jobs run long by nature.
    pub import_timeout: Duration,
    /// The first retry delay; doubled per attempt, with ±50 % jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long shutdown waits for running jobs before releasing them.
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            queues: super::QUEUES
                .iter()
                .map(|q| (q.to_string(), super::default_concurrency(q)))
                .collect(),
            poll_interval: Duration::from_millis(250),
            job_timeout: Duration::from_millis(60_000),
            import_timeout: Duration::from_millis(3_600_000),
            backoff_base: Duration::from_millis(1_000),
            backoff_max: Duration::from_millis(3_600_000),
            shutdown_grace: Duration::from_millis(20_000),
        }
    }
}

impl WorkerSettings {
    /// How long a job of `queue` may run.
    pub fn timeout_of(&self, queue: &str) -> Duration {
        if queue == "imports" {
            self.import_timeout
        } else {
            self.job_timeout
        }
    }
}

/// A job a worker holds the lease of.
#[derive(diesel::QueryableByName, Debug, Clone)]
pub struct ClaimedJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    /// The enqueuing request's trace context (`traceparent`, `baggage`).
    #[diesel(sql_type = diesel::sql_types::Nullable<Jsonb>)]
    pub trace_context: Option<Value>,
}

/// A unique name for this worker process, recorded in `jobs.locked_by`.
fn worker_id() -> String {
    let host = hostname();
    let nonce: u32 = rand::rng().random();
    format!("{host}:{}:{nonce:08x}", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The retry delay after `attempts` failed attempts: base·2^(attempts−1), capped, with
/// jitter in [0.5, 1.5) so that jobs failing together do not retry together.
pub fn backoff(config: &WorkerSettings, attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let raw = config
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(config.backoff_max);
    raw.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Runs the workers of every configured queue until `shutdown` turns true, then lets
/// running jobs finish for `shutdown_grace` and releases the rest.
pub async fn run(
    pool: PgPool,
    handlers: Arc<dyn Handler>,
    config: WorkerSettings,
    shutdown: watch::Receiver<bool>,
) {
    let id: Arc<str> = worker_id().into();
    tracing::info!(worker = %id, queues = ?config.queues, "job workers started");
    let config = Arc::new(config);
    let mut loops = JoinSet::new();
    for (queue, concurrency) in config.queues.clone() {
        if concurrency == 0 {
            continue;
        }
        loops.spawn(queue_loop(
            pool.clone(),
            handlers.clone(),
            config.clone(),
            id.clone(),
            queue,
            concurrency,
            shutdown.clone(),
        ));
    }
    // Every run series exists from the start, so the first dead job is an increase.
    for kind in super::Kind::ALL {
        for outcome in ["success", "retry", "dead"] {
            metrics::counter!("gateway_job_runs_total", "queue" => kind.queue(), "kind" => kind.name(), "outcome" => outcome)
                .increment(0);
        }
    }
    let gauges = crate::telemetry::metrics::enabled()
        .then(|| tokio::spawn(report_queues(pool.clone(), shutdown.clone())));
    while loops.join_next().await.is_some() {}
    if let Some(g) = gauges {
        g.abort();
    }
    tracing::info!(worker = %id, "job workers stopped");
}

/// Every 5 s: `gateway_jobs{queue,state}`, `gateway_jobs_oldest_age_seconds{queue}` and
/// the job pool's gauges. Queues and states without jobs report 0.
async fn report_queues(pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        crate::db::pool_gauges("jobs", &pool);
        let stats = match pool.get().await {
            Ok(mut conn) => super::stats(&mut conn).await,
            Err(e) => {
                tracing::debug!(error = %e, "job queue stats: no connection");
                continue;
            }
        };
        let Ok(stats) = stats else { continue };
        for queue in super::QUEUES {
            let mut oldest = 0.0;
            for state in ["queued", "running", "dead"] {
                let found = stats.iter().find(|s| s.queue == *queue && s.state == state);
                let n = found.map_or(0, |s| s.jobs);
                if state == "queued" {
                    oldest = found.map_or(0.0, |s| s.oldest_age_seconds);
                }
                metrics::gauge!("gateway_jobs", "queue" => *queue, "state" => state).set(n as f64);
            }
            metrics::gauge!("gateway_jobs_oldest_age_seconds", "queue" => *queue).set(oldest);
        }
    }
}

async fn queue_loop(
    pool: PgPool,
    handlers: Arc<dyn Handler>,
    config: Arc<WorkerSettings>,
    worker: Arc<str>,
    queue: String,
    concurrency: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    // Jobs this loop holds, by id → attempts (released on shutdown if still running).
    let held: Arc<Mutex<HashMap<i64, i32>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let timeout = config.timeout_of(&queue);
    let lease = timeout + LEASE_SLACK;
    loop {
        while tasks.try_join_next().is_some() {}
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = requeue_expired(&pool, &queue).await {
            tracing::warn!(queue, error = %e, "cannot requeue expired jobs");
        }
        let free = permits.available_permits();
        let mut claimed_all = false;
        if free > 0 {
            match claim(&pool, &queue, free, &worker, lease).await {
                Ok(jobs) => {
                    claimed_all = jobs.len() == free;
                    for job in jobs {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        held.lock().unwrap().insert(job.id, job.attempts);
                        let (pool, handlers, config, worker, held) = (
                            pool.clone(),
                            handlers.clone(),
                            config.clone(),
                            worker.clone(),
                            held.clone(),
                        );
                        tasks.spawn(async move {
                            run_one(&pool, &*handlers, &config, &worker, &job, timeout).await;
                            held.lock().unwrap().remove(&job.id);
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(queue, error = %e, "cannot claim jobs"),
            }
        }
        if claimed_all {
            // More may be due: look again as soon as a permit frees up.
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll_interval) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = shutdown.changed() => {}
        }
    }
    // Shutdown: let running jobs finish within the grace period, release the others.
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let left: Vec<(i64, i32)> = held.lock().unwrap().drain().collect();
        for (id, attempts) in left {
            match release(&pool, id, &worker, attempts).await {
                Ok(()) => tracing::info!(queue, job = id, "released a running job at shutdown"),
                Err(e) => {
                    tracing::warn!(queue, job = id, error = %e, "cannot release job; its lease will expire")
                }
            }
        }
    }
}

/// Claims up to `limit` due jobs of `queue`.
async fn claim(
    pool: &PgPool,
    queue: &str,
    limit: usize,
    worker: &str,
    lease: Duration,
) -> anyhow::Result<Vec<ClaimedJob>> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, \
                locked_until = now() + make_interval(secs => $2), updated_at = now() \
         WHERE id IN (SELECT id FROM jobs \
                      WHERE queue = $3 AND state = 'queued' AND run_at <= now() \
                      ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, payload, attempts, max_attempts, trace_context",
    )
    .bind::<Text, _>(worker)
    .bind::<Double, _>(lease.as_secs_f64())
    .bind::<Text, _>(queue)
    .bind::<BigInt, _>(limit as i64)
    .load(&mut conn)
    .await?)
}

/// Puts back the running jobs of `queue` whose lease expired (their worker died or hung):
/// queued again, or dead when that was their last attempt.
async fn requeue_expired(pool: &PgPool, queue: &str) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let n = diesel::sql_query(
        "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                locked_by = NULL, locked_until = NULL, run_at = now(), updated_at = now(), \
                last_error = 'abandoned: the lease expired (worker died or the job hung)' \
         WHERE state = 'running' AND queue = $1 AND locked_until < now()",
    )
    .bind::<Text, _>(queue)
    .execute(&mut conn)
    .await?;
    if n > 0 {
        tracing::warn!(queue, jobs = n, "requeued jobs whose lease expired");
    }
    Ok(())
}

async fn run_one(
    pool: &PgPool,
    handlers: &dyn Handler,
    config: &WorkerSettings,
    worker: &str,
    job: &ClaimedJob,
    timeout: Duration,
) {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    // A trace of its own (a job can run long after, and many times), linked to the
    // request that enqueued it; sampled like a request without a parent.
    let span = if crate::telemetry::sample(&opentelemetry::Context::new()) {
        let span = tracing::info_span!(
            parent: None,
            "job",
            otel.name = %format!("job {}", job.kind),
            otel.kind = "consumer",
            otel.status_code = tracing::field::Empty,
            id = job.id,
            kind = %job.kind,
            attempt = job.attempts,
            messaging.system = "postgresql",
            messaging.destination.name = %queue_of(&job.kind),
        );
        if let Some(link) = job
            .trace_context
            .as_ref()
            .and_then(crate::telemetry::propagation::span_context_of)
        {
            span.add_link(link);
        }
        span
    } else {
        // Not traced, but log lines still say which job they are about.
        tracing::info_span!(target: crate::telemetry::LOG_ONLY, parent: None, "job", id = job.id, kind = %job.kind, attempt = job.attempts)
    };
    run_attempt(pool, handlers, config, worker, job, timeout)
        .instrument(span)
        .await
}

fn queue_of(kind: &str) -> &'static str {
    Kind::from_name(kind).map_or("unknown", Kind::queue)
}

async fn run_attempt(
    pool: &PgPool,
    handlers: &dyn Handler,
    config: &WorkerSettings,
    worker: &str,
    job: &ClaimedJob,
    timeout: Duration,
) {
    let started = std::time::Instant::now();
    let outcome = match Kind::from_name(&job.kind) {
        None => Err(JobError::permanent(format!(
            "unknown job kind {:?}",
            job.kind
        ))),
        Some(kind) => match tokio::time::timeout(timeout, handlers.run(kind, job)).await {
            Ok(result) => result,
            Err(_) => Err(JobError::retry(format!(
                "timed out after {} ms",
                timeout.as_millis()
            ))),
        },
    };
    let queue = queue_of(&job.kind);
    let kind = Kind::from_name(&job.kind).map_or("unknown", Kind::name);
    metrics::histogram!("gateway_job_duration_seconds", "queue" => queue, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    let run_outcome = match &outcome {
        Ok(()) => "success",
        Err(e) if e.permanent || job.attempts >= job.max_attempts => "dead",
        Err(_) => "retry",
    };
    metrics::counter!("gateway_job_runs_total", "queue" => queue, "kind" => kind, "outcome" => run_outcome)
        .increment(1);
    if outcome.is_err() {
        tracing::Span::current().record("otel.status_code", "ERROR");
    }
    let result = match &outcome {
        Ok(()) => complete(pool, job, worker).await,
        Err(e) => fail(pool, job, worker, e, config).await,
    };
    match (&outcome, result) {
        (_, Err(e)) => {
            tracing::warn!(job = job.id, error = %e, "cannot record the job's outcome; its lease will expire")
        }
        (Ok(()), Ok(())) => tracing::debug!(job = job.id, kind = %job.kind, "job done"),
        (Err(e), Ok(())) => {
            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %e.message, "job failed")
        }
    }
}

async fn complete(pool: &PgPool, job: &ClaimedJob, worker: &str) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    diesel::sql_query("DELETE FROM jobs WHERE id = $1 AND locked_by = $2 AND attempts = $3")
        .bind::<BigInt, _>(job.id)
        .bind::<Text, _>(worker)
        .bind::<Integer, _>(job.attempts)
        .execute(&mut conn)
        .await?;
    Ok(())
}

async fn fail(
    pool: &PgPool,
    job: &ClaimedJob,
    worker: &str,
    error: &JobError,
    config: &WorkerSettings,
) -> anyhow::Result<()> {
    let dead = error.permanent || job.attempts >= job.max_attempts;
    let delay = backoff(config, job.attempts);
    let mut conn = pool.get().await?;
    diesel::sql_query(
        "UPDATE jobs SET state = $1, last_error = $2, locked_by = NULL, locked_until = NULL, \
                run_at = now() + make_interval(secs => $3), updated_at = now() \
         WHERE id = $4 AND locked_by = $5 AND attempts = $6",
    )
    .bind::<Text, _>(if dead { "dead" } else { "queued" })
    .bind::<Text, _>(&error.message)
    .bind::<Double, _>(if dead { 0.0 } else { delay.as_secs_f64() })
    .bind::<BigInt, _>(job.id)
    .bind::<Text, _>(worker)
    .bind::<Integer, _>(job.attempts)
    .execute(&mut conn)
    .await?;
    if dead {
        tracing::error!(job = job.id, kind = %job.kind, attempts = job.attempts, error = %error.message, "job moved to the dead letters");
    }
    Ok(())
}

/// Gives a job back at shutdown without counting the interrupted attempt.
async fn release(pool: &PgPool, id: i64, worker: &str, attempts: i32) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    diesel::sql_query(
        "UPDATE jobs SET state = 'queued', attempts = attempts - 1, locked_by = NULL, \
                locked_until = NULL, run_at = now(), updated_at = now() \
         WHERE id = $1 AND locked_by = $2 AND attempts = $3",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .bind::<Integer, _>(attempts)
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let config = WorkerSettings {
            queues: vec![],
            poll_interval: Duration::from_millis(100),
            job_timeout: Duration::from_secs(1),
            import_timeout: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = backoff(&config, 1);
            assert!(first >= Duration::from_secs(1) && first < Duration::from_secs(3));
            let third = backoff(&config, 3);
            assert!(third >= Duration::from_secs(4) && third < Duration::from_secs(12));
            let late = backoff(&config, 25);
            assert!(late >= Duration::from_secs(30) && late < Duration::from_secs(90));
        }
    }
}
