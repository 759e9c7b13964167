//! The response cache against real Redis and real PostgreSQL notifications: hits and
//! misses, invalidation of every kind of change seen by a second gateway, Redis outages,
//! persisted queries, HTTP caching headers and CDN purges.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::shop::{cart_with, checkout_input, cli, complete, free_port, stocked_variant};
use common::{TestDb, TestServer, config};
use serde_json::{Value, json};
use sha2::Digest;

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// A gateway with the cache on, sharing Redis keys with every other gateway of `db`.
async fn gateway_with(
    db: &TestDb,
    redis_url: &str,
    tweak: impl FnOnce(&mut commerce_gateway::config::Config),
) -> TestServer {
    let mut c = config(db);
    c.cache.enabled = true;
    c.server.query_stats = false;
    c.cache.redis_url = redis_url.to_string();
    c.cache.key_prefix = db.name.clone();
    tweak(&mut c);
    let server = TestServer::start(c).await;
    let mut ready = server.app.cache_ready.clone();
    tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
        .await
        .expect("the invalidation listener starts")
        .unwrap();
    server
}

async fn gateway(db: &TestDb) -> TestServer {
    gateway_with(db, SHARED_REDIS, |_| {}).await
}

/// POSTs a query; returns the `X-Cache` header and the body.
async fn fetch(server: &TestServer, query: &str, variables: Value) -> (String, Value) {
    let response = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    (cache, body)
}

/// Caches `query` on `server`, applies `change`, and waits until `server` shows what
/// `changed` expects. Returns how long that took after the change committed.
async fn sees_change<F, Fut>(
    server: &TestServer,
    query: &str,
    variables: Value,
    change: F,
    changed: impl Fn(&Value) -> bool,
) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_, before) = fetch(server, query, variables.clone()).await;
    // Rows written just before may still be notifying: warm until the entry holds.
    let mut warmed = false;
    for _ in 0..50 {
        if fetch(server, query, variables.clone()).await.0 == "HIT" {
            warmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(warmed, "{query} is cached before the change");
    assert!(!changed(&before), "the change is not there yet: {before}");
    change().await;
    let done = Instant::now();
    loop {
        let (_, body) = fetch(server, query, variables.clone()).await;
        if changed(&body) {
            return done.elapsed();
        }
        assert!(
            done.elapsed() < Duration::from_secs(1),
            "still stale one second after the change: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `statement` on `db` (an owned future for `sees_change`).
async fn sql(db: &TestDb, statement: String) {
    db.run_sql(&statement).await
}

async fn first_handle(db: &TestDb) -> (i64, String) {
    let id = db.count("SELECT min(id) AS n FROM products").await;
    let mut conn = db.conn().await;
    #[derive(diesel::QueryableByName)]
    struct H {
        #[diesel(sql_type = diesel::sql_types::Text)]
        handle: String,
    }
    use diesel_async::RunQueryDsl;
    let h: H = diesel::sql_query(format!("SELECT handle FROM products WHERE id = {id}"))
        .get_result(&mut conn)
        .await
        .unwrap();
    (id, h.handle)
}

const PRODUCT: &str = "query Product($handle: String!) { product(handle: $handle) { id title \
    availableForSale category { name } \
    priceRange { minVariantPrice { amount currencyCode } } } }";

#[tokio::test(flavor = "multi_thread")]
async fn repeated_queries_hit_and_other_variables_or_currencies_miss() {
    let db = TestDb::new(5).await;
    let server = gateway(&db).await;
    let (_, handle) = first_handle(&db).await;
    let vars = json!({ "handle": handle });

    let (first, a) = fetch(&server, PRODUCT, vars.clone()).await;
    let (second, b) = fetch(&server, PRODUCT, vars.clone()).await;
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
    assert_eq!(a, b);
    // Formatting and comments do not split the cache.
    let reformatted = format!("# the product page\n{}", PRODUCT.replace(' ', "  "));
    assert_eq!(fetch(&server, &reformatted, vars.clone()).await.0, "HIT");
    // Other variables, another entry.
    let other = db.count("SELECT max(id) AS n FROM products").await;
    let (miss, other_body) = fetch(
        &server,
        "query($id: ID!) { node(id: $id) { id } }",
        json!({ "id": format!("gid://shopify/Product/{other}") }),
    )
    .await;
    assert_eq!(miss, "MISS", "{other_body}");
    // Another currency (from @inContext), another entry with its own prices.
    let in_canada = PRODUCT.replace(
        "query Product($handle: String!)",
        "query Product($handle: String!) @inContext(country: CA)",
    );
    let (miss, cad) = fetch(&server, &in_canada, vars.clone()).await;
    assert_eq!(miss, "MISS");
    assert_eq!(
        cad["data"]["product"]["priceRange"]["minVariantPrice"]["currencyCode"],
        "CAD"
    );
    assert_eq!(
        a["data"]["product"]["priceRange"]["minVariantPrice"]["currencyCode"],
        "USD"
    );
    assert_eq!(fetch(&server, &in_canada, vars.clone()).await.0, "HIT");

    // A cart is one buyer's: never cached, never stored by browsers or CDNs.
    let variant = db.count("SELECT min(id) AS n FROM product_variants").await;
    let cart = cart_with(
        &server.client,
        &server.url(""),
        &[(&format!("gid://shopify/ProductVariant/{variant}"), 1)],
    )
    .await;
    for _ in 0..2 {
        let response = server
            .client
            .post(server.url("/graphql"))
            .json(&json!({ "query": "query($id: ID!) { cart(id: $id) { id totalQuantity } }", "variables": { "id": cart } }))
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("x-cache").is_none());
        assert_eq!(response.headers()["cache-control"], "private, no-store");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_of_one_query_compute_once() {
    let db = TestDb::new(5).await;
    let server = gateway(&db).await;
    let (_, handle) = first_handle(&db).await;
    let server = Arc::new(server);
    let answers = futures::future::join_all((0..24).map(|_| {
        let server = server.clone();
        let handle = handle.clone();
        async move { fetch(&server, PRODUCT, json!({ "handle": handle })).await.1 }
    }))
    .await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    let status = server.app.cache.status();
    assert_eq!(
        status.misses, 1,
        "one computation for 24 concurrent requests"
    );
    assert_eq!(status.hits_local + status.coalesced, 23);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_change_reaches_a_second_gateway_within_a_second() {
    let db = TestDb::new(10).await;
    let writer = gateway(&db).await;
    let reader = gateway(&db).await;
    let (product_id, handle) = first_handle(&db).await;
    let vars = json!({ "handle": handle });
    let title = |t: &'static str| move |b: &Value| b["data"]["product"]["title"] == t;
    let mut waits = Vec::new();

    // Product title.
    waits.push(
        sees_change(
            &reader,
            PRODUCT,
            vars.clone(),
            || {
                sql(
                    &db,
                    format!("UPDATE products SET title = 'Renamed' WHERE id = {product_id}"),
                )
            },
            title("Renamed"),
        )
        .await,
    );
    // Variant price.
    waits.push(
        sees_change(
            &reader,
            PRODUCT,
            vars.clone(),
            || { sql(&db, format!(
                    "UPDATE variant_prices SET amount_minor = 1 WHERE currency = 'USD' AND variant_id IN \
                     (SELECT id FROM product_variants WHERE product_id = {product_id})"
                ))
            },
            |b| b["data"]["product"]["priceRange"]["minVariantPrice"]["amount"] == "0.01",
        )
        .await,
    );
    // Category edit.
    waits.push(
        sees_change(
            &reader,
            PRODUCT,
            vars.clone(),
            || {
                sql(
                    &db,
                    format!(
                        "UPDATE categories SET name = 'Renamed category' \
                     WHERE id = (SELECT category_id FROM products WHERE id = {product_id})"
                    ),
                )
            },
            |b| b["data"]["product"]["category"]["name"] == "Renamed category",
        )
        .await,
    );
    // Stock going to zero: the last unit is bought through the other gateway.
    let last = stocked_variant(&db, "last-one", 1000, "DENY", &[1]).await;
    let last_vars = json!({ "handle": "last-one" });
    waits.push(
        sees_change(
            &reader,
            PRODUCT,
            last_vars,
            || async {
                let cart = cart_with(&writer.client, &writer.url(""), &[(&last.gid, 1)]).await;
                let done = complete(
                    &writer.client,
                    &writer.url(""),
                    &cart,
                    checkout_input("last-key", "tok_success"),
                )
                .await;
                assert_eq!(done["userErrors"], json!([]), "{done}");
            },
            |b| b["data"]["product"]["availableForSale"] == false,
        )
        .await,
    );
    // Added to and removed from a collection.
    let collection = "query($h: String!) { collection(handle: $h) { products(first: 250) { nodes { handle } } } }";
    let cvars = json!({ "h": "cache-test" });
    db.run_sql(
        "INSERT INTO collections (handle, title, published) VALUES ('cache-test', 'Cache test', true)",
    )
    .await;
    let has = |h: String, yes: bool| {
        move |b: &Value| {
            let nodes = b["data"]["collection"]["products"]["nodes"]
                .as_array()
                .unwrap()
                .clone();
            nodes.iter().any(|n| n["handle"] == h.as_str()) == yes
        }
    };
    waits.push(
        sees_change(
            &reader,
            collection,
            cvars.clone(),
            || {
                sql(
                    &db,
                    format!(
                        "INSERT INTO collection_products (collection_id, product_id, position) \
                     SELECT id, {product_id}, 1 FROM collections WHERE handle = 'cache-test'"
                    ),
                )
            },
            has(handle.clone(), true),
        )
        .await,
    );
    waits.push(
        sees_change(
            &reader,
            collection,
            cvars,
            || {
                sql(
                    &db,
                    format!("DELETE FROM collection_products WHERE product_id = {product_id}"),
                )
            },
            has(handle.clone(), false),
        )
        .await,
    );
    // Menu edit.
    let menu = "query { menu(handle: \"main-menu\") { items { title } } }";
    waits.push(
        sees_change(
            &reader,
            menu,
            json!({}),
            || sql(&db, "UPDATE menu_items SET title = 'Renamed item' WHERE id = (SELECT min(id) FROM menu_items)".into()),
            |b| b["data"]["menu"]["items"][0]["title"] == "Renamed item",
        )
        .await,
    );
    // A CSV re-import from the command line.
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/csv/products.csv"
    ))
    .unwrap();
    let first = dir.path().join("first.csv");
    std::fs::write(&first, &original).unwrap();
    cli(&db, &["import", first.to_str().unwrap()]);
    let second = dir.path().join("second.csv");
    std::fs::write(
        &second,
        original.replacen(
            "linen-camp-shirt,Linen Camp Shirt,",
            "linen-camp-shirt,Linen Camp Shirt II,",
            1,
        ),
    )
    .unwrap();
    waits.push(
        sees_change(
            &reader,
            PRODUCT,
            json!({ "handle": "linen-camp-shirt" }),
            || async {
                cli(&db, &["import", second.to_str().unwrap()]);
            },
            title("Linen Camp Shirt II"),
        )
        .await,
    );
    eprintln!("change → visible on the other gateway: {waits:?}");
}

/// A Redis server of the test's own, to stop and start.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// `redis-server` on `port` with more arguments (a config file first, if any).
    fn start_with(port: u16, extra: &[&str]) -> Self {
        let port_arg = port.to_string();
        let base = [
            "--port",
            port_arg.as_str(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        let args: Vec<&str> = match extra.first() {
            Some(file) if !file.starts_with("--") => {
                let mut a = vec![*file];
                a.extend(base);
                a.extend(&extra[1..]);
                a
            }
            _ => base.iter().chain(extra).copied().collect(),
        };
        let child = std::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn readyz_cache(server: &TestServer) -> Value {
    let body: Value = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["cache"].clone()
}

/// Waits until `reader` answers `query` from the shared tier (Redis).
async fn shared_through_redis(writer: &TestServer, reader: &TestServer, query: &str, vars: &Value) {
    let before = reader.app.cache.status().hits_redis;
    fetch(writer, query, vars.clone()).await;
    for _ in 0..100 {
        fetch(reader, query, vars.clone()).await;
        if reader.app.cache.status().hits_redis > before {
            return;
        }
        // The reader may hold its own copy: drop it to read Redis.
        reader.app.cache.invalidate_local_all();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{query} never came from Redis: {}",
        readyz_cache(reader).await
    );
}

/// Sends queries alternately to `servers` for about a second: none may fail, each waits
/// a bounded time, and once `title` shows it never goes back.
async fn stream_of_queries(servers: &[&TestServer], vars: &Value, title: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    let mut fresh_since = None;
    for i in 0..40 {
        let server = servers[i % servers.len()];
        let t = Instant::now();
        let (_, body) = fetch(server, PRODUCT, vars.clone()).await;
        slowest = slowest.max(t.elapsed());
        let fresh = body["data"]["product"]["title"] == title;
        match fresh_since {
            None if fresh => fresh_since = Some(i),
            Some(_) => assert!(fresh, "an invalidated answer came back: {body}"),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        fresh_since.is_some_and(|i| i <= 10),
        "the change showed within a second"
    );
    slowest
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_fails_no_query_and_brings_back_nothing_stale() {
    let db = TestDb::new(5).await;
    let redis = OwnRedis::start(free_port());
    // A and B reach Redis through a proxy that can partition them from it.
    let proxy = common::proxy::FaultProxy::start(format!("127.0.0.1:{}", redis.port)).await;
    let proxied = format!("redis://127.0.0.1:{}", proxy.port);
    let a = gateway_with(&db, &proxied, |_| {}).await;
    let b = gateway_with(&db, &proxied, |_| {}).await;
    let (product_id, handle) = first_handle(&db).await;
    let vars = json!({ "handle": handle });
    let rename =
        |title: &str| format!("UPDATE products SET title = '{title}' WHERE id = {product_id}");
    shared_through_redis(&a, &b, PRODUCT, &vars).await;

    // Redis hangs (a stopped process: connections open, nothing answers) while the
    // product changes: every query is answered, promptly, and right.
    redis.signal("-STOP");
    db.run_sql(&rename("Changed while Redis hung")).await;
    let slowest = stream_of_queries(&[&a, &b], &vars, "Changed while Redis hung").await;
    eprintln!("slowest answer while Redis hung: {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "Redis waits are bounded");
    let status = readyz_cache(&a).await;
    assert_eq!(status["redis_healthy"], false, "{status}");
    assert!(
        status["redis_breaker_trips"].as_u64().unwrap() >= 1,
        "{status}"
    );
    redis.signal("-CONT");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Caching resumes and entries are shared again.
    shared_through_redis(&a, &b, PRODUCT, &vars).await;

    // A partition: the gateways cannot reach Redis, which keeps its (now stale) entry,
    // and the invalidation never gets there. When it heals, no gateway serves that
    // entry, not even one started afterwards.
    proxy.cut();
    db.run_sql(&rename("Changed during the partition")).await;
    let slowest = stream_of_queries(&[&a, &b], &vars, "Changed during the partition").await;
    eprintln!("slowest answer during the partition: {slowest:?}");
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let c = gateway_with(&db, &redis.url(), |_| {}).await;
    for server in [&a, &b, &c, &c] {
        let (_, body) = fetch(server, PRODUCT, vars.clone()).await;
        assert_eq!(
            body["data"]["product"]["title"], "Changed during the partition",
            "{body}"
        );
    }
    shared_through_redis(&c, &a, PRODUCT, &vars).await;

    // Redis restarts empty: no failed query, and caching comes back.
    let port = redis.port;
    drop(redis);
    db.run_sql(&rename("Changed while Redis was down")).await;
    stream_of_queries(&[&a, &b, &c], &vars, "Changed while Redis was down").await;
    let _redis = OwnRedis::start(port);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    shared_through_redis(&c, &b, PRODUCT, &vars).await;
    let (_, body) = fetch(&b, PRODUCT, vars.clone()).await;
    assert_eq!(
        body["data"]["product"]["title"],
        "Changed while Redis was down"
    );
}

fn sha256(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

async fn post(server: &TestServer, body: Value) -> Value {
    server
        .client
        .post(server.url("/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn persisted_get_url(server: &TestServer, hash: &str, variables: &Value) -> String {
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string();
    let mut url = url::Url::parse(&server.url("/graphql")).unwrap();
    url.query_pairs_mut()
        .append_pair("extensions", &ext)
        .append_pair("variables", &variables.to_string());
    url.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_persisted_queries_round_trip_across_gateways() {
    let db = TestDb::new(3).await;
    let a = gateway(&db).await;
    let b = gateway(&db).await;
    let (_, handle) = first_handle(&db).await;
    let query = format!("query Apq {{ product(handle: \"{handle}\") {{ title }} }}");
    let hash = sha256(&query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let unknown = post(&a, json!({ "extensions": ext })).await;
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let registered = post(&a, json!({ "query": query, "extensions": ext })).await;
    assert!(
        registered["data"]["product"]["title"].is_string(),
        "{registered}"
    );
    // Every gateway knows it now (through Redis).
    let by_hash = post(&b, json!({ "extensions": ext })).await;
    assert_eq!(by_hash["data"], registered["data"]);
    // A document that does not match its hash is refused.
    let mismatch = post(
        &a,
        json!({ "query": "{ shop { name } }", "extensions": ext }),
    )
    .await;
    assert_eq!(
        mismatch["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_HASH_MISMATCH"
    );
    let bad = post(
        &a,
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "nope" } } }),
    )
    .await;
    assert_eq!(
        bad["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_INVALID"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_allow_list_runs_only_registered_operations() {
    let db = TestDb::new(3).await;
    let (_, handle) = first_handle(&db).await;
    let body = "query ProductTitle($handle: String!) { product(handle: $handle) { title } }";
    let hash = sha256(body);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        json!({ "format": "apollo-persisted-query-manifest", "version": 1,
                "operations": [{ "id": hash, "name": "ProductTitle", "type": "query", "body": body }] })
        .to_string(),
    )
    .unwrap();
    let out = cli(
        &db,
        &["persisted-queries", "register", manifest.to_str().unwrap()],
    );
    assert!(out.contains("registered 1 operations"), "{out}");
    assert!(cli(&db, &["persisted-queries", "list"]).contains(&hash));

    let server = gateway_with(&db, SHARED_REDIS, |c| {
        c.cache.persisted_queries = commerce_gateway::cache::PersistedQueryMode::AllowList;
    })
    .await;
    let ok: Value = server
        .client
        .get(persisted_get_url(
            &server,
            &hash,
            &json!({ "handle": handle }),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ok["data"]["product"]["title"].is_string(), "{ok}");
    let free = post(
        &server,
        json!({ "query": body, "variables": { "handle": handle } }),
    )
    .await;
    assert_eq!(
        free["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_ID_REQUIRED",
        "{free}"
    );
    let other = "{ shop { name } }";
    let unregistered = post(
        &server,
        json!({ "query": other, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha256(other) } } }),
    )
    .await;
    assert_eq!(
        unregistered["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_IN_LIST"
    );
    assert!(unregistered.get("data").is_none_or(Value::is_null));
}

#[tokio::test(flavor = "multi_thread")]
async fn persisted_gets_carry_cdn_headers_etags_and_purges() {
    let db = TestDb::new(3).await;
    // A CDN purge endpoint of the test's own.
    let purges: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let seen = purges.clone();
    let purge_app = axum::Router::new().route(
        "/purge",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    seen.lock().unwrap().push((auth, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let purge_url = format!("http://{}/purge", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, purge_app).await });

    let server = gateway_with(&db, SHARED_REDIS, |c| {
        c.cache.cdn_purge_url = Some(purge_url);
        c.cache.cdn_purge_token = Some("purge-secret".into());
        c.cache.cache_control_by_operation.insert(
            "ProductPage".into(),
            "public, max-age=5, s-maxage=120, stale-while-revalidate=60".into(),
        );
    })
    .await;
    let (product_id, handle) = first_handle(&db).await;
    let query = "query ProductPage($handle: String!) { product(handle: $handle) { title availableForSale } }";
    let hash = sha256(query);
    post(&server, json!({ "query": query, "variables": { "handle": handle },
                          "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }))
    .await;
    let url = persisted_get_url(&server, &hash, &json!({ "handle": handle }));
    let first = server.client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let h = first.headers().clone();
    assert_eq!(
        h["cache-control"],
        "public, max-age=5, s-maxage=120, stale-while-revalidate=60"
    );
    assert_eq!(h["vary"], "Accept-Encoding");
    let keys: Vec<&str> = h["surrogate-key"].to_str().unwrap().split(' ').collect();
    assert!(
        keys.contains(&format!("product:{product_id}").as_str()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("stock:{product_id}").as_str()),
        "{keys:?}"
    );
    assert_eq!(h["cache-tag"].to_str().unwrap(), keys.join(","));
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");

    let not_modified = server
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], etag.as_str());
    assert!(not_modified.bytes().await.unwrap().is_empty());

    // A change: the CDN is told to purge the product's tag, and the ETag moves on.
    db.run_sql(&format!(
        "UPDATE products SET title = 'Purged' WHERE id = {product_id}"
    ))
    .await;
    let tag = format!("product:{product_id}");
    let mut purged = false;
    for _ in 0..100 {
        if purges.lock().unwrap().iter().any(|(auth, body)| {
            auth == "Bearer purge-secret"
                && body["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == tag.as_str()))
        }) {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(purged, "purge calls: {:?}", purges.lock().unwrap());
    let mut changed = false;
    for _ in 0..100 {
        let again = server
            .client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        if again.status() == 200 {
            assert_ne!(again.headers()["etag"], etag.as_str());
            let body: Value = again.json().await.unwrap();
            assert_eq!(body["data"]["product"]["title"], "Purged");
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(changed);
    // POSTed and non-persisted answers are not offered to CDNs.
    let response = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": query, "variables": { "handle": handle } }))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("cache-control").is_none());
    assert!(response.headers().get("surrogate-key").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn entity_lookups_are_shared_by_different_documents_and_invalidated_too() {
    let db = TestDb::new(3).await;
    // QUERY_STATS skips the response cache: what is left is the entity tier.
    let server = gateway_with(&db, SHARED_REDIS, |c| c.server.query_stats = true).await;
    let (product_id, handle) = first_handle(&db).await;
    let vars = json!({ "handle": handle });
    let statements = |body: &Value| {
        body["extensions"]["stats"]["sqlStatements"]
            .as_u64()
            .unwrap()
    };
    let title_page = "query($handle: String!) { product(handle: $handle) { title priceRange { minVariantPrice { amount } } } }";
    let (_, first) = fetch(&server, title_page, vars.clone()).await;
    assert!(statements(&first) >= 1, "the product is read: {first}");
    // Another document over the same product and price range sends no statement.
    let other = "query($handle: String!) { product(handle: $handle) { handle vendor priceRange { maxVariantPrice { amount } } } }";
    let mut served = false;
    for _ in 0..50 {
        let (_, body) = fetch(&server, other, vars.clone()).await;
        if statements(&body) == 0 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "entities served from the in-process tier: {}",
        readyz_cache(&server).await
    );
    assert!(server.app.cache.status().entity_hits >= 1);
    // A change drops the entity like the responses built from it.
    db.run_sql(&format!(
        "UPDATE products SET title = 'Entity renamed' WHERE id = {product_id}"
    ))
    .await;
    let mut renamed = false;
    for _ in 0..50 {
        let (_, body) = fetch(&server, title_page, vars.clone()).await;
        if body["data"]["product"]["title"] == "Entity renamed" {
            renamed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(renamed);
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinel_and_cluster_deployments_are_configured_by_url() {
    let db = TestDb::new(3).await;
    let (product_id, handle) = first_handle(&db).await;
    let vars = json!({ "handle": handle });
    let dir = tempfile::tempdir().unwrap();

    // Sentinel: a master and one sentinel watching it; the gateways ask the sentinel.
    let master = OwnRedis::start(free_port());
    let sentinel_port = free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!("sentinel monitor mymaster 127.0.0.1 {} 1\n", master.port),
    )
    .unwrap();
    let _sentinel = OwnRedis::start_with(sentinel_port, &[conf.to_str().unwrap(), "--sentinel"]);
    let url = format!("redis-sentinel://127.0.0.1:{sentinel_port}/0?sentinelServiceName=mymaster");
    let a = gateway_with(&db, &url, |_| {}).await;
    let b = gateway_with(&db, &url, |_| {}).await;
    shared_through_redis(&a, &b, PRODUCT, &vars).await;
    let keys = redis_cli(
        master.port,
        &["--scan", "--pattern", &format!("{}:*", db.name)],
    );
    assert!(
        keys.lines().count() > 0,
        "entries live on the sentinel's master"
    );
    drop((a, b));

    // Cluster: three masters; entries and tag marks spread over slots.
    let ports: Vec<u16> = (0..3).map(|_| cluster_port()).collect();
    let nodes: Vec<OwnRedis> = ports
        .iter()
        .map(|p| {
            OwnRedis::start_with(
                *p,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--dir",
                    dir.path().to_str().unwrap(),
                ],
            )
        })
        .collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addresses.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    redis_cli(ports[0], &create);
    let started = Instant::now();
    while !redis_cli(ports[0], &["cluster", "info"]).contains("cluster_state:ok") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cluster forms"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!(
        "redis-cluster://{}?node={}&node={}",
        addresses[0], addresses[1], addresses[2]
    );
    let a = gateway_with(&db, &url, |_| {}).await;
    let b = gateway_with(&db, &url, |_| {}).await;
    shared_through_redis(&a, &b, PRODUCT, &vars).await;
    // Keys hash to slots on different nodes; fred routes each command of a pipeline.
    let per_node: Vec<usize> = nodes
        .iter()
        .map(|n| {
            redis_cli(n.port, &["--scan", "--pattern", &format!("{}:*", db.name)])
                .lines()
                .count()
        })
        .collect();
    assert!(per_node.iter().sum::<usize>() >= 2, "{per_node:?}");
    eprintln!("cache keys per cluster node: {per_node:?}");
    // Invalidation through the cluster: B stops answering the old title.
    db.run_sql(&format!(
        "UPDATE products SET title = 'Clustered' WHERE id = {product_id}"
    ))
    .await;
    let mut seen = false;
    for _ in 0..50 {
        b.app.cache.invalidate_local_all();
        let (_, body) = fetch(&b, PRODUCT, vars.clone()).await;
        if body["data"]["product"]["title"] == "Clustered" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen);
    assert!(
        readyz_cache(&b).await["redis_errors"] == 0,
        "{}",
        readyz_cache(&b).await
    );
}
