//! The checkout transaction: re-price the cart, write the order and its lines, reserve
//! stock, complete the cart, enqueue the order's jobs. One transaction on the primary.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::outcome::user_error;
use super::pricing::{Totals, totals};
use super::{
    Authorized, CheckoutErrorCode, CheckoutInput, Settings, TxError, key_reused, random_token,
};
use crate::cart::{self, CartRules};
use crate::db::schema::orders as ot;
use crate::inventory;
use crate::jobs::{self, Kind, NewJob};
use crate::orders::{self, Order, events};

/// The order and, when this transaction created it, its lines.
type Created = (Order, Option<Vec<orders::OrderLine>>);

/// The checkout transaction. The cart comes from `seen` (read before the payment was
/// authorized, without locks): the transaction then completes the cart only while its row
/// is still the version that was read and no one holds it ([`cart::mark_completed`]), so
/// lines added or changed meanwhile send it back ([`TxError::CartChanged`]). The second
/// attempt (`seen` is `None`) locks the cart row first and reads it again.
///
/// No deadlock: a first attempt never waits for a cart row. It skips a locked one when it
/// completes the cart, and every cart lock is `FOR NO KEY UPDATE`, which the foreign-key
/// check of its order insert (`FOR KEY SHARE`) does not wait for. The only transactions
/// that hold a cart row while they wait (for stock, or for a first attempt's idempotency
/// key) are second attempts, and no one they wait for waits for them.
#[allow(clippy::too_many_arguments)]
pub(super) async fn complete_in_tx(
    conn: &mut AsyncPgConnection,
    seen: Option<cart::CartSnapshot>,
    cart_token: &str,
    input: &CheckoutInput,
    settings: &Settings,
    rules: &CartRules<'_>,
    authorized: &Authorized,
    provider_name: &str,
) -> Result<Created, TxError> {
    use CheckoutErrorCode::*;
    let reject = |code, field: &[&str], message: &str| {
        TxError::Rejected(vec![user_error(code, field, message)])
    };
    let snap = match seen {
        Some(snap) => snap,
        None => {
            // Again, after the cart changed: this time holding its row, so that it cannot
            // change again before the order is written.
            cart::lock(conn, cart_token).await?;
            cart::read(conn, cart_token, Some(&input.idempotency_key))
                .await?
                .ok_or_else(|| {
                    reject(
                        CartNotFound,
                        &["cartId"],
                        "The specified cart does not exist.",
                    )
                })?
        }
    };
    let version = snap.version;
    let cart = snap.cart;
    // The key's order may have committed after `seen` was read: look again (a fresh
    // statement) whenever the cart is no longer open.
    if (snap.key_order_id.is_some() || cart.completed_at.is_some())
        && let Some(order) = orders::by_idempotency_key(conn, &input.idempotency_key).await?
    {
        return if order.cart_id == Some(cart.id) {
            Ok((order, None))
        } else {
            Err(TxError::Rejected(vec![key_reused()]))
        };
    }
    if cart.completed_at.is_some() {
        return Err(reject(
            CartCompleted,
            &["cartId"],
            "The cart has already been checked out.",
        ));
    }
    if snap.lines.is_empty() {
        return Err(reject(EmptyCart, &["cartId"], "The cart is empty."));
    }
    // Re-priced from current prices; lines whose merchandise left the catalog refuse.
    let priced = cart::priced(conn, cart, snap.lines, rules).await?;
    let titles = &priced.product_titles;
    let unavailable: Vec<String> = priced
        .lines
        .iter()
        .filter(|l| {
            !priced.sellable.contains(&l.variant_id) || !priced.variants.contains_key(&l.variant_id)
        })
        .map(|l| crate::ids::encode("CartLine", l.id))
        .collect();
    if !unavailable.is_empty() {
        let mut e = user_error(
            MerchandiseNotAvailable,
            &["cartId"],
            "Some merchandise in the cart is no longer for sale.",
        );
        e.lines = unavailable;
        return Err(TxError::Rejected(vec![e]));
    }
    let totals = totals(&priced, input, settings).map_err(|e| TxError::Rejected(vec![e]))?;
    if totals.total != authorized.amount || totals.currency != authorized.currency {
        return Err(reject(
            PriceChanged,
            &["cartId"],
            "Prices changed while you were checking out. Please review your cart and try again.",
        ));
    }
    let Totals {
        currency,
        subtotal,
        shipping_minor,
        tax_minor,
        total,
        method,
    } = totals;
    let reference = authorized.reference.clone();
    // The order.
    let reserved_until = Utc::now()
        + chrono::Duration::from_std(settings.reservation_ttl)
            .unwrap_or(chrono::Duration::minutes(15));
    let address = serde_json::to_value(&input.shipping_address).expect("an address serializes");
    let order: Order = diesel::insert_into(ot::table)
        .values((
            ot::access_token.eq(random_token(40)),
            ot::idempotency_key.eq(&input.idempotency_key),
            ot::cart_id.eq(priced.cart.id),
            ot::email.eq(input.email.trim()),
            ot::currency.eq(&currency),
            ot::subtotal_minor.eq(subtotal),
            ot::shipping_minor.eq(shipping_minor),
            ot::tax_minor.eq(tax_minor),
            ot::total_minor.eq(total),
            ot::shipping_method.eq(&method),
            ot::shipping_address.eq(&address),
            ot::payment_provider.eq(provider_name),
            ot::payment_reference.eq(&reference),
            ot::reserved_until.eq(reserved_until),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    let lines = insert_lines(conn, order.id, &priced).await?;
    // Reserve stock, all lines or none. Done last, so the rows of a hot variant are
    // locked only for the few statements before the commit.
    let wants: Vec<inventory::Want> = priced
        .lines
        .iter()
        .map(|l| inventory::Want {
            variant_id: l.variant_id,
            quantity: l.quantity as i64,
            deny: priced.variants[&l.variant_id].inventory_policy != "CONTINUE",
        })
        .collect();
    let allocations = match inventory::reserve(conn, &wants).await? {
        Ok(a) => a,
        Err(short) => {
            let lines: Vec<String> = priced
                .lines
                .iter()
                .filter(|l| short.contains(&l.variant_id))
                .map(|l| crate::ids::encode("CartLine", l.id))
                .collect();
            let names: Vec<String> = priced
                .lines
                .iter()
                .filter(|l| short.contains(&l.variant_id))
                .map(|l| {
                    let v = &priced.variants[&l.variant_id];
                    titles
                        .get(&v.product_id)
                        .map_or_else(|| v.title.clone(), |t| format!("{t} – {}", v.title))
                })
                .collect();
            let mut e = user_error(
                OutOfStock,
                &["cartId"],
                format!("Not enough stock for: {}.", names.join(", ")),
            );
            e.lines = lines;
            return Err(TxError::Rejected(vec![e]));
        }
    };
    inventory::record(conn, order.id, &allocations).await?;
    inventory::notify_low_after_sale(
        &settings.hooks.topics,
        conn,
        &wants,
        settings.inventory_low_threshold,
    )
    .await?;
    if !cart::mark_completed(conn, priced.cart.id, &version).await? {
        return Err(TxError::CartChanged);
    }
    let id = serde_json::json!({ "order_id": order.id });
    jobs::enqueue(
        conn,
        &[
            NewJob::new(Kind::OrderConfirmation, id.clone()),
            NewJob::new(Kind::ExpireReservation, id).at(reserved_until),
        ],
    )
    .await?;
    events::emit(conn, order.id, events::OrderEvent::Created, &settings.hooks).await?;
    Ok((order, Some(lines)))
}

/// The order's lines: a snapshot of each cart line's merchandise and price, in one
/// statement that returns them.
async fn insert_lines(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    priced: &cart::PricedCart,
) -> QueryResult<Vec<orders::OrderLine>> {
    let n = priced.lines.len();
    let mut variant_ids = Vec::with_capacity(n);
    let mut product_titles = Vec::with_capacity(n);
    let mut variant_titles = Vec::with_capacity(n);
    let mut skus = Vec::with_capacity(n);
    let mut quantities = Vec::with_capacity(n);
    let mut unit_prices = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    let mut taxable = Vec::with_capacity(n);
    let mut shipping = Vec::with_capacity(n);
    for l in &priced.lines {
        let v = &priced.variants[&l.variant_id];
        variant_ids.push(v.id);
        product_titles.push(
            priced
                .product_titles
                .get(&v.product_id)
                .cloned()
                .unwrap_or_default(),
        );
        variant_titles.push(v.title.clone());
        skus.push(v.sku.clone());
        quantities.push(l.quantity);
        unit_prices.push(v.price_minor);
        totals.push(priced.line_total(l));
        taxable.push(v.taxable);
        shipping.push(v.requires_shipping);
    }
    use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text};
    let mut lines: Vec<orders::OrderLine> = crate::db::sql::Prepared(
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
