//! Outgoing order webhooks: `order.created`, `order.paid` and `order.cancelled`, one
//! delivery job per subscriber URL (`ORDER_WEBHOOK_URLS`), enqueued in the transaction
//! that made the change, so a webhook exists exactly when the change committed.
//!
//! The body is a snapshot of the order taken in that transaction, so retries send the same
//! bytes. Each delivery carries `Webhook-Id` (the same on every retry, for the receiver's
//! deduplication), `Webhook-Event`, and `Webhook-Signature` (see [`crate::signing`]).

use diesel_async::AsyncPgConnection;
use serde_json::{Value, json};

use super::{Order, OrderLine};
use crate::jobs::{self, Kind, NewJob};
use crate::money::format_minor;

/// Order events a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Created,
    Paid,
    Cancelled,
}

impl OrderEvent {
    pub fn name(self) -> &'static str {
        match self {
            OrderEvent::Created => "order.created",
            OrderEvent::Paid => "order.paid",
            OrderEvent::Cancelled => "order.cancelled",
        }
    }
}

/// The JSON an order event carries.
pub fn snapshot(order: &Order, lines: &[OrderLine]) -> Value {
    let money = |m: i64| format_minor(m, &order.currency);
    json!({
        "id": crate::ids::encode("Order", order.id),
        "number": order.number,
        "status": order.status,
        "email": order.email,
        "currency": order.currency,
        "subtotal": money(order.subtotal_minor),
        "shipping": money(order.shipping_minor),
        "tax": money(order.tax_minor),
        "total": money(order.total_minor),
        "shippingMethod": order.shipping_method,
        "shippingAddress": order.shipping_address,
        "cancelReason": order.cancel_reason,
        "createdAt": order.created_at,
        "paidAt": order.paid_at,
        "cancelledAt": order.cancelled_at,
        "lines": lines.iter().map(|l| json!({
            "variantId": l.variant_id.map(|id| crate::ids::encode("ProductVariant", id)),
            "sku": l.sku,
            "title": l.product_title,
            "variantTitle": l.variant_title,
            "quantity": l.quantity,
            "unitPrice": money(l.unit_price_minor),
            "total": money(l.total_minor),
        })).collect::<Vec<_>>(),
    })
}

/// Where order events go: the configured URLs (`ORDER_WEBHOOK_URLS`, signed with
/// `ORDER_WEBHOOK_SECRET`) and partners' subscriptions (admin API, each signed with its
/// own secret), whose topics are cached for a second so that a checkout pays no look-up
/// when no one subscribes.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub urls: Vec<String>,
    pub topics: std::sync::Arc<crate::partners::webhooks::TopicCache>,
}

impl Hooks {
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            topics: Default::default(),
        }
    }
}

/// Queues `event` of order `order_id` for every subscriber, on the caller's connection.
pub async fn emit(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    event: OrderEvent,
    hooks: &Hooks,
) -> diesel::QueryResult<()> {
    let topic = crate::partners::webhooks::topic_of(event.name()).unwrap_or_default();
    let subscribed = hooks.topics.has(conn, topic).await?;
    let urls = &hooks.urls;
    if urls.is_empty() && !subscribed {
        return Ok(());
    }
    let Some(order) = super::by_id(conn, order_id).await? else {
        return Ok(());
    };
    let lines = super::lines_of(conn, order_id).await?;
    let body = json!({
        "id": format!("{}-{}", event.name(), order.id),
        "event": event.name(),
        "createdAt": chrono::Utc::now(),
        "order": snapshot(&order, &lines),
    })
    .to_string();
    let deliveries: Vec<NewJob> = urls
        .iter()
        .map(|url| {
            NewJob::new(
                Kind::OrderWebhook,
                json!({
                    "url": url,
                    "event": event.name(),
                    "webhook_id": format!("{}-{}", event.name(), order.id),
                    "body": body,
                }),
            )
        })
        .collect();
    jobs::enqueue(conn, &deliveries).await?;
    if !subscribed {
        return Ok(());
    }
    // Partners' subscriptions (admin API), each signed with its own secret.
    crate::partners::webhooks::enqueue(
        conn,
        event.name(),
        &format!("{}-{}", event.name(), order.id),
        &body,
    )
    .await?;
    Ok(())
}
