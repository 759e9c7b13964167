//! Shop fixtures for checkout tests: stocked variants, carts, checkouts, signed payment
//! webhooks, and gateway and worker processes of the real binary.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::TestDb;

/// A variant made for a test, with known price and stock.
#[derive(Clone, Debug)]
pub struct Stocked {
    pub product_id: i64,
    pub variant_id: i64,
    /// `gid://shopify/ProductVariant/…`
    pub gid: String,
}

/// Creates a published product with one variant priced `price_minor` USD and `stock[i]`
/// units on hand at location i+1 (locations are created as needed).
pub async fn stocked_variant(
    db: &TestDb,
    handle: &str,
    price_minor: i64,
    policy: &str,
    stock: &[i32],
) -> Stocked {
    for i in 1..=stock.len() {
        db.run_sql(&format!(
            "INSERT INTO locations (name) VALUES ('Location {i}') ON CONFLICT (name) DO NOTHING"
        ))
        .await;
    }
    let product_id = db
        .count(&format!(
            "INSERT INTO products (handle, title, published_at) \
             VALUES ('{handle}', 'Product {handle}', now() - interval '1 day') RETURNING id AS n"
        ))
        .await;
    let variant_id = db
        .count(&format!(
            "INSERT INTO product_variants (product_id, title, sku, option1, inventory_policy) \
             VALUES ({product_id}, 'Default Title', 'SKU-{handle}', 'Default Title', '{policy}') RETURNING id AS n"
        ))
        .await;
    db.run_sql(&format!(
        "INSERT INTO variant_prices (variant_id, currency, amount_minor) VALUES ({variant_id}, 'USD', {price_minor})"
    ))
    .await;
    for (i, units) in stock.iter().enumerate() {
        db.run_sql(&format!(
            "INSERT INTO inventory_levels (variant_id, location_id, on_hand) \
             SELECT {variant_id}, id, {units} FROM locations WHERE name = 'Location {}'",
            i + 1
        ))
        .await;
    }
    Stocked {
        product_id,
        variant_id,
        gid: format!("gid://shopify/ProductVariant/{variant_id}"),
    }
}

pub const CART_CREATE: &str = "mutation($input: CartInput) { cartCreate(input: $input) { \
    cart { id lines(first: 10) { nodes { id } } } userErrors { code message } } }";

pub const CART_COMPLETE: &str = "mutation($cartId: ID!, $input: CartCompleteInput!) { \
    cartComplete(cartId: $cartId, input: $input) { \
      order { id name orderNumber status email accessToken currencyCode \
              subtotalPrice { amount } totalShippingPrice { amount } totalTax { amount } totalPrice { amount } \
              lineItems { title variantTitle sku quantity originalUnitPrice { amount currencyCode } originalTotalPrice { amount } } \
              shippingAddress { lastName city countryCode } } \
      userErrors { code field message lines } } }";

/// A valid checkout input.
pub fn checkout_input(key: &str, token: &str) -> Value {
    json!({
        "email": "buyer@example.com",
        "shippingAddress": {
            "firstName": "Ada", "lastName": "Lovelace", "address1": "1 Analytical Way",
            "city": "London", "zip": "N1 9GU", "countryCode": "GB"
        },
        "paymentToken": token,
        "idempotencyKey": key,
    })
}

/// POSTs a GraphQL request to `base` and returns the JSON body.
pub async fn gql_at(client: &reqwest::Client, base: &str, query: &str, variables: Value) -> Value {
    let response = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 200, "HTTP {status}: {body}");
    body
}

/// Creates a cart holding `lines` (variant gid, quantity) and returns its id.
pub async fn cart_with(client: &reqwest::Client, base: &str, lines: &[(&str, i32)]) -> String {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(gid, q)| json!({ "merchandiseId": gid, "quantity": q }))
        .collect();
    let body = gql_at(
        client,
        base,
        CART_CREATE,
        json!({ "input": { "lines": lines } }),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["cartCreate"]["userErrors"],
        json!([]),
        "{body}"
    );
    body["data"]["cartCreate"]["cart"]["id"]
        .as_str()
        .expect("cart id")
        .to_string()
}

/// Runs `cartComplete` and returns its payload.
pub async fn complete(client: &reqwest::Client, base: &str, cart_id: &str, input: Value) -> Value {
    let body = gql_at(
        client,
        base,
        CART_COMPLETE,
        json!({ "cartId": cart_id, "input": input }),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["cartComplete"].clone()
}

/// The body and `Payment-Signature` header of a payment event, signed now.
pub fn signed_event(secret: &str, id: &str, kind: &str, reference: &str) -> (String, String) {
    let body = json!({ "id": id, "type": kind, "data": { "reference": reference } }).to_string();
    let t = chrono::Utc::now().timestamp();
    let header = commerce_gateway::payments::sign(secret, t, body.as_bytes());
    (body, header)
}

/// Runs `commerce-gateway ARGS…` on `db` to completion, asserts success, returns stdout.
pub fn cli(db: &TestDb, args: &[&str]) -> String {
    let out = super::gateway_command()
        .args(args)
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run commerce-gateway");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `commerce-gateway` process of the real binary.
pub struct Process {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:port` for `serve`.
    pub base: String,
}

impl Process {
    /// Starts `commerce-gateway <command>` on `db` with `env` on top of test defaults;
    /// for `serve`, waits until `/healthz` answers.
    pub async fn spawn(db: &TestDb, command: &str, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut cmd = super::gateway_command_async();
        cmd.arg(command)
            .env("DATABASE_URL", &db.url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("AUTO_MIGRATE", "false")
            .env("AUTO_SEED_PRODUCTS", "0")
            .env("SHOP_URL", "http://shop.test")
            .env("RUST_LOG", "warn")
            .env("CACHE_ENABLED", "false")
            .env("RATE_LIMIT_ENABLED", "false")
            .env("RATE_LIMIT_KEY_PREFIX", format!("cg:rl:{}", db.name))
            .env_remove("DATABASE_REPLICA_URLS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn commerce-gateway");
        let process = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        if command == "serve" {
            let client = reqwest::Client::new();
            let up = super::eventually(Duration::from_secs(30), || async {
                client
                    .get(format!("{}/healthz", process.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await;
            assert!(up, "gateway process did not start");
        }
        process
    }

    /// SIGKILL: the process dies at once, mid-whatever.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill");
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait")
    }
}
