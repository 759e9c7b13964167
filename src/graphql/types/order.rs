//! `Order`, its line items, and the checkout mutation's input and payload.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::common::{CurrencyCode, MoneyV2, Url};
use super::product::VariantNode;
use crate::checkout::{Address, CheckoutOutcome};
use crate::graphql::errors::from_db;
use crate::graphql::loaders::VariantId;
use crate::graphql::{app_from, loader_from};
use crate::ids;
use crate::orders::{Order, OrderLine};

/// An order with its lines.
#[derive(Clone)]
pub struct OrderNode {
    pub order: Arc<Order>,
    pub lines: Arc<Vec<OrderLine>>,
}

/// Where an order is in its life.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Fulfilled,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    fn parse(s: &str) -> Self {
        match s {
            "PAID" => Self::Paid,
            "FULFILLED" => Self::Fulfilled,
            "CANCELLED" => Self::Cancelled,
            "REFUNDED" => Self::Refunded,
            _ => Self::PendingPayment,
        }
    }
}

/// A postal address (Shopify's `MailingAddress`, the fields this gateway keeps). As input
/// (`MailingAddressInput`) the country is a string, so that a wrong one is reported as a
/// `userErrors` entry rather than a schema error.
#[derive(SimpleObject, InputObject, Clone, Debug, Default)]
#[graphql(input_name = "MailingAddressInput")]
pub struct MailingAddress {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub zip: Option<String>,
    /// ISO 3166-1 alpha-2 code of the country, e.g. `US`.
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

impl From<Address> for MailingAddress {
    fn from(a: Address) -> Self {
        Self {
            first_name: a.first_name,
            last_name: a.last_name,
            company: a.company,
            address1: a.address1,
            address2: a.address2,
            city: a.city,
            province: a.province,
            zip: a.zip,
            country_code: a.country_code,
            phone: a.phone,
        }
    }
}

pub struct OrderLineItem<'a> {
    line: &'a OrderLine,
    currency: &'a str,
}

#[Object]
impl OrderLineItem<'_> {
    /// The product title when the order was placed.
    async fn title(&self) -> &str {
        &self.line.product_title
    }

    async fn variant_title(&self) -> &str {
        &self.line.variant_title
    }

    async fn sku(&self) -> Option<&str> {
        self.line.sku.as_deref()
    }

    async fn quantity(&self) -> i32 {
        self.line.quantity
    }

    /// The unit price paid.
    async fn original_unit_price(&self) -> MoneyV2 {
        MoneyV2::new(self.line.unit_price_minor, self.currency)
    }

    async fn original_total_price(&self) -> MoneyV2 {
        MoneyV2::new(self.line.total_minor, self.currency)
    }

    /// The variant as it is now; null when it has been deleted since.
    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<VariantNode>> {
        let Some(id) = self.line.variant_id else {
            return Ok(None);
        };
        let variant = loader_from(ctx)
            .load_one(VariantId {
                id,
                currency: self.currency.to_string(),
            })
            .await
            .map_err(|e| from_db(&e))?;
        Ok(variant.map(VariantNode))
    }
}

#[Object(name = "Order")]
impl OrderNode {
    async fn id(&self) -> ID {
        ID(ids::encode("Order", self.order.id))
    }

    /// The order's name as the buyer sees it, e.g. `#1001`.
    async fn name(&self) -> String {
        format!("#{}", self.order.number)
    }

    async fn order_number(&self) -> i64 {
        self.order.number
    }

    async fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.order.status)
    }

    async fn email(&self) -> &str {
        &self.order.email
    }

    /// When the order was placed.
    async fn processed_at(&self) -> DateTime<Utc> {
        self.order.created_at
    }

    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.order.paid_at
    }

    async fn canceled_at(&self) -> Option<DateTime<Utc>> {
        self.order.cancelled_at
    }

    /// Why the order was cancelled: PAYMENT_FAILED, PAYMENT_EXPIRED or RESERVATION_EXPIRED.
    async fn cancel_reason(&self) -> Option<&str> {
        self.order.cancel_reason.as_deref()
    }

    async fn currency_code(&self) -> CurrencyCode {
        CurrencyCode::parse(&self.order.currency).unwrap_or(CurrencyCode::USD)
    }

    async fn subtotal_price(&self) -> MoneyV2 {
        MoneyV2::new(self.order.subtotal_minor, &self.order.currency)
    }

    async fn total_shipping_price(&self) -> MoneyV2 {
        MoneyV2::new(self.order.shipping_minor, &self.order.currency)
    }

    async fn total_tax(&self) -> MoneyV2 {
        MoneyV2::new(self.order.tax_minor, &self.order.currency)
    }

    async fn total_price(&self) -> MoneyV2 {
        MoneyV2::new(self.order.total_minor, &self.order.currency)
    }

    /// The handle of the chosen shipping method.
    async fn shipping_method(&self) -> &str {
        &self.order.shipping_method
    }

    async fn shipping_address(&self) -> Option<MailingAddress> {
        serde_json::from_value::<Address>(self.order.shipping_address.clone())
            .ok()
            .map(Into::into)
    }

    async fn line_items(&self) -> Vec<OrderLineItem<'_>> {
        self.lines
            .iter()
            .map(|line| OrderLineItem {
                line,
                currency: &self.order.currency,
            })
            .collect()
    }

    /// The order status page (the confirmation the buyer can come back to).
    async fn status_url(&self, ctx: &Context<'_>) -> Url {
        Url(crate::orders::documents::order_url(
            &app_from(ctx).config.shop.url,
            &self.order,
        ))
    }

    /// The buyer's key to this order, for `order(accessToken:)`.
    async fn access_token(&self) -> &str {
        &self.order.access_token
    }
}

impl From<MailingAddress> for Address {
    fn from(a: MailingAddress) -> Self {
        let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Address {
            first_name: clean(a.first_name),
            last_name: clean(a.last_name),
            company: clean(a.company),
            address1: clean(a.address1),
            address2: clean(a.address2),
            city: clean(a.city),
            province: clean(a.province),
            zip: clean(a.zip),
            country_code: clean(a.country_code).map(|c| c.to_ascii_uppercase()),
            phone: clean(a.phone),
        }
    }
}

#[derive(InputObject, Clone, Debug)]
pub struct CartCompleteInput {
    pub email: String,
    pub shipping_address: MailingAddress,
    /// A shipping method handle (`Cart.shippingMethods`); the first when omitted.
    pub shipping_method: Option<String>,
    /// The payment provider's token for the buyer's payment method.
    pub payment_token: String,
    /// Unique per checkout attempt; a retry with the same key returns the same order.
    pub idempotency_key: String,
}

// The domain's codes; `remote` derives the conversion from them.
/// Why a checkout did not complete.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::checkout::CheckoutErrorCode")]
pub enum CheckoutErrorCode {
    CartNotFound,
    CartCompleted,
    EmptyCart,
    InvalidEmail,
    InvalidAddress,
    InvalidShippingMethod,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    MerchandiseNotAvailable,
    OutOfStock,
    InvalidPaymentToken,
    PaymentDeclined,
    PriceChanged,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct CheckoutUserError {
    pub code: CheckoutErrorCode,
    pub field: Option<Vec<String>>,
    pub message: String,
    /// The cart lines the error is about (e.g. those out of stock).
    pub lines: Vec<ID>,
}

#[derive(SimpleObject)]
pub struct CartCompletePayload {
    /// The order; null when the checkout did not complete.
    pub order: Option<OrderNode>,
    pub user_errors: Vec<CheckoutUserError>,
}

impl CartCompletePayload {
    pub fn new(outcome: CheckoutOutcome, lines: Option<Vec<OrderLine>>) -> Self {
        Self {
            order: outcome.order.map(|order| OrderNode {
                order: Arc::new(order),
                lines: Arc::new(lines.unwrap_or_default()),
            }),
            user_errors: outcome
                .user_errors
                .into_iter()
                .map(|e| CheckoutUserError {
                    code: e.code.into(),
                    field: (!e.field.is_empty()).then_some(e.field),
                    message: e.message,
                    lines: e.lines.into_iter().map(ID).collect(),
                })
                .collect(),
        }
    }
}

/// A shipping method the shop offers.
#[derive(SimpleObject, Clone, Debug)]
pub struct ShippingMethod {
    pub handle: String,
    pub title: String,
    pub price: MoneyV2,
}
