//! `Cart`, its lines and the cart mutations' inputs and payloads.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject, Union};
use chrono::{DateTime, Utc};

use super::common::{CountryCode, MoneyV2, Url};
use super::connection::connection;
use super::product::VariantNode;
use crate::cart::{
    CartErrorCode as DomainErrorCode, CartOutcome, CartWarningCode as DomainWarningCode, PricedCart,
};
use crate::graphql::app_from;
use crate::graphql::errors::bad_input;
use crate::ids;
use crate::pagination::{Cursor, PageArgs};

#[derive(Clone)]
pub struct CartNode(pub Arc<PricedCart>);

#[derive(Clone)]
pub struct CartLineNode {
    cart: Arc<PricedCart>,
    index: usize,
}

connection!(
    BaseCartLineConnection,
    BaseCartLineEdge,
    CartLineNode,
    "CartLines"
);

/// What a cart line holds.
#[derive(Union, Clone)]
pub enum Merchandise {
    ProductVariant(VariantNode),
}

#[derive(SimpleObject)]
pub struct CartCost {
    /// The amount before taxes and cart-level discounts.
    pub subtotal_amount: MoneyV2,
    /// The total amount the buyer pays.
    pub total_amount: MoneyV2,
    /// The tax amount; null until taxes are configured.
    pub total_tax_amount: Option<MoneyV2>,
    /// The amount charged at checkout.
    pub checkout_charge_amount: MoneyV2,
    pub subtotal_amount_estimated: bool,
    pub total_amount_estimated: bool,
}

#[derive(SimpleObject)]
pub struct CartLineCost {
    pub amount_per_quantity: MoneyV2,
    pub compare_at_amount_per_quantity: Option<MoneyV2>,
    pub subtotal_amount: MoneyV2,
    pub total_amount: MoneyV2,
}

#[Object(name = "Cart")]
impl CartNode {
    async fn id(&self) -> ID {
        ID(ids::encode("Cart", &self.0.cart.token))
    }

    /// The URL of the checkout for the cart.
    async fn checkout_url(&self, ctx: &Context<'_>) -> Url {
        Url(format!(
            "{}/checkouts/c/{}",
            app_from(ctx).config.shop.url,
            self.0.cart.token
        ))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.cart.created_at
    }

    /// The shipping methods `cartComplete` accepts, priced in the cart's currency.
    async fn shipping_methods(&self, ctx: &Context<'_>) -> Vec<super::order::ShippingMethod> {
        let currency = &self.0.currency;
        app_from(ctx)
            .config
            .checkout
            .shipping_methods
            .iter()
            .filter_map(|m| {
                Some(super::order::ShippingMethod {
                    handle: m.handle.clone(),
                    title: m.title.clone(),
                    price: MoneyV2::new(crate::money::parse_minor(&m.price, currency)?, currency),
                })
            })
            .collect()
    }

    /// Whether the cart has been checked out (it can no longer change).
    async fn completed(&self) -> bool {
        self.0.cart.completed_at.is_some()
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.cart.updated_at
    }

    async fn note(&self) -> Option<&str> {
        self.0.cart.note.as_deref()
    }

    /// The total number of items in the cart.
    async fn total_quantity(&self) -> i32 {
        self.0.total_quantity().min(i32::MAX as i64) as i32
    }

    /// Amounts computed on the server from current prices.
    async fn cost(&self) -> CartCost {
        let total = MoneyV2::new(self.0.subtotal(), &self.0.currency);
        CartCost {
            subtotal_amount: total.clone(),
            total_amount: total.clone(),
            total_tax_amount: None,
            checkout_charge_amount: total,
            subtotal_amount_estimated: false,
            total_amount_estimated: false,
        }
    }

    async fn lines(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
    ) -> Result<BaseCartLineConnection> {
        let reverse = reverse.unwrap_or(false);
        let max = app_from(ctx).config.limits.max_page_size;
        let page = PageArgs {
            first,
            after,
            last,
            before,
        }
        .validate("LINE", max)
        .map_err(crate::graphql::errors::from_page)?;
        let mut order: Vec<usize> = (0..self.0.lines.len()).collect();
        if reverse ^ page.backward {
            order.reverse();
        }
        if let Some(cursor) = &page.cursor {
            match order.iter().position(|&i| self.0.lines[i].id == cursor.id) {
                Some(pos) => order.drain(..=pos).for_each(drop),
                None => return Err(bad_input("the cursor does not belong to this cart")),
            }
        }
        let more = order.len() > page.limit;
        order.truncate(page.limit);
        if page.backward {
            order.reverse();
        }
        let (next, prev) = if page.backward {
            (page.cursor.is_some(), more)
        } else {
            (more, page.cursor.is_some())
        };
        Ok(BaseCartLineConnection::new(
            order
                .into_iter()
                .map(|index| {
                    let id = self.0.lines[index].id;
                    (
                        Cursor::new("LINE", serde_json::Value::Null, id),
                        CartLineNode {
                            cart: self.0.clone(),
                            index,
                        },
                    )
                })
                .collect(),
            next,
            prev,
        ))
    }
}

#[Object(name = "CartLine")]
impl CartLineNode {
    async fn id(&self) -> ID {
        ID(ids::encode("CartLine", self.cart.lines[self.index].id))
    }

    async fn quantity(&self) -> i32 {
        self.cart.lines[self.index].quantity
    }

    async fn cost(&self) -> CartLineCost {
        let line = &self.cart.lines[self.index];
        let currency = &self.cart.currency;
        let variant = self.cart.variants.get(&line.variant_id);
        let unit = variant.map(|v| v.price_minor).unwrap_or(0);
        let total = MoneyV2::new(self.cart.line_total(line), currency);
        CartLineCost {
            amount_per_quantity: MoneyV2::new(unit, currency),
            compare_at_amount_per_quantity: variant
                .and_then(|v| v.compare_at_minor)
                .map(|m| MoneyV2::new(m, currency)),
            subtotal_amount: total.clone(),
            total_amount: total,
        }
    }

    async fn merchandise(&self) -> Result<Merchandise> {
        let line = &self.cart.lines[self.index];
        self.cart
            .variants
            .get(&line.variant_id)
            .map(|v| Merchandise::ProductVariant(VariantNode(Arc::new(v.clone()))))
            .ok_or_else(|| {
                crate::graphql::errors::not_found("The line's merchandise no longer exists.")
            })
    }

    async fn attributes(&self) -> Vec<Attribute> {
        Vec::new()
    }
}

#[derive(SimpleObject)]
pub struct Attribute {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum CartErrorCode {
    Invalid,
    LessThan,
    GreaterThan,
    MerchandiseNotFound,
    InvalidMerchandiseLine,
    TooManyLines,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum CartWarningCode {
    MerchandiseNotEnoughStock,
    MerchandiseOutOfStock,
}

#[derive(SimpleObject)]
pub struct CartUserError {
    pub code: Option<CartErrorCode>,
    pub field: Option<Vec<String>>,
    pub message: String,
}

#[derive(SimpleObject)]
pub struct CartWarning {
    pub code: CartWarningCode,
    pub message: String,
    pub target: ID,
}

#[derive(InputObject)]
pub struct CartLineInput {
    /// The ID of the merchandise (a `ProductVariant`).
    pub merchandise_id: ID,
    #[graphql(default = 1)]
    pub quantity: i32,
}

#[derive(InputObject)]
pub struct CartLineUpdateInput {
    /// The ID of the cart line.
    pub id: ID,
    pub merchandise_id: Option<ID>,
    pub quantity: Option<i32>,
}

#[derive(InputObject)]
pub struct CartBuyerIdentityInput {
    pub country_code: Option<CountryCode>,
    pub email: Option<String>,
}

#[derive(InputObject, Default)]
pub struct CartInput {
    pub lines: Option<Vec<CartLineInput>>,
    pub note: Option<String>,
    pub buyer_identity: Option<CartBuyerIdentityInput>,
}

macro_rules! payload {
    ($name:ident) => {
        #[derive(SimpleObject)]
        pub struct $name {
            pub cart: Option<CartNode>,
            pub user_errors: Vec<CartUserError>,
            pub warnings: Vec<CartWarning>,
        }

        impl From<CartOutcome> for $name {
            fn from(o: CartOutcome) -> Self {
                let (cart, user_errors, warnings) = shape(o);
                Self {
                    cart,
                    user_errors,
                    warnings,
                }
            }
        }
    };
}

payload!(CartCreatePayload);
payload!(CartLinesAddPayload);
payload!(CartLinesUpdatePayload);
payload!(CartLinesRemovePayload);

fn shape(o: CartOutcome) -> (Option<CartNode>, Vec<CartUserError>, Vec<CartWarning>) {
    let errors = o
        .user_errors
        .into_iter()
        .map(|e| CartUserError {
            code: Some(match e.code {
                DomainErrorCode::Invalid => CartErrorCode::Invalid,
                DomainErrorCode::LessThan => CartErrorCode::LessThan,
                DomainErrorCode::GreaterThan => CartErrorCode::GreaterThan,
                DomainErrorCode::MerchandiseNotFound => CartErrorCode::MerchandiseNotFound,
                DomainErrorCode::InvalidMerchandiseLine => CartErrorCode::InvalidMerchandiseLine,
                DomainErrorCode::TooManyLines => CartErrorCode::TooManyLines,
            }),
            field: Some(e.field),
            message: e.message,
        })
        .collect();
    let warnings = o
        .warnings
        .into_iter()
        .map(|w| CartWarning {
            code: match w.code {
                DomainWarningCode::MerchandiseNotEnoughStock => {
                    CartWarningCode::MerchandiseNotEnoughStock
                }
                DomainWarningCode::MerchandiseOutOfStock => CartWarningCode::MerchandiseOutOfStock,
            },
            message: w.message,
            target: ID(w.target),
        })
        .collect();
    (o.cart.map(|c| CartNode(Arc::new(c))), errors, warnings)
}
