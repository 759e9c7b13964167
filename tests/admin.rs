//! The partner admin API: keys and scopes, cost-based limits across two gateway
//! processes, bulk writes, audit log, orders, webhooks and CSV export (real PostgreSQL,
//! real Redis, real HTTP).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::admin::{Answer, admin, key, key_expiring};
use common::shop::{Process, cart_with, checkout_input, complete, stocked_variant};
use common::{TestDb, TestServer, config, eventually};
use serde_json::{Value, json};

const ALL_SCOPES: &[&str] = &[
    "read_products",
    "write_products",
    "read_inventory",
    "write_inventory",
    "read_orders",
    "write_orders",
    "read_webhooks",
    "write_webhooks",
    "admin",
];

/// A gateway with a plan `big` that never throttles, and `tiny`/`slow` for budget tests.
async fn server(db: &TestDb) -> TestServer {
    let mut c = config(db);
    c.rate_limits.plans = vec![
        ("big".into(), bucket(1_000_000, 100_000.0)),
        ("tiny".into(), bucket(100, 10.0)),
        ("slow".into(), bucket(100, 1.0)),
    ];
    TestServer::start(c).await
}

fn bucket(capacity: u64, rate: f64) -> commerce_gateway::ratelimit::BucketSpec {
    commerce_gateway::ratelimit::BucketSpec { capacity, rate }
}

async fn ask(s: &TestServer, key: &str, query: &str, variables: Value) -> Answer {
    admin(&s.client, &s.url(""), key, query, variables).await
}

#[test]
fn admin_graphql_matches_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/admin.graphql");
    let committed = std::fs::read_to_string(path).expect("admin.graphql");
    assert!(
        committed == commerce_gateway::graphql::admin::sdl(),
        "admin.graphql is out of date: run `cargo run -- schema --admin > admin.graphql`"
    );
}

// ---- scopes, generated from the schema ----

use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};

/// A field: name, arguments (name, type) and return type.
type FieldDef = (String, Vec<(String, Type)>, Type);

struct Sdl {
    objects: HashMap<String, Vec<FieldDef>>,
    inputs: HashMap<String, Vec<(String, Type)>>,
}

fn sdl() -> Sdl {
    let doc = async_graphql::parser::parse_schema(commerce_gateway::graphql::admin::sdl()).unwrap();
    let mut objects = HashMap::new();
    let mut inputs = HashMap::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let name = t.node.name.node.to_string();
        match &t.node.kind {
            TypeKind::Object(o) => {
                let fields = o
                    .fields
                    .iter()
                    .map(|f| {
                        let args = f
                            .node
                            .arguments
                            .iter()
                            .map(|a| (a.node.name.node.to_string(), a.node.ty.node.clone()))
                            .collect();
                        (f.node.name.node.to_string(), args, f.node.ty.node.clone())
                    })
                    .collect();
                objects.insert(name, fields);
            }
            TypeKind::InputObject(i) => {
                let fields = i
                    .fields
                    .iter()
                    .filter(|f| f.node.default_value.is_none())
                    .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()))
                    .collect();
                inputs.insert(name, fields);
            }
            _ => {}
        }
    }
    Sdl { objects, inputs }
}

/// A literal for a required argument (IDs as bare numbers: every kind accepts them).
fn literal(ty: &Type, sdl: &Sdl) -> String {
    match &ty.base {
        BaseType::List(_) => "[]".into(),
        BaseType::Named(n) => match n.as_str() {
            "ID" => "\"999999999\"".into(),
            "String" => "\"x\"".into(),
            "Int" => "1".into(),
            "Float" => "1.0".into(),
            "Boolean" => "false".into(),
            "DateTime" => "\"2030-01-01T00:00:00Z\"".into(),
            other => {
                let fields = sdl
                    .inputs
                    .get(other)
                    .unwrap_or_else(|| panic!("input {other}"));
                let parts: Vec<String> = fields
                    .iter()
                    .filter(|(_, t)| !t.nullable)
                    .map(|(f, t)| format!("{f}: {}", literal(t, sdl)))
                    .collect();
                format!("{{ {} }}", parts.join(", "))
            }
        },
    }
}

fn named(ty: &Type) -> String {
    match &ty.base {
        BaseType::List(inner) => named(inner),
        BaseType::Named(n) => n.to_string(),
    }
}

/// The smallest operation selecting `ty.field` at the root.
fn operation(root: &str, field: &str, sdl: &Sdl) -> String {
    let (_, args, ret) = sdl.objects[root]
        .iter()
        .find(|(f, _, _)| f == field)
        .unwrap();
    let args: Vec<String> = args
        .iter()
        .filter(|(_, t)| !t.nullable)
        .map(|(a, t)| format!("{a}: {}", literal(t, sdl)))
        .collect();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    let selection = if sdl.objects.contains_key(&named(ret)) {
        " { __typename }"
    } else {
        ""
    };
    let kind = if root == "Mutation" {
        "mutation"
    } else {
        "query"
    };
    format!("{kind} {{ {field}{args}{selection} }}")
}

fn denied(a: &Answer) -> bool {
    a.body["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["extensions"]["code"] == "ACCESS_DENIED"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_field_is_guarded_by_its_scope() {
    let db = TestDb::new(3).await;
    let s = server(&db).await;
    let sdl = sdl();
    let table = commerce_gateway::graphql::admin::scopes::REQUIRED;
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut tested = 0;
    for root in ["QueryRoot", "Mutation"] {
        for (field, _, _) in &sdl.objects[root] {
            let entry = table.iter().find(|(t, f, _)| *t == root && f == field);
            let Some((_, _, scope)) = entry else {
                panic!("{root}.{field} has no scope in graphql::admin::scopes::REQUIRED");
            };
            let op = operation(root, field, &sdl);
            let Some(scope) = scope else {
                // Any valid key may use it.
                let k = key(&db, "none", &["read_products"], "big").await;
                assert!(!denied(&ask(&s, &k, &op, json!({})).await), "{op}");
                continue;
            };
            // Every other scope (a write scope also grants its read scope).
            let family = scope.strip_prefix("read_").map(|r| format!("write_{r}"));
            let others: Vec<&str> = ALL_SCOPES
                .iter()
                .copied()
                .filter(|s| s != scope && Some(s.to_string()) != family)
                .collect();
            let without = keys
                .entry(format!("without {scope}"))
                .or_insert(key(&db, "without", &others, "big").await)
                .clone();
            let a = ask(&s, &without, &op, json!({})).await;
            assert!(denied(&a), "{op} without {scope}: {}", a.body);
            let required = a.body["errors"][0]["extensions"]["requiredScopes"].clone();
            assert_eq!(required, json!([scope]), "{op}: {}", a.body);
            assert!(
                a.body["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains(field.as_str()),
                "the error names the field: {}",
                a.body
            );
            assert_eq!(a.body["data"], Value::Null, "nothing ran: {}", a.body);
            let with = keys
                .entry(format!("with {scope}"))
                .or_insert(key(&db, "with", &[scope], "big").await)
                .clone();
            let a = ask(&s, &with, &op, json!({})).await;
            assert!(!denied(&a), "{op} with {scope}: {}", a.body);
            tested += 1;
        }
    }
    assert!(tested >= 40, "only {tested} fields tested");
    // Nested fields that reach into another scope's data.
    let nested = "{ products(first: 1) { nodes { variants(first: 1) { nodes { inventoryLevels { onHand } } } } } }";
    let reader = key(&db, "reader", &["read_products"], "big").await;
    let a = ask(&s, &reader, nested, json!({})).await;
    assert!(
        denied(&a)
            && a.body["errors"][0]["extensions"]["requiredScopes"] == json!(["read_inventory"]),
        "{}",
        a.body
    );
    let both = key(&db, "both", &["read_products", "read_inventory"], "big").await;
    let a = ask(&s, &both, nested, json!({})).await;
    assert!(a.body.get("errors").is_none(), "{}", a.body);
    // Through a fragment too.
    let a = ask(
        &s,
        &reader,
        "query { ...F } fragment F on QueryRoot { orders(first: 1) { nodes { id } } }",
        json!({}),
    )
    .await;
    assert!(denied(&a), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_checked_and_bad_ones_refused() {
    let db = TestDb::new(2).await;
    let s = server(&db).await;
    let q = "{ products(first: 1) { nodes { id } } }";
    // No key, a malformed key, a well-formed unknown key, a known prefix with the wrong secret.
    let none = s
        .client
        .post(s.url("/admin/graphql"))
        .json(&json!({ "query": q }))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert_eq!(common::error_code(&body), "UNAUTHENTICATED");
    let good = key(&db, "acme", &["read_products"], "big").await;
    let prefix = good.split('_').nth(1).unwrap();
    for bad in [
        "nonsense".to_string(),
        "cg_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        format!("cg_{prefix}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let a = ask(&s, &bad, q, json!({})).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (401, "UNAUTHENTICATED"),
            "{bad}: {}",
            a.body
        );
    }
    // X-Api-Key works like the bearer token.
    let r = s
        .client
        .post(s.url("/admin/graphql"))
        .header("x-api-key", &good)
        .json(&json!({ "query": q }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The secret is stored only as a digest, and last use is recorded.
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM api_keys WHERE secret_hash = sha256('{good}'::bytea)"
        ))
        .await,
        1
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            db.count("SELECT count(*) AS n FROM api_keys WHERE name = 'acme' AND last_used_at IS NOT NULL").await == 1
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_bad_keys_from_one_address_is_slowed_down() {
    let db = TestDb::new(0).await;
    let mut c = config(&db);
    c.rate_limits.auth_failures = bucket(5, 0.2);
    let s = TestServer::start(c).await;
    let mut codes = vec![];
    for i in 0..12 {
        let a = ask(
            &s,
            &format!("cg_{:012x}_guess{i}", i),
            "{ currentApiKey { id } }",
            json!({}),
        )
        .await;
        codes.push((a.status, a.retry_after));
    }
    assert!(codes[..5].iter().all(|c| c.0 == 401), "{codes:?}");
    assert!(codes[5..].iter().all(|c| c.0 == 429), "{codes:?}");
    // One token every 5 s: the wait is honest.
    assert!(
        codes[5..].iter().all(|c| matches!(c.1, Some(1..=5))),
        "{codes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cost_is_refunded_and_reported_like_shopify() {
    let db = TestDb::new(3).await;
    let s = server(&db).await;
    let k = key(&db, "slow", &["read_products"], "slow").await;
    // Requested: 2 + 50 × 1 = 52. Only 3 products exist: actual 2 + 3 = 5.
    let a = ask(
        &s,
        &k,
        "{ products(first: 50) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    let cost = &a.body["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 52, "{}", a.body);
    assert_eq!(cost["actualQueryCost"], 5, "{}", a.body);
    assert_eq!(cost["throttleStatus"]["maximumAvailable"], 100.0);
    assert_eq!(cost["throttleStatus"]["restoreRate"], 1.0);
    let left = a.available();
    assert!(
        (95.0..=96.0).contains(&left),
        "the difference was refunded: {left}"
    );
    // The next request sees the refunded budget, not 100 − 52.
    let a = ask(&s, &k, "{ products(first: 1) { nodes { id } } }", json!({})).await;
    assert!(a.available() >= 91.0, "{}", a.body);
    // A mutation costs 10 plus its selection.
    let w = key(&db, "writer", &["write_products"], "big").await;
    let a = ask(
        &s,
        &w,
        "mutation { productDelete(id: \"999999\") { deletedId userErrors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        a.body["extensions"]["cost"]["requestedQueryCost"], 11,
        "{}",
        a.body
    );
    // Over the plan's maximum: refused before it runs.
    let a = ask(
        &s,
        &k,
        "{ products(first: 250) { nodes { id variants(first: 10) { nodes { id } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(a.code(), "MAX_COST_EXCEEDED", "{}", a.body);
    assert_eq!(a.body["data"], Value::Null);
}

async fn gateway(db: &TestDb, plans: &str) -> Process {
    Process::spawn(
        db,
        "serve",
        &[
            ("ADMIN_PLANS", plans.to_string()),
            ("RUN_WORKERS", "false".into()),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_enforce_one_budget_and_restore_at_the_plan_rate() {
    let db = TestDb::new(20).await;
    let a = gateway(&db, "tiny=100:10").await;
    let b = gateway(&db, "tiny=100:10").await;
    let k = key(&db, "sync", &["read_products"], "tiny").await;
    let client = reqwest::Client::new();
    // 2 + 18 = 20 points, all spent (20 products exist): five fit in 100 points.
    let q = "{ products(first: 18) { edges { node { id } } } }";
    let started = Instant::now();
    let mut allowed = 0;
    let mut refusal = None;
    for i in 0..20 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let answer = admin(&client, base, &k, q, json!({})).await;
        if answer.status == 200 {
            assert_eq!(answer.body["extensions"]["cost"]["actualQueryCost"], 20);
            allowed += 1;
        } else {
            refusal = Some(answer);
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // One shared budget: 5 requests, plus what restored meanwhile (10 points/s).
    let restored = (elapsed * 10.0 / 20.0).floor() as i32;
    assert!(
        (5..=5 + restored).contains(&allowed),
        "{allowed} allowed in {elapsed:.2}s across two instances"
    );
    let refusal = refusal.expect("throttled");
    assert_eq!(refusal.status, 429);
    assert_eq!(refusal.code(), "THROTTLED");
    let available = refusal.available();
    let retry = refusal.retry_after.expect("Retry-After") as f64;
    // Long enough: after Retry-After seconds the bucket holds the 20 points…
    assert!(
        available + 10.0 * retry >= 20.0,
        "available {available}, Retry-After {retry}"
    );
    // …and not much longer: a second less would not have been enough.
    assert!(
        available + 10.0 * (retry - 1.0) < 20.0,
        "available {available}, Retry-After {retry}"
    );
    tokio::time::sleep(Duration::from_secs_f64(retry)).await;
    let after = admin(&client, &b.base, &k, q, json!({})).await;
    assert_eq!(after.status, 200, "after Retry-After: {}", after.body);
    // Restoring at the plan's rate: two seconds later, about 20 points more.
    let before = after.available();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cheap = "{ products(first: 1) { nodes { id } } }";
    let later = admin(&client, &a.base, &k, cheap, json!({})).await;
    let gained = later.available() + 3.0 - before;
    assert!(
        (18.0..=24.0).contains(&gained),
        "restored {gained} points in 2 s at 10/s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_and_expired_keys_stop_at_once_on_both_instances() {
    let db = TestDb::new(1).await;
    let a = gateway(&db, "standard=1000:50").await;
    let b = gateway(&db, "standard=1000:50").await;
    let client = reqwest::Client::new();
    let q = "{ currentApiKey { name } }";
    let k = key(&db, "partner", &["read_products"], "standard").await;
    let boss = key(&db, "boss", &["admin"], "standard").await;
    for base in [&a.base, &b.base] {
        assert_eq!(admin(&client, base, &k, q, json!({})).await.status, 200);
    }
    let id = db
        .count("SELECT id AS n FROM api_keys WHERE name = 'partner'")
        .await;
    let revoked = admin(
        &client,
        &a.base,
        &boss,
        "mutation($id: ID!) { apiKeyRevoke(id: $id) { apiKey { revokedAt } userErrors { code } } }",
        json!({ "id": format!("gid://shopify/ApiKey/{id}") }),
    )
    .await;
    assert!(
        revoked.body["data"]["apiKeyRevoke"]["apiKey"]["revokedAt"].is_string(),
        "{}",
        revoked.body
    );
    for base in [&b.base, &a.base] {
        let r = admin(&client, base, &k, q, json!({})).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "UNAUTHENTICATED"),
            "{}",
            r.body
        );
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("revoked")
        );
    }
    // Expiry: good until the second passes, then refused everywhere.
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let e = key_expiring(&db, "temp", &["read_products"], "standard", Some(soon)).await;
    assert_eq!(admin(&client, &a.base, &e, q, json!({})).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    for base in [&a.base, &b.base] {
        let r = admin(&client, base, &e, q, json!({})).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
    }
    // Keys and their management through the API (admin scope).
    let listed = admin(
        &client,
        &b.base,
        &boss,
        "{ apiKeys { name revokedAt expiresAt lastUsedAt } }",
        json!({}),
    )
    .await;
    let names: Vec<&str> = listed.body["data"]["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["partner", "boss", "temp"], "{}", listed.body);
    let made = admin(
        &client,
        &a.base,
        &boss,
        "mutation { apiKeyCreate(name: \"erp\", scopes: [\"read_orders\"], plan: \"standard\") { apiKey { name scopes plan } secret userErrors { field code } } }",
        json!({}),
    )
    .await;
    let secret = made.body["data"]["apiKeyCreate"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert!(secret.len() >= 43 + 16, "{secret}");
    let me = admin(&client, &b.base, &secret, q, json!({})).await;
    assert_eq!(me.body["data"]["currentApiKey"]["name"], "erp");
    let bad = admin(
        &client,
        &a.base,
        &boss,
        "mutation { apiKeyCreate(name: \"x\", scopes: [\"steal_everything\"], plan: \"gold\") { apiKey { name } userErrors { field code } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        bad.body["data"]["apiKeyCreate"]["userErrors"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{}",
        bad.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_never_reach_the_logs() {
    let db = TestDb::new(1).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let port = common::shop::free_port();
    let mut child = common::gateway_command_async()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTO_MIGRATE", "false")
        .env("AUTO_SEED_PRODUCTS", "0")
        .env("CACHE_ENABLED", "false")
        .env("RUN_WORKERS", "false")
        .env("RATE_LIMIT_KEY_PREFIX", format!("cg:rl:{}", db.name))
        .env("RUST_LOG", "trace")
        .env("LOG_FORMAT", "json")
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    assert!(
        eventually(Duration::from_secs(30), || async {
            client.get(format!("{base}/healthz")).send().await.is_ok()
        })
        .await
    );
    let good = key(&db, "logged", &["read_products"], "standard").await;
    let bad = "cg_abcdefabcdef_ThisIsNotAKeyButLooksLikeOneXXXXXXXXXXXXXXXX";
    admin(
        &client,
        &base,
        &good,
        "{ products(first: 1) { nodes { id } } }",
        json!({}),
    )
    .await;
    admin(
        &client,
        &base,
        bad,
        "{ products(first: 1) { nodes { id } } }",
        json!({}),
    )
    .await;
    admin(&client, &base, &good, "{ nope }", json!({})).await;
    child.kill().await.unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        text.len() > 1000,
        "trace logging is on: {} bytes",
        text.len()
    );
    // `cg_<prefix>_<secret>`; the secret (base64url) may itself contain `_`.
    let secret_part = good.splitn(3, '_').nth(2).unwrap();
    assert_eq!(secret_part.len(), 43);
    assert!(
        !text.contains(secret_part),
        "the key's secret is in the log: {}",
        text.lines()
            .find(|l| l.contains(secret_part))
            .unwrap_or_default()
    );
    assert!(
        !text.contains("ThisIsNotAKey"),
        "a presented key is in the log"
    );
}

// ---- writes ----

const BULK_SET: &str = "mutation($q: [InventoryQuantityInput!]!) { inventorySetQuantities(input: {reason: \"count\", quantities: $q}) { inventoryLevels { variantId onHand available } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread")]
async fn bulk_inventory_is_capped_atomic_and_audited() {
    let db = TestDb::new(60).await;
    let s = server(&db).await;
    let k = key(&db, "wms", &["write_inventory"], "big").await;
    let variants: Vec<i64> = {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct V {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let mut conn = db.conn().await;
        let rows: Vec<V> =
            diesel::sql_query("SELECT id FROM product_variants ORDER BY id LIMIT 251")
                .load(&mut conn)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.id).collect()
    };
    assert_eq!(variants.len(), 251, "seed has enough variants");
    let items = |n: usize, q: i64| -> Value {
        json!(variants[..n].iter().map(|v| json!({ "variantId": format!("gid://shopify/ProductVariant/{v}"), "locationId": "gid://shopify/Location/1", "quantity": q })).collect::<Vec<_>>())
    };
    // 251 items: refused as a whole with a clear error.
    let a = ask(&s, &k, BULK_SET, json!({ "q": items(251, 5) })).await;
    let errors = &a.body["data"]["inventorySetQuantities"]["userErrors"];
    assert_eq!(errors[0]["code"], "TOO_MANY_ITEMS", "{}", a.body);
    assert!(errors[0]["message"].as_str().unwrap().contains("250"));
    // 250 items: all set.
    let a = ask(&s, &k, BULK_SET, json!({ "q": items(250, 42) })).await;
    let levels = a.body["data"]["inventorySetQuantities"]["inventoryLevels"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(levels.len(), 250, "{}", a.body);
    assert!(levels.iter().all(|l| l["onHand"] == 42));
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM inventory_levels WHERE location_id = 1 AND on_hand = 42 AND variant_id <= {}", variants[249])).await, 250);
    // One bad item (an unknown variant): nothing changes.
    let mut bad = items(10, 7);
    bad.as_array_mut().unwrap().push(json!({ "variantId": "gid://shopify/ProductVariant/999999", "locationId": "gid://shopify/Location/1", "quantity": 1 }));
    let a = ask(&s, &k, BULK_SET, json!({ "q": bad })).await;
    let errors = &a.body["data"]["inventorySetQuantities"]["userErrors"];
    assert_eq!(errors[0]["code"], "NOT_FOUND", "{}", a.body);
    assert_eq!(errors[0]["field"], json!(["quantities", "10"]));
    assert_eq!(
        db.count(&format!("SELECT count(*) AS n FROM inventory_levels WHERE location_id = 1 AND on_hand = 42 AND variant_id <= {}", variants[249])).await,
        250,
        "nothing of the failed batch was written"
    );
    // Adjust: below zero refused; a delta applies.
    let adjust = "mutation($c: [InventoryChangeInput!]!) { inventoryAdjustQuantities(input: {reason: \"sale\", changes: $c}) { inventoryLevels { onHand } userErrors { code field } } }";
    let v = format!("gid://shopify/ProductVariant/{}", variants[0]);
    let a = ask(&s, &k, adjust, json!({ "c": [{ "variantId": v, "locationId": "gid://shopify/Location/1", "delta": -43 }] })).await;
    assert_eq!(
        a.body["data"]["inventoryAdjustQuantities"]["userErrors"][0]["code"], "INVALID",
        "{}",
        a.body
    );
    let a = ask(
        &s,
        &k,
        adjust,
        json!({ "c": [{ "variantId": v, "locationId": "gid://shopify/Location/1", "delta": -2 }] }),
    )
    .await;
    assert_eq!(
        a.body["data"]["inventoryAdjustQuantities"]["inventoryLevels"][0]["onHand"], 40,
        "{}",
        a.body
    );
    // Available stock follows (the storefront's availability reads it).
    assert_eq!(db.count(&format!("SELECT available - (SELECT sum(on_hand - reserved) FROM inventory_levels WHERE variant_id = {0}) AS n FROM product_variants WHERE id = {0}", variants[0])).await, 0);
    // The audit log tells who changed what.
    let boss = key(&db, "boss", &["admin"], "big").await;
    let log = ask(
        &s,
        &boss,
        "{ auditLog(first: 10, reverse: true) { nodes { actor action resourceType changes } } }",
        json!({}),
    )
    .await;
    let entries = log.body["data"]["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first: the boss's key, the two stock changes that succeeded (the refused
    // ones left nothing), the partner's key.
    assert_eq!(
        actions,
        [
            "apiKeyCreate",
            "inventoryAdjustQuantities",
            "inventorySetQuantities",
            "apiKeyCreate"
        ],
        "{}",
        log.body
    );
    assert_eq!(entries[1]["actor"], "wms");
    assert_eq!(entries[1]["changes"]["changes"][0]["delta"], -2);
    assert_eq!(
        entries[2]["changes"]["changes"].as_array().unwrap().len(),
        250
    );
}

const STOREFRONT_PRICE: &str = "query($h: String!) { product(handle: $h) { title variants(first: 5) { nodes { price { amount } } } } }";

#[tokio::test(flavor = "multi_thread")]
async fn admin_writes_are_visible_on_the_storefront_at_once() {
    let db = TestDb::new(5).await;
    let mut c = config(&db);
    c.cache.enabled = true;
    c.server.query_stats = false;
    c.cache.key_prefix = db.name.clone();
    c.rate_limits.plans = vec![("big".into(), bucket(1_000_000, 100_000.0))];
    let s = TestServer::start(c).await;
    let mut ready = s.app.cache_ready.clone();
    tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    let k = key(&db, "erp", &["write_products"], "big").await;
    let product = ask(
        &s,
        &k,
        "{ products(first: 1) { nodes { id handle variants(first: 10) { nodes { id } } } } }",
        json!({}),
    )
    .await;
    let node = product.body["data"]["products"]["nodes"][0].clone();
    let handle = node["handle"].as_str().unwrap().to_string();
    // Warm the storefront cache.
    for _ in 0..2 {
        s.gql(STOREFRONT_PRICE, json!({ "h": handle })).await;
    }
    let variants: Vec<Value> = node["variants"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!({ "id": v["id"], "price": "12.34" }))
        .collect();
    let a = ask(&s, &k, "mutation($v: [VariantUpdateInput!]!) { productVariantsBulkUpdate(variants: $v) { productVariants { id prices { price { amount currencyCode } } } userErrors { code field } } }", json!({ "v": variants })).await;
    assert_eq!(
        a.body["data"]["productVariantsBulkUpdate"]["userErrors"],
        json!([]),
        "{}",
        a.body
    );
    let a = ask(&s, &k, "mutation($id: ID!) { productUpdate(id: $id, input: {title: \"Renamed by ERP\"}) { product { title } userErrors { code } } }", json!({ "id": node["id"] })).await;
    assert_eq!(
        a.body["data"]["productUpdate"]["product"]["title"], "Renamed by ERP",
        "{}",
        a.body
    );
    // Invalidation travels by NOTIFY: within moments, never a stale answer after that.
    let fresh = eventually(Duration::from_secs(2), || async {
        let body = s.gql(STOREFRONT_PRICE, json!({ "h": handle })).await;
        let p = &body["data"]["product"];
        p["title"] == "Renamed by ERP"
            && p["variants"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["price"]["amount"] == "12.34")
    })
    .await;
    assert!(fresh, "the storefront shows the partner's bulk edit");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_crud_through_the_admin_api() {
    let db = TestDb::new(0).await;
    let s = server(&db).await;
    let k = key(&db, "pim", &["write_products", "write_inventory"], "big").await;
    let created = ask(&s, &k, "mutation($i: ProductCreateInput!) { productCreate(input: $i) { product { id handle status options { name values } variants(first: 10) { nodes { id sku availableQuantity prices { price { amount } compareAtPrice { amount } } } } images(first: 5) { nodes { url } } } userErrors { field code message } } }", json!({ "i": {
        "title": "Linen Shirt", "vendor": "Acme", "tags": ["summer"], "options": ["Size"],
        "variants": [
            { "sku": "LIN-S", "options": ["S"], "price": "49.00", "compareAtPrice": "59.00", "inventoryQuantity": 3 },
            { "sku": "LIN-M", "options": ["M"], "price": "49.00", "inventoryQuantity": 0 }
        ],
        "images": [{ "url": "https://cdn.example.com/linen.jpg", "altText": "Linen" }]
    }})).await;
    let p = &created.body["data"]["productCreate"]["product"];
    assert_eq!(p["handle"], "linen-shirt", "{}", created.body);
    assert_eq!(p["variants"]["nodes"][0]["availableQuantity"], 3);
    assert_eq!(
        p["variants"]["nodes"][0]["prices"][0]["compareAtPrice"]["amount"],
        "59.00"
    );
    assert_eq!(p["options"][0]["values"], json!(["S", "M"]));
    let id = p["id"].as_str().unwrap().to_string();
    // The same handle again: a clear error, nothing written.
    let again = ask(&s, &k, "mutation { productCreate(input: {title: \"Linen Shirt\"}) { product { id } userErrors { field code } } }", json!({})).await;
    assert_eq!(
        again.body["data"]["productCreate"]["userErrors"][0]["code"], "TAKEN",
        "{}",
        again.body
    );
    // Bad input: reported per field.
    let bad = ask(&s, &k, "mutation { productCreate(input: {title: \"\", handle: \"Not A Handle\", status: \"LIVE\", variants: [{price: \"-1\"}]}) { product { id } userErrors { field code } } }", json!({})).await;
    assert!(
        !bad.body["data"]["productCreate"]["userErrors"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        bad.body
    );
    // Bulk upsert by handle: one update, one create.
    let bulk = ask(&s, &k, "mutation($p: [ProductCreateInput!]!) { productsBulkUpsert(products: $p) { products { handle title } userErrors { code } } }", json!({ "p": [
        { "handle": "linen-shirt", "title": "Linen Shirt v2", "variants": [{ "sku": "LIN-S", "options": ["S"], "price": "45.00" }], "options": ["Size"] },
        { "title": "Wool Hat", "variants": [{ "sku": "HAT-1", "price": "20.00" }] }
    ]})).await;
    assert_eq!(
        bulk.body["data"]["productsBulkUpsert"]["products"],
        json!([{ "handle": "linen-shirt", "title": "Linen Shirt v2" }, { "handle": "wool-hat", "title": "Wool Hat" }]),
        "{}",
        bulk.body
    );
    let too_many: Vec<Value> = (0..251)
        .map(|i| json!({ "title": format!("P{i}") }))
        .collect();
    let capped = ask(&s, &k, "mutation($p: [ProductCreateInput!]!) { productsBulkUpsert(products: $p) { userErrors { code } } }", json!({ "p": too_many })).await;
    assert_eq!(
        capped.body["data"]["productsBulkUpsert"]["userErrors"][0]["code"],
        "TOO_MANY_ITEMS"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM products").await, 2);
    // Images, collections, categories.
    let img = ask(&s, &k, "mutation($p: ID!) { productImageCreate(productId: $p, url: \"https://cdn.example.com/2.jpg\", altText: \"Back\") { imageId userErrors { code } } }", json!({ "p": id })).await;
    let image = img.body["data"]["productImageCreate"]["imageId"]
        .as_str()
        .expect("image")
        .to_string();
    let del = ask(
        &s,
        &k,
        "mutation($i: ID!) { productImageDelete(id: $i) { deletedId } }",
        json!({ "i": image }),
    )
    .await;
    assert_eq!(
        del.body["data"]["productImageDelete"]["deletedId"],
        image.as_str()
    );
    let col = ask(&s, &k, "mutation { collectionCreate(input: {title: \"Summer\"}) { collection { id handle } userErrors { code } } }", json!({})).await;
    let cid = col.body["data"]["collectionCreate"]["collection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = ask(&s, &k, "mutation($c: ID!, $p: [ID!]!) { collectionAddProducts(id: $c, productIds: $p) { collection { productsCount } userErrors { code } } }", json!({ "c": cid, "p": [id] })).await;
    assert_eq!(
        add.body["data"]["collectionAddProducts"]["collection"]["productsCount"], 1,
        "{}",
        add.body
    );
    let storefront = s
        .gql(
            "{ collection(handle: \"summer\") { products(first: 5) { nodes { handle } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        storefront["data"]["collection"]["products"]["nodes"][0]["handle"], "linen-shirt",
        "{storefront}"
    );
    let parent = ask(
        &s,
        &k,
        "mutation { categoryCreate(input: {name: \"Apparel\"}) { category { id handle } } }",
        json!({}),
    )
    .await;
    let parent_id = parent.body["data"]["categoryCreate"]["category"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let child = ask(&s, &k, "mutation($p: String) { categoryCreate(input: {name: \"Shirts\", parentId: $p}) { category { id parentId } } }", json!({ "p": parent_id })).await;
    let child_id = child.body["data"]["categoryCreate"]["category"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        child.body["data"]["categoryCreate"]["category"]["parentId"],
        parent_id.as_str()
    );
    let cycle = ask(&s, &k, "mutation($id: ID!, $p: String) { categoryUpdate(id: $id, input: {parentId: $p}) { userErrors { code } } }", json!({ "id": parent_id, "p": child_id })).await;
    assert_eq!(
        cycle.body["data"]["categoryUpdate"]["userErrors"][0]["code"], "INVALID",
        "no cycles: {}",
        cycle.body
    );
    let set_cat = ask(&s, &k, "mutation($id: ID!, $c: String) { productUpdate(id: $id, input: {categoryId: $c, status: \"DRAFT\"}) { product { categoryId status } } }", json!({ "id": id, "c": child_id })).await;
    assert_eq!(
        set_cat.body["data"]["productUpdate"]["product"]["categoryId"],
        child_id.as_str(),
        "{}",
        set_cat.body
    );
    let gone = ask(
        &s,
        &k,
        "mutation($id: ID!) { productDelete(id: $id) { deletedId userErrors { code } } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(gone.body["data"]["productDelete"]["deletedId"], id.as_str());
    let twice = ask(
        &s,
        &k,
        "mutation($id: ID!) { productDelete(id: $id) { deletedId userErrors { code } } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        twice.body["data"]["productDelete"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
}

// ---- orders, webhooks, export ----

#[derive(Clone, Default)]
struct Hooks {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

async fn hook_receiver() -> (Hooks, String) {
    let hooks = Hooks::default();
    let h = hooks.clone();
    let app = axum::Router::new().route(
        "/partner",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let h = h.clone();
            async move {
                h.seen.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/partner", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hooks, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_webhooks_and_exports_for_partners() {
    let db = TestDb::new(0).await;
    let mut c = config(&db);
    c.rate_limits.plans = vec![("big".into(), bucket(1_000_000, 100_000.0))];
    c.jobs.worker.poll_interval = Duration::from_millis(50);
    c.inventory.low_threshold = 5;
    // The partner's endpoint is on 127.0.0.1 (refused by default: see the SSRF test).
    c.partners.allow_private_targets = true;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers = commerce_gateway::app::spawn_workers(&c, rx).unwrap();
    let s = TestServer::start(c).await;
    let (hooks, url) = hook_receiver().await;
    let k = key(
        &db,
        "oms",
        &[
            "write_orders",
            "write_webhooks",
            "read_products",
            "write_inventory",
        ],
        "big",
    )
    .await;
    let mut secrets = HashMap::new();
    for topic in ["ORDERS_CREATE", "ORDERS_CANCELLED", "INVENTORY_LOW"] {
        let sub = ask(&s, &k, "mutation($t: String!, $u: String!) { webhookSubscriptionCreate(topic: $t, callbackUrl: $u) { webhookSubscription { id topic } secret userErrors { code } } }", json!({ "t": topic, "u": url })).await;
        let secret = sub.body["data"]["webhookSubscriptionCreate"]["secret"]
            .as_str()
            .expect("secret")
            .to_string();
        secrets.insert(topic, secret);
    }
    let v = stocked_variant(&db, "tee", 2500, "DENY", &[8]).await;
    let base = s.url("");
    let mut order_ids = vec![];
    for (i, units) in [2, 2].iter().enumerate() {
        let cart = cart_with(&s.client, &base, &[(&v.gid, *units)]).await;
        let done = complete(
            &s.client,
            &base,
            &cart,
            checkout_input(&format!("ord-{i}"), "tok_success"),
        )
        .await;
        assert_eq!(done["userErrors"], json!([]), "{done}");
        order_ids.push(done["order"]["id"].as_str().unwrap().to_string());
    }
    // order.created twice, and inventory.low once (8 → 6 → 4 crosses 5).
    assert!(
        eventually(Duration::from_secs(10), || async {
            hooks.seen.lock().unwrap().len() >= 3
        })
        .await
    );
    let seen = hooks.seen.lock().unwrap().clone();
    for (headers, body) in &seen {
        let event = headers["webhook-event"].to_str().unwrap();
        let topic = match event {
            "order.created" => "ORDERS_CREATE",
            "inventory.low" => "INVENTORY_LOW",
            other => panic!("{other}"),
        };
        let sig = headers["webhook-signature"].to_str().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(
            commerce_gateway::signing::verify(
                &secrets[topic],
                sig,
                body.as_bytes(),
                now,
                Duration::from_secs(300)
            )
            .is_ok(),
            "{event} signed with its subscription's secret"
        );
        assert!(
            commerce_gateway::signing::verify(
                &secrets["ORDERS_CANCELLED"],
                sig,
                body.as_bytes(),
                now,
                Duration::from_secs(300)
            )
            .is_err(),
            "and not with another's"
        );
    }
    let low: Vec<&(axum::http::HeaderMap, String)> = seen
        .iter()
        .filter(|(h, _)| h["webhook-event"] == "inventory.low")
        .collect();
    assert_eq!(
        low.len(),
        1,
        "inventory.low once, when it crossed the threshold"
    );
    assert!(low[0].1.contains("\"available\":4"), "{}", low[0].1);

    // Orders: list with filters, then cancel one, pay and fulfil and refund the other.
    let list = ask(&s, &k, "{ orders(first: 1, status: \"PENDING_PAYMENT\", email: \"buyer@example.com\") { edges { cursor node { id number status lineItems(first: 5) { nodes { sku quantity unitPrice { amount } } } } } pageInfo { hasNextPage endCursor } } }", json!({})).await;
    let conn_ = &list.body["data"]["orders"];
    assert_eq!(
        conn_["edges"][0]["node"]["id"],
        order_ids[0].as_str(),
        "{}",
        list.body
    );
    assert_eq!(
        conn_["edges"][0]["node"]["lineItems"]["nodes"][0]["quantity"],
        2
    );
    assert_eq!(conn_["pageInfo"]["hasNextPage"], true);
    let next = ask(&s, &k, "query($a: String) { orders(first: 5, after: $a) { nodes { id } pageInfo { hasNextPage } } }", json!({ "a": conn_["pageInfo"]["endCursor"] })).await;
    assert_eq!(
        next.body["data"]["orders"]["nodes"],
        json!([{ "id": order_ids[1] }]),
        "{}",
        next.body
    );
    let none = ask(
        &s,
        &k,
        "{ orders(first: 5, status: \"PAID\") { nodes { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(none.body["data"]["orders"]["nodes"], json!([]));
    let since = ask(
        &s,
        &k,
        "{ orders(first: 5, createdAtMax: \"2000-01-01T00:00:00Z\") { nodes { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(since.body["data"]["orders"]["nodes"], json!([]));

    let cancel = ask(&s, &k, "mutation($id: ID!) { orderCancel(id: $id, reason: \"customer asked\") { order { status cancelReason } userErrors { code } } }", json!({ "id": order_ids[0] })).await;
    assert_eq!(
        cancel.body["data"]["orderCancel"]["order"]["status"], "CANCELLED",
        "{}",
        cancel.body
    );
    assert_eq!(
        db.count(&format!(
            "SELECT available AS n FROM product_variants WHERE id = {}",
            v.variant_id
        ))
        .await,
        6,
        "released"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            hooks
                .seen
                .lock()
                .unwrap()
                .iter()
                .any(|(h, _)| h["webhook-event"] == "order.cancelled")
        })
        .await
    );
    let fulfil_unpaid = ask(
        &s,
        &k,
        "mutation($id: ID!) { orderFulfill(id: $id) { userErrors { code message } } }",
        json!({ "id": order_ids[1] }),
    )
    .await;
    assert_eq!(
        fulfil_unpaid.body["data"]["orderFulfill"]["userErrors"][0]["code"],
        "INVALID_STATE"
    );
    let second: i64 = order_ids[1].rsplit('/').next().unwrap().parse().unwrap();
    {
        let mut conn = db.conn().await;
        commerce_gateway::orders::transitions::mark_paid(&mut conn, second, &Default::default())
            .await
            .unwrap();
    }
    let fulfil = ask(&s, &k, "mutation($id: ID!) { orderFulfill(id: $id, trackingNumber: \"1Z999\", trackingUrl: \"https://track.example/1Z999\") { order { status trackingNumber fulfilledAt } userErrors { code } } }", json!({ "id": order_ids[1] })).await;
    assert_eq!(
        fulfil.body["data"]["orderFulfill"]["order"]["status"], "FULFILLED",
        "{}",
        fulfil.body
    );
    let over = ask(
        &s,
        &k,
        "mutation($id: ID!) { orderRefund(id: $id, amount: \"9999.00\") { userErrors { code } } }",
        json!({ "id": order_ids[1] }),
    )
    .await;
    assert_eq!(
        over.body["data"]["orderRefund"]["userErrors"][0]["code"],
        "INVALID"
    );
    let part = ask(&s, &k, "mutation($id: ID!) { orderRefund(id: $id, amount: \"10.00\") { order { status refunded { amount } } userErrors { code } } }", json!({ "id": order_ids[1] })).await;
    assert_eq!(
        part.body["data"]["orderRefund"]["order"],
        json!({ "status": "FULFILLED", "refunded": { "amount": "10.00" } }),
        "{}",
        part.body
    );
    let rest = ask(&s, &k, "mutation($id: ID!) { orderRefund(id: $id) { order { status total { amount } refunded { amount } } } }", json!({ "id": order_ids[1] })).await;
    let o = &rest.body["data"]["orderRefund"]["order"];
    assert_eq!(o["status"], "REFUNDED", "{}", rest.body);
    assert_eq!(o["total"], o["refunded"]);

    // CSV export: a job, a download, and the importer reads it back.
    let export = ask(
        &s,
        &k,
        "mutation { productExportCreate { export { id status } } }",
        json!({}),
    )
    .await;
    let export_id = export.body["data"]["productExportCreate"]["export"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut url = None;
    for _ in 0..100 {
        let e = ask(
            &s,
            &k,
            "query($id: ID!) { productExport(id: $id) { status url productsWritten } }",
            json!({ "id": export_id }),
        )
        .await;
        if e.body["data"]["productExport"]["status"] == "DONE" {
            url = e.body["data"]["productExport"]["url"]
                .as_str()
                .map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = url.expect("the export finishes");
    let path = url.strip_prefix("http://shop.test").unwrap();
    let csv = s
        .client
        .get(s.url(path))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("Handle,Title,Body (HTML)"), "{csv}");
    let anonymous = s.client.get(s.url(path)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let copy = TestDb::new(0).await;
    let mut conn = copy.conn().await;
    let report =
        commerce_gateway::catalog::import::import(&mut conn, csv.as_bytes(), "USD", &mut |_, _| {})
            .await
            .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(
        copy.count("SELECT count(*) AS n FROM products WHERE handle = 'tee'")
            .await,
        1
    );
    assert_eq!(
        copy.count(
            "SELECT sum(amount_minor)::int8 AS n FROM variant_prices WHERE currency = 'USD'"
        )
        .await,
        2500
    );
    let _ = stop.send(true);
    workers.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fragment_bombs_and_refusals_cost_time_and_points_linearly() {
    let db = TestDb::new(1).await;
    let s = server(&db).await;
    let k = key(&db, "bomb", &["read_products"], "big").await;
    // n fragments, each spreading the next twice: 2^n paths when walked naively.
    let bomb = |n: usize, leaf: &str, on: &str, root: &str| {
        let mut doc = format!("query {{ {root} }}\n");
        for i in 0..n {
            doc.push_str(&format!(
                "fragment F{i} on {on} {{ ...F{next} ...F{next} }}\n",
                next = i + 1
            ));
        }
        doc.push_str(&format!("fragment F{n} on {on} {{ {leaf} }}\n"));
        doc
    };
    let started = Instant::now();
    // 2^40: refused by admission, at the root or below it, before it costs anything.
    for (on, root) in [
        ("QueryRoot", "...F0"),
        ("ApiKey", "currentApiKey { ...F0 }"),
    ] {
        let leaf = if on == "ApiKey" {
            "name"
        } else {
            "currentApiKey { name }"
        };
        let a = ask(&s, &k, &bomb(40, leaf, on, root), json!({})).await;
        assert!(
            ["MAX_FIELDS_EXCEEDED", "MAX_COST_EXCEEDED"].contains(&a.code().as_str()),
            "{}",
            a.body
        );
    }
    // 2^10 spreads: within the limits; the scope check walks each fragment once.
    let ok = ask(
        &s,
        &k,
        &bomb(10, "name", "ApiKey", "currentApiKey { ...F0 }"),
        json!({}),
    )
    .await;
    assert_eq!(
        ok.body["data"]["currentApiKey"]["name"], "bomb",
        "{}",
        ok.body
    );
    let denied = bomb(
        10,
        "variants(first: 1) { nodes { inventoryLevels { onHand } } }",
        "Product",
        "products(first: 1) { nodes { ...F0 } }",
    );
    let a = ask(&s, &k, &denied, json!({})).await;
    assert_eq!(a.code(), "ACCESS_DENIED", "{}", a.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    // A refusal costs a point and reports the throttle status like any response.
    let slow = key(&db, "slow", &["read_products"], "slow").await;
    let a = ask(
        &s,
        &slow,
        "{ orders(first: 1) { nodes { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(a.code(), "ACCESS_DENIED", "{}", a.body);
    let left = a.available();
    assert!((98.0..=99.5).contains(&left), "{}", a.body);
    // Lists bounded by an argument are priced per item.
    let skus: Vec<String> = (0..30).map(|i| format!("SKU-{i}")).collect();
    let priced = ask(
        &s,
        &k,
        "query($s: [String!]!) { productVariantsBySku(skus: $s) { id } }",
        json!({ "s": skus }),
    )
    .await;
    assert_eq!(
        priced.body["extensions"]["cost"]["requestedQueryCost"], 30,
        "{}",
        priced.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_targets_must_be_public_and_belong_to_their_key() {
    let db = TestDb::new(0).await;
    let s = server(&db).await;
    let a = key(&db, "a", &["write_webhooks"], "big").await;
    let b = key(&db, "b", &["write_webhooks"], "big").await;
    let create = "mutation($u: String!) { webhookSubscriptionCreate(topic: \"ORDERS_PAID\", callbackUrl: $u) { webhookSubscription { id } userErrors { field code message } } }";
    for internal in [
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
    ] {
        let r = ask(&s, &a, create, json!({ "u": internal })).await;
        let e = &r.body["data"]["webhookSubscriptionCreate"]["userErrors"][0];
        assert_eq!(e["code"], "INVALID", "{internal}: {}", r.body);
        assert_eq!(e["field"], json!(["callbackUrl"]));
    }
    // A public address is accepted (the check resolves the host; nothing is sent).
    let r = ask(
        &s,
        &a,
        create,
        json!({ "u": "https://93.184.215.14/hooks" }),
    )
    .await;
    let id = r.body["data"]["webhookSubscriptionCreate"]["webhookSubscription"]["id"]
        .as_str()
        .expect("created")
        .to_string();
    // Another partner neither sees nor deletes it.
    let theirs = ask(&s, &b, "{ webhookSubscriptions { id } }", json!({})).await;
    assert_eq!(
        theirs.body["data"]["webhookSubscriptions"],
        json!([]),
        "{}",
        theirs.body
    );
    let del = "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedId userErrors { code } } }";
    let r = ask(&s, &b, del, json!({ "id": id })).await;
    assert_eq!(
        r.body["data"]["webhookSubscriptionDelete"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let mine = ask(&s, &a, "{ webhookSubscriptions { id } }", json!({})).await;
    assert_eq!(
        mine.body["data"]["webhookSubscriptions"][0]["id"],
        id.as_str()
    );
    let r = ask(&s, &a, del, json!({ "id": id })).await;
    assert_eq!(
        r.body["data"]["webhookSubscriptionDelete"]["deletedId"],
        id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_and_category_updates_change_only_the_fields_given() {
    let db = TestDb::new(0).await;
    let s = server(&db).await;
    let k = key(&db, "pim", &["write_products"], "big").await;
    let col = ask(&s, &k, "mutation { collectionCreate(input: {title: \"Winter\", descriptionHtml: \"<p>Cold</p>\", seo: {title: \"Winter SEO\"}, published: false}) { collection { id handle } userErrors { code } } }", json!({})).await;
    let cid = col.body["data"]["collectionCreate"]["collection"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", col.body))
        .to_string();
    // A title alone: the handle, description, SEO and visibility stay as they were.
    let upd = ask(&s, &k, "mutation($id: ID!) { collectionUpdate(id: $id, input: {title: \"Deep Winter\"}) { collection { handle title descriptionHtml seo { title } published } userErrors { code } } }", json!({ "id": cid })).await;
    let c = &upd.body["data"]["collectionUpdate"]["collection"];
    assert_eq!(c["title"], "Deep Winter", "{}", upd.body);
    assert_eq!(c["handle"], "winter");
    assert_eq!(c["descriptionHtml"], "<p>Cold</p>");
    assert_eq!(c["seo"]["title"], "Winter SEO");
    assert_eq!(c["published"], false);
    let upd = ask(&s, &k, "mutation($id: ID!) { collectionUpdate(id: $id, input: {handle: \"cold\", published: true}) { collection { handle title published } } }", json!({ "id": cid })).await;
    let c = &upd.body["data"]["collectionUpdate"]["collection"];
    assert_eq!(
        (
            c["handle"].as_str(),
            c["title"].as_str(),
            c["published"].as_bool()
        ),
        (Some("cold"), Some("Deep Winter"), Some(true)),
        "{}",
        upd.body
    );

    let parent = ask(
        &s,
        &k,
        "mutation { categoryCreate(input: {name: \"Outdoor\"}) { category { id } } }",
        json!({}),
    )
    .await;
    let parent_id = parent.body["data"]["categoryCreate"]["category"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let child = ask(&s, &k, "mutation($p: String) { categoryCreate(input: {name: \"Tents\", parentId: $p}) { category { id handle } } }", json!({ "p": parent_id })).await;
    let child_id = child.body["data"]["categoryCreate"]["category"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A new name keeps the handle and the parent.
    let renamed = ask(&s, &k, "mutation($id: ID!) { categoryUpdate(id: $id, input: {name: \"Shelters\"}) { category { name handle parentId } userErrors { code } } }", json!({ "id": child_id })).await;
    let c = &renamed.body["data"]["categoryUpdate"]["category"];
    assert_eq!(c["name"], "Shelters", "{}", renamed.body);
    assert_eq!(c["handle"], "tents");
    assert_eq!(c["parentId"], parent_id.as_str());
    // An empty parent makes it top-level.
    let moved = ask(&s, &k, "mutation($id: ID!) { categoryUpdate(id: $id, input: {parentId: \"\"}) { category { name parentId } userErrors { code } } }", json!({ "id": child_id })).await;
    let c = &moved.body["data"]["categoryUpdate"]["category"];
    assert_eq!(c["name"], "Shelters", "{}", moved.body);
    assert!(c["parentId"].is_null(), "{}", moved.body);
    // Unknown ids change nothing and say so.
    let missing = ask(&s, &k, "mutation { collectionUpdate(id: \"gid://shopify/Collection/999999\", input: {title: \"X\"}) { collection { id } userErrors { code } } }", json!({})).await;
    assert!(
        missing.body["data"]["collectionUpdate"]["collection"].is_null(),
        "{}",
        missing.body
    );
}
