//! Webhook subscriptions of partners: a topic (`ORDERS_CREATE`, `ORDERS_PAID`,
//! `ORDERS_CANCELLED`, `INVENTORY_LOW`) and a URL. Deliveries are jobs of the queue,
//! enqueued in the transaction of the change, signed with the subscription's own secret
//! (HMAC-SHA256, see [`crate::signing`]) and retried with backoff.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int8, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::{Actor, AdminError, audit};
use crate::db::schema::webhook_subscriptions as ws;
use crate::jobs::{self, Kind, NewJob};

pub const TOPICS: &[&str] = &[
    "ORDERS_CREATE",
    "ORDERS_PAID",
    "ORDERS_CANCELLED",
    "INVENTORY_LOW",
];

/// The topic of an order event (`order.created` → `ORDERS_CREATE`).
pub fn topic_of(event: &str) -> Option<&'static str> {
    Some(match event {
        "order.created" => "ORDERS_CREATE",
        "order.paid" => "ORDERS_PAID",
        "order.cancelled" => "ORDERS_CANCELLED",
        "inventory.low" => "INVENTORY_LOW",
        _ => return None,
    })
}

/// A subscription as its owner sees it (never its secret).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = ws)]
pub struct Subscription {
    pub id: i64,
    pub topic: String,
    pub url: String,
    pub api_key_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// The topics anyone subscribes to, read at most once a second (and again at once after
/// this process changes a subscription), so that order events and sales pay no look-up
/// when no partner listens. A subscription made on another gateway receives events from
/// at most a second after it was created.
#[derive(Debug, Default)]
pub struct TopicCache(std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>);

const TOPIC_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl TopicCache {
    pub async fn has(&self, conn: &mut AsyncPgConnection, topic: &str) -> QueryResult<bool> {
        let fresh = {
            let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
            cached
                .as_ref()
                .filter(|(at, _)| at.elapsed() < TOPIC_TTL)
                .map(|(_, topics)| topics.iter().any(|t| t == topic))
        };
        if let Some(found) = fresh {
            return Ok(found);
        }
        let read_at = std::time::Instant::now();
        let topics: Vec<String> = ws::table.select(ws::topic).distinct().load(conn).await?;
        let found = topics.iter().any(|t| t == topic);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((read_at, topics));
        Ok(found)
    }

    /// Forgets the cached topics (after a subscription changed here).
    pub fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// shared, documentation, multicast or unspecified).
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// Refuses callback URLs that resolve to non-public addresses (the gateway's own
/// network, cloud metadata endpoints), unless `allow_private`
/// (`WEBHOOK_ALLOW_PRIVATE_TARGETS`). Deliveries never follow redirects.
async fn check_target(url: &url::Url, allow_private: bool) -> Result<(), AdminError> {
    if allow_private {
        return Ok(());
    }
    let bad = |m: &str| AdminError::input(&["callbackUrl"], "INVALID", m.to_string());
    let host = url
        .host_str()
        .ok_or_else(|| bad("The callback URL has no host."))?
        .trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| bad("The callback URL's host does not resolve."))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(bad(
            "The callback URL must reach a public address (WEBHOOK_ALLOW_PRIVATE_TARGETS allows others).",
        ));
    }
    Ok(())
}

/// Creates a subscription; returns it with its signing secret (shown once).
pub async fn create(
    conn: &mut AsyncPgConnection,
    topic: &str,
    url: &str,
    allow_private: bool,
    actor: &Actor,
) -> Result<(Subscription, String), AdminError> {
    if !TOPICS.contains(&topic) {
        return Err(AdminError::input(
            &["topic"],
            "INVALID",
            format!("Topics: {}.", TOPICS.join(", ")),
        ));
    }
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let Some(parsed) = parsed.filter(|_| url.len() <= 2048) else {
        return Err(AdminError::input(
            &["callbackUrl"],
            "INVALID",
            "The callback URL must be an http(s) URL.",
        ));
    };
    check_target(&parsed, allow_private).await?;
    let secret = {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        hex::encode(b)
    };
    conn.transaction::<_, AdminError, _>(async |conn| {
        let sub: Subscription = diesel::insert_into(ws::table)
            .values((
                ws::topic.eq(topic),
                ws::url.eq(url),
                ws::secret.eq(&secret),
                ws::api_key_id.eq(actor.key_id),
            ))
            .returning(Subscription::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| super::constraint(e, &["callbackUrl"]))?;
        audit::record(
            conn,
            actor,
            "webhookSubscriptionCreate",
            "WebhookSubscription",
            Some(sub.id.to_string()),
            json!({ "topic": topic, "url": url }),
        )
        .await?;
        Ok((sub, secret))
    })
    .await
}

/// Deletes a subscription; `owner` (a key id) limits it to that key's subscriptions
/// (`None`: any, for a key with the `admin` scope).
pub async fn delete(
    conn: &mut AsyncPgConnection,
    id: i64,
    owner: Option<i64>,
    actor: &Actor,
) -> Result<bool, AdminError> {
    conn.transaction::<_, AdminError, _>(async |conn| {
        let mut delete = diesel::delete(ws::table.filter(ws::id.eq(id))).into_boxed();
        if let Some(owner) = owner {
            delete = delete.filter(ws::api_key_id.eq(owner));
        }
        let n = delete.execute(conn).await?;
        if n > 0 {
            audit::record(
                conn,
                actor,
                "webhookSubscriptionDelete",
                "WebhookSubscription",
                Some(id.to_string()),
                json!({}),
            )
            .await?;
        }
        Ok(n > 0)
    })
    .await
}

/// Subscriptions, of one topic or all; `owner` limits them to one key's.
pub async fn list(
    conn: &mut AsyncPgConnection,
    topic: Option<&str>,
    owner: Option<i64>,
) -> QueryResult<Vec<Subscription>> {
    let mut query = ws::table.select(Subscription::as_select()).into_boxed();
    if let Some(topic) = topic {
        query = query.filter(ws::topic.eq(topic));
    }
    if let Some(owner) = owner {
        query = query.filter(ws::api_key_id.eq(owner));
    }
    query.order(ws::id).load(conn).await
}

/// The signing secret of a subscription (`None`: it was deleted).
pub async fn secret_of(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<String>> {
    ws::table
        .find(id)
        .select(ws::secret)
        .first(conn)
        .await
        .optional()
}

/// Queues one delivery of `body` (event `event`, id `webhook_id`) per subscription of
/// the event's topic, on the caller's connection.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    event: &str,
    webhook_id: &str,
    body: &str,
) -> QueryResult<()> {
    let Some(topic) = topic_of(event) else {
        return Ok(());
    };
    let targets: Vec<(i64, String)> = ws::table
        .filter(ws::topic.eq(topic))
        .order(ws::id)
        .select((ws::id, ws::url))
        .load(conn)
        .await?;
    if targets.is_empty() {
        return Ok(());
    }
    let deliveries: Vec<NewJob> = targets
        .iter()
        .map(|t| {
            NewJob::new(
                Kind::OrderWebhook,
                json!({ "url": t.1, "event": event, "webhook_id": webhook_id, "body": body, "subscription_id": t.0 }),
            )
        })
        .collect();
    jobs::enqueue(conn, &deliveries).await?;
    Ok(())
}

/// `inventory.low` for each variant whose available stock fell below `threshold`.
pub async fn inventory_low(
    conn: &mut AsyncPgConnection,
    crossed: &[(i64, i64)],
    threshold: i64,
) -> QueryResult<()> {
    if crossed.is_empty() {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Int8)]
        id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        sku: Option<String>,
        #[diesel(sql_type = Text)]
        title: String,
        #[diesel(sql_type = Int8)]
        product_id: i64,
    }
    let ids: Vec<i64> = crossed.iter().map(|c| c.0).collect();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT v.id, v.sku, p.title || ' - ' || v.title AS title, v.product_id FROM product_variants v \
         JOIN products p ON p.id = v.product_id WHERE v.id = ANY($1) ORDER BY v.id",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .load(conn)
    .await?;
    let now = Utc::now();
    for row in rows {
        let available = crossed
            .iter()
            .find(|c| c.0 == row.id)
            .map(|c| c.1)
            .unwrap_or(0);
        let webhook_id = format!("inventory.low-{}-{}", row.id, now.timestamp_millis());
        let body = json!({
            "id": webhook_id, "event": "inventory.low", "createdAt": now,
            "variant": {
                "id": crate::ids::encode("ProductVariant", row.id),
                "productId": crate::ids::encode("Product", row.product_id),
                "sku": row.sku, "title": row.title, "available": available, "threshold": threshold,
            },
        })
        .to_string();
        enqueue(conn, "inventory.low", &webhook_id, &body).await?;
    }
    Ok(())
}
