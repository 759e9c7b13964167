//! Every change of an order's status, in one place: the transitions payments and expiry
//! cause (`PENDING_PAYMENT` → `PAID` or `CANCELLED`), and the ones partners ask for
//! through the admin API (fulfil, cancel, refund).
//!
//! A payment or expiry transition is one conditional `UPDATE … WHERE status =
//! 'PENDING_PAYMENT'`: whichever of payment, failure or expiry comes first wins, and every
//! later attempt (a replayed webhook, a retried job) finds nothing to change. The
//! reservation is settled in the same transaction as the transition that won. A partner's
//! change locks the order row, checks its state, and writes its audit entry in the same
//! transaction.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::Order;
use super::events::{self, OrderEvent};
use crate::db::schema::orders;
use crate::db::schema::orders as o;
use crate::inventory::{self, Settle};
use crate::jobs::{self, Kind, NewJob};
use crate::partners::{Actor, AdminError, audit};
use crate::payments::Payments;

/// What a transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The order moved; the reservation was settled.
    Applied,
    /// The order had already left PENDING_PAYMENT (or does not exist): nothing changed.
    AlreadySettled,
}

/// Marks a pending order paid: its reservation becomes a sale and its invoice is queued.
pub async fn mark_paid(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    hooks: &events::Hooks,
) -> QueryResult<Transition> {
    conn.transaction(async |conn| {
        let moved: Option<i64> = diesel::update(
            orders::table
                .filter(orders::id.eq(order_id))
                .filter(orders::status.eq("PENDING_PAYMENT")),
        )
        .set((
            orders::status.eq("PAID"),
            orders::paid_at.eq(diesel::dsl::now),
            orders::updated_at.eq(diesel::dsl::now),
        ))
        .returning(orders::id)
        .get_result(conn)
        .await
        .optional()?;
        if moved.is_none() {
            return Ok(Transition::AlreadySettled);
        }
        inventory::settle(conn, order_id, Settle::Sell).await?;
        crate::catalog::writer::count_sales(conn, order_id).await?;
        events::emit(conn, order_id, OrderEvent::Paid, hooks).await?;
        jobs::enqueue(
            conn,
            &[NewJob::new(
                Kind::Invoice,
                serde_json::json!({ "order_id": order_id }),
            )],
        )
        .await?;
        Ok(Transition::Applied)
    })
    .await
}

/// Cancels a pending order and releases its reservation.
pub async fn cancel_pending(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    reason: &str,
    hooks: &events::Hooks,
) -> QueryResult<Transition> {
    conn.transaction(async |conn| {
        let moved: Option<i64> = diesel::update(
            orders::table
                .filter(orders::id.eq(order_id))
                .filter(orders::status.eq("PENDING_PAYMENT")),
        )
        .set((
            orders::status.eq("CANCELLED"),
            orders::cancel_reason.eq(reason),
            orders::cancelled_at.eq(diesel::dsl::now),
            orders::updated_at.eq(diesel::dsl::now),
        ))
        .returning(orders::id)
        .get_result(conn)
        .await
        .optional()?;
        if moved.is_none() {
            return Ok(Transition::AlreadySettled);
        }
        inventory::settle(conn, order_id, Settle::Release).await?;
        events::emit(conn, order_id, OrderEvent::Cancelled, hooks).await?;
        Ok(Transition::Applied)
    })
    .await
}

/// Cancels a pending order whose reservation time has passed (the expiry job). The time
/// is checked against the database's clock in the same statement that cancels, and an
/// order with a stored, not yet processed `payment.succeeded` event is left for that
/// event. `Ok(None)`: not due yet, or a payment is being processed; try again later.
pub async fn expire(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    hooks: &events::Hooks,
) -> QueryResult<Option<Transition>> {
    use diesel::sql_types::{BigInt, Text};
    conn.transaction(async |conn| {
        #[derive(QueryableByName)]
        struct Due {
            #[diesel(sql_type = Text)]
            state: String,
        }
        let due: Option<Due> = diesel::sql_query(
            "SELECT CASE WHEN o.status <> 'PENDING_PAYMENT' THEN 'settled' \
                         WHEN o.reserved_until > now() THEN 'not_due' \
                         WHEN EXISTS (SELECT 1 FROM payment_events e \
                                      WHERE e.provider = o.payment_provider AND e.reference = o.payment_reference \
                                        AND e.event_type = 'payment.succeeded' AND e.processed_at IS NULL) \
                              THEN 'payment_pending' \
                         ELSE 'due' END AS state \
             FROM orders o WHERE o.id = $1 FOR UPDATE",
        )
        .bind::<BigInt, _>(order_id)
        .get_result(conn)
        .await
        .optional()?;
        match due.as_ref().map(|d| d.state.as_str()) {
            None | Some("settled") => Ok(Some(Transition::AlreadySettled)),
            Some("due") => cancel_pending(conn, order_id, "RESERVATION_EXPIRED", hooks)
                .await
                .map(Some),
            _ => Ok(None),
        }
    })
    .await
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
                    cancel_pending(conn, id, reason, hooks).await?;
                }
                "PAID" => {
                    let remaining = order.total_minor - order.refunded_minor;
                    if remaining > 0 {
                        refund_through(payments, &order, remaining).await?;
                    }
                    inventory::restock(conn, id).await?;
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
            Ok((super::by_id(conn, id).await?.unwrap_or(order), from))
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
