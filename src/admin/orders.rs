//! Orders in the admin API: listing with filters (keyset pages by id), fulfilment,
//! cancellation and refunds. Each change locks the order row, checks its state, and
//! writes its audit entry in the same transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::{Actor, AdminError, audit};
use crate::checkout::events::{self, OrderEvent};
use crate::checkout::orders::{self, Order};
use crate::checkout::payments::Payments;
use crate::db::schema::orders as o;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

pub const STATUSES: &[&str] = &[
    "PENDING_PAYMENT",
    "PAID",
    "FULFILLED",
    "CANCELLED",
    "REFUNDED",
];

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub created_min: Option<DateTime<Utc>>,
    pub created_max: Option<DateTime<Utc>>,
    pub email: Option<String>,
    pub updated_min: Option<DateTime<Utc>>,
}

/// Orders matching `filter` after the order `after` (by id; descending when `reverse`),
/// `limit + 1` of them so the caller can tell whether another page follows.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &Filter,
    after: Option<i64>,
    limit: i64,
    reverse: bool,
) -> QueryResult<Vec<Order>> {
    let mut q = o::table.select(Order::as_select()).into_boxed();
    if let Some(s) = &filter.status {
        q = q.filter(o::status.eq(s.clone()));
    }
    if let Some(t) = filter.created_min {
        q = q.filter(o::created_at.ge(t));
    }
    if let Some(t) = filter.created_max {
        q = q.filter(o::created_at.le(t));
    }
    if let Some(e) = &filter.email {
        // Checkout keeps the address as typed; addresses match case-insensitively.
        q = q.filter(lower(o::email).eq(e.trim().to_lowercase()));
    }
    if let Some(t) = filter.updated_min {
        q = q.filter(o::updated_at.ge(t));
    }
    if let Some(after) = after {
        q = if reverse {
            q.filter(o::id.lt(after))
        } else {
            q.filter(o::id.gt(after))
        };
    }
    q = if reverse {
        q.order(o::id.desc())
    } else {
        q.order(o::id.asc())
    };
    q.limit(limit + 1).load(conn).await
}

async fn locked(conn: &mut AsyncPgConnection, id: i64) -> Result<Order, AdminError> {
    o::table
        .find(id)
        .select(Order::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| AdminError::input(&["id"], "NOT_FOUND", "No such order."))
}

fn wrong_state(order: &Order, what: &str) -> AdminError {
    AdminError::input(
        &["id"],
        "INVALID_STATE",
        format!(
            "Order #{} is {}; it cannot be {what}.",
            order.number, order.status
        ),
    )
}

/// Marks a paid order fulfilled (shipped), with optional tracking.
pub async fn fulfill(
    conn: &mut AsyncPgConnection,
    id: i64,
    tracking_number: Option<&str>,
    tracking_url: Option<&str>,
    actor: &Actor,
) -> Result<Order, AdminError> {
    if let Some(u) = tracking_url
        && url::Url::parse(u).is_err()
    {
        return Err(AdminError::input(
            &["trackingUrl"],
            "INVALID",
            "The tracking URL is not a URL.",
        ));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        let order = locked(conn, id).await?;
        if order.status != "PAID" {
            return Err(wrong_state(&order, "fulfilled"));
        }
        let order: Order = diesel::update(o::table.find(id))
            .set((
                o::status.eq("FULFILLED"),
                o::fulfilled_at.eq(diesel::dsl::now),
                o::tracking_number.eq(tracking_number),
                o::tracking_url.eq(tracking_url),
                o::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Order::as_returning())
            .get_result(conn)
            .await?;
        audit::record(conn, actor, "orderFulfill", "Order", Some(id.to_string()),
            json!({ "status": "FULFILLED", "trackingNumber": tracking_number, "trackingUrl": tracking_url })).await?;
        Ok(order)
    })
    .await
}

/// Cancels an order. Unpaid: its reservation is released and the payment authorization
/// voided (after the commit); refused while a payment success is being processed. Paid
/// (not yet shipped): the payment is refunded in full and the units go back on hand.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    id: i64,
    reason: &str,
    payments: &Payments,
    hooks: &events::Hooks,
    actor: &Actor,
) -> Result<Order, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 255 {
        return Err(AdminError::input(
            &["reason"],
            "INVALID",
            "Give a reason of 1 to 255 characters.",
        ));
    }
    let (order, from) = conn
        .transaction::<_, AdminError, _>(async |conn| {
            let order = locked(conn, id).await?;
            match order.status.as_str() {
                "PENDING_PAYMENT" => {
                    // The expiry job's rule: a stored, unprocessed payment success wins.
                    #[derive(diesel::QueryableByName)]
                    struct Pending {
                        #[diesel(sql_type = diesel::sql_types::Bool)]
                        pending: bool,
                    }
                    let p: Pending = diesel::sql_query(
                        "SELECT EXISTS (SELECT 1 FROM payment_events e WHERE e.provider = $1 AND e.reference = $2 \
                         AND e.event_type = 'payment.succeeded' AND e.processed_at IS NULL) AS pending",
                    )
                    .bind::<diesel::sql_types::Text, _>(&order.payment_provider)
                    .bind::<diesel::sql_types::Text, _>(&order.payment_reference)
                    .get_result(conn)
                    .await?;
                    if p.pending {
                        return Err(AdminError::input(
                            &["id"],
                            "INVALID_STATE",
                            "The order's payment is being processed; retry in a moment.",
                        ));
                    }
                    orders::cancel_pending(conn, id, reason, hooks).await?;
                }
                "PAID" => {
                    let remaining = order.total_minor - order.refunded_minor;
                    if remaining > 0 {
                        refund_through(payments, &order, remaining).await?;
                    }
                    crate::checkout::inventory::restock(conn, id).await?;
                    diesel::update(o::table.find(id))
                        .set((
                            o::status.eq("CANCELLED"),
                            o::cancel_reason.eq(reason),
                            o::cancelled_at.eq(diesel::dsl::now),
                            o::refunded_minor.eq(order.total_minor),
                            o::refunded_at.eq(diesel::dsl::now),
                            o::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)
                        .await?;
                    events::emit(conn, id, OrderEvent::Cancelled, hooks).await?;
                }
                _ => return Err(wrong_state(&order, "cancelled")),
            }
            audit::record(conn, actor, "orderCancel", "Order", Some(id.to_string()),
                json!({ "from": order.status, "status": "CANCELLED", "reason": reason })).await?;
            let from = order.status.clone();
            Ok((orders::by_id(conn, id).await?.unwrap_or(order), from))
        })
        .await?;
    if from == "PENDING_PAYMENT"
        && let Some(provider) = payments.provider(&order.payment_provider)
        && let Err(e) = provider.void(&order.payment_reference).await
    {
        // The order is cancelled either way; an authorization left open lapses.
        tracing::warn!(order = order.number, error = %e, "could not void the payment authorization");
    }
    Ok(order)
}

/// Refunds through the order's own provider. The idempotency key names the refunded
/// amount so far, so a retry after a lost answer — or a refund after a cancellation whose
/// transaction failed after its refund — refunds once.
async fn refund_through(payments: &Payments, order: &Order, amount: i64) -> Result<(), AdminError> {
    let provider = payments.provider(&order.payment_provider).ok_or_else(|| {
        AdminError::input(
            &["id"],
            "PAYMENT_FAILED",
            format!(
                "The payment provider {:?} is not configured.",
                order.payment_provider
            ),
        )
    })?;
    let key = format!("refund-{}-{}", order.id, order.refunded_minor);
    provider
        .refund(&order.payment_reference, amount, &key)
        .await
        .map_err(|e| {
            AdminError::input(&["id"], "PAYMENT_FAILED", format!("The refund failed: {e}"))
        })
}

/// Refunds `amount_minor` (the whole remainder when `None`) of a paid or fulfilled
/// order through its payment provider; a full refund moves it to REFUNDED.
pub async fn refund(
    conn: &mut AsyncPgConnection,
    id: i64,
    amount_minor: Option<i64>,
    payments: &Payments,
    actor: &Actor,
) -> Result<Order, AdminError> {
    conn.transaction::<_, AdminError, _>(async |conn| {
        let order = locked(conn, id).await?;
        if !matches!(order.status.as_str(), "PAID" | "FULFILLED") {
            return Err(wrong_state(&order, "refunded"));
        }
        let remaining = order.total_minor - order.refunded_minor;
        let amount = amount_minor.unwrap_or(remaining);
        if amount <= 0 || amount > remaining {
            return Err(AdminError::input(
                &["amount"],
                "INVALID",
                format!(
                    "The refund must be more than 0 and at most {} {} (what is left to refund).",
                    crate::money::format_minor(remaining, &order.currency),
                    order.currency
                ),
            ));
        }
        refund_through(payments, &order, amount).await?;
        let full = amount == remaining;
        let status = if full {
            "REFUNDED"
        } else {
            order.status.as_str()
        };
        let updated: Order = diesel::update(o::table.find(id))
            .set((
                o::status.eq(status),
                o::refunded_minor.eq(order.refunded_minor + amount),
                o::refunded_at.eq(diesel::dsl::now),
                o::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Order::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            "orderRefund",
            "Order",
            Some(id.to_string()),
            json!({ "amountMinor": amount, "currency": order.currency, "status": status }),
        )
        .await?;
        Ok(updated)
    })
    .await
}
