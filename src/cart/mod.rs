//! Carts: lines of merchandise priced on the server from current prices.
//!
//! `cartCreate` and `cartLinesAdd` are optimistic: the cart and its lines are read in one
//! statement, the input is validated against them, and the change is one statement that
//! applies only while the cart row is still the version that was read (its `xmin`; every
//! change of a cart's lines also updates the cart row). A change that lost a race to
//! another one reads the cart again and retries. `cartLinesUpdate` and `cartLinesRemove`
//! lock the cart row for their transaction instead. Input is validated completely before
//! anything is written: a mutation with any user error changes nothing. Not having enough
//! stock is a warning, not an error (the cart may hold more than is available; checkout is
//! where stock is reserved).

//!
//! The files: [`rules`] holds the checks that need no database (unit-tested), `store` the
//! statements, `changes` the mutations that put the two together.

mod changes;
pub mod rules;
mod store;

pub use changes::{add_lines, create, remove_lines, update_lines};
pub use store::{CartSnapshot, load, lock, mark_completed, priced, read, token_of};

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::catalog::models::Variant;
use crate::db::schema::{cart_lines, carts};

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = carts)]
pub struct Cart {
    pub id: i64,
    pub token: String,
    pub currency: String,
    pub country: Option<String>,
    pub note: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = cart_lines)]
pub struct CartLine {
    pub id: i64,
    pub cart_id: i64,
    pub variant_id: i64,
    pub quantity: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A cart with its lines and the variants they hold, priced in the cart's currency.
#[derive(Clone, Debug)]
pub struct PricedCart {
    pub cart: Cart,
    pub lines: Vec<CartLine>,
    pub variants: HashMap<i64, Variant>,
    /// The currency the amounts are in (the shop currency when some variant has no price
    /// in the cart's own currency, so that a total never mixes currencies).
    pub currency: String,
    /// The lines' variants that may be sold now (published, active, priced in the shop
    /// currency).
    pub sellable: HashSet<i64>,
    /// Product titles by product id.
    pub product_titles: HashMap<i64, String>,
}

impl PricedCart {
    pub fn line_total(&self, line: &CartLine) -> i64 {
        self.variants
            .get(&line.variant_id)
            .map(|v| v.price_minor * line.quantity as i64)
            .unwrap_or(0)
    }

    pub fn subtotal(&self) -> i64 {
        self.lines.iter().map(|l| self.line_total(l)).sum()
    }

    pub fn total_quantity(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity as i64).sum()
    }
}

/// Shopify's `CartErrorCode` values this gateway produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartErrorCode {
    Invalid,
    LessThan,
    GreaterThan,
    MerchandiseNotFound,
    InvalidMerchandiseLine,
    TooManyLines,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CartUserError {
    pub code: CartErrorCode,
    pub field: Vec<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartWarningCode {
    MerchandiseNotEnoughStock,
    MerchandiseOutOfStock,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CartWarning {
    pub code: CartWarningCode,
    /// Global ID of the merchandise the warning is about.
    pub target: String,
    pub message: String,
}

/// The result of a cart mutation.
#[derive(Debug, Clone)]
pub struct CartOutcome {
    pub cart: Option<PricedCart>,
    pub user_errors: Vec<CartUserError>,
    pub warnings: Vec<CartWarning>,
}

impl CartOutcome {
    fn rejected(cart: Option<PricedCart>, user_errors: Vec<CartUserError>) -> Self {
        Self {
            cart,
            user_errors,
            warnings: vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineInput {
    pub merchandise_id: Option<i64>,
    pub quantity: i32,
}

#[derive(Debug, Clone)]
pub struct LineUpdate {
    pub line_id: Option<i64>,
    pub merchandise_id: Option<Option<i64>>,
    pub quantity: Option<i32>,
}

/// Limits of a cart (`MAX_CART_LINES`, `MAX_LINE_QUANTITY`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// `MAX_CART_LINES`: distinct lines one cart may hold.
    pub max_lines: usize,
    /// `MAX_LINE_QUANTITY`: the largest quantity of one line.
    pub max_quantity: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_lines: 250,
            max_quantity: 10_000,
        }
    }
}

/// The rules a cart follows, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct CartRules<'a> {
    /// `MAX_CART_LINES`
    pub max_lines: usize,
    /// `MAX_LINE_QUANTITY`
    pub max_quantity: i32,
    /// Prices fall back to this currency (`SHOP_CURRENCY`).
    pub shop_currency: &'a str,
}
