//! Orders: reading them, and the status transitions payments and expiry cause.
//!
//! A transition is one conditional `UPDATE … WHERE status = 'PENDING_PAYMENT'`: whichever
//! of payment, failure or expiry comes first wins, and every later attempt (a replayed
//! webhook, a retried job) finds nothing to change. The reservation is settled in the
//! same transaction as the transition that won.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::events::{self, OrderEvent};
use super::inventory::{self, Settle};
use crate::db::schema::{order_lines, orders};
use crate::jobs::{self, Kind, NewJob};

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = orders)]
pub struct Order {
    pub id: i64,
    pub number: i64,
    pub access_token: String,
    pub idempotency_key: String,
    pub cart_id: Option<i64>,
    pub status: String,
    pub email: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub shipping_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub shipping_method: String,
    pub shipping_address: Value,
    pub payment_provider: String,
    pub payment_reference: String,
    pub cancel_reason: Option<String>,
    pub reserved_until: DateTime<Utc>,
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub refunded_minor: i64,
    pub refunded_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = order_lines)]
pub struct OrderLine {
    pub id: i64,
    pub order_id: i64,
    pub position: i32,
    pub variant_id: Option<i64>,
    pub product_title: String,
    pub variant_title: String,
    pub sku: Option<String>,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub total_minor: i64,
    pub taxable: bool,
    pub requires_shipping: bool,
}

pub async fn by_id(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Order>> {
    orders::table
        .find(id)
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_access_token(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> QueryResult<Option<Order>> {
    orders::table
        .filter(orders::access_token.eq(token))
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_idempotency_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> QueryResult<Option<Order>> {
    orders::table
        .filter(orders::idempotency_key.eq(key))
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn lines_of(conn: &mut AsyncPgConnection, order_id: i64) -> QueryResult<Vec<OrderLine>> {
    order_lines::table
        .filter(order_lines::order_id.eq(order_id))
        .order(order_lines::position)
        .select(OrderLine::as_select())
        .load(conn)
        .await
}

/// The invoice stored for a paid order, if rendered yet.
pub async fn invoice_of(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<Option<String>> {
    Ok(orders::table
        .filter(orders::access_token.eq(token))
        .select(orders::invoice_html)
        .first::<Option<String>>(conn)
        .await
        .optional()?
        .flatten())
}

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
        count_sales(conn, order_id).await?;
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

/// Adds a paid order's units to `products.total_sales` (the BEST_SELLING sort), locking
/// the products in id order first so concurrent payments cannot deadlock.
async fn count_sales(conn: &mut AsyncPgConnection, order_id: i64) -> QueryResult<()> {
    use diesel::sql_types::BigInt;
    diesel::sql_query(
        "SELECT p.id FROM products p WHERE p.id IN \
           (SELECT v.product_id FROM order_lines l JOIN product_variants v ON v.id = l.variant_id \
            WHERE l.order_id = $1) ORDER BY p.id FOR NO KEY UPDATE",
    )
    .bind::<BigInt, _>(order_id)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE products p SET total_sales = p.total_sales + s.units \
         FROM (SELECT v.product_id, sum(l.quantity)::int8 AS units FROM order_lines l \
               JOIN product_variants v ON v.id = l.variant_id WHERE l.order_id = $1 GROUP BY 1) s \
         WHERE p.id = s.product_id",
    )
    .bind::<BigInt, _>(order_id)
    .execute(conn)
    .await?;
    Ok(())
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
