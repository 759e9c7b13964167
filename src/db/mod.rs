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

use crate::config::Config;

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

struct CountStatements(StatementCounter);

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            (self.0).0.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(target: "sql", statement = %query, "statement");
        }
    }
}

/// The shared database handle: cheap to clone, one per process.
#[derive(Clone)]
pub struct Db {
    primary: PgPool,
    /// Healthy replicas in rotation; empty when none are configured.
    replicas: Arc<ReplicaRouter>,
}

/// A read closure: called again on the primary when the replica failed, and once more
/// when a pooled primary connection turns out to be stale.
pub type ReadFn<T> = dyn for<'c> Fn(&'c mut AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>>
    + Send
    + Sync;

pub fn build_pool(url: &str, size: usize, connect_timeout: Duration) -> anyhow::Result<PgPool> {
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
        .build()?)
}

impl Db {
    /// Builds the pools (lazily connected) and starts the replica health probe.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let primary = build_pool(
            &config.database_url,
            config.pool_size,
            config.connect_timeout,
        )?;
        let replicas = ReplicaRouter::new(config, primary.clone())?;
        Ok(Self { primary, replicas })
    }

    pub fn replicas(&self) -> &Arc<ReplicaRouter> {
        &self.replicas
    }

    /// A connection to the primary, counted against `counter`.
    pub async fn primary(&self, counter: &StatementCounter) -> Result<PgConn, DbError> {
        checkout(&self.primary, counter).await
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
            match checkout(&replica.pool, counter).await {
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
        use diesel_async::RunQueryDsl;
        self.read(route, counter, &move |conn| {
            let q = sql.clone();
            Box::pin(async move { q.load(conn).await })
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

async fn checkout(pool: &PgPool, counter: &StatementCounter) -> Result<PgConn, DbError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    conn.set_instrumentation(CountStatements(counter.clone()));
    Ok(conn)
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

/// Records `SHOP_CURRENCY` in `shop_settings`; when it changed, the price bounds the
/// triggers keep in that currency are recomputed for every product.
pub async fn sync_shop_currency(
    conn: &mut AsyncPgConnection,
    currency: &str,
) -> diesel::QueryResult<bool> {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    // One transaction: a crash between the two statements must not leave the bounds in
    // the old currency with the setting already changed.
    let currency = currency.to_string();
    let changed = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let changed =
                diesel::sql_query("UPDATE shop_settings SET currency = $1 WHERE currency <> $1")
                    .bind::<Text, _>(&currency)
                    .execute(conn)
                    .await?;
            if changed > 0 {
                diesel::sql_query(
                    "SELECT refresh_product_price_bounds(ARRAY(SELECT id FROM products))",
                )
                .execute(conn)
                .await?;
            }
            Ok(changed > 0)
        })
        .await?;
    if changed {
        tracing::info!(%currency, "shop currency changed: price bounds recomputed");
    }
    Ok(changed)
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
