//! Test harness: each test gets its own database on the real PostgreSQL (and, where
//! needed, reads it through the real streaming replica), and talks to an in-process
//! gateway over HTTP exactly as a storefront would.
#![allow(dead_code)]

pub mod admin;
pub mod otlp;
pub mod proxy;
pub mod shop;
pub mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use commerce_gateway::app::App;
use commerce_gateway::config::Config;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

/// The primary's server URL, without a database (`scripts/test` sets it).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The replica's server URL (`scripts/replica.sh` runs it on 5433).
pub fn replica_url() -> String {
    std::env::var("TEST_REPLICA_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433".into())
}

pub fn replica_script() -> String {
    std::env::var("REPLICA_SCRIPT")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/replica.sh").into())
}

/// A database of its own for one test, migrated and optionally seeded.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new(products: usize) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let name = format!("cg_test_{}_{:08x}", now.as_secs(), rand_u32());
        let url = format!("{}/{name}", server_url());
        drop_stale_databases().await;
        commerce_gateway::db::ensure_database(&url)
            .await
            .expect("create test database");
        commerce_gateway::db::migrate::run(&url)
            .await
            .expect("migrate test database");
        let db = Self { name, url };
        if products > 0 {
            let mut conn = db.conn().await;
            commerce_gateway::catalog::seed::seed(&mut conn, products, "USD", "http://shop.test")
                .await
                .expect("seed");
        }
        db
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to test database")
    }

    /// The same database read through the replica.
    pub fn replica_url(&self) -> String {
        format!("{}/{}", replica_url(), self.name)
    }

    /// Runs SQL that returns one bigint column named `n`.
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn().await;
        diesel::sql_query(sql)
            .get_result::<N>(&mut conn)
            .await
            .expect(sql)
            .n
    }

    /// Runs one or more SQL statements (a simple-protocol batch).
    pub async fn run_sql(&self, sql: &str) {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = self.conn().await;
        conn.batch_execute(sql).await.expect(sql);
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Test databases left behind by crashed runs (older than 30 minutes) are dropped.
async fn drop_stale_databases() {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let Ok(mut conn) = AsyncPgConnection::establish(&format!("{}/postgres", server_url())).await
    else {
        return;
    };
    let Ok(names) =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'cg\\_test\\_%'")
            .load::<Name>(&mut conn)
            .await
    else {
        return;
    };
    let cutoff = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        // Older than any test runs: leftovers of earlier runs. Hundreds of them slow the
        // PostgreSQL exporter's scrape (one size query per database) past its timeout.
        .saturating_sub(1800);
    for n in names {
        let secs: u64 = n
            .datname
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if secs < cutoff {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                n.datname
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// The environment variables the gateway reads that a developer's shell may have set:
/// every upper-case string literal of `src/config.rs` (the configuration table), and the
/// OpenTelemetry SDK's and the log format's. A process a test starts must not inherit
/// them: the test sets what it needs on top of the binary's defaults.
pub fn gateway_variables() -> Vec<String> {
    let config = include_str!("../../src/config.rs");
    let mut names: Vec<String> = config
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 2
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect();
    names.push("LOG_FORMAT".into());
    names.extend(
        std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("OTEL_")),
    );
    names.sort();
    names.dedup();
    names
}

/// `commerce-gateway` (the real binary) with none of the gateway's variables inherited
/// from the developer's environment (see [`gateway_variables`]).
pub fn gateway_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_commerce-gateway"));
    for name in gateway_variables() {
        cmd.env_remove(name);
    }
    cmd
}

/// [`gateway_command`] for tokio.
pub fn gateway_command_async() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_commerce-gateway"));
    for name in gateway_variables() {
        cmd.env_remove(name);
    }
    cmd
}

/// Configuration for a gateway on `db`, with test-friendly settings.
pub fn config(db: &TestDb) -> Config {
    // Start from the documented defaults, not from the developer's environment.
    let mut config = Config::defaults();
    config.db.url = db.url.clone();
    config.db.replica_urls = vec![];
    config.server.listen_addr = "127.0.0.1:0".parse().unwrap();
    config.startup.auto_migrate = false;
    config.startup.auto_seed_products = 0;
    config.server.query_stats = true;
    config.shop.url = "http://shop.test".into();
    config.db.pool_size = 8;
    // Tests that change rows by SQL and read them back at once run uncached; tests/cache.rs
    // turns the cache on.
    config.cache.enabled = false;
    // Storefront limits are tested in tests/ratelimit.rs; elsewhere they would throttle
    // tests that are many buyers on one address. Budgets are namespaced per test database.
    config.rate_limits.storefront_enabled = false;
    config.rate_limits.key_prefix = format!("cg:rl:{}", db.name);
    config
}

/// A gateway serving HTTP on a random local port until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind(config.server.listen_addr)
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let app = App::new(config).expect("app");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(commerce_gateway::http::serve(
            app.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            addr,
            app,
            client,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL request and returns the JSON body (asserting HTTP 200).
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .post_json(
                "/graphql",
                &json!({ "query": query, "variables": variables }),
            )
            .await;
        assert_eq!(status, 200, "unexpected HTTP status, body: {body}");
        body
    }

    /// POSTs a GraphQL request and returns `data`, failing on any error.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A Next.js Commerce operation, verbatim (see tests/fixtures/nextjs-commerce/README.md).
pub fn nextjs(operation: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/nextjs-commerce/{operation}.graphql",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The error code of the first error in a response.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
