//! Payment providers and their webhooks.
//!
//! A provider authorizes a payment token for an amount during checkout and later reports
//! the payment's fate through a signed webhook. The built-in `test` provider approves the
//! token `tok_success` (and any token starting with `tok_success_`) and declines
//! `tok_decline`; its events are sent by whoever plays the provider (tests, the hosted
//! checkout's test payment method).
//!
//! Webhook signatures follow the common `t=<unix seconds>,v1=<hex HMAC-SHA256>` scheme over
//! `"{t}.{raw body}"`, so a replayed body with a fresh timestamp fails, and a stale
//! timestamp fails after the tolerance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;

/// The result of authorizing a payment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// Approved; events about this payment name `reference`.
    Approved {
        reference: String,
    },
    Declined {
        reason: String,
    },
    /// The token is not one this provider issued.
    InvalidToken,
}

pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Authorizes `amount_minor` on the buyer's `token`. `idempotency_key` is unique per
    /// cart and checkout attempt, so a provider can deduplicate retried calls.
    fn authorize<'a>(
        &'a self,
        token: &'a str,
        amount_minor: i64,
        currency: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Authorization>;
    /// Releases an authorization no order was created for.
    fn void<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// Returns `amount_minor` of a captured payment to the buyer. `idempotency_key`
    /// identifies this refund, so a retried call refunds once.
    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount_minor: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The built-in provider for development and tests.
pub struct TestProvider;

impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    fn authorize<'a>(
        &'a self,
        token: &'a str,
        _amount_minor: i64,
        _currency: &'a str,
        _idempotency_key: &'a str,
    ) -> BoxFuture<'a, Authorization> {
        Box::pin(async move {
            if token == "tok_success" || token.starts_with("tok_success_") {
                let nonce: u64 = rand::rng().random();
                Authorization::Approved {
                    reference: format!("pay_test_{nonce:016x}"),
                }
            } else if token == "tok_decline" {
                Authorization::Declined {
                    reason: "The card was declined.".into(),
                }
            } else {
                Authorization::InvalidToken
            }
        })
    }

    fn void<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tracing::debug!(reference, "test payment authorization voided");
            Ok(())
        })
    }

    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount_minor: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if !reference.starts_with("pay_test_") {
                return Err(format!("unknown payment {reference:?}"));
            }
            tracing::debug!(
                reference,
                amount_minor,
                idempotency_key,
                "test payment refunded"
            );
            Ok(())
        })
    }
}

/// How payment webhooks are checked (`PAYMENT_WEBHOOK_*`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `PAYMENT_WEBHOOK_SECRET`: HMAC key of payment webhooks (refused while unset).
    pub webhook_secret: Option<String>,
    /// `PAYMENT_WEBHOOK_TOLERANCE_SECS`: how old a webhook signature may be.
    pub webhook_tolerance: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            webhook_secret: None,
            webhook_tolerance: Duration::from_secs(300),
        }
    }
}

/// The providers this gateway accepts, with their webhook secrets.
#[derive(Clone)]
pub struct Payments {
    providers: HashMap<&'static str, Arc<dyn PaymentProvider>>,
    default: &'static str,
    /// `PAYMENT_WEBHOOK_SECRET`; webhooks are refused while it is unset.
    secret: Option<String>,
    tolerance: Duration,
}

impl Payments {
    pub fn new(settings: &Settings) -> Self {
        let test: Arc<dyn PaymentProvider> = Arc::new(TestProvider);
        Self {
            providers: HashMap::from([(test.name(), test)]),
            default: "test",
            secret: settings.webhook_secret.clone(),
            tolerance: settings.webhook_tolerance,
        }
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<dyn PaymentProvider>> {
        self.providers.get(name)
    }

    pub fn default_provider(&self) -> &Arc<dyn PaymentProvider> {
        &self.providers[self.default]
    }

    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }
}

pub use crate::signing::{SignatureError, sign, verify};

/// A payment event as providers post it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct PaymentEvent {
    /// The provider's unique event id (deduplication key).
    pub id: String,
    /// `payment.succeeded`, `payment.failed` or `payment.expired`.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: PaymentEventData,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct PaymentEventData {
    /// The payment reference the provider gave at authorization.
    pub reference: String,
}

pub const EVENT_KINDS: &[&str] = &["payment.succeeded", "payment.failed", "payment.expired"];
