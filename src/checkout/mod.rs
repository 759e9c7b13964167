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

pub mod documents;
pub mod events;
pub mod inventory;
pub mod orders;
pub mod payments;

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::cart::{self, CartRules};
use crate::db::DbError;
use crate::db::schema::orders as ot;
use crate::db::schema::{carts, payment_events};
use crate::jobs::{self, Kind, NewJob};
pub use orders::Order;
use payments::{Authorization, PaymentProvider};

/// A shipping method the shop offers (`SHIPPING_METHODS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingMethod {
    pub handle: String,
    pub title: String,
    /// The price as a decimal in the order's currency, e.g. "5.00".
    pub price: String,
}

/// Checkout settings, from the configuration.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    /// `TAX_RATE_BPS`: tax on taxable lines, in basis points, added to the total.
    pub tax_rate_bps: u32,
    /// `SHIPPING_METHODS`; the first is the default.
    pub shipping_methods: Vec<ShippingMethod>,
    /// `RESERVATION_TTL_SECS`: how long an unpaid order holds its stock.
    pub reservation_ttl: Duration,
    /// `ORDER_WEBHOOK_URLS` and partners' subscriptions: where order events go.
    pub hooks: events::Hooks,
    /// `INVENTORY_LOW_THRESHOLD`: an `INVENTORY_LOW` webhook fires when a sale takes a
    /// variant's available stock below this.
    pub inventory_low_threshold: i64,
}

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

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub zip: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

/// What the buyer sends to complete a checkout.
#[derive(Debug, Clone, Default)]
pub struct CheckoutInput {
    pub email: String,
    pub shipping_address: Address,
    /// A handle of `SHIPPING_METHODS`; the first method when `None`.
    pub shipping_method: Option<String>,
    pub payment_token: String,
    pub idempotency_key: String,
}

/// Why a checkout did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CheckoutErrorCode {
    CartNotFound,
    CartCompleted,
    EmptyCart,
    InvalidEmail,
    InvalidAddress,
    InvalidShippingMethod,
    InvalidIdempotencyKey,
    /// The key was used for another cart's checkout.
    IdempotencyKeyReused,
    MerchandiseNotAvailable,
    OutOfStock,
    InvalidPaymentToken,
    PaymentDeclined,
    /// Prices changed between the payment authorization and the order.
    PriceChanged,
}

impl CheckoutErrorCode {
    /// Every code (the metrics start a series for each).
    pub const ALL: [CheckoutErrorCode; 13] = [
        Self::CartNotFound,
        Self::CartCompleted,
        Self::EmptyCart,
        Self::InvalidEmail,
        Self::InvalidAddress,
        Self::InvalidShippingMethod,
        Self::InvalidIdempotencyKey,
        Self::IdempotencyKeyReused,
        Self::MerchandiseNotAvailable,
        Self::OutOfStock,
        Self::InvalidPaymentToken,
        Self::PaymentDeclined,
        Self::PriceChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CartNotFound => "CART_NOT_FOUND",
            Self::CartCompleted => "CART_COMPLETED",
            Self::EmptyCart => "EMPTY_CART",
            Self::InvalidEmail => "INVALID_EMAIL",
            Self::InvalidAddress => "INVALID_ADDRESS",
            Self::InvalidShippingMethod => "INVALID_SHIPPING_METHOD",
            Self::InvalidIdempotencyKey => "INVALID_IDEMPOTENCY_KEY",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::MerchandiseNotAvailable => "MERCHANDISE_NOT_AVAILABLE",
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::InvalidPaymentToken => "INVALID_PAYMENT_TOKEN",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::PriceChanged => "PRICE_CHANGED",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutUserError {
    pub code: CheckoutErrorCode,
    pub field: Vec<String>,
    pub message: String,
    /// The cart lines (global IDs) the error is about, e.g. those out of stock.
    pub lines: Vec<String>,
}

fn user_error(
    code: CheckoutErrorCode,
    field: &[&str],
    message: impl Into<String>,
) -> CheckoutUserError {
    CheckoutUserError {
        code,
        field: field.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
        lines: vec![],
    }
}

/// The result of a checkout: the order, or why there is none.
#[derive(Debug, Clone)]
pub struct CheckoutOutcome {
    pub order: Option<Order>,
    pub user_errors: Vec<CheckoutUserError>,
    /// The order's lines, when this attempt created the order (they are read otherwise).
    pub lines: Option<Vec<orders::OrderLine>>,
}

impl CheckoutOutcome {
    fn rejected(errors: Vec<CheckoutUserError>) -> Self {
        Self {
            order: None,
            user_errors: errors,
            lines: None,
        }
    }
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
}

fn present(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.trim().is_empty())
}

/// Validates the input without touching the database.
pub fn validate(input: &CheckoutInput, settings: &CheckoutSettings) -> Vec<CheckoutUserError> {
    use CheckoutErrorCode::*;
    let mut errors = Vec::new();
    if !valid_email(input.email.trim()) {
        errors.push(user_error(
            InvalidEmail,
            &["input", "email"],
            "Enter a valid email address.",
        ));
    }
    let a = &input.shipping_address;
    for (value, name, label) in [
        (&a.last_name, "lastName", "last name"),
        (&a.address1, "address1", "street address"),
        (&a.city, "city", "city"),
        (&a.zip, "zip", "postal code"),
    ] {
        if !present(value) {
            errors.push(user_error(
                InvalidAddress,
                &["input", "shippingAddress", name],
                format!("The shipping address needs a {label}."),
            ));
        }
    }
    let country_ok = a.country_code.as_deref().is_some_and(|c| {
        c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()) && crate::countries::is_known(c)
    });
    if !country_ok {
        errors.push(user_error(
            InvalidAddress,
            &["input", "shippingAddress", "countryCode"],
            "The shipping address needs a valid ISO 3166-1 country code.",
        ));
    }
    let fields = [
        &a.first_name,
        &a.last_name,
        &a.company,
        &a.address1,
        &a.address2,
        &a.city,
        &a.province,
        &a.zip,
        &a.phone,
    ];
    if fields.iter().any(|f| {
        f.as_deref()
            .is_some_and(|v| v.len() > 255 || v.contains('\0'))
    }) {
        errors.push(user_error(
            InvalidAddress,
            &["input", "shippingAddress"],
            "Address fields must be at most 255 characters.",
        ));
    }
    if let Some(handle) = &input.shipping_method
        && !settings
            .shipping_methods
            .iter()
            .any(|m| &m.handle == handle)
    {
        errors.push(user_error(
            InvalidShippingMethod,
            &["input", "shippingMethod"],
            format!(
                "Unknown shipping method; choose one of: {}.",
                settings
                    .shipping_methods
                    .iter()
                    .map(|m| m.handle.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let key = &input.idempotency_key;
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        errors.push(user_error(
            InvalidIdempotencyKey,
            &["input", "idempotencyKey"],
            "The idempotency key must be 1 to 255 visible ASCII characters.",
        ));
    }
    if input.payment_token.trim().is_empty() || input.payment_token.len() > 255 {
        errors.push(user_error(
            InvalidPaymentToken,
            &["input", "paymentToken"],
            "A payment token is required.",
        ));
    }
    errors
}

/// Tax on `taxable_minor` at `bps` basis points, rounded half up.
pub fn tax(taxable_minor: i64, bps: u32) -> i64 {
    (taxable_minor * bps as i64 + 5_000) / 10_000
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
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

/// The money a checkout charges, computed from a priced cart.
struct Totals {
    currency: String,
    subtotal: i64,
    shipping_minor: i64,
    tax_minor: i64,
    total: i64,
    /// The shipping method's handle.
    method: String,
}

fn totals(
    priced: &cart::PricedCart,
    input: &CheckoutInput,
    settings: &CheckoutSettings,
) -> Result<Totals, CheckoutUserError> {
    let currency = priced.currency.clone();
    let method = match &input.shipping_method {
        Some(h) => settings.shipping_methods.iter().find(|m| &m.handle == h),
        None => <[ShippingMethod]>::first(&settings.shipping_methods),
    }
    .ok_or_else(|| {
        user_error(
            CheckoutErrorCode::InvalidShippingMethod,
            &["input", "shippingMethod"],
            "Unknown shipping method.",
        )
    })?;
    let needs_shipping = priced.lines.iter().any(|l| {
        priced
            .variants
            .get(&l.variant_id)
            .is_some_and(|v| v.requires_shipping)
    });
    let shipping_minor = if needs_shipping {
        crate::money::parse_minor(&method.price, &currency).ok_or_else(|| {
            user_error(
                CheckoutErrorCode::InvalidShippingMethod,
                &["input", "shippingMethod"],
                "This shipping method cannot be priced in the cart's currency.",
            )
        })?
    } else {
        0
    };
    let subtotal = priced.subtotal();
    let taxable: i64 = priced
        .lines
        .iter()
        .filter(|l| {
            priced
                .variants
                .get(&l.variant_id)
                .is_some_and(|v| v.taxable)
        })
        .map(|l| priced.line_total(l))
        .sum();
    let tax_minor = tax(taxable, settings.tax_rate_bps);
    Ok(Totals {
        total: subtotal + shipping_minor + tax_minor,
        currency,
        subtotal,
        shipping_minor,
        tax_minor,
        method: method.handle.clone(),
    })
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
    settings: &CheckoutSettings,
    rules: &CartRules<'_>,
    provider: &dyn PaymentProvider,
) -> Result<CheckoutOutcome, DbError> {
    let errors = validate(input, settings);
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
    let priced = cart::priced(conn, snap.cart.clone(), snap.lines.clone(), rules).await?;
    let expected = match totals(&priced, input, settings) {
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
        settings,
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

/// Starts the checkout series at 0 for every outcome, so that rates and alerts have a
/// series to read before the first failure of a kind.
pub fn init_metrics() {
    for code in CheckoutErrorCode::ALL {
        metrics::counter!("gateway_checkouts_total", "outcome" => code.as_str().to_ascii_lowercase())
            .increment(0);
    }
    for outcome in ["completed", "error"] {
        metrics::counter!("gateway_checkouts_total", "outcome" => outcome).increment(0);
    }
}

fn note_payment(provider: &'static str, outcome: &'static str) {
    metrics::counter!("gateway_payments_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// `gateway_checkouts_total{outcome}` and `gateway_stock_outs_total` for a finished
/// checkout attempt.
pub fn record_outcome(outcome: &Result<CheckoutOutcome, DbError>) -> String {
    let label = match outcome {
        Ok(CheckoutOutcome { order: Some(_), .. }) => "completed".to_string(),
        Ok(CheckoutOutcome { user_errors, .. }) => {
            for e in user_errors
                .iter()
                .filter(|e| e.code == CheckoutErrorCode::OutOfStock)
            {
                metrics::counter!("gateway_stock_outs_total")
                    .increment(e.lines.len().max(1) as u64);
            }
            <[CheckoutUserError]>::first(user_errors)
                .map_or("error".into(), |e| e.code.as_str().to_ascii_lowercase())
        }
        Err(_) => "error".to_string(),
    };
    metrics::counter!("gateway_checkouts_total", "outcome" => label.clone()).increment(1);
    label
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
    settings: &CheckoutSettings,
    rules: &CartRules<'_>,
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
                    settings,
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
    let Some(cart_id) = order.cart_id else {
        return Ok(None);
    };
    carts::table
        .find(cart_id)
        .select(carts::token)
        .first(conn)
        .await
        .optional()
}

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
async fn complete_in_tx(
    conn: &mut AsyncPgConnection,
    seen: Option<cart::CartSnapshot>,
    cart_token: &str,
    input: &CheckoutInput,
    settings: &CheckoutSettings,
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
    crate::admin::webhooks::inventory_low_after_sale(
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

/// Whether a payment webhook was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReceipt {
    Accepted,
    Duplicate,
}

/// Stores a verified payment event and queues its processing, in one transaction; an
/// event id seen before changes nothing.
pub async fn receive_payment_event(
    conn: &mut AsyncPgConnection,
    provider: &str,
    event: &payments::PaymentEvent,
    raw: &serde_json::Value,
) -> QueryResult<EventReceipt> {
    conn.transaction(async |conn| {
        let inserted = diesel::insert_into(payment_events::table)
            .values((
                payment_events::provider.eq(provider),
                payment_events::event_id.eq(&event.id),
                payment_events::event_type.eq(&event.kind),
                payment_events::reference.eq(&event.data.reference),
                payment_events::payload.eq(raw),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Ok(EventReceipt::Duplicate);
        }
        jobs::enqueue(
            conn,
            &[NewJob::new(
                Kind::PaymentEvent,
                serde_json::json!({ "provider": provider, "event_id": event.id }),
            )],
        )
        .await?;
        Ok(EventReceipt::Accepted)
    })
    .await
}

/// What processing a payment event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Recorded as processed, with this description.
    Done(String),
    /// No order has the event's payment reference yet (the provider can be faster than
    /// the checkout's commit): nothing recorded, try again later.
    OrderNotYetKnown,
}

/// Applies a stored payment event to its order (the `payment_event` job), in one
/// transaction with recording it as processed; an event already processed is skipped, so
/// the job can run any number of times.
pub async fn process_payment_event(
    conn: &mut AsyncPgConnection,
    provider: &str,
    event_id: &str,
    hooks: &events::Hooks,
) -> QueryResult<EventOutcome> {
    // Counted once the transaction committed (a rolled-back attempt is retried).
    let applied = std::sync::Mutex::new(None::<&'static str>);
    let result = conn
        .transaction(async |conn| {
            let Some((kind, reference, processed)) = payment_events::table
                .find((provider, event_id))
                .select((
                    payment_events::event_type,
                    payment_events::reference,
                    payment_events::processed_at.is_not_null(),
                ))
                .for_update()
                .first::<(String, String, bool)>(conn)
                .await
                .optional()?
            else {
                return Ok(EventOutcome::Done("unknown event".into()));
            };
            if processed {
                return Ok(EventOutcome::Done("already processed".into()));
            }
            let order: Option<(i64, String)> = ot::table
                .filter(ot::payment_provider.eq(provider))
                .filter(ot::payment_reference.eq(&reference))
                .select((ot::id, ot::status))
                .first(conn)
                .await
                .optional()?;
            let Some((id, status)) = order else {
                return Ok(EventOutcome::OrderNotYetKnown);
            };
            let transition = match kind.as_str() {
                "payment.succeeded" => orders::mark_paid(conn, id, hooks).await?,
                "payment.failed" => {
                    orders::cancel_pending(conn, id, "PAYMENT_FAILED", hooks).await?
                }
                "payment.expired" => {
                    orders::cancel_pending(conn, id, "PAYMENT_EXPIRED", hooks).await?
                }
                _ => orders::Transition::AlreadySettled,
            };
            let outcome = match transition {
                orders::Transition::Applied => {
                    let outcome = match kind.as_str() {
                        "payment.succeeded" => "paid",
                        "payment.failed" => "failed",
                        _ => "expired",
                    };
                    *applied.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                    format!("{kind} applied to order {id}")
                }
                orders::Transition::AlreadySettled => {
                    if kind == "payment.succeeded" && status == "CANCELLED" {
                        tracing::warn!(
                            order = id,
                            "payment succeeded for an order that was cancelled; it needs a refund"
                        );
                    }
                    format!("order {id} was already {status}")
                }
            };
            diesel::update(payment_events::table.find((provider, event_id)))
                .set((
                    payment_events::processed_at.eq(diesel::dsl::now),
                    payment_events::outcome.eq(&outcome),
                ))
                .execute(conn)
                .await?;
            Ok(EventOutcome::Done(outcome))
        })
        .await;
    if result.is_ok()
        && let Some(outcome) = applied.into_inner().unwrap_or_else(|e| e.into_inner())
    {
        metrics::counter!("gateway_payments_total", "provider" => provider.to_string(), "outcome" => outcome)
            .increment(1);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_up() {
        assert_eq!(tax(1000, 825), 83);
        assert_eq!(tax(1000, 0), 0);
        assert_eq!(tax(199, 2000), 40);
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.co", "a@b.co.", "a@b@c.co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

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
