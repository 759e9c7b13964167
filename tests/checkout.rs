//! Checkout through HTTP against real PostgreSQL: orders, reservations, idempotency,
//! bad input, and the overselling races through two gateway processes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::shop::{
    Process, Stocked, cart_with, checkout_input, complete, gql_at, stocked_variant,
};
use common::{TestDb, TestServer, config};
use serde_json::{Value, json};

const VARIANT_STOCK: &str = "query($id: ID!) { node(id: $id) { ... on ProductVariant { quantityAvailable availableForSale } } }";

async fn server(db: &TestDb) -> TestServer {
    let mut config = config(db);
    config.checkout.tax_rate_bps = 1000;
    TestServer::start(config).await
}

fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect()
}

async fn stock_of(db: &TestDb, v: &Stocked) -> (i64, i64, i64) {
    let on_hand = db
        .count(&format!("SELECT COALESCE(sum(on_hand), 0)::int8 AS n FROM inventory_levels WHERE variant_id = {}", v.variant_id))
        .await;
    let reserved = db
        .count(&format!("SELECT COALESCE(sum(reserved), 0)::int8 AS n FROM inventory_levels WHERE variant_id = {}", v.variant_id))
        .await;
    let available = db
        .count(&format!(
            "SELECT available AS n FROM product_variants WHERE id = {}",
            v.variant_id
        ))
        .await;
    (on_hand, reserved, available)
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_reserves_stock_creates_the_order_and_is_idempotent() {
    let db = TestDb::new(0).await;
    let tee = stocked_variant(&db, "tee", 2500, "DENY", &[3, 2]).await;
    let server = server(&db).await;
    let base = server.url("");
    let client = &server.client;

    let cart = cart_with(client, &base, &[(&tee.gid, 4)]).await;
    let done = complete(client, &base, &cart, checkout_input("key-1", "tok_success")).await;
    assert_eq!(done["userErrors"], json!([]), "{done}");
    let order = &done["order"];
    assert_eq!(order["status"], "PENDING_PAYMENT");
    assert_eq!(order["currencyCode"], "USD");
    assert_eq!(order["subtotalPrice"]["amount"], "100.00");
    assert_eq!(order["totalShippingPrice"]["amount"], "5.00");
    assert_eq!(order["totalTax"]["amount"], "10.00");
    assert_eq!(order["totalPrice"]["amount"], "115.00");
    assert_eq!(order["email"], "buyer@example.com");
    assert_eq!(order["shippingAddress"]["countryCode"], "GB");
    assert_eq!(
        order["lineItems"],
        json!([{ "title": "Product tee", "variantTitle": "Default Title", "sku": "SKU-tee", "quantity": 4,
                 "originalUnitPrice": { "amount": "25.00", "currencyCode": "USD" },
                 "originalTotalPrice": { "amount": "100.00" } }])
    );
    assert_eq!(order["name"], format!("#{}", order["orderNumber"]));

    // 3 units from the first location, 1 from the second; 1 left to sell.
    assert_eq!(stock_of(&db, &tee).await, (5, 4, 1));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM order_allocations WHERE (location_id, quantity) IN (SELECT id, 3 FROM locations WHERE name = 'Location 1') OR (location_id, quantity) IN (SELECT id, 1 FROM locations WHERE name = 'Location 2')").await,
        2
    );
    let shown = server.data(VARIANT_STOCK, json!({ "id": tee.gid })).await;
    assert_eq!(
        shown["node"],
        json!({ "quantityAvailable": 1, "availableForSale": true })
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM carts WHERE completed_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'order_confirmation'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'expire_reservation' AND run_at > now() + interval '10 minutes'").await,
        1
    );

    // A retry with the same key returns the same order and changes nothing.
    let again = complete(client, &base, &cart, checkout_input("key-1", "tok_success")).await;
    assert_eq!(again["userErrors"], json!([]));
    assert_eq!(again["order"]["id"], order["id"]);
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM jobs").await, 2);
    assert_eq!(stock_of(&db, &tee).await, (5, 4, 1));

    // Another key: the cart is done.
    let other = complete(client, &base, &cart, checkout_input("key-2", "tok_success")).await;
    assert_eq!(codes(&other), ["CART_COMPLETED"]);
    assert!(other["order"].is_null());

    // The buyer finds the order with its access token, and on the status page.
    let token = order["accessToken"].as_str().unwrap();
    let found = server
        .data(
            "query($t: String!) { order(accessToken: $t) { name status totalPrice { amount } } }",
            json!({ "t": token }),
        )
        .await;
    assert_eq!(found["order"]["name"], order["name"]);
    let missing = server
        .data("query { order(accessToken: \"nope\") { name } }", json!({}))
        .await;
    assert!(missing["order"].is_null());
    let page = client
        .get(server.url(&format!("/orders/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("#{}", order["orderNumber"])),
        "{html}"
    );
    // The completed cart's checkout URL sends the buyer to the order.
    let cart_token = cart.rsplit('/').next().unwrap();
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url(&format!("/checkouts/c/{cart_token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 303);
    assert_eq!(redirect.headers()["location"], format!("/orders/{token}"));

    // The merchant deletes the product later: the order keeps its snapshot.
    db.run_sql(&format!(
        "DELETE FROM products WHERE id = {}",
        tee.product_id
    ))
    .await;
    let kept = server
        .data(
            "query($t: String!) { order(accessToken: $t) { lineItems { title quantity variant { id } } } }",
            json!({ "t": token }),
        )
        .await;
    assert_eq!(
        kept["order"]["lineItems"],
        json!([{ "title": "Product tee", "quantity": 4, "variant": null }])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_checkout_input_gets_user_errors_and_writes_nothing() {
    let db = TestDb::new(0).await;
    let tee = stocked_variant(&db, "tee", 2500, "DENY", &[5]).await;
    let hidden = stocked_variant(&db, "hidden", 1000, "DENY", &[5]).await;
    let server = server(&db).await;
    let base = server.url("");
    let client = &server.client;
    let cart = cart_with(client, &base, &[(&tee.gid, 2)]).await;

    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut input = checkout_input("k", "tok_success");
    input["email"] = json!("not-an-email");
    cases.push((input, "INVALID_EMAIL"));
    let mut input = checkout_input("k", "tok_success");
    input["shippingAddress"]["city"] = json!("  ");
    cases.push((input, "INVALID_ADDRESS"));
    let mut input = checkout_input("k", "tok_success");
    input["shippingAddress"]["countryCode"] = json!("XX");
    cases.push((input, "INVALID_ADDRESS"));
    let mut input = checkout_input("k", "tok_success");
    input["shippingMethod"] = json!("teleport");
    cases.push((input, "INVALID_SHIPPING_METHOD"));
    cases.push((checkout_input("", "tok_success"), "INVALID_IDEMPOTENCY_KEY"));
    cases.push((checkout_input("k", "tok_bogus"), "INVALID_PAYMENT_TOKEN"));
    cases.push((checkout_input("k", "tok_decline"), "PAYMENT_DECLINED"));
    for (input, code) in cases {
        let payload = complete(client, &base, &cart, input.clone()).await;
        assert_eq!(codes(&payload), [code], "{input}: {payload}");
        assert!(payload["order"].is_null());
    }

    // Carts that cannot be checked out.
    let payload = complete(
        client,
        &base,
        "gid://shopify/Cart/nope",
        checkout_input("k", "tok_success"),
    )
    .await;
    assert_eq!(codes(&payload), ["CART_NOT_FOUND"]);
    let unknown = format!("gid://shopify/Cart/{}", "a".repeat(32));
    let payload = complete(client, &base, &unknown, checkout_input("k", "tok_success")).await;
    assert_eq!(codes(&payload), ["CART_NOT_FOUND"]);
    let empty = cart_with(client, &base, &[]).await;
    let payload = complete(client, &base, &empty, checkout_input("k", "tok_success")).await;
    assert_eq!(codes(&payload), ["EMPTY_CART"]);

    // More than is in stock: the error names the line.
    let greedy = cart_with(client, &base, &[(&tee.gid, 6)]).await;
    let payload = complete(client, &base, &greedy, checkout_input("k", "tok_success")).await;
    assert_eq!(codes(&payload), ["OUT_OF_STOCK"]);
    let line = server
        .data(
            "query($id: ID!) { cart(id: $id) { lines(first: 1) { nodes { id } } } }",
            json!({ "id": greedy }),
        )
        .await;
    assert_eq!(
        payload["userErrors"][0]["lines"],
        json!([line["cart"]["lines"]["nodes"][0]["id"]])
    );

    // Merchandise unpublished after it went into the cart.
    let stale = cart_with(client, &base, &[(&hidden.gid, 1)]).await;
    db.run_sql(&format!(
        "UPDATE products SET published_at = NULL WHERE id = {}",
        hidden.product_id
    ))
    .await;
    let payload = complete(client, &base, &stale, checkout_input("k", "tok_success")).await;
    assert_eq!(codes(&payload), ["MERCHANDISE_NOT_AVAILABLE"]);

    // Nothing was written by any of them.
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM jobs").await, 0);
    assert_eq!(
        db.count("SELECT sum(reserved)::int8 AS n FROM inventory_levels")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM carts WHERE completed_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(stock_of(&db, &tee).await, (5, 0, 5));

    // An idempotency key belongs to one cart.
    let first = complete(
        client,
        &base,
        &cart,
        checkout_input("shared", "tok_success"),
    )
    .await;
    assert_eq!(first["userErrors"], json!([]));
    let other = cart_with(client, &base, &[(&tee.gid, 1)]).await;
    let payload = complete(
        client,
        &base,
        &other,
        checkout_input("shared", "tok_success"),
    )
    .await;
    assert_eq!(codes(&payload), ["IDEMPOTENCY_KEY_REUSED"]);
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(stock_of(&db, &tee).await, (5, 2, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn continue_policy_variants_are_backordered() {
    let db = TestDb::new(0).await;
    let preorder = stocked_variant(&db, "preorder", 1000, "CONTINUE", &[]).await;
    db.run_sql("INSERT INTO locations (name) VALUES ('Warehouse')")
        .await;
    let server = server(&db).await;
    let base = server.url("");
    let cart = cart_with(&server.client, &base, &[(&preorder.gid, 2)]).await;
    let done = complete(
        &server.client,
        &base,
        &cart,
        checkout_input("k", "tok_success"),
    )
    .await;
    assert_eq!(done["userErrors"], json!([]), "{done}");
    assert_eq!(stock_of(&db, &preorder).await, (0, 2, -2));
    let shown = server
        .data(VARIANT_STOCK, json!({ "id": preorder.gid }))
        .await;
    assert_eq!(
        shown["node"],
        json!({ "quantityAvailable": -2, "availableForSale": true })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_cut_off_by_the_request_deadline_still_ends_in_its_order() {
    use diesel_async::SimpleAsyncConnection;
    let db = TestDb::new(0).await;
    let tee = stocked_variant(&db, "tee", 2500, "DENY", &[3]).await;
    let mut config = config(&db);
    config.server.request_timeout = Duration::from_millis(1500);
    let server = TestServer::start(config).await;
    let base = server.url("");
    let cart = cart_with(&server.client, &base, &[(&tee.gid, 2)]).await;

    // Another session holds the cart, so the checkout waits inside its transaction,
    // after the payment was authorized, until the request's deadline has passed.
    let mut holder = db.conn().await;
    holder
        .batch_execute("BEGIN; SELECT id FROM carts FOR UPDATE")
        .await
        .unwrap();
    let (status, body) = server
        .post_json(
            "/graphql",
            &json!({ "query": common::shop::CART_COMPLETE,
                     "variables": { "cartId": cart, "input": checkout_input("late-1", "tok_success") } }),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(common::error_code(&body), "TIMEOUT");
    holder.batch_execute("COMMIT").await.unwrap();

    // The checkout went on without its request: the order exists and holds the stock.
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            db.count("SELECT count(*) AS n FROM orders").await == 1
        })
        .await,
        "the cut-off checkout never made its order"
    );
    assert_eq!(stock_of(&db, &tee).await, (3, 2, 1));
    // The buyer's retry with the same key gets that order; nothing new is made.
    let retry = complete(
        &server.client,
        &base,
        &cart,
        checkout_input("late-1", "tok_success"),
    )
    .await;
    assert_eq!(retry["userErrors"], json!([]), "{retry}");
    assert_eq!(
        retry["order"]["orderNumber"].as_i64(),
        Some(db.count("SELECT number AS n FROM orders").await)
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(stock_of(&db, &tee).await, (3, 2, 1));
    server.shutdown().await;
}

/// Records any moment a DENY variant's stock was seen below zero by a committed write.
async fn watch_for_negative_stock(db: &TestDb) {
    db.run_sql(
        "CREATE TABLE negative_stock_seen (variant_id BIGINT, available BIGINT, seen_at TIMESTAMPTZ DEFAULT now());
         CREATE FUNCTION note_negative_stock() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO negative_stock_seen (variant_id, available)
             SELECT v.id, v.available FROM product_variants v
             WHERE v.id IN (SELECT variant_id FROM new_rows) AND v.inventory_policy = 'DENY' AND v.available < 0;
             INSERT INTO negative_stock_seen (variant_id, available)
             SELECT n.variant_id, n.on_hand - n.reserved FROM new_rows n
             JOIN product_variants v ON v.id = n.variant_id
             WHERE v.inventory_policy = 'DENY' AND n.on_hand - n.reserved < 0;
             RETURN NULL;
         END $$;
         CREATE TRIGGER zz_note_negative_stock AFTER UPDATE ON inventory_levels
             REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION note_negative_stock();",
    )
    .await;
}

async fn two_gateways(db: &TestDb) -> (Process, Process) {
    // The race checks what is sold, not how fast: a loaded CI machine queues 1,100
    // checkouts for 32 connections longer than the default request deadline.
    let env = [
        ("DATABASE_POOL_SIZE", "16".to_string()),
        ("RUN_WORKERS", "false".to_string()),
        ("REQUEST_TIMEOUT_MS", "120000".to_string()),
    ];
    let a = Process::spawn(db, "serve", &env).await;
    let b = Process::spawn(db, "serve", &env).await;
    (a, b)
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_buyers_race_for_the_last_hundred_units_without_overselling() {
    let db = TestDb::new(0).await;
    let hot = stocked_variant(&db, "hot", 4999, "DENY", &[100]).await;
    watch_for_negative_stock(&db).await;
    let (a, b) = two_gateways(&db).await;
    let client = http_client();
    let bases = [a.base.clone(), b.base.clone()];

    // 1,000 buyers with a cart each (prepared before the race).
    let carts: Vec<String> = futures::future::join_all((0..1000).map(|i| {
        let (client, base, gid) = (client.clone(), bases[i % 2].clone(), hot.gid.clone());
        async move { cart_with(&client, &base, &[(&gid, 1)]).await }
    }))
    .await;

    // All check out at once through both gateways; every 10th buyer double-submits
    // (same key, once through each gateway).
    let attempts = carts.iter().enumerate().flat_map(|(i, cart)| {
        let key = format!("buyer-{i}");
        let times = if i % 10 == 0 { 2 } else { 1 };
        (0..times).map(move |t| (i, cart.clone(), key.clone(), (i + t) % 2))
    });
    let results: Vec<(usize, Value)> =
        futures::future::join_all(attempts.map(|(i, cart, key, g)| {
            let (client, base) = (client.clone(), bases[g].clone());
            async move {
                let payload =
                    complete(&client, &base, &cart, checkout_input(&key, "tok_success")).await;
                (i, payload)
            }
        }))
        .await;

    let mut orders_by_buyer: HashMap<usize, Vec<String>> = HashMap::new();
    let mut out_of_stock = std::collections::HashSet::new();
    for (i, payload) in &results {
        match payload["order"]["id"].as_str() {
            Some(id) => orders_by_buyer.entry(*i).or_default().push(id.to_string()),
            None => {
                assert_eq!(codes(payload), ["OUT_OF_STOCK"], "buyer {i}: {payload}");
                out_of_stock.insert(*i);
            }
        }
    }
    // A double submit yields one order (both answers name it) or one refusal.
    for (i, ids) in &orders_by_buyer {
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "buyer {i} got two orders: {ids:?}"
        );
        assert!(
            !out_of_stock.contains(i),
            "buyer {i} both bought and was refused"
        );
    }
    assert_eq!(
        orders_by_buyer.len(),
        100,
        "exactly 100 buyers get the 100 units"
    );
    assert_eq!(out_of_stock.len(), 900);
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 100);
    assert_eq!(
        db.count("SELECT sum(quantity)::int8 AS n FROM order_lines")
            .await,
        100
    );
    assert_eq!(
        db.count("SELECT count(DISTINCT idempotency_key) AS n FROM orders")
            .await,
        100
    );
    assert_eq!(stock_of(&db, &hot).await, (100, 100, 0));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM negative_stock_seen")
            .await,
        0
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_multi_variant_carts_never_deadlock_or_split_an_order() {
    let db = TestDb::new(0).await;
    let mut variants = Vec::new();
    for (i, stock) in [[20, 10], [15, 15], [30, 0], [25, 5]].iter().enumerate() {
        variants.push(stocked_variant(&db, &format!("v{i}"), 1000 + i as i64, "DENY", stock).await);
    }
    watch_for_negative_stock(&db).await;
    let (a, b) = two_gateways(&db).await;
    let client = http_client();
    let bases = [a.base.clone(), b.base.clone()];

    // 300 carts of 2–4 variants in varying orders, 1–3 units each: 120 units in stock,
    // about 1,200 wanted.
    let carts: Vec<(String, Vec<(usize, i32)>)> =
        futures::future::join_all((0..300usize).map(|i| {
            let (client, base) = (client.clone(), bases[i % 2].clone());
            let n = 2 + i % 3;
            let lines: Vec<(usize, i32)> = (0..n)
                .map(|k| ((i * 7 + k * (1 + i % 3)) % 4, 1 + ((i + k) % 3) as i32))
                .fold(Vec::new(), |mut acc, (v, q)| {
                    if !acc.iter().any(|(w, _)| *w == v) {
                        acc.push((v, q));
                    }
                    acc
                });
            let gids: Vec<(String, i32)> = lines
                .iter()
                .map(|(v, q)| (variants[*v].gid.clone(), *q))
                .collect();
            async move {
                let refs: Vec<(&str, i32)> = gids.iter().map(|(g, q)| (g.as_str(), *q)).collect();
                (cart_with(&client, &base, &refs).await, lines)
            }
        }))
        .await;

    let results: Vec<Value> =
        futures::future::join_all(carts.iter().enumerate().map(|(i, (cart, _))| {
            let (client, base) = (client.clone(), bases[(i + 1) % 2].clone());
            async move {
                complete(
                    &client,
                    &base,
                    cart,
                    checkout_input(&format!("m-{i}"), "tok_success"),
                )
                .await
            }
        }))
        .await;

    let mut sold = [0i64; 4];
    let mut orders = 0;
    for ((_, lines), payload) in carts.iter().zip(&results) {
        if payload["order"].is_null() {
            assert_eq!(codes(payload), ["OUT_OF_STOCK"], "{payload}");
            continue;
        }
        orders += 1;
        // Whole orders only: every line of the cart is in the order.
        assert_eq!(
            payload["order"]["lineItems"].as_array().unwrap().len(),
            lines.len()
        );
        for (v, q) in lines {
            sold[*v] += *q as i64;
        }
    }
    assert!(orders > 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, orders);
    // Reservations match the order lines exactly, per variant and per order.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM (SELECT order_id, variant_id, sum(quantity) q FROM order_allocations GROUP BY 1, 2) a \
                  FULL JOIN (SELECT order_id, variant_id, sum(quantity) q FROM order_lines GROUP BY 1, 2) l USING (order_id, variant_id) \
                  WHERE a.q IS DISTINCT FROM l.q").await,
        0
    );
    for (i, v) in variants.iter().enumerate() {
        let (on_hand, reserved, available) = stock_of(&db, v).await;
        assert_eq!(reserved, sold[i], "variant {i}");
        assert_eq!(available, on_hand - sold[i], "variant {i}");
        assert!(available >= 0);
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM negative_stock_seen")
            .await,
        0
    );
    drop((a, b));
}

const ADD_LINE: &str = "mutation($c: ID!, $v: ID!) { cartLinesAdd(cartId: $c, lines: [{ merchandiseId: $v, quantity: 1 }]) { cart { id } userErrors { code } } }";

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_changes_to_one_cart_are_never_lost_and_an_order_holds_exactly_its_cart() {
    let db = TestDb::new(0).await;
    let mut variants = Vec::new();
    for i in 0..8 {
        variants
            .push(stocked_variant(&db, &format!("c{i}"), 500 + i as i64, "DENY", &[1000]).await);
    }
    let (a, b) = two_gateways(&db).await;
    let client = http_client();
    let bases = [a.base.clone(), b.base.clone()];

    // 48 adds to one cart at once, through two gateways: every unit lands, one line per
    // variant (the cart's changes are optimistic and retried, never lost).
    let cart = cart_with(&client, &bases[0], &[(&variants[0].gid, 1)]).await;
    let adds: Vec<Value> = futures::future::join_all((0..48usize).map(|i| {
        let (client, base, cart) = (client.clone(), bases[i % 2].clone(), cart.clone());
        let gid = variants[i % 8].gid.clone();
        async move { gql_at(&client, &base, ADD_LINE, json!({ "c": cart, "v": gid })).await }
    }))
    .await;
    for body in &adds {
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(
            body["data"]["cartLinesAdd"]["userErrors"],
            json!([]),
            "{body}"
        );
    }
    let token = cart.rsplit('/').next().unwrap().to_string();
    let got = lines_of_cart(&mut db.conn().await, &token).await;
    let mut want: Vec<(i64, i64)> = variants.iter().map(|v| (v.variant_id, 6)).collect();
    want[0].1 += 1;
    assert_eq!(got, want);

    // Checkouts racing adds to their own carts: an order holds exactly what its cart holds
    // when it completes; an add either lands before (and the checkout, which charged for
    // less, refuses with PRICE_CHANGED) or is refused because the cart is completed.
    let carts: Vec<String> = futures::future::join_all((0..24usize).map(|i| {
        let (client, base, gid) = (
            client.clone(),
            bases[i % 2].clone(),
            variants[0].gid.clone(),
        );
        async move { cart_with(&client, &base, &[(&gid, 1)]).await }
    }))
    .await;
    let raced: Vec<(Value, Vec<Value>)> =
        futures::future::join_all(carts.iter().enumerate().map(|(i, cart)| {
            let (client, bases, cart) = (client.clone(), bases.clone(), cart.clone());
            let gids: Vec<String> = (1..4).map(|k| variants[(i + k) % 8].gid.clone()).collect();
            async move {
                let checkout = complete(
                    &client,
                    &bases[i % 2],
                    &cart,
                    checkout_input(&format!("race-{i}"), "tok_success"),
                );
                // Staggered (0–105 ms), so that some adds come before the checkout's
                // commit and some after, however loaded the machine.
                let adds = async {
                    tokio::time::sleep(Duration::from_millis(15 * (i % 8) as u64)).await;
                    futures::future::join_all(gids.iter().enumerate().map(|(k, gid)| {
                        gql_at(
                            &client,
                            &bases[(i + k + 1) % 2],
                            ADD_LINE,
                            json!({ "c": cart, "v": gid }),
                        )
                    }))
                    .await
                };
                futures::join!(checkout, adds)
            }
        }))
        .await;
    let mut orders = 0;
    for ((payload, adds), cart) in raced.iter().zip(&carts) {
        for body in adds {
            assert!(body.get("errors").is_none(), "{body}");
            let errors = &body["data"]["cartLinesAdd"]["userErrors"];
            assert!(
                *errors == json!([]) || *errors == json!([{ "code": "INVALID" }]),
                "{body}"
            );
        }
        let token = cart.rsplit('/').next().unwrap().to_string();
        let completed = db
            .count(&format!(
                "SELECT count(*) AS n FROM carts WHERE token = '{token}' AND completed_at IS NOT NULL"
            ))
            .await;
        if payload["order"].is_null() {
            assert_eq!(codes(payload), ["PRICE_CHANGED"], "{payload}");
            assert_eq!(completed, 0);
            continue;
        }
        orders += 1;
        assert_eq!(completed, 1);
        let order_lines = db
            .count(&format!(
                "SELECT count(*) AS n FROM (SELECT variant_id, quantity::int8 FROM order_lines \
                 WHERE order_id = (SELECT id FROM orders WHERE idempotency_key = 'race-{}')) o \
                 FULL JOIN (SELECT l.variant_id, l.quantity::int8 FROM cart_lines l JOIN carts c ON c.id = l.cart_id \
                 WHERE c.token = '{token}') c USING (variant_id, quantity) \
                 WHERE o.variant_id IS NULL OR c.variant_id IS NULL",
                carts.iter().position(|c| c == cart).unwrap()
            ))
            .await;
        assert_eq!(order_lines, 0, "order and cart differ: {payload}");
        // Every add that was accepted is in the order.
        let accepted = adds
            .iter()
            .filter(|b| b["data"]["cartLinesAdd"]["userErrors"] == json!([]))
            .count();
        let units: i64 = payload["order"]["lineItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["quantity"].as_i64().unwrap())
            .sum();
        assert_eq!(units, 1 + accepted as i64, "{payload}");
    }
    assert!(orders > 0, "no checkout won a race");
    drop((a, b));
}

/// A cart's lines as (variant id, quantity), by variant.
async fn lines_of_cart(conn: &mut diesel_async::AsyncPgConnection, token: &str) -> Vec<(i64, i64)> {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = BigInt)]
        variant_id: i64,
        #[diesel(sql_type = BigInt)]
        quantity: i64,
    }
    let rows: Vec<Line> = diesel::sql_query(
        "SELECT l.variant_id, l.quantity::int8 AS quantity FROM cart_lines l \
         JOIN carts c ON c.id = l.cart_id WHERE c.token = $1 ORDER BY l.variant_id",
    )
    .bind::<Text, _>(token)
    .load(conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|l| (l.variant_id, l.quantity))
        .collect()
}

/// A retried checkout holds its cart's row while it waits for stock; a first attempt of a
/// double submit holds stock (and its idempotency key) when it comes to that cart. Cart
/// locks must not block the first attempt (its order's foreign-key check, or the cart
/// itself), or the two wait for each other. Deterministic: this transaction plays the
/// retry, locking the cart the way the gateway does, then inserting an order with the same
/// key once the checkout waits for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_never_deadlocks_with_a_retry_that_holds_its_cart() {
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let db = TestDb::new(0).await;
    let v = stocked_variant(&db, "d1", 1000, "DENY", &[10]).await;
    let server = server(&db).await;
    let client = http_client();
    let base = server.url("");
    let base = base.trim_end_matches('/').to_string();
    let cart = cart_with(&client, &base, &[(&v.gid, 1)]).await;
    let token = cart.rsplit('/').next().unwrap().to_string();
    let deadlocks =
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()";
    let before = db.count(deadlocks).await;

    let mut conn = db.conn().await;
    let checkout = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            commerce_gateway::cart::lock(conn, &token).await?;
            let checkout = tokio::spawn({
                let (client, base, cart) = (client.clone(), base.clone(), cart.clone());
                async move {
                    complete(
                        &client,
                        &base,
                        &cart,
                        checkout_input("dl-key", "tok_success"),
                    )
                    .await
                }
            });
            // Wait until the checkout waits for a lock this transaction holds.
            let waiting = common::eventually(Duration::from_secs(10), || async {
                db.count(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await
                    > 0
            })
            .await;
            assert!(waiting, "the checkout never waited for the cart");
            diesel::sql_query(
                "INSERT INTO orders (access_token, idempotency_key, cart_id, email, currency, \
                 subtotal_minor, shipping_minor, tax_minor, total_minor, shipping_method, \
                 shipping_address, payment_provider, payment_reference, reserved_until) \
                 SELECT repeat('t', 40), 'dl-key', id, 'buyer@example.com', 'USD', 1000, 500, 0, \
                 1500, 'standard', '{}', 'test', 'retry-ref', now() + interval '15 minutes' \
                 FROM carts WHERE token = $1",
            )
            .bind::<Text, _>(&token)
            .execute(conn)
            .await?;
            diesel::sql_query("UPDATE carts SET completed_at = now() WHERE token = $1")
                .bind::<Text, _>(&token)
                .execute(conn)
                .await?;
            Ok(checkout)
        })
        .await
        .expect("the retry's transaction commits");
    let payload = checkout.await.unwrap();
    // The checkout sees the order the key made and returns it.
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert!(payload["order"]["orderNumber"].is_number(), "{payload}");
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        db.count(deadlocks).await,
        before,
        "PostgreSQL detected a deadlock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_flow_takes_few_statements() {
    let db = TestDb::new(0).await;
    let v1 = stocked_variant(&db, "s1", 1000, "DENY", &[10]).await;
    let v2 = stocked_variant(&db, "s2", 2000, "DENY", &[10]).await;
    let mut config = config(&db);
    config.server.query_stats = true;
    let server = TestServer::start(config).await;
    let statements = |body: &Value| {
        assert!(body.get("errors").is_none(), "{body}");
        body["extensions"]["stats"]["sqlStatements"]
            .as_u64()
            .expect("stats reported")
    };
    let created = server
        .gql(
            "mutation($v: ID!) { cartCreate(input: { lines: [{ merchandiseId: $v, quantity: 1 }] }) { cart { id cost { totalAmount { amount } } } userErrors { code } } }",
            json!({ "v": v1.gid }),
        )
        .await;
    let cart = created["data"]["cartCreate"]["cart"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let added = server
        .gql(ADD_LINE, json!({ "c": cart, "v": v2.gid }))
        .await;
    let done = server
        .gql(
            "mutation($c: ID!, $i: CartCompleteInput!) { cartComplete(cartId: $c, input: $i) { order { orderNumber lineItems { quantity } } userErrors { code } } }",
            json!({ "c": cart, "i": checkout_input("few", "tok_success") }),
        )
        .await;
    assert_eq!(
        done["data"]["cartComplete"]["userErrors"],
        json!([]),
        "{done}"
    );
    assert_eq!(
        done["data"]["cartComplete"]["order"]["lineItems"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // cartCreate: the variants, then the cart with its lines. cartLinesAdd: the cart with
    // its lines, the variants, the write. cartComplete: the cart and the variants before
    // the payment; in the transaction the variants again, the order, its lines, the stock
    // lock and reservation, the allocations, the cart, the jobs, with BEGIN and COMMIT.
    let counts = (statements(&created), statements(&added), statements(&done));
    assert!(
        counts.0 <= 2 && counts.1 <= 3 && counts.2 <= 13,
        "statements: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosted_checkout_and_order_pages_refuse_bad_input_cleanly() {
    let db = TestDb::new(0).await;
    let tee = stocked_variant(&db, "tee", 2500, "DENY", &[5]).await;
    let server = server(&db).await;
    let client = &server.client;
    let cart = cart_with(client, &server.url(""), &[(&tee.gid, 1)]).await;
    let token = cart.rsplit('/').next().unwrap().to_string();

    // Unknown or malformed tokens: 404 pages, not errors.
    for path in [
        "/checkouts/c/short".to_string(),
        format!("/checkouts/c/{}", "Z".repeat(32)),
        "/orders/nope".to_string(),
        format!("/orders/{}", "a".repeat(40)),
        format!("/orders/{}/invoice", "a".repeat(40)),
    ] {
        let r = client.get(server.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // An empty form and a form full of junk: 422 with the errors listed, nothing written.
    for form in [
        vec![],
        vec![
            ("email", "x"),
            ("countryCode", "??"),
            ("shippingMethod", "<script>"),
            ("paymentToken", "tok_\u{0}"),
            ("idempotencyKey", "\u{7f}"),
        ],
    ] {
        let r = client
            .post(server.url(&format!("/checkouts/c/{token}")))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let html = r.text().await.unwrap();
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(!html.contains("<script>"), "input is escaped");
    }
    // Not a form at all.
    let r = client
        .post(server.url(&format!("/checkouts/c/{token}")))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 0);
    assert_eq!(
        db.count("SELECT sum(reserved)::int8 AS n FROM inventory_levels")
            .await,
        0
    );
}
