//! The durable job queue, in PostgreSQL.
//!
//! A job is a row in `jobs`. It is enqueued with [`enqueue`] on the caller's connection,
//! so a job enqueued inside a transaction exists exactly when the transaction commits:
//! nothing is lost when the process dies after the commit, and nothing is sent for a
//! rolled-back order. Workers ([`worker::run`]) claim ready jobs with
//! `FOR UPDATE SKIP LOCKED`, lease them until `locked_until`, delete them when their handler
//! succeeds and reschedule them with exponential backoff and jitter when it fails. After
//! `max_attempts` a job stays in the table as `dead` until `commerce-gateway jobs retry`.
//! A job whose lease runs out (its worker died or hung) is put back by any worker.
//!
//! Delivery is at least once, so every handler is idempotent (see [`crate::dispatch`]).

pub mod worker;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

/// Why a job failed.
#[derive(Debug, Clone)]
pub struct JobError {
    pub message: String,
    /// Retrying cannot help (bad payload): the job goes to the dead letters at once.
    pub permanent: bool,
}

impl JobError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        JobError::retry(format!("database: {e}"))
    }
}

/// What the workers call to run a claimed job. The dispatch table
/// ([`crate::dispatch::Handlers`]) implements it, so the queue knows nothing of what its
/// jobs do.
pub trait Handler: Send + Sync + 'static {
    fn run<'a>(
        &'a self,
        kind: Kind,
        job: &'a worker::ClaimedJob,
    ) -> futures::future::BoxFuture<'a, Result<(), JobError>>;
}

/// The queues, each with its own workers (`JOB_QUEUES` sets their concurrency).
pub const QUEUES: &[&str] = &["orders", "email", "webhooks", "imports"];

/// How many jobs of `queue` run at once unless `JOB_QUEUES` says otherwise.
pub fn default_concurrency(queue: &str) -> usize {
    match queue {
        "orders" | "webhooks" => 4,
        "email" => 2,
        _ => 1,
    }
}

/// The job system's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `RUN_WORKERS`: `serve` runs the job workers in-process too.
    pub embedded: bool,
    /// `JOB_QUEUES`, `JOB_POLL_INTERVAL_MS`, `JOB_TIMEOUT_MS`, `IMPORT_TIMEOUT_MS`,
    /// `JOB_BACKOFF_BASE_MS`, `JOB_BACKOFF_MAX_MS` and `SHUTDOWN_GRACE_MS`.
    pub worker: worker::WorkerSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            embedded: true,
            worker: Default::default(),
        }
    }
}

/// What a job does; the handler is chosen by this name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Apply a payment provider event to its order.
    PaymentEvent,
    /// Cancel an unpaid order whose reservation ran out.
    ExpireReservation,
    /// Send the order confirmation email.
    OrderConfirmation,
    /// Render and store the invoice of a paid order.
    Invoice,
    /// Deliver one order event to one subscriber URL.
    OrderWebhook,
    /// Import a Shopify product CSV stored in `imports`.
    ImportCsv,
    /// Write the catalog as a Shopify product CSV into `exports`.
    ExportCsv,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PaymentEvent => "payment_event",
            Kind::ExpireReservation => "expire_reservation",
            Kind::OrderConfirmation => "order_confirmation",
            Kind::Invoice => "invoice",
            Kind::OrderWebhook => "order_webhook",
            Kind::ImportCsv => "import_csv",
            Kind::ExportCsv => "export_csv",
        }
    }

    pub const ALL: [Kind; 7] = [
        Kind::PaymentEvent,
        Kind::ExpireReservation,
        Kind::OrderConfirmation,
        Kind::Invoice,
        Kind::OrderWebhook,
        Kind::ImportCsv,
        Kind::ExportCsv,
    ];

    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn queue(self) -> &'static str {
        match self {
            Kind::PaymentEvent | Kind::ExpireReservation | Kind::Invoice => "orders",
            Kind::OrderConfirmation => "email",
            Kind::OrderWebhook => "webhooks",
            Kind::ImportCsv | Kind::ExportCsv => "imports",
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: Kind,
    pub payload: Value,
    /// Not before this time (scheduled jobs); now when `None`.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
}

impl NewJob {
    pub fn new(kind: Kind, payload: Value) -> Self {
        Self {
            kind,
            payload,
            run_at: None,
            max_attempts: 10,
        }
    }

    pub fn at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Enqueues jobs on `conn` (inside the caller's transaction when there is one) and
/// returns their ids.
pub async fn enqueue(conn: &mut AsyncPgConnection, jobs: &[NewJob]) -> QueryResult<Vec<i64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    // The job's span will link to the span that enqueued it.
    let trace_context = crate::telemetry::propagation::current_as_map();
    let queues: Vec<&str> = jobs.iter().map(|j| j.kind.queue()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.name()).collect();
    let payloads: Vec<&Value> = jobs.iter().map(|j| &j.payload).collect();
    let run_at: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.run_at).collect();
    let attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
    // One statement for all of them; RETURNING gives the ids in the order inserted.
    let rows: Vec<IdRow> = crate::db::sql::Prepared(
        diesel::sql_query(
            "INSERT INTO jobs (queue, kind, payload, run_at, max_attempts, trace_context) \
             SELECT t.queue, t.kind, t.payload, COALESCE(t.run_at, now()), t.max_attempts, $6 \
             FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::int4[]) \
                  WITH ORDINALITY AS t (queue, kind, payload, run_at, max_attempts, n) \
             ORDER BY t.n RETURNING id",
        )
        .bind::<Array<Text>, _>(&queues)
        .bind::<Array<Text>, _>(&kinds)
        .bind::<Array<Jsonb>, _>(&payloads)
        .bind::<Array<Nullable<Timestamptz>>, _>(&run_at)
        .bind::<Array<Integer>, _>(&attempts)
        .bind::<Nullable<Jsonb>, _>(&trace_context),
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A job as the dead-letter listing shows it.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = crate::db::schema::jobs)]
pub struct JobRow {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub progress: Option<Value>,
}

/// Jobs in state `state` ('queued', 'running' or 'dead'), oldest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    state: &str,
    limit: i64,
) -> QueryResult<Vec<JobRow>> {
    use crate::db::schema::jobs as j;
    j::table
        .filter(j::state.eq(state))
        .order(j::id)
        .limit(limit)
        .select(JobRow::as_select())
        .load(conn)
        .await
}

/// One job by id, whatever its state (`None` once it has succeeded and been removed).
pub async fn get(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<JobRow>> {
    use crate::db::schema::jobs as j;
    j::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Puts dead jobs back in their queue with fresh attempts: the ids given, or every dead
/// job when `ids` is `None`. Returns how many were requeued.
pub async fn retry_dead(conn: &mut AsyncPgConnection, ids: Option<&[i64]>) -> QueryResult<usize> {
    use crate::db::schema::jobs as j;
    let mut dead = diesel::update(j::table.filter(j::state.eq("dead"))).into_boxed();
    if let Some(ids) = ids {
        dead = dead.filter(j::id.eq_any(ids));
    }
    dead.set((
        j::state.eq("queued"),
        j::attempts.eq(0),
        j::run_at.eq(diesel::dsl::now),
        j::locked_by.eq(None::<String>),
        j::locked_until.eq(None::<DateTime<Utc>>),
        j::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await
}

/// Counts per queue and state, for `jobs stats` and the metrics.
#[derive(QueryableByName, Debug, Clone)]
pub struct QueueStats {
    #[diesel(sql_type = Text)]
    pub queue: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = BigInt)]
    pub jobs: i64,
    /// Seconds since the oldest job in this state became due.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub oldest_age_seconds: f64,
}

pub async fn stats(conn: &mut AsyncPgConnection) -> QueryResult<Vec<QueueStats>> {
    diesel::sql_query(
        "SELECT queue, state, count(*)::int8 AS jobs, \
                GREATEST(COALESCE(EXTRACT(EPOCH FROM now() - min(run_at)), 0), 0)::float8 AS oldest_age_seconds \
         FROM jobs GROUP BY queue, state ORDER BY queue, state",
    )
    .load(conn)
    .await
}
