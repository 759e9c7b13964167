//! Payment webhooks and reservation expiry, processed by the real job queue.

mod common;

use std::time::Duration;

use common::shop::{cart_with, checkout_input, complete, signed_event, stocked_variant};
use common::{TestDb, TestServer, config, eventually};
use serde_json::{Value, json};

const SECRET: &str = "whsec_test_secret";

struct Shop {
    db: TestDb,
    server: TestServer,
    stop: tokio::sync::watch::Sender<bool>,
    workers: tokio::task::JoinHandle<()>,
}

async fn shop(reservation_ttl: Duration) -> Shop {
    shop_with_hooks(reservation_ttl, vec![]).await
}

async fn shop_with_hooks(reservation_ttl: Duration, hooks: Vec<String>) -> Shop {
    let db = TestDb::new(0).await;
    let mut config = config(&db);
    config.orders.hooks = commerce_gateway::orders::events::Hooks::new(hooks);
    config.partners.order_webhook_secret = Some("hook-secret".into());
    config.jobs.worker.backoff_base = Duration::from_millis(100);
    config.payments.webhook_secret = Some(SECRET.into());
    config.checkout.reservation_ttl = reservation_ttl;
    config.jobs.worker.poll_interval = Duration::from_millis(50);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers = commerce_gateway::app::spawn_workers(&config, rx).unwrap();
    let server = TestServer::start(config).await;
    Shop {
        db,
        server,
        stop,
        workers,
    }
}

impl Shop {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.workers.await.unwrap();
    }

    /// Checks out `units` of `gid` and returns (order id, access token, payment reference).
    async fn order(&self, gid: &str, units: i32, key: &str) -> (i64, String, String) {
        let base = self.server.url("");
        let cart = cart_with(&self.server.client, &base, &[(gid, units)]).await;
        let done = complete(
            &self.server.client,
            &base,
            &cart,
            checkout_input(key, "tok_success"),
        )
        .await;
        assert_eq!(done["userErrors"], json!([]), "{done}");
        let token = done["order"]["accessToken"].as_str().unwrap().to_string();
        let id = self
            .db
            .count(&format!(
                "SELECT id AS n FROM orders WHERE access_token = '{token}'"
            ))
            .await;
        let reference = self
            .text(&format!(
                "SELECT payment_reference AS t FROM orders WHERE id = {id}"
            ))
            .await;
        (id, token, reference)
    }

    async fn text(&self, sql: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = self.db.conn().await;
        diesel::sql_query(sql)
            .get_result::<T>(&mut conn)
            .await
            .unwrap()
            .t
    }

    async fn post_webhook(
        &self,
        provider: &str,
        body: &str,
        signature: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .server
            .client
            .post(self.server.url(&format!("/webhooks/payments/{provider}")))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            request = request.header("Payment-Signature", s);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `n` payment events are marked processed.
    async fn events_processed(&self, n: i64) -> bool {
        eventually(Duration::from_secs(10), || async {
            self.db
                .count("SELECT count(*) AS n FROM payment_events WHERE processed_at IS NOT NULL")
                .await
                == n
        })
        .await
    }

    async fn status_of(&self, order_id: i64) -> String {
        self.text(&format!(
            "SELECT status AS t FROM orders WHERE id = {order_id}"
        ))
        .await
    }

    async fn stock(&self, variant_id: i64) -> (i64, i64) {
        let on_hand = self
            .db
            .count(&format!("SELECT sum(on_hand)::int8 AS n FROM inventory_levels WHERE variant_id = {variant_id}"))
            .await;
        let reserved = self
            .db
            .count(&format!("SELECT sum(reserved)::int8 AS n FROM inventory_levels WHERE variant_id = {variant_id}"))
            .await;
        (on_hand, reserved)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_webhook_replayed_five_times_changes_the_order_once() {
    let shop = shop(Duration::from_secs(900)).await;
    let v = stocked_variant(&shop.db, "tee", 2000, "DENY", &[10]).await;
    let (order, token, reference) = shop.order(&v.gid, 3, "pay-1").await;
    assert_eq!(shop.stock(v.variant_id).await, (10, 3));

    let (body, signature) = signed_event(SECRET, "evt_1", "payment.succeeded", &reference);
    let mut duplicates = Vec::new();
    for _ in 0..5 {
        let (status, reply) = shop.post_webhook("test", &body, Some(&signature)).await;
        assert_eq!(status, 200, "{reply}");
        duplicates.push(reply["duplicate"].as_bool().unwrap());
    }
    assert_eq!(duplicates, [false, true, true, true, true]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            shop.status_of(order).await == "PAID"
        })
        .await,
        "the order is paid"
    );
    // The reservation became a sale, once.
    assert_eq!(shop.stock(v.variant_id).await, (7, 0));
    assert_eq!(
        shop.db
            .count(&format!(
                "SELECT total_sales AS n FROM products WHERE id = {}",
                v.product_id
            ))
            .await,
        3
    );
    assert_eq!(
        shop.db
            .count("SELECT count(*) AS n FROM payment_events")
            .await,
        1
    );
    // A second, different success event for the same payment changes nothing either.
    let (body2, signature2) = signed_event(SECRET, "evt_2", "payment.succeeded", &reference);
    assert_eq!(
        shop.post_webhook("test", &body2, Some(&signature2)).await.0,
        200
    );
    assert!(shop.events_processed(2).await);
    assert_eq!(shop.stock(v.variant_id).await, (7, 0));
    assert_eq!(
        shop.db
            .count(&format!(
                "SELECT total_sales AS n FROM products WHERE id = {}",
                v.product_id
            ))
            .await,
        3
    );

    // The paid order gets its invoice.
    let client = &shop.server.client;
    let invoice_url = shop.server.url(&format!("/orders/{token}/invoice"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            client
                .get(&invoice_url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "the invoice is rendered"
    );
    let invoice = client
        .get(&invoice_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        invoice.contains("Invoice")
            && invoice.contains("Lovelace")
            && invoice.contains("60.00 USD"),
        "{invoice}"
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_webhooks_are_refused_and_change_nothing() {
    let shop = shop(Duration::from_secs(900)).await;
    let v = stocked_variant(&shop.db, "tee", 2000, "DENY", &[10]).await;
    let (order, _, reference) = shop.order(&v.gid, 2, "pay-2").await;
    let (body, good) = signed_event(SECRET, "evt_bad", "payment.succeeded", &reference);

    // Wrong secret, tampered body, missing header, stale timestamp: 401.
    let (_, forged) = signed_event("not-the-secret", "evt_bad", "payment.succeeded", &reference);
    assert_eq!(shop.post_webhook("test", &body, Some(&forged)).await.0, 401);
    let tampered = body.replace("evt_bad", "evt_bad2");
    assert_eq!(
        shop.post_webhook("test", &tampered, Some(&good)).await.0,
        401
    );
    assert_eq!(shop.post_webhook("test", &body, None).await.0, 401);
    let old = chrono::Utc::now().timestamp() - 3600;
    let stale = commerce_gateway::payments::sign(SECRET, old, body.as_bytes());
    let (status, reply) = shop.post_webhook("test", &body, Some(&stale)).await;
    assert_eq!(status, 401);
    assert_eq!(reply["error"]["code"], "BAD_SIGNATURE");
    // Unknown provider: 404. Signed but not a payment event: 400.
    assert_eq!(shop.post_webhook("acme", &body, Some(&good)).await.0, 404);
    let junk = "{\"hello\": 1}";
    let t = chrono::Utc::now().timestamp();
    let junk_sig = commerce_gateway::payments::sign(SECRET, t, junk.as_bytes());
    let (status, reply) = shop.post_webhook("test", junk, Some(&junk_sig)).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("BAD_PAYLOAD"))
    );
    let not_json = "payment!";
    let sig = commerce_gateway::payments::sign(SECRET, t, not_json.as_bytes());
    assert_eq!(shop.post_webhook("test", not_json, Some(&sig)).await.0, 400);
    // An event type the gateway does not use is acknowledged and ignored.
    let (other, other_sig) =
        signed_event(SECRET, "evt_other", "payment.refund_requested", &reference);
    let (status, reply) = shop.post_webhook("test", &other, Some(&other_sig)).await;
    assert_eq!((status, reply["ignored"].as_bool()), (200, Some(true)));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        shop.db
            .count("SELECT count(*) AS n FROM payment_events")
            .await,
        0
    );
    assert_eq!(shop.status_of(order).await, "PENDING_PAYMENT");
    assert_eq!(shop.stock(v.variant_id).await, (10, 2));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_payment_cancels_the_order_and_releases_its_stock() {
    let shop = shop(Duration::from_secs(900)).await;
    let v = stocked_variant(&shop.db, "tee", 2000, "DENY", &[4]).await;
    let (order, _, reference) = shop.order(&v.gid, 4, "pay-3").await;
    assert_eq!(shop.stock(v.variant_id).await, (4, 4));
    let (body, signature) = signed_event(SECRET, "evt_f", "payment.failed", &reference);
    assert_eq!(
        shop.post_webhook("test", &body, Some(&signature)).await.0,
        200
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            shop.status_of(order).await == "CANCELLED"
        })
        .await
    );
    assert_eq!(shop.stock(v.variant_id).await, (4, 0));
    assert_eq!(
        shop.text(&format!(
            "SELECT cancel_reason AS t FROM orders WHERE id = {order}"
        ))
        .await,
        "PAYMENT_FAILED"
    );
    // Success arriving after the cancellation does not resurrect the order.
    let (body, signature) = signed_event(SECRET, "evt_late", "payment.succeeded", &reference);
    assert_eq!(
        shop.post_webhook("test", &body, Some(&signature)).await.0,
        200
    );
    assert!(shop.events_processed(2).await);
    assert_eq!(shop.status_of(order).await, "CANCELLED");
    assert_eq!(shop.stock(v.variant_id).await, (4, 0));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unpaid_orders_give_their_stock_back_when_the_reservation_expires() {
    let shop = shop(Duration::from_secs(2)).await;
    let v = stocked_variant(&shop.db, "tee", 2000, "DENY", &[5]).await;
    let (order, _, _) = shop.order(&v.gid, 5, "pay-4").await;
    assert_eq!(shop.stock(v.variant_id).await, (5, 5));
    // Scheduled, so not before its time.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(shop.status_of(order).await, "PENDING_PAYMENT");
    assert!(
        eventually(Duration::from_secs(10), || async {
            shop.status_of(order).await == "CANCELLED"
        })
        .await
    );
    assert_eq!(
        shop.text(&format!(
            "SELECT cancel_reason AS t FROM orders WHERE id = {order}"
        ))
        .await,
        "RESERVATION_EXPIRED"
    );
    assert_eq!(shop.stock(v.variant_id).await, (5, 0));
    let shown = shop
        .server
        .data(
            "query($id: ID!) { node(id: $id) { ... on ProductVariant { quantityAvailable } } }",
            json!({ "id": v.gid }),
        )
        .await;
    assert_eq!(shown["node"]["quantityAvailable"], 5);
    assert_eq!(
        shop.db
            .count("SELECT count(*) AS n FROM jobs WHERE kind = 'expire_reservation'")
            .await,
        0
    );
    shop.stop().await;
}

/// A partner's webhook endpoint: records every delivery, answers 500 to the first one.
#[derive(Clone, Default)]
struct Receiver {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

async fn start_receiver() -> (Receiver, String) {
    use axum::http::StatusCode;
    let receiver = Receiver::default();
    let r = receiver.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let r = r.clone();
            async move {
                let mut seen = r.seen.lock().unwrap();
                seen.push((headers, body));
                if seen.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn order_events_reach_partners_signed_and_retried() {
    let (receiver, url) = start_receiver().await;
    let shop = shop_with_hooks(Duration::from_secs(900), vec![url]).await;
    let v = stocked_variant(&shop.db, "tee", 2000, "DENY", &[10]).await;
    let (_, _, reference) = shop.order(&v.gid, 2, "hook-1").await;
    let delivered = |n: usize| {
        let r = receiver.clone();
        move || {
            let r = r.clone();
            async move { r.seen.lock().unwrap().len() >= n }
        }
    };
    // order.created: refused once with 500, delivered again with the same id and body.
    assert!(
        eventually(Duration::from_secs(10), delivered(2)).await,
        "order.created delivered after a retry"
    );
    let (body, signature) = signed_event(SECRET, "evt_h", "payment.succeeded", &reference);
    assert_eq!(
        shop.post_webhook("test", &body, Some(&signature)).await.0,
        200
    );
    assert!(
        eventually(Duration::from_secs(10), delivered(3)).await,
        "order.paid delivered"
    );

    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen[0].1, seen[1].1, "a retry sends the same body");
    assert_eq!(seen[0].0["webhook-id"], seen[1].0["webhook-id"]);
    let now = chrono::Utc::now().timestamp();
    for (headers, body) in &seen {
        let signature = headers["webhook-signature"].to_str().unwrap();
        commerce_gateway::signing::verify(
            "hook-secret",
            signature,
            body.as_bytes(),
            now,
            Duration::from_secs(300),
        )
        .expect("a valid signature");
    }
    let events: Vec<String> = seen
        .iter()
        .map(|(h, _)| h["webhook-event"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["order.created", "order.created", "order.paid"]);
    let created: Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(created["order"]["number"], 1001);
    assert_eq!(created["order"]["status"], "PENDING_PAYMENT");
    assert_eq!(created["order"]["lines"][0]["quantity"], 2);
    let paid: Value = serde_json::from_str(&seen[2].1).unwrap();
    assert_eq!(paid["order"]["status"], "PAID");
    assert_eq!(paid["order"]["total"], "45.00");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.seen.lock().unwrap().len(),
        3,
        "nothing delivered twice after success"
    );
    shop.stop().await;
}
