//! Placing an order: the order row and its lines, written in the checkout's transaction
//! (which reserves the stock between [`create`] and [`placed`]), then the jobs and the
//! event that follow every new order.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::events::{self, Hooks, OrderEvent};
use super::{Order, OrderLine};
use crate::db::schema::orders as ot;
use crate::jobs::{self, Kind, NewJob};

/// An order about to be written: what the buyer pays, and for what.
pub struct NewOrder<'a> {
    pub idempotency_key: &'a str,
    pub cart_id: i64,
    pub email: &'a str,
    pub currency: &'a str,
    pub subtotal_minor: i64,
    pub shipping_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub shipping_method: &'a str,
    pub shipping_address: &'a Value,
    pub payment_provider: &'a str,
    pub payment_reference: &'a str,
    /// Until when the order holds its stock unpaid.
    pub reserved_until: DateTime<Utc>,
}

/// A line about to be written: a snapshot of the merchandise and its price.
pub struct NewLine {
    pub variant_id: i64,
    pub product_title: String,
    pub variant_title: String,
    pub sku: Option<String>,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub total_minor: i64,
    pub taxable: bool,
    pub requires_shipping: bool,
}

/// Writes the order and its lines (two statements); the lines come back in position
/// order. The order's access token (its private URL) is made here.
pub async fn create(
    conn: &mut AsyncPgConnection,
    order: &NewOrder<'_>,
    lines: &[NewLine],
) -> QueryResult<(Order, Vec<OrderLine>)> {
    let order: Order = diesel::insert_into(ot::table)
        .values((
            ot::access_token.eq(random_token(40)),
            ot::idempotency_key.eq(order.idempotency_key),
            ot::cart_id.eq(order.cart_id),
            ot::email.eq(order.email),
            ot::currency.eq(order.currency),
            ot::subtotal_minor.eq(order.subtotal_minor),
            ot::shipping_minor.eq(order.shipping_minor),
            ot::tax_minor.eq(order.tax_minor),
            ot::total_minor.eq(order.total_minor),
            ot::shipping_method.eq(order.shipping_method),
            ot::shipping_address.eq(order.shipping_address),
            ot::payment_provider.eq(order.payment_provider),
            ot::payment_reference.eq(order.payment_reference),
            ot::reserved_until.eq(order.reserved_until),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    let lines = insert_lines(conn, order.id, lines).await?;
    Ok((order, lines))
}

/// What follows a new order in its transaction: the confirmation email and the expiry of
/// its reservation are queued, and subscribers hear `order.created`.
pub async fn placed(conn: &mut AsyncPgConnection, order: &Order, hooks: &Hooks) -> QueryResult<()> {
    let id = serde_json::json!({ "order_id": order.id });
    jobs::enqueue(
        conn,
        &[
            NewJob::new(Kind::OrderConfirmation, id.clone()),
            NewJob::new(Kind::ExpireReservation, id).at(order.reserved_until),
        ],
    )
    .await?;
    events::emit(conn, order.id, OrderEvent::Created, hooks).await
}

/// The lines in one statement that returns them. Raw SQL: an `unnest` of column arrays
/// inserts any number of lines as one prepared statement (diesel's multi-row insert is a
/// different statement text for each line count).
async fn insert_lines(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    lines: &[NewLine],
) -> QueryResult<Vec<OrderLine>> {
    let n = lines.len();
    let mut variant_ids = Vec::with_capacity(n);
    let mut product_titles = Vec::with_capacity(n);
    let mut variant_titles = Vec::with_capacity(n);
    let mut skus = Vec::with_capacity(n);
    let mut quantities = Vec::with_capacity(n);
    let mut unit_prices = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    let mut taxable = Vec::with_capacity(n);
    let mut shipping = Vec::with_capacity(n);
    for l in lines {
        variant_ids.push(l.variant_id);
        product_titles.push(l.product_title.as_str());
        variant_titles.push(l.variant_title.as_str());
        skus.push(l.sku.as_deref());
        quantities.push(l.quantity);
        unit_prices.push(l.unit_price_minor);
        totals.push(l.total_minor);
        taxable.push(l.taxable);
        shipping.push(l.requires_shipping);
    }
    let mut lines: Vec<OrderLine> = crate::db::sql::Prepared(
        diesel::sql_query(
            "INSERT INTO order_lines (order_id, position, variant_id, product_title, \
             variant_title, sku, quantity, unit_price_minor, total_minor, taxable, \
             requires_shipping) \
             SELECT $1, t.n, t.v, t.pt, t.vt, t.sku, t.q, t.up, t.tot, t.tax, t.ship \
             FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::int4[], \
                         $7::int8[], $8::int8[], $9::bool[], $10::bool[]) \
                  WITH ORDINALITY AS t (v, pt, vt, sku, q, up, tot, tax, ship, n) \
             ORDER BY t.n \
             RETURNING id, order_id, position, variant_id, product_title, variant_title, sku, \
                       quantity, unit_price_minor, total_minor, taxable, requires_shipping",
        )
        .bind::<BigInt, _>(order_id)
        .bind::<Array<BigInt>, _>(&variant_ids)
        .bind::<Array<Text>, _>(&product_titles)
        .bind::<Array<Text>, _>(&variant_titles)
        .bind::<Array<Nullable<Text>>, _>(&skus)
        .bind::<Array<Integer>, _>(&quantities)
        .bind::<Array<BigInt>, _>(&unit_prices)
        .bind::<Array<BigInt>, _>(&totals)
        .bind::<Array<Bool>, _>(&taxable)
        .bind::<Array<Bool>, _>(&shipping),
    )
    .load(conn)
    .await?;
    lines.sort_by_key(|l| l.position);
    Ok(lines)
}

/// A random token of `len` letters and digits (an order's private URL).
fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
