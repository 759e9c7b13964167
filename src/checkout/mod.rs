//! Checkout: turning a cart into an order, in one transaction.
//!
//! [`complete`] validates the buyer's input, reads the cart with its lines (one statement,
//! which also looks the idempotency key up) and prices it, and authorizes the payment for
//! that amount. Then, in one transaction on the primary: re-prices the lines from current
//! prices, creates the order with a price snapshot per line, reserves stock for every line
//! ([`inventory::reserve`], near the end, so that the rows of a hot variant stay locked
//! only for the few statements before the commit), marks the cart completed if it is
//! still what was read ([`cart::mark_completed`]; otherwise the transaction starts again
//! holding the cart) and enqueues the order's jobs. Any user error rolls everything back.
//! A retry with the same idempotency key returns the order the first attempt created.
//! Deadlocks and serialization failures (possible only against writers outside checkout)
//! are retried a few times.

mod input;
mod outcome;
mod pricing;
mod transaction;

pub use input::{Address, CheckoutInput, validate};
pub use outcome::{
    CheckoutErrorCode, CheckoutOutcome, CheckoutUserError, init_metrics, record_outcome,
};
pub use pricing::tax;

use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::cart::{self, CartRules};
use crate::db::DbError;
use crate::inventory;
use crate::orders::{self, Order};
use crate::payments::{Authorization, PaymentProvider};
use outcome::{note_payment, user_error};
use pricing::totals;
use transaction::complete_in_tx;

/// A shipping method the shop offers (`SHIPPING_METHODS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingMethod {
    pub handle: String,
    pub title: String,
    /// The price as a decimal in the order's currency, e.g. "5.00".
    pub price: String,
}

/// Checkout settings (`TAX_RATE_BPS`, `SHIPPING_METHODS`, `RESERVATION_TTL_SECS`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TAX_RATE_BPS`: tax on taxable lines, in basis points, added to the total.
    pub tax_rate_bps: u32,
    /// `SHIPPING_METHODS`; the first is the default.
    pub shipping_methods: Vec<ShippingMethod>,
    /// `RESERVATION_TTL_SECS`: how long an unpaid order holds its stock.
    pub reservation_ttl: Duration,
}

/// What a checkout follows besides the buyer's input: its own settings and those of the
/// modules it calls.
pub struct Rules<'a> {
    pub checkout: &'a Settings,
    pub cart: CartRules<'a>,
    pub orders: &'a orders::Settings,
    pub inventory: &'a inventory::Settings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tax_rate_bps: 0,
            shipping_methods: parse_shipping_methods(DEFAULT_SHIPPING_METHODS)
                .expect("the default shipping methods parse"),
            reservation_ttl: Duration::from_secs(900),
        }
    }
}

/// `SHIPPING_METHODS` when unset.
pub const DEFAULT_SHIPPING_METHODS: &str =
    "standard:Standard shipping:5.00,express:Express shipping:15.00";

/// Parses `handle:Title:price,…`.
pub fn parse_shipping_methods(spec: &str) -> anyhow::Result<Vec<ShippingMethod>> {
    let mut methods = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut fields = part.splitn(3, ':');
        let (Some(handle), Some(title), Some(price)) =
            (fields.next(), fields.next(), fields.next())
        else {
            anyhow::bail!("SHIPPING_METHODS entry {part:?} is not handle:Title:price");
        };
        if crate::money::parse_minor(price, "USD").is_none_or(|m| m < 0) {
            anyhow::bail!("SHIPPING_METHODS entry {part:?} has a bad price");
        }
        methods.push(ShippingMethod {
            handle: handle.trim().to_string(),
            title: title.trim().to_string(),
            price: price.trim().to_string(),
        });
    }
    if methods.is_empty() {
        anyhow::bail!("SHIPPING_METHODS must name at least one method");
    }
    Ok(methods)
}

/// Errors inside the checkout transaction: a user error rolls back like a failure.
enum TxError {
    Rejected(Vec<CheckoutUserError>),
    /// The cart changed after it was read: read it again.
    CartChanged,
    Db(DieselError),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

fn retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            // 40P01 deadlock_detected has no kind of its own in diesel.
            info.message().contains("deadlock detected")
        }
        _ => false,
    }
}

/// An approved payment authorization, for one amount.
struct Authorized {
    reference: String,
    amount: i64,
    currency: String,
}

/// Completes the checkout of the cart `cart_token`.
///
/// The payment is authorized once, before the transaction, for the amount the cart costs
/// then (a provider call never holds row locks); the transaction re-prices and refuses with
/// PRICE_CHANGED if the amount moved meanwhile. Whenever no order comes out of it (out of
/// stock, a conflict, an error), the authorization is voided.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    cart_token: &str,
    input: &CheckoutInput,
    rules: &Rules<'_>,
    provider: &dyn PaymentProvider,
) -> Result<CheckoutOutcome, DbError> {
    let errors = validate(input, rules.checkout);
    if !errors.is_empty() {
        return Ok(CheckoutOutcome::rejected(errors));
    }
    // Read the cart as it is now, and refuse early what the transaction would refuse.
    // The same statement looks the idempotency key up: the order and the cart's completion
    // commit together, so a completed cart seen here has its order seen too.
    let Some(snap) = cart::read(conn, cart_token, Some(&input.idempotency_key)).await? else {
        return Ok(CheckoutOutcome::rejected(vec![user_error(
            CheckoutErrorCode::CartNotFound,
            &["cartId"],
            "The specified cart does not exist.",
        )]));
    };
    // A retry of a checkout that already succeeded returns its order without charging.
    if snap.key_order_id.is_some()
        && let Some(outcome) = existing_order(conn, cart_token, &input.idempotency_key).await?
    {
        return Ok(outcome);
    }
    if snap.cart.completed_at.is_some() {
        return Ok(CheckoutOutcome::rejected(vec![user_error(
            CheckoutErrorCode::CartCompleted,
            &["cartId"],
            "The cart has already been checked out.",
        )]));
    }
    if snap.lines.is_empty() {
        return Ok(CheckoutOutcome::rejected(vec![user_error(
            CheckoutErrorCode::EmptyCart,
            &["cartId"],
            "The cart is empty.",
        )]));
    }
    let priced = cart::priced(conn, snap.cart.clone(), snap.lines.clone(), &rules.cart).await?;
    let expected = match totals(&priced, input, rules.checkout) {
        Ok(t) => t,
        Err(e) => return Ok(CheckoutOutcome::rejected(vec![e])),
    };
    let provider_key = format!("{cart_token}:{}", input.idempotency_key);
    let authorized = match provider
        .authorize(
            &input.payment_token,
            expected.total,
            &expected.currency,
            &provider_key,
        )
        .await
    {
        Authorization::Approved { reference } => {
            note_payment(provider.name(), "authorized");
            Authorized {
                reference,
                amount: expected.total,
                currency: expected.currency,
            }
        }
        Authorization::Declined { reason } => {
            note_payment(provider.name(), "declined");
            return Ok(CheckoutOutcome::rejected(vec![user_error(
                CheckoutErrorCode::PaymentDeclined,
                &["input", "paymentToken"],
                reason,
            )]));
        }
        Authorization::InvalidToken => {
            note_payment(provider.name(), "invalid_token");
            return Ok(CheckoutOutcome::rejected(vec![user_error(
                CheckoutErrorCode::InvalidPaymentToken,
                &["input", "paymentToken"],
                "The payment token is not valid.",
            )]));
        }
    };
    let outcome = run_transaction(
        conn,
        snap,
        cart_token,
        input,
        rules,
        &authorized,
        provider.name(),
    )
    .await;
    let created = matches!(&outcome, Ok(CheckoutOutcome { order: Some(o), .. }) if o.payment_reference == authorized.reference);
    if created {
        metrics::counter!("gateway_orders_created_total").increment(1);
    }
    if !created && let Err(e) = provider.void(&authorized.reference).await {
        tracing::error!(reference = %authorized.reference, error = %e, "could not void a payment authorization; void it by hand");
    }
    outcome
}

/// The order a previous attempt with this key created for this cart, or the key-reused
/// error when it belongs to another cart.
async fn existing_order(
    conn: &mut AsyncPgConnection,
    cart_token: &str,
    key: &str,
) -> Result<Option<CheckoutOutcome>, DbError> {
    let Some(order) = orders::by_idempotency_key(conn, key).await? else {
        return Ok(None);
    };
    Ok(Some(
        if order_cart_token(conn, &order).await?.as_deref() == Some(cart_token) {
            CheckoutOutcome {
                order: Some(order),
                user_errors: vec![],
                lines: None,
            }
        } else {
            CheckoutOutcome::rejected(vec![key_reused()])
        },
    ))
}

/// The checkout transaction, retried on deadlocks and serialization failures, and when the
/// cart changed after it was read (`snap` first, then read again inside the transaction).
#[allow(clippy::too_many_arguments)]
async fn run_transaction(
    conn: &mut AsyncPgConnection,
    snap: cart::CartSnapshot,
    cart_token: &str,
    input: &CheckoutInput,
    rules: &Rules<'_>,
    authorized: &Authorized,
    provider_name: &str,
) -> Result<CheckoutOutcome, DbError> {
    let mut attempt = 0;
    let mut seen = Some(snap);
    loop {
        attempt += 1;
        let snap = seen.take();
        let result = conn
            .transaction(async |conn| {
                complete_in_tx(
                    conn,
                    snap,
                    cart_token,
                    input,
                    rules,
                    authorized,
                    provider_name,
                )
                .await
            })
            .await;
        return match result {
            Ok((order, lines)) => Ok(CheckoutOutcome {
                order: Some(order),
                user_errors: vec![],
                lines,
            }),
            Err(TxError::Rejected(errors)) => Ok(CheckoutOutcome::rejected(errors)),
            Err(TxError::CartChanged) if attempt < 8 => continue,
            Err(TxError::CartChanged) => Err(DbError::Unavailable(
                "the cart kept changing during checkout; try again".into(),
            )),
            // The same key committed concurrently (by this cart or another).
            Err(TxError::Db(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                info,
            ))) if info.constraint_name() == Some("orders_idempotency_key_key") => {
                Ok(existing_order(conn, cart_token, &input.idempotency_key)
                    .await?
                    .unwrap_or_else(|| CheckoutOutcome::rejected(vec![key_reused()])))
            }
            Err(TxError::Db(e)) if attempt < 4 && retryable(&e) => {
                tracing::info!(attempt, error = %e, "checkout transaction conflicted; retrying");
                continue;
            }
            Err(TxError::Db(e)) => Err(e.into()),
        };
    }
}

fn key_reused() -> CheckoutUserError {
    user_error(
        CheckoutErrorCode::IdempotencyKeyReused,
        &["input", "idempotencyKey"],
        "This idempotency key was already used for another cart.",
    )
}

async fn order_cart_token(
    conn: &mut AsyncPgConnection,
    order: &Order,
) -> QueryResult<Option<String>> {
    match order.cart_id {
        Some(cart_id) => cart::token_of(conn, cart_id).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipping_methods_parse() {
        let m = parse_shipping_methods("standard:Standard:5.00, express:Express:15").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].price, "15");
        assert!(parse_shipping_methods("broken").is_err());
        assert!(parse_shipping_methods("a:A:x").is_err());
        assert!(parse_shipping_methods("").is_err());
    }
}
