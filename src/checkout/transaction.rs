//! The checkout transaction: re-price the cart, write the order and its lines, reserve
//! stock, complete the cart, enqueue the order's jobs. One transaction on the primary.

use chrono::Utc;
use diesel_async::AsyncPgConnection;

use super::outcome::user_error;
use super::pricing::{Totals, totals};
use super::{Authorized, CheckoutErrorCode, CheckoutInput, Rules, TxError, key_reused};
use crate::cart;
use crate::inventory;
use crate::orders::{self, Order};

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
    rules: &Rules<'_>,
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
    let priced = cart::priced(conn, cart, snap.lines, &rules.cart).await?;
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
    let totals = totals(&priced, input, rules.checkout).map_err(|e| TxError::Rejected(vec![e]))?;
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
    let reserved_until = Utc::now()
        + chrono::Duration::from_std(rules.checkout.reservation_ttl)
            .unwrap_or(chrono::Duration::minutes(15));
    let address = serde_json::to_value(&input.shipping_address).expect("an address serializes");
    let (order, lines) = orders::create(
        conn,
        &orders::NewOrder {
            idempotency_key: &input.idempotency_key,
            cart_id: priced.cart.id,
            email: input.email.trim(),
            currency: &currency,
            subtotal_minor: subtotal,
            shipping_minor,
            tax_minor,
            total_minor: total,
            shipping_method: &method,
            shipping_address: &address,
            payment_provider: provider_name,
            payment_reference: &authorized.reference,
            reserved_until,
        },
        &order_lines(&priced),
    )
    .await?;
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
        &rules.orders.hooks.topics,
        conn,
        &wants,
        rules.inventory.low_threshold,
    )
    .await?;
    if !cart::mark_completed(conn, priced.cart.id, &version).await? {
        return Err(TxError::CartChanged);
    }
    orders::placed(conn, &order, &rules.orders.hooks).await?;
    Ok((order, Some(lines)))
}

/// The order's lines: a snapshot of each cart line's merchandise and its current price.
fn order_lines(priced: &cart::PricedCart) -> Vec<orders::NewLine> {
    priced
        .lines
        .iter()
        .map(|l| {
            let v = &priced.variants[&l.variant_id];
            orders::NewLine {
                variant_id: v.id,
                product_title: priced
                    .product_titles
                    .get(&v.product_id)
                    .cloned()
                    .unwrap_or_default(),
                variant_title: v.title.clone(),
                sku: v.sku.clone(),
                quantity: l.quantity,
                unit_price_minor: v.price_minor,
                total_minor: priced.line_total(l),
                taxable: v.taxable,
                requires_shipping: v.requires_shipping,
            }
        })
        .collect()
}
