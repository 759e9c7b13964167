//! Storefront rate limits: per buyer address and per access token, shared by two gateway
//! processes through Redis, with trusted proxies, server tokens naming the buyer, and
//! each instance's share when Redis is unreachable.

mod common;

use std::time::Duration;

use common::proxy::FaultProxy;
use common::shop::Process;
use common::{TestDb, eventually};
use serde_json::{Value, json};

const QUERY: &str = "{ products(first: 1) { nodes { id } } }";

async fn gateway(db: &TestDb, env: &[(&str, &str)]) -> Process {
    let mut all: Vec<(&str, String)> = vec![
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RUN_WORKERS", "false".into()),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    Process::spawn(db, "serve", &all).await
}

/// (status, Retry-After, body) of one storefront request with `headers`.
async fn hit(
    client: &reqwest::Client,
    base: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<u64>, Value) {
    let mut r = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": QUERY }));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let response = r.send().await.expect("request");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, response.json().await.expect("JSON"))
}

async fn allowed(
    client: &reqwest::Client,
    bases: &[&str],
    n: usize,
    headers: &[(&str, &str)],
) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(hit(client, bases[i % bases.len()], headers).await.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_buyers_are_limited_per_address_across_instances() {
    let db = TestDb::new(1).await;
    let env = [("STOREFRONT_IP_LIMIT", "6:0.05")];
    let a = gateway(&db, &env).await;
    let b = gateway(&db, &env).await;
    let client = reqwest::Client::new();
    let statuses = allowed(&client, &[&a.base, &b.base], 10, &[]).await;
    // One budget for both instances: six requests, whichever instance served them.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    let (status, retry, body) = hit(&client, &a.base, &[]).await;
    assert_eq!(status, 429);
    assert_eq!(common::error_code(&body), "THROTTLED", "{body}");
    // One token every 20 s: the client is told to wait about that long.
    let retry = retry.expect("Retry-After");
    assert!((10..=20).contains(&retry), "Retry-After {retry}");
    // The decisions are counted for the dashboards.
    let metrics = client
        .get(format!("{}/metrics", a.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_rate_limit_decisions_total{")
                && l.contains("plan=\"storefront_ip\"")
                && l.contains("outcome=\"throttled\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let db = TestDb::new(1).await;
    let behind_proxy = gateway(
        &db,
        &[
            ("STOREFRONT_IP_LIMIT", "3:0.01"),
            ("TRUSTED_PROXIES", "127.0.0.0/8,::1"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = behind_proxy.base.as_str();
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(
        allowed(&client, &[base], 4, &from("203.0.113.1")).await,
        [200, 200, 200, 429]
    );
    // Another buyer behind the same proxy is not affected.
    assert_eq!(
        allowed(&client, &[base], 3, &from("203.0.113.2")).await,
        [200, 200, 200]
    );
    // A client cannot prepend its way out: the rightmost untrusted hop is the buyer.
    assert_eq!(
        allowed(&client, &[base], 1, &from("6.6.6.6, 203.0.113.1")).await,
        [429]
    );
    // A gateway that trusts no proxy ignores the header: rotating forged addresses from
    // one peer is still one buyer.
    let direct = gateway(&db, &[("STOREFRONT_IP_LIMIT", "3:0.01")]).await;
    let mut statuses = vec![];
    for i in 0..5 {
        let forged = format!("198.51.100.{i}");
        statuses.push(
            hit(
                &client,
                &direct.base,
                &[("x-forwarded-for", forged.as_str())],
            )
            .await
            .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_tokens_name_the_buyer_and_apps_are_limited_per_token() {
    let db = TestDb::new(1).await;
    let g = gateway(
        &db,
        &[
            ("STOREFRONT_IP_LIMIT", "3:0.01"),
            ("STOREFRONT_TOKEN_LIMIT", "8:0.01"),
            ("STOREFRONT_PRIVATE_TOKENS", "srv-secret-token"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = g.base.as_str();
    let server = |buyer: &'static str| {
        [
            ("shopify-storefront-private-token", "srv-secret-token"),
            ("shopify-storefront-buyer-ip", buyer),
        ]
    };
    // A Next.js server renders for many buyers: each buyer has its own budget…
    assert_eq!(
        allowed(&client, &[base], 4, &server("192.0.2.7")).await,
        [200, 200, 200, 429]
    );
    assert_eq!(
        allowed(&client, &[base], 3, &server("192.0.2.8")).await,
        [200, 200, 200]
    );
    // …and the server token as a whole has the app budget (8: one left).
    assert_eq!(
        allowed(&client, &[base], 2, &server("192.0.2.9")).await,
        [200, 429]
    );
    // Without the server token, the buyer header is ignored: the peer's budget applies.
    let forged = [("shopify-storefront-buyer-ip", "192.0.2.50")];
    assert_eq!(
        allowed(&client, &[base], 4, &forged).await,
        [200, 200, 200, 429]
    );
    // A public access token is limited per token, on top of the address.
    let prefix = format!("cg:rl:{}:tokens", db.name);
    let other = gateway(
        &db,
        &[
            ("STOREFRONT_IP_LIMIT", "100:1"),
            ("STOREFRONT_TOKEN_LIMIT", "2:0.01"),
            ("RATE_LIMIT_KEY_PREFIX", &prefix),
        ],
    )
    .await;
    let app = [("x-shopify-storefront-access-token", "public-app-token")];
    assert_eq!(
        allowed(&client, &[&other.base], 3, &app).await,
        [200, 200, 429]
    );
    assert_eq!(allowed(&client, &[&other.base], 1, &[]).await, [200]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_each_instance_enforces_its_share() {
    let db = TestDb::new(1).await;
    let proxy = FaultProxy::start("127.0.0.1:6379".into()).await;
    let redis = format!("redis://127.0.0.1:{}", proxy.port);
    let g = gateway(
        &db,
        &[
            ("STOREFRONT_IP_LIMIT", "10:0.01"),
            ("RATE_LIMIT_INSTANCES", "2"),
            ("RATE_LIMIT_REDIS_URL", redis.as_str()),
            ("TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let a = [("x-forwarded-for", "203.0.113.10")];
    // Through Redis: 2 of buyer A's shared 10 spent.
    assert_eq!(allowed(&client, &[&g.base], 2, &a).await, [200, 200]);
    proxy.cut();
    // Redis unreachable: this instance allows its share (10 ÷ 2) — not unlimited, and
    // not refusing everyone.
    let statuses = allowed(&client, &[&g.base], 8, &a).await;
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429, 429],
        "fallback to the share"
    );
    let metrics = client
        .get(format!("{}/metrics", g.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with("gateway_rate_limit_fallback_total{plan=\"storefront_ip\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    let ready: Value = client
        .get(format!("{}/readyz", g.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["rateLimits"]["redis"], false, "{ready}");
    // Redis back: the shared budget governs again (a new buyer gets all 10, not 5).
    proxy.restore();
    let back = eventually(Duration::from_secs(15), || async {
        let r: Value = client
            .get(format!("{}/readyz", g.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["rateLimits"]["redis"] == true
    })
    .await;
    assert!(back, "the limiter uses Redis again once it answers");
    let b = [("x-forwarded-for", "203.0.113.11")];
    let statuses = allowed(&client, &[&g.base], 11, &b).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses[10], 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn leased_budgets_never_admit_more_than_the_budget() {
    let db = TestDb::new(1).await;
    // 200 tokens: keys lease 4 at a time (2 %), up to 8 while busy.
    let env = [("STOREFRONT_IP_LIMIT", "200:0.01")];
    let a = gateway(&db, &env).await;
    let b = gateway(&db, &env).await;
    let client = reqwest::Client::new();
    let statuses = allowed(&client, &[&a.base, &b.base], 240, &[]).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // Never more than the budget; fewer only by the tokens left in each instance's
    // last lease (at most 8 each).
    assert!((184..=200).contains(&ok), "{ok} allowed of a budget of 200");
    assert!(statuses[230..].iter().all(|s| *s == 429), "{statuses:?}");
}
