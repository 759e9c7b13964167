//! The HTTP layer: compression, HTTP/2 without TLS, health and readiness, draining on
//! shutdown, and the binary's first start on an empty server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const QUERY: &str = "{ products(first: 50) { nodes { id title description } } }";

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_compressed_as_the_client_asks() {
    let db = TestDb::new(30).await;
    let server = TestServer::start(config(&db)).await;
    // A client without automatic decompression, to see the wire.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .build()
        .unwrap();
    for encoding in ["gzip", "br", "zstd"] {
        let response = raw
            .post(server.url("/graphql"))
            .header("accept-encoding", encoding)
            .json(&json!({ "query": QUERY }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-encoding"], encoding);
        let wire = response.bytes().await.unwrap().len();
        let plain = raw
            .post(server.url("/graphql"))
            .json(&json!({ "query": QUERY }))
            .send()
            .await
            .unwrap();
        assert!(plain.headers().get("content-encoding").is_none());
        let plain = plain.bytes().await.unwrap().len();
        assert!(
            wire * 2 < plain,
            "{encoding}: {wire} bytes compressed vs {plain} plain"
        );
    }
    // Small responses are not worth an encoder.
    let small = raw
        .post(server.url("/graphql"))
        .header("accept-encoding", "gzip, br, zstd")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
    // And the decoded body is the same JSON.
    let decoded: Value = server
        .client
        .post(server.url("/graphql"))
        .header("accept-encoding", "br")
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        decoded["data"]["products"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_prior_knowledge_is_served_on_the_same_port() {
    let db = TestDb::new(2).await;
    let server = TestServer::start(config(&db)).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .post(server.url("/graphql"))
        .json(&json!({ "query": "{ products(first: 1) { nodes { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["products"]["nodes"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let db = TestDb::new(1).await;
    let server = TestServer::start(config(&db)).await;
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    // A gateway whose database is unreachable is alive but not ready.
    let mut cfg = config(&db);
    cfg.db.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
    cfg.db.connect_timeout = Duration::from_millis(300);
    let broken = TestServer::start(cfg).await;
    assert_eq!(
        broken
            .client
            .get(broken.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        broken
            .client
            .get(broken.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    // Queries fail with a clear code, not a 500.
    let body = broken
        .gql("{ products(first: 1) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let db = TestDb::new(5).await;
    let server = TestServer::start(config(&db)).await;
    // Hold a lock so the next query waits inside the database.
    let mut locker = db.conn().await;
    use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};
    AnsiTransactionManager::begin_transaction(&mut locker)
        .await
        .unwrap();
    diesel::sql_query("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();

    let client = server.client.clone();
    let url = server.url("/graphql");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({ "query": "{ products(first: 3) { nodes { id } } }" }))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = server.addr;
    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused while the old request drains.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener still accepts after shutdown began"
    );
    AnsiTransactionManager::commit_transaction(&mut locker)
        .await
        .unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["products"]["nodes"].as_array().unwrap().len(),
        3
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("server did not stop")
        .unwrap();
}

#[test]
fn serve_creates_migrates_and_seeds_an_empty_database_then_stops_on_sigterm() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = format!(
        "cg_test_{}_serve",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let url = format!("{}/{name}", server_url());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = common::gateway_command()
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTO_SEED_PRODUCTS", "25")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start the gateway");
    let body: Value = rt.block_on(async {
        let c = reqwest::Client::new();
        let ok = eventually(Duration::from_secs(60), || async {
            c.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ok, "the gateway never became ready");
        c.post(format!("http://127.0.0.1:{port}/graphql"))
            .json(&json!({ "query": "{ products(first: 100) { nodes { id } } collections(first: 10) { nodes { handle } } menu(handle: \"main-menu\") { items { title } } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let products = body["data"]["products"]["nodes"].as_array().unwrap().len();
    assert!(products > 20 && products <= 25, "{body}");
    assert!(
        !body["data"]["collections"]["nodes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(!body["data"]["menu"]["items"].as_array().unwrap().is_empty());

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "exit status {exit}");
    rt.block_on(async {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut conn = AsyncPgConnection::establish(&format!("{}/postgres", server_url()))
            .await
            .unwrap();
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_deadline_gets_a_timeout_error() {
    let db = TestDb::new(2).await;
    let mut cfg = config(&db);
    cfg.server.request_timeout = Duration::from_millis(400);
    let server = TestServer::start(cfg).await;
    let mut locker = db.conn().await;
    use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};
    AnsiTransactionManager::begin_transaction(&mut locker)
        .await
        .unwrap();
    diesel::sql_query("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let (status, body) = server
        .post_json(
            "/graphql",
            &json!({ "query": "{ products(first: 1) { nodes { id } } }" }),
        )
        .await;
    AnsiTransactionManager::rollback_transaction(&mut locker)
        .await
        .unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT");
    // The gateway is fine afterwards.
    server
        .data("{ products(first: 1) { nodes { id } } }", json!({}))
        .await;
}

/// The processes tests start do not inherit the gateway's variables from the developer's
/// shell (a `MAX_QUERY_DEPTH` or an `ORDER_WEBHOOK_URLS` there would change what they run).
#[test]
fn spawned_gateways_are_cleared_of_every_configuration_variable() {
    let names = gateway_variables();
    for name in [
        "DATABASE_URL",
        "MAX_QUERY_DEPTH",
        "REDIS_URL",
        "ORDER_WEBHOOK_URLS",
        "RATE_LIMIT_ENABLED",
        "LOG_FORMAT",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    let cleared: Vec<String> = gateway_command()
        .get_envs()
        .filter(|(_, value)| value.is_none())
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    assert_eq!(cleared, names);
}
