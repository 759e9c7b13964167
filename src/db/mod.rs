//! PostgreSQL access: one pool for the primary, one per read replica, and the rule that
//! decides which of them serves a statement.
//!
//! Reads that tolerate lag go through [`Db::read`] with [`Route::Replica`]; the
//! [`ReplicaRouter`] picks a healthy replica (round robin) or falls back to the primary.
//! A read that fails on a replica is retried once on the primary, so a replica dying in the
//! middle of a request is never seen by the client. Writes, and reads that must see a
//! write (carts, mutation payloads), use [`Route::Primary`].
//!
//! Every connection handed out is instrumented with the request's [`StatementCounter`], so
//! the number of statements a request sends is measured, not guessed (the dataloader tests
//! and the benchmark read it).

pub mod migrate;
mod replicas;
/// Diesel's view of every table in `migrations/`, written by `diesel print-schema` (see
/// `diesel.toml`); `tests/schema.rs` checks it against a freshly migrated database.
pub mod schema;
pub mod sql;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::future::BoxFuture;

pub use replicas::{ReplicaRouter, ReplicaStatus};

pub type PgPool = Pool<AsyncPgConnection>;
pub type PgConn = Object<AsyncPgConnection>;

/// Which server a statement should go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Writes and reads that must observe this client's own writes.
    Primary,
    /// Reads that tolerate replication lag.
    Replica,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("query failed: {0}")]
    Query(Arc<diesel::result::Error>),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::Query(Arc::new(e))
    }
}

/// Counts the statements sent on the connections a request uses.
#[derive(Clone, Default, Debug)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where a pool's connections go: the `pool` label of metrics and the server attributes
/// of database spans.
#[derive(Debug)]
pub struct PoolInfo {
    /// `primary`, `replica-0`, …, `jobs` (the `pool` label of the pool gauges).
    pub label: String,
    /// `primary`, `replica` or `probe` (the `pool` label of statement metrics).
    pub role: &'static str,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub replica: bool,
}

impl PoolInfo {
    pub fn new(label: &str, role: &'static str, url: &str) -> Arc<Self> {
        let parsed = url::Url::parse(url).ok();
        Arc::new(Self {
            label: label.to_string(),
            role,
            replica: role != "primary",
            host: parsed
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
            port: parsed.as_ref().and_then(|u| u.port()).unwrap_or(5432),
            database: parsed
                .as_ref()
                .map(|u| u.path().trim_start_matches('/').to_string())
                .unwrap_or_default(),
        })
    }
}

/// A statement in flight on a connection.
struct InFlight {
    started: std::time::Instant,
    span: tracing::Span,
}

/// Statements one connection may have in flight (pipelining); older entries belong to
/// futures that were dropped before their statement finished.
const MAX_IN_FLIGHT: usize = 64;

/// Observes every statement of a connection: counts it for the request, times it into
/// `gateway_db_query_duration_seconds`, counts slow and failed ones, and (when the
/// request is traced) opens a client span with the OpenTelemetry database attributes
/// (statement text without literals). Statements can be pipelined on one connection;
/// PostgreSQL answers them in order. A statement whose future was dropped never
/// finishes: the pool's recycle hook gives a returned connection a fresh `Observe`, so
/// such leftovers never outlive their checkout.
struct Observe {
    counter: Option<StatementCounter>,
    info: Arc<PoolInfo>,
    in_flight: std::collections::VecDeque<InFlight>,
}

/// `query` as text, or `None` when it cannot be rendered (never a panic).
fn render(query: &dyn diesel::connection::DebugQuery) -> Option<String> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{query}").ok()?;
    Some(out)
}

impl Observe {
    fn new(info: Arc<PoolInfo>, counter: Option<StatementCounter>) -> Self {
        Self {
            counter,
            info,
            in_flight: Default::default(),
        }
    }

    fn start(&mut self, query: &dyn diesel::connection::DebugQuery) {
        use crate::telemetry::sql;
        if let Some(c) = &self.counter {
            c.0.fetch_add(1, Ordering::Relaxed);
        }
        // Only a traced statement is rendered here (with its binds, which are cut off):
        // metrics take the family from the finish event, which carries the SQL alone.
        let span = match crate::telemetry::child_spans()
            .then(|| render(query))
            .flatten()
        {
            Some(rendered) => {
                let text = sql::statement_text(&rendered);
                let family = sql::family(text);
                let (operation, collection) = match family.split_once(' ') {
                    Some((op, table)) => (op.to_ascii_uppercase(), table.to_string()),
                    None => (family.to_ascii_uppercase(), String::new()),
                };
                let name = if collection.is_empty() {
                    operation.clone()
                } else {
                    format!("{operation} {collection}")
                };
                tracing::info_span!(
                    "db.query",
                    otel.name = %name,
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    db.system.name = "postgresql",
                    db.operation.name = %operation,
                    db.collection.name = %collection,
                    db.namespace = %self.info.database,
                    db.query.text = %sql::sanitize(text),
                    db.client.connection.pool.name = %self.info.label,
                    db.replica = self.info.replica,
                    server.address = %self.info.host,
                    server.port = self.info.port,
                    error.type = tracing::field::Empty,
                )
            }
            None => tracing::Span::none(),
        };
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(InFlight {
            started: std::time::Instant::now(),
            span,
        });
    }

    fn finish(
        &mut self,
        query: &dyn diesel::connection::DebugQuery,
        error: Option<&diesel::result::Error>,
    ) {
        use crate::telemetry::sql;
        let Some(done) = self.in_flight.pop_front() else {
            return;
        };
        let elapsed = done.started.elapsed();
        let rendered = render(query).unwrap_or_default();
        let text = sql::statement_text(&rendered);
        tracing::trace!(target: "sql", statement = %text, elapsed_us = elapsed.as_micros() as u64, "statement");
        let family = sql::family(text);
        let pool = self.info.role;
        metrics::histogram!("gateway_db_query_duration_seconds", "pool" => pool, "family" => family.clone())
            .record(elapsed.as_secs_f64());
        if let Some(error) = error {
            metrics::counter!("gateway_db_query_errors_total", "pool" => pool, "family" => family.clone())
                .increment(1);
            done.span.record("otel.status_code", "ERROR");
            // A class, never the message (which can echo values).
            done.span.record("error.type", error_class(error).as_str());
        }
        if elapsed >= crate::telemetry::metrics::slow_query_threshold() {
            metrics::counter!("gateway_db_slow_queries_total", "pool" => pool, "family" => family.clone())
                .increment(1);
            tracing::warn!(pool = %pool, family = %family, elapsed_ms = elapsed.as_millis() as u64, statement = %sql::sanitize(text), "slow query");
        }
    }
}

/// The kind of a failed statement, for `error.type` (no message: it may carry values).
fn error_class(error: &diesel::result::Error) -> String {
    use diesel::result::Error;
    match error {
        Error::DatabaseError(kind, _) => format!("{kind:?}"),
        Error::NotFound => "NotFound".into(),
        Error::RollbackTransaction => "RollbackTransaction".into(),
        Error::SerializationError(_) | Error::DeserializationError(_) => "Serialization".into(),
        _ => "Other".into(),
    }
}

impl Instrumentation for Observe {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => self.start(query),
            InstrumentationEvent::FinishQuery { query, error, .. } => self.finish(query, error),
            _ => {}
        }
    }
}

/// Where the database is and how the gateway uses it (`DATABASE_*`, `REPLICA_*`).
#[derive(Clone, Debug)]
pub struct DbSettings {
    /// `DATABASE_URL`: the primary, which takes every write.
    pub url: String,
    /// `DATABASE_REPLICA_URLS`: streaming replicas for reads that tolerate lag.
    pub replica_urls: Vec<String>,
    /// `DATABASE_POOL_SIZE`: connections per pool (primary and each replica).
    pub pool_size: usize,
    /// `DATABASE_CONNECT_TIMEOUT_MS`: how long a pool waits to open a connection.
    pub connect_timeout: Duration,
    /// `DATABASE_GENERIC_PLANS`: the request pools' sessions run with
    /// `plan_cache_mode = force_generic_plan` (see [`session_url`]).
    pub generic_plans: bool,
    /// `REPLICA_MAX_LAG_MS`: a replica further behind than this leaves the rotation.
    pub replica_max_lag: Duration,
    /// `REPLICA_HEALTH_INTERVAL_MS`: how often replicas are probed.
    pub replica_health_interval: Duration,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/commerce_gateway".into(),
            replica_urls: vec![],
            pool_size: 16,
            connect_timeout: Duration::from_millis(2_000),
            generic_plans: true,
            replica_max_lag: Duration::from_millis(5_000),
            replica_health_interval: Duration::from_millis(1_000),
        }
    }
}

/// The shared database handle: cheap to clone, one per process.
#[derive(Clone)]
pub struct Db {
    primary: PgPool,
    primary_info: Arc<PoolInfo>,
    /// Healthy replicas in rotation; empty when none are configured.
    replicas: Arc<ReplicaRouter>,
    /// The request pools run with generic plans (see [`session_url`]).
    generic_plans: bool,
}

/// A read closure: called again on the primary when the replica failed, and once more
/// when a pooled primary connection turns out to be stale.
pub type ReadFn<T> = dyn for<'c> Fn(&'c mut AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>>
    + Send
    + Sync;

/// The URL the request pools connect with: `url`, plus
/// `options=-c plan_cache_mode=force_generic_plan` when `generic_plans` (merged into any
/// `options` the URL already has; a key=value connection string is left as it is).
///
/// Why: the gateway's prepared statements look rows up by key (`id = ANY($1)`, a cart,
/// a variant's stock), where the best plan does not depend on the values. PostgreSQL's
/// default still plans such a statement anew on every execution when its generic plan
/// looks dearer (an array parameter is assumed to hold ten elements, a `LIMIT $n` a tenth
/// of the table): 0.3–0.5 ms of planning per statement, about 3 ms of PostgreSQL's CPU per
/// checkout. The job queue's pool keeps the default.
pub fn session_url(url: &str, generic_plans: bool) -> String {
    const OPTION: &str = "-c plan_cache_mode=force_generic_plan";
    if !generic_plans {
        return url.to_string();
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return url.to_string();
    }
    let mut pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match pairs.iter_mut().find(|(k, _)| k == "options") {
        Some((_, v)) if v.contains("plan_cache_mode") => {}
        Some((_, v)) => *v = format!("{v} {OPTION}"),
        None => pairs.push(("options".into(), OPTION.into())),
    }
    // Percent-encoded by hand: tokio-postgres decodes `%XX` but not the `+` that form
    // encoding writes for a space.
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    parsed.set_query(Some(&query.join("&")));
    parsed.to_string()
}

/// A pool of `size` connections to `url`, each observed under `info` (statement
/// metrics and spans; see [`Observe`]).
pub fn build_pool(
    url: &str,
    size: usize,
    connect_timeout: Duration,
    info: Arc<PoolInfo>,
) -> anyhow::Result<PgPool> {
    let mut manager_config = ManagerConfig::default();
    // `Fast` skips the `SELECT 1` that `Verified` sends on every checkout: a dead
    // connection fails its first statement instead, which the read path retries.
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, manager_config);
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .create_timeout(Some(connect_timeout))
        .wait_timeout(Some(connect_timeout * 2))
        .post_create(deadpool::managed::Hook::sync_fn(
            move |conn: &mut AsyncPgConnection, _| {
                conn.set_instrumentation(Observe::new(info.clone(), None));
                Ok(())
            },
        ))
        .build()?)
}

impl Db {
    /// Builds the pools (lazily connected). The replica health probe is started by the
    /// caller ([`ReplicaRouter::spawn_health_task`] on [`Db::replicas`]).
    pub fn new(config: &DbSettings) -> anyhow::Result<Self> {
        let primary_info = PoolInfo::new("primary", "primary", &config.url);
        let primary = build_pool(
            &session_url(&config.url, config.generic_plans),
            config.pool_size,
            config.connect_timeout,
            primary_info.clone(),
        )?;
        let replicas = ReplicaRouter::new(config, primary.clone())?;
        Ok(Self {
            primary,
            primary_info,
            replicas,
            generic_plans: config.generic_plans,
        })
    }

    pub fn replicas(&self) -> &Arc<ReplicaRouter> {
        &self.replicas
    }

    /// A connection to the primary, counted against `counter`.
    pub async fn primary(&self, counter: &StatementCounter) -> Result<PgConn, DbError> {
        checkout(&self.primary, &self.primary_info, counter).await
    }

    /// Sets the pool and replica gauges (at scrape time).
    pub fn record_gauges(&self) {
        pool_gauges(&self.primary_info.label, &self.primary);
        self.replicas.record_gauges();
    }

    /// Runs a read on the server `route` asks for. On a replica, a failure of the replica
    /// (it died, was restarted, or cancelled the statement because of a replication
    /// conflict) is retried once on the primary; a bad statement is not.
    pub async fn read<T: Send + 'static>(
        &self,
        route: Route,
        counter: &StatementCounter,
        f: &ReadFn<T>,
    ) -> Result<T, DbError> {
        if route == Route::Replica
            && let Some(replica) = self.replicas.pick()
        {
            match checkout(&replica.pool, &replica.info, counter).await {
                Ok(mut conn) => match f(&mut conn).await {
                    Ok(value) => return Ok(value),
                    // A bad statement fails the same way on the primary: no retry.
                    Err(e) if !is_connection_error(&e) && !is_recovery_conflict(&e) => {
                        return Err(e.into());
                    }
                    Err(e) => {
                        tracing::warn!(replica = %replica.name, error = %e, "read failed on replica; retrying on primary");
                        if is_connection_error(&e) {
                            replica.mark_down(&e.to_string());
                            // The connection is broken: do not hand it back to the pool.
                            let _ = Object::take(conn);
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(replica = %replica.name, error = %e, "replica unreachable; reading from primary");
                    // A busy pool is not a sick replica: only failures to connect count.
                    if !matches!(&e, DbError::Unavailable(m) if m.contains("waiting for a slot")) {
                        replica.mark_down(&e.to_string());
                    }
                }
            }
        }
        let mut conn = self.primary(counter).await?;
        match f(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if is_connection_error(&e) => {
                // A pooled connection can be stale after a primary restart: one fresh try.
                let _ = Object::take(conn);
                let mut conn = self.primary(counter).await?;
                Ok(f(&mut conn).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the rows of a built statement (see [`Db::read`] for routing and retries).
    pub async fn read_rows<T>(
        &self,
        route: Route,
        counter: &StatementCounter,
        sql: sql::DynSql,
    ) -> Result<Vec<T>, DbError>
    where
        T: diesel::QueryableByName<diesel::pg::Pg> + Send + 'static,
    {
        use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
        // A statement shaped by a client's search is planned for its values: a generic
        // plan cannot tell a rare word from a common one (`title ILIKE $1` measured
        // 13 ms generic against 2.5 ms custom for a common word).
        let custom = self.generic_plans && sql.is_uncached();
        self.read(route, counter, &move |conn| {
            let q = sql.clone();
            Box::pin(async move {
                if !custom {
                    return q.load(conn).await;
                }
                conn.batch_execute("SET plan_cache_mode = auto").await?;
                let rows = q.load(conn).await;
                // Back to the session's own setting (from its connection options).
                conn.batch_execute("RESET plan_cache_mode").await?;
                rows
            })
        })
        .await
    }

    /// Is the primary reachable? (readiness)
    pub async fn ping_primary(&self) -> Result<(), DbError> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.primary(&StatementCounter::default()).await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}

async fn checkout(
    pool: &PgPool,
    info: &Arc<PoolInfo>,
    counter: &StatementCounter,
) -> Result<PgConn, DbError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    conn.set_instrumentation(Observe::new(info.clone(), Some(counter.clone())));
    Ok(conn)
}

/// `gateway_db_pool_connections{state}`, `…_max_connections` and `…_waiting` of a pool.
pub fn pool_gauges(label: &str, pool: &PgPool) {
    let status = pool.status();
    let in_use = status.size.saturating_sub(status.available);
    let label = label.to_string();
    metrics::gauge!("gateway_db_pool_connections", "pool" => label.clone(), "state" => "in_use")
        .set(in_use as f64);
    metrics::gauge!("gateway_db_pool_connections", "pool" => label.clone(), "state" => "idle")
        .set(status.available as f64);
    metrics::gauge!("gateway_db_pool_max_connections", "pool" => label.clone())
        .set(status.max_size as f64);
    metrics::gauge!("gateway_db_pool_waiting", "pool" => label).set(status.waiting as f64);
}

/// Errors that say the connection (or the server) is gone, as opposed to a bad statement.
pub fn is_connection_error(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => true,
        Error::DatabaseError(_, info) => {
            let msg = info.message();
            msg.contains("terminating connection")
                || msg.contains("connection closed")
                || msg.contains("shutting down")
                || msg.contains("the database system is")
        }
        _ => false,
    }
}

/// A query a hot-standby replica cancelled because replay needed the rows it was reading.
pub fn is_recovery_conflict(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message().contains("conflict with recovery"))
}

/// Creates the database named in `url` if it does not exist yet (first start on a fresh
/// machine). Connects to the `postgres` maintenance database of the same server.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use diesel_async::RunQueryDsl;
    let parsed = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
    let name = parsed.path().trim_start_matches('/').to_string();
    if name.is_empty() || name == "postgres" {
        return Ok(());
    }
    if AsyncPgConnection::establish(url).await.is_ok() {
        return Ok(());
    }
    let mut admin_url = parsed.clone();
    admin_url.set_path("/postgres");
    let mut conn = AsyncPgConnection::establish(admin_url.as_str())
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", redact(url)))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match diesel::sql_query(format!("CREATE DATABASE {quoted}"))
        .execute(&mut conn)
        .await
    {
        Ok(_) => tracing::info!(database = %name, "created database"),
        // Another instance created it at the same moment.
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => return Err(e).context("CREATE DATABASE failed"),
    }
    Ok(())
}

/// A database URL with its password removed, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::session_url;

    #[test]
    fn session_url_adds_or_merges_the_plan_option() {
        assert_eq!(
            session_url("postgres://u@h:5432/db", true),
            "postgres://u@h:5432/db?options=-c%20plan_cache_mode%3Dforce_generic_plan"
        );
        assert_eq!(
            session_url(
                "postgres://u@h/db?sslmode=disable&options=-c%20work_mem%3D8MB",
                true
            ),
            "postgres://u@h/db?sslmode=disable&options=-c%20work_mem%3D8MB%20-c%20plan_cache_mode%3Dforce_generic_plan"
        );
        assert_eq!(session_url("postgres://u@h/db", false), "postgres://u@h/db");
        assert_eq!(session_url("host=h dbname=db", true), "host=h dbname=db");
    }
}
