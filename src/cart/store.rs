//! Carts in the database: the one statement that reads a cart with its lines (and the
//! idempotency key's order), the optimistic writes conditioned on the cart's version, the
//! row lock the locking changes take, and pricing a cart from current prices.
//!
//! Raw SQL: the reads and writes return the cart row with its `xmin` (the version a later
//! write is conditioned on) and its lines in one round trip, which diesel's DSL cannot
//! express.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{Cart, CartLine, CartRules, PricedCart};
use crate::catalog::store::{self, CartVariant};
use crate::db::DbError;
use crate::db::schema::{cart_lines, carts};
use crate::db::sql::Prepared;

/// One row of the cart statements: the cart, one of its lines (none for an empty cart).
#[derive(QueryableByName)]
pub(super) struct CartRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    token: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Nullable<Text>)]
    country: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    note: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    completed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    line_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    line_variant_id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    line_quantity: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    line_created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    line_updated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    key_order_id: Option<i64>,
}

/// The columns of a [`CartRow`] from a cart `c` and its lines `l`.
macro_rules! cart_row_columns {
    () => {
        "c.id, c.token, c.currency, c.country, c.note, c.completed_at, c.created_at, \
         c.updated_at, c.version, l.id AS line_id, l.variant_id AS line_variant_id, \
         l.quantity AS line_quantity, l.created_at AS line_created_at, \
         l.updated_at AS line_updated_at"
    };
}

/// What the writes return of the cart row (`version` included).
macro_rules! cart_returning {
    () => {
        "RETURNING id, token, currency, country, note, completed_at, created_at, updated_at, \
         xmin::text AS version"
    };
}

/// What the writes return of the lines.
macro_rules! lines_returning {
    () => {
        "RETURNING id, variant_id, quantity, created_at, updated_at"
    };
}

/// A cart by token with its lines; `$2`, an idempotency key or NULL, looks up its order.
pub(super) const READ: &str = concat!(
    "SELECT ",
    cart_row_columns!(),
    ", (SELECT o.id FROM orders o WHERE o.idempotency_key = $2) AS key_order_id \
     FROM (SELECT carts.*, carts.xmin::text AS version FROM carts WHERE token = $1) c \
     LEFT JOIN cart_lines l ON l.cart_id = c.id"
);

/// A new cart with its lines (merged: one per variant, in the order given).
pub(super) const CREATE: &str = concat!(
    "WITH c AS (INSERT INTO carts (token, currency, country, note) VALUES ($1, $2, $3, $4) ",
    cart_returning!(),
    "), l AS (INSERT INTO cart_lines (cart_id, variant_id, quantity) \
     SELECT c.id, t.v, t.q FROM c, unnest($5::int8[], $6::int4[]) WITH ORDINALITY AS t (v, q, n) \
     ORDER BY t.n ",
    lines_returning!(),
    ") SELECT ",
    cart_row_columns!(),
    ", NULL::int8 AS key_order_id FROM c LEFT JOIN l ON true"
);

/// Adds lines (merged: one per variant) to cart `$1` if it is still version `$2` and not
/// completed; returns nothing otherwise.
pub(super) const ADD: &str = concat!(
    "WITH c AS (UPDATE carts SET updated_at = CURRENT_TIMESTAMP \
     WHERE id = $1 AND xmin::text = $2 AND completed_at IS NULL ",
    cart_returning!(),
    "), l AS (INSERT INTO cart_lines (cart_id, variant_id, quantity) \
     SELECT c.id, t.v, t.q FROM c, unnest($3::int8[], $4::int4[]) WITH ORDINALITY AS t (v, q, n) \
     ORDER BY t.n \
     ON CONFLICT (cart_id, variant_id) DO UPDATE \
     SET quantity = cart_lines.quantity + excluded.quantity, updated_at = CURRENT_TIMESTAMP ",
    lines_returning!(),
    ") SELECT ",
    cart_row_columns!(),
    ", NULL::int8 AS key_order_id FROM c LEFT JOIN l ON true"
);

pub(super) fn snapshot(rows: Vec<CartRow>) -> Option<CartSnapshot> {
    let first = <[CartRow]>::first(&rows)?;
    let cart = Cart {
        id: first.id,
        token: first.token.clone(),
        currency: first.currency.clone(),
        country: first.country.clone(),
        note: first.note.clone(),
        completed_at: first.completed_at,
        created_at: first.created_at,
        updated_at: first.updated_at,
    };
    let version = first.version.clone();
    let key_order_id = first.key_order_id;
    let mut lines: Vec<CartLine> = rows
        .into_iter()
        .filter_map(|r| {
            Some(CartLine {
                id: r.line_id?,
                cart_id: cart.id,
                variant_id: r.line_variant_id?,
                quantity: r.line_quantity?,
                created_at: r.line_created_at?,
                updated_at: r.line_updated_at?,
            })
        })
        .collect();
    lines.sort_by_key(|l| (l.created_at, l.id));
    Some(CartSnapshot {
        cart,
        lines,
        version,
        key_order_id,
    })
}

/// The token (public id) of the cart `cart_id`.
pub async fn token_of(conn: &mut AsyncPgConnection, cart_id: i64) -> QueryResult<Option<String>> {
    carts::table
        .find(cart_id)
        .select(carts::token)
        .first(conn)
        .await
        .optional()
}

/// Locks cart `token` for the rest of the transaction (when it exists), so that the
/// optimistic writes cannot lose a race.
pub async fn lock(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<()> {
    lock_cart(conn, token).await.map(drop)
}

/// `FOR NO KEY UPDATE`, the lock an update of the row takes anyway: it orders the cart's
/// changes and checkouts, but not the foreign-key checks of rows that reference the cart
/// (an order's insert takes `FOR KEY SHARE`). A `FOR UPDATE` here would make a checkout
/// that holds stock and its idempotency key wait for the cart: a deadlock with a retry
/// of the same checkout that holds the cart and waits for the key.
pub(super) async fn lock_cart(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> QueryResult<Option<Cart>> {
    carts::table
        .filter(carts::token.eq(token))
        .select(Cart::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
}

/// A cart as one statement saw it.
#[derive(Clone, Debug)]
pub struct CartSnapshot {
    pub cart: Cart,
    /// In the order they were added.
    pub lines: Vec<CartLine>,
    /// The cart row's version (its `xmin`). It changes with every change of the cart and of
    /// its lines, so a write conditioned on it applies only to what was read.
    pub version: String,
    /// The order the idempotency key given to [`read`] belongs to, if any.
    pub key_order_id: Option<i64>,
}

/// Reads cart `token` with its lines in one statement, without locking. `key` (an
/// idempotency key) also looks up the order it created.
pub async fn read(
    conn: &mut AsyncPgConnection,
    token: &str,
    key: Option<&str>,
) -> QueryResult<Option<CartSnapshot>> {
    let rows: Vec<CartRow> = Prepared(
        diesel::sql_query(READ)
            .bind::<Text, _>(token)
            .bind::<Nullable<Text>, _>(key),
    )
    .load(conn)
    .await?;
    Ok(snapshot(rows))
}

/// Marks cart `cart_id` completed if it is still `version` and not completed. False when
/// it changed since it was read, and also when another transaction holds its row (a cart
/// change in flight): checkout calls this while it holds stock rows, and never waiting
/// for a cart row there is what keeps checkout free of deadlocks.
pub async fn mark_completed(
    conn: &mut AsyncPgConnection,
    cart_id: i64,
    version: &str,
) -> QueryResult<bool> {
    let n = Prepared(
        diesel::sql_query(
            "UPDATE carts SET completed_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP \
             WHERE id = (SELECT id FROM carts WHERE id = $1 AND xmin::text = $2 \
                         AND completed_at IS NULL FOR NO KEY UPDATE SKIP LOCKED)",
        )
        .bind::<BigInt, _>(cart_id)
        .bind::<Text, _>(version),
    )
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Loads a cart and prices it (the cart query, the hosted checkout page).
pub async fn load(
    conn: &mut AsyncPgConnection,
    token: &str,
    rules: &CartRules<'_>,
) -> Result<Option<PricedCart>, DbError> {
    let Some(snap) = read(conn, token, None).await? else {
        return Ok(None);
    };
    Ok(Some(priced(conn, snap.cart, snap.lines, rules).await?))
}

/// Prices `lines` of `cart` from current prices.
pub async fn priced(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    lines: Vec<CartLine>,
    rules: &CartRules<'_>,
) -> QueryResult<PricedCart> {
    let ids = variant_ids(lines.iter().map(|l| l.variant_id));
    let variants = if ids.is_empty() {
        Vec::new()
    } else {
        store::cart_variants(conn, &ids, cart.currency.trim(), rules.shop_currency).await?
    };
    priced_with(conn, cart, lines, variants, rules).await
}

/// Prices `lines` with `variants` read in the cart's currency. When some line's variant
/// has no price in it, all are read again in the shop currency, so that a total never
/// mixes currencies.
pub(super) async fn priced_with(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    lines: Vec<CartLine>,
    mut variants: Vec<CartVariant>,
    rules: &CartRules<'_>,
) -> QueryResult<PricedCart> {
    let wanted: HashSet<i64> = lines.iter().map(|l| l.variant_id).collect();
    variants.retain(|v| wanted.contains(&v.variant.id));
    let mut currency = cart.currency.trim().to_string();
    if variants.iter().any(|v| v.variant.currency != currency) {
        currency = rules.shop_currency.to_string();
        let ids: Vec<i64> = wanted.into_iter().collect();
        variants = store::cart_variants(conn, &ids, &currency, &currency).await?;
    }
    let mut priced = PricedCart {
        cart,
        lines,
        variants: HashMap::with_capacity(variants.len()),
        currency,
        sellable: HashSet::new(),
        product_titles: HashMap::new(),
    };
    for v in variants {
        if v.sellable {
            priced.sellable.insert(v.variant.id);
        }
        priced
            .product_titles
            .insert(v.variant.product_id, v.product_title);
        priced.variants.insert(v.variant.id, v.variant);
    }
    Ok(priced)
}

/// Distinct ids, sorted.
pub(super) fn variant_ids(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Prices a cart the caller holds locked, reading its lines.
pub(super) async fn price(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    rules: &CartRules<'_>,
) -> QueryResult<PricedCart> {
    let lines: Vec<CartLine> = cart_lines::table
        .filter(cart_lines::cart_id.eq(cart.id))
        .order((cart_lines::created_at, cart_lines::id))
        .select(CartLine::as_select())
        .load(conn)
        .await?;
    priced(conn, cart, lines, rules).await
}

/// The variants of `ids` for a cart in `currency`; none for no ids.
pub(super) async fn variants_for(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
    currency: &str,
    rules: &CartRules<'_>,
) -> QueryResult<Vec<CartVariant>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    store::cart_variants(conn, ids, currency.trim(), rules.shop_currency).await
}

/// Marks a locked cart as changed now and returns its row.
pub(super) async fn touch(conn: &mut AsyncPgConnection, cart_id: i64) -> QueryResult<Cart> {
    diesel::update(carts::table.filter(carts::id.eq(cart_id)))
        .set(carts::updated_at.eq(diesel::dsl::now))
        .returning(Cart::as_returning())
        .get_result(conn)
        .await
}
