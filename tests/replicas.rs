//! Reads go to a real streaming replica (made by `scripts/replica.sh` with pg_basebackup);
//! writes and cart reads go to the primary; a lagging or dead replica leaves the rotation
//! without a single failed query, and rejoins when healthy.
//!
//! These tests pause, kill and restart the one shared replica, so they run one at a time.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

static REPLICA: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn replica_sql(sql: &str) {
    let url = replica_url();
    let parsed = url::Url::parse(&url).unwrap();
    let status = std::process::Command::new("psql")
        .args([
            "-h",
            parsed.host_str().unwrap(),
            "-p",
            &parsed.port().unwrap().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qtAc",
            sql,
        ])
        .status()
        .expect("psql");
    assert!(status.success(), "{sql}");
}

fn replica_script_run(action: &str) {
    let status = std::process::Command::new("bash")
        .args([&replica_script(), action])
        .status()
        .expect("replica script");
    assert!(status.success(), "replica.sh {action}");
}

/// Pauses WAL replay on the replica until dropped (so a failing test cannot leave it paused).
struct PausedReplay;

impl PausedReplay {
    fn new() -> Self {
        replica_sql("SELECT pg_wal_replay_pause()");
        PausedReplay
    }
}

impl Drop for PausedReplay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &url::Url::parse(&replica_url())
                    .unwrap()
                    .port()
                    .unwrap()
                    .to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qtAc",
                "SELECT pg_wal_replay_resume()",
            ])
            .status();
    }
}

/// A test database that the replica has caught up with.
async fn replicated_db(products: usize) -> TestDb {
    replica_script_run("start");
    replica_sql("SELECT pg_wal_replay_resume()");
    let db = TestDb::new(products).await;
    let want = db.count("SELECT count(*) AS n FROM products").await;
    let replica = db.replica_url();
    let caught_up = eventually(Duration::from_secs(30), || {
        let replica = replica.clone();
        async move {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let Ok(mut conn) = AsyncPgConnection::establish(&replica).await else {
                return false;
            };
            diesel::sql_query("SELECT count(*) AS n FROM products")
                .get_result::<N>(&mut conn)
                .await
                .is_ok_and(|r| r.n == want)
        }
    })
    .await;
    assert!(
        caught_up,
        "the replica never caught up with the test database"
    );
    db
}

async fn replica_server(db: &TestDb, max_lag_ms: u64) -> TestServer {
    let mut cfg = config(db);
    cfg.db.replica_urls = vec![db.replica_url()];
    cfg.db.replica_max_lag = Duration::from_millis(max_lag_ms);
    cfg.db.replica_health_interval = Duration::from_millis(200);
    cfg.db.connect_timeout = Duration::from_millis(1000);
    let server = TestServer::start(cfg).await;
    assert!(
        replica_healthy(&server, true, Duration::from_secs(10)).await,
        "the replica never joined the rotation"
    );
    server
}

async fn replica_healthy(server: &TestServer, want: bool, within: Duration) -> bool {
    eventually(within, || async {
        let body: Value = match server.client.get(server.url("/readyz")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => return false,
        };
        body["replicas"][0]["healthy"].as_bool() == Some(want)
    })
    .await
}

const TITLE: &str = "query($h: String!) { product(handle: $h) { title } }";

async fn some_handle(db: &TestDb) -> (i64, String) {
    #[derive(diesel::QueryableByName)]
    struct P {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        handle: String,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = db.conn().await;
    let p: P = diesel::sql_query(
        "SELECT id, handle FROM products WHERE status = 'ACTIVE' ORDER BY id LIMIT 1",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    (p.id, p.handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_read_the_replica_while_carts_read_their_own_writes() {
    let _serial = REPLICA.lock().await;
    let db = replicated_db(10).await;
    let server = replica_server(&db, 60_000).await;
    let (id, handle) = some_handle(&db).await;

    let paused = PausedReplay::new();
    db.run_sql(&format!(
        "UPDATE products SET title = 'Renamed on the primary' WHERE id = {id}"
    ))
    .await;
    // The replica has not replayed the rename: a query that shows the old title was
    // answered by the replica.
    let seen = server.data(TITLE, json!({ "h": handle })).await;
    assert_ne!(seen["product"]["title"], "Renamed on the primary");

    // Carts: written and read back on the primary, whatever the replica says.
    let variant = db.count("SELECT min(id) AS n FROM product_variants").await;
    let created = server
        .data(
            "mutation($l: [CartLineInput!]) { cartCreate(input: { lines: $l }) { cart { id totalQuantity lines(first: 5) { nodes { merchandise { ... on ProductVariant { product { title } } } } } } } }",
            json!({ "l": [{ "merchandiseId": format!("gid://shopify/ProductVariant/{variant}"), "quantity": 3 }] }),
        )
        .await;
    let cart_id = created["cartCreate"]["cart"]["id"].clone();
    let read = server
        .data(
            "query($id: ID!) { cart(id: $id) { id totalQuantity } }",
            json!({ "id": cart_id }),
        )
        .await;
    assert_eq!(
        read["cart"]["totalQuantity"], 3,
        "the cart read did not see its own write"
    );

    drop(paused);
    let caught_up = eventually(Duration::from_secs(10), || async {
        server.data(TITLE, json!({ "h": handle })).await["product"]["title"]
            == "Renamed on the primary"
    })
    .await;
    assert!(
        caught_up,
        "the replica's answer never showed the rename after replay resumed"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_replica_leaves_the_rotation_and_rejoins() {
    let _serial = REPLICA.lock().await;
    let db = replicated_db(5).await;
    let server = replica_server(&db, 1_000).await;
    let (id, handle) = some_handle(&db).await;

    let paused = PausedReplay::new();
    // Keep writing so the replica falls further behind.
    for i in 0..5 {
        db.run_sql(&format!(
            "UPDATE products SET title = 'Lag {i}' WHERE id = {id}"
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        replica_healthy(&server, false, Duration::from_secs(5)).await,
        "the lagging replica stayed in rotation"
    );
    // Reads now come from the primary: the latest write is visible.
    let seen = server.data(TITLE, json!({ "h": handle })).await;
    assert_eq!(seen["product"]["title"], "Lag 4");
    let status: Value = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status["replicas"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("REPLICA_MAX_LAG_MS"),
        "{status}"
    );

    drop(paused);
    assert!(
        replica_healthy(&server, true, Duration::from_secs(10)).await,
        "the replica did not rejoin after catching up"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_query_fails_when_the_replica_dies_and_it_takes_traffic_again_after_restart() {
    let _serial = REPLICA.lock().await;
    let db = replicated_db(20).await;
    let server = replica_server(&db, 60_000).await;
    let query = nextjs("getProducts");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let client = server.client.clone();
        let url = server.url("/graphql");
        let query = query.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .json(&json!({ "query": query, "variables": { "sortKey": "TITLE" } }))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if body.get("errors").is_some()
                            || body["data"]["products"]["edges"]
                                .as_array()
                                .is_none_or(|e| e.is_empty())
                        {
                            failed.push(body.to_string());
                        } else {
                            ok += 1;
                        }
                    }
                    Ok(r) => failed.push(format!("HTTP {}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    replica_script_run("kill");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        assert!(
            failed.is_empty(),
            "{} queries failed while the replica died, first: {}",
            failed.len(),
            failed[0]
        );
        total += ok;
    }
    assert!(total > 20, "only {total} queries ran");
    assert!(
        replica_healthy(&server, false, Duration::from_secs(5)).await,
        "the dead replica stayed in rotation"
    );

    replica_script_run("start");
    assert!(
        replica_healthy(&server, true, Duration::from_secs(20)).await,
        "the restarted replica did not rejoin"
    );
    // It takes traffic again: with replay paused, a write is not seen through it.
    let (id, handle) = some_handle(&db).await;
    let _paused = PausedReplay::new();
    db.run_sql(&format!(
        "UPDATE products SET title = 'After restart' WHERE id = {id}"
    ))
    .await;
    let seen = server.data(TITLE, json!({ "h": handle })).await;
    assert_ne!(
        seen["product"]["title"], "After restart",
        "reads did not go back to the replica"
    );
    server.shutdown().await;
}
