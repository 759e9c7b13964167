//! What a checkout answers: the order, or the user errors that say why there is none;
//! and the metrics each finished attempt records.

use serde::Serialize;

use crate::db::DbError;
use crate::orders::{self, Order};

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

pub(super) fn user_error(
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
    pub(super) fn rejected(errors: Vec<CheckoutUserError>) -> Self {
        Self {
            order: None,
            user_errors: errors,
            lines: None,
        }
    }
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

pub(super) fn note_payment(provider: &'static str, outcome: &'static str) {
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
