//! Orders: what they hold, how they are read and listed, and (in [`transitions`]) every
//! change of their status. [`events`] tells subscribers about those changes,
//! [`documents`] renders the confirmation email and the invoice, and [`payment_events`]
//! turns a payment provider's webhooks into transitions.

mod create;
pub mod documents;
pub mod events;
pub mod payment_events;
pub mod transitions;

/// Where order events go (`ORDER_WEBHOOK_URLS`, and partners' subscriptions).
#[derive(Clone, Debug)]
pub struct Settings {
    pub hooks: events::Hooks,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hooks: events::Hooks::new(vec![]),
        }
    }
}

pub use create::{NewLine, NewOrder, create, placed};
pub use transitions::Transition;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::db::schema::orders as o;
use crate::db::schema::{order_lines, orders};

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = orders)]
pub struct Order {
    pub id: i64,
    pub number: i64,
    pub access_token: String,
    pub idempotency_key: String,
    pub cart_id: Option<i64>,
    pub status: String,
    pub email: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub shipping_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub shipping_method: String,
    pub shipping_address: Value,
    pub payment_provider: String,
    pub payment_reference: String,
    pub cancel_reason: Option<String>,
    pub reserved_until: DateTime<Utc>,
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub refunded_minor: i64,
    pub refunded_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = order_lines)]
pub struct OrderLine {
    pub id: i64,
    pub order_id: i64,
    pub position: i32,
    pub variant_id: Option<i64>,
    pub product_title: String,
    pub variant_title: String,
    pub sku: Option<String>,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub total_minor: i64,
    pub taxable: bool,
    pub requires_shipping: bool,
}

pub async fn by_id(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Order>> {
    orders::table
        .find(id)
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_access_token(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> QueryResult<Option<Order>> {
    orders::table
        .filter(orders::access_token.eq(token))
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_idempotency_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> QueryResult<Option<Order>> {
    orders::table
        .filter(orders::idempotency_key.eq(key))
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn lines_of(conn: &mut AsyncPgConnection, order_id: i64) -> QueryResult<Vec<OrderLine>> {
    order_lines::table
        .filter(order_lines::order_id.eq(order_id))
        .order(order_lines::position)
        .select(OrderLine::as_select())
        .load(conn)
        .await
}

/// The lines of these orders, each with its order's currency, by order then position.
pub async fn lines_with_currency(
    conn: &mut AsyncPgConnection,
    order_ids: &[i64],
) -> QueryResult<Vec<(OrderLine, String)>> {
    let lines: Vec<OrderLine> = order_lines::table
        .filter(order_lines::order_id.eq_any(order_ids))
        .order((order_lines::order_id, order_lines::position))
        .select(OrderLine::as_select())
        .load(conn)
        .await?;
    let currencies: std::collections::HashMap<i64, String> = orders::table
        .filter(orders::id.eq_any(order_ids))
        .select((orders::id, orders::currency))
        .load::<(i64, String)>(conn)
        .await?
        .into_iter()
        .collect();
    Ok(lines
        .into_iter()
        .map(|line| {
            let currency = currencies
                .get(&line.order_id)
                .cloned()
                .unwrap_or_else(|| "USD".into());
            (line, currency)
        })
        .collect())
}

/// The access token of the order made from the cart `cart_id`, if there is one.
pub async fn access_token_of_cart(
    conn: &mut AsyncPgConnection,
    cart_id: i64,
) -> QueryResult<Option<String>> {
    orders::table
        .filter(orders::cart_id.eq(cart_id))
        .select(orders::access_token)
        .first(conn)
        .await
        .optional()
}

/// The invoice stored for a paid order, if rendered yet.
pub async fn invoice_of(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<Option<String>> {
    Ok(orders::table
        .filter(orders::access_token.eq(token))
        .select(orders::invoice_html)
        .first::<Option<String>>(conn)
        .await
        .optional()?
        .flatten())
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

pub const STATUSES: &[&str] = &[
    "PENDING_PAYMENT",
    "PAID",
    "FULFILLED",
    "CANCELLED",
    "REFUNDED",
];

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub created_min: Option<DateTime<Utc>>,
    pub created_max: Option<DateTime<Utc>>,
    pub email: Option<String>,
    pub updated_min: Option<DateTime<Utc>>,
}

/// Orders matching `filter` after the order `after` (by id; descending when `reverse`),
/// `limit + 1` of them so the caller can tell whether another page follows.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &Filter,
    after: Option<i64>,
    limit: i64,
    reverse: bool,
) -> QueryResult<Vec<Order>> {
    let mut q = o::table.select(Order::as_select()).into_boxed();
    if let Some(s) = &filter.status {
        q = q.filter(o::status.eq(s.clone()));
    }
    if let Some(t) = filter.created_min {
        q = q.filter(o::created_at.ge(t));
    }
    if let Some(t) = filter.created_max {
        q = q.filter(o::created_at.le(t));
    }
    if let Some(e) = &filter.email {
        // Checkout keeps the address as typed; addresses match case-insensitively.
        q = q.filter(lower(o::email).eq(e.trim().to_lowercase()));
    }
    if let Some(t) = filter.updated_min {
        q = q.filter(o::updated_at.ge(t));
    }
    if let Some(after) = after {
        q = if reverse {
            q.filter(o::id.lt(after))
        } else {
            q.filter(o::id.gt(after))
        };
    }
    q = if reverse {
        q.order(o::id.desc())
    } else {
        q.order(o::id.asc())
    };
    q.limit(limit + 1).load(conn).await
}
