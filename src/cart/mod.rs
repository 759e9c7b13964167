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

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::Rng;

use crate::catalog::models::Variant;
use crate::catalog::store::{self, CartVariant};
use crate::db::DbError;
use crate::db::schema::{cart_lines, carts};
use crate::db::sql::Prepared;

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

fn error(code: CartErrorCode, field: &[&str], message: impl Into<String>) -> CartUserError {
    CartUserError {
        code,
        field: field.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
    }
}

fn new_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_quantity(
    q: i32,
    rules: &CartRules<'_>,
    field: &[&str],
    errors: &mut Vec<CartUserError>,
    min: i32,
) {
    if q < min {
        errors.push(error(
            CartErrorCode::LessThan,
            field,
            format!("The quantity must be at least {min}."),
        ));
    } else if q > rules.max_quantity {
        errors.push(error(
            CartErrorCode::GreaterThan,
            field,
            format!("The quantity must be at most {}.", rules.max_quantity),
        ));
    }
}

/// Locks cart `token` for the rest of the transaction (when it exists), so that the
/// optimistic writes below cannot lose a race.
pub async fn lock(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<()> {
    lock_cart(conn, token).await.map(drop)
}

/// `FOR NO KEY UPDATE`, the lock an update of the row takes anyway: it orders the cart's
/// changes and checkouts, but not the foreign-key checks of rows that reference the cart
/// (an order's insert takes `FOR KEY SHARE`). A `FOR UPDATE` here would make a checkout
/// that holds stock and its idempotency key wait for the cart: a deadlock with a retry
/// of the same checkout that holds the cart and waits for the key.
async fn lock_cart(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<Option<Cart>> {
    carts::table
        .filter(carts::token.eq(token))
        .select(Cart::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
}

fn missing_cart() -> CartOutcome {
    CartOutcome::rejected(
        None,
        vec![error(
            CartErrorCode::Invalid,
            &["cartId"],
            "The specified cart does not exist.",
        )],
    )
}

fn completed_cart() -> CartOutcome {
    CartOutcome::rejected(
        None,
        vec![error(
            CartErrorCode::Invalid,
            &["cartId"],
            "The cart has been completed and can no longer change.",
        )],
    )
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

/// One row of the cart statements: the cart, one of its lines (none for an empty cart).
#[derive(QueryableByName)]
struct CartRow {
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
const READ: &str = concat!(
    "SELECT ",
    cart_row_columns!(),
    ", (SELECT o.id FROM orders o WHERE o.idempotency_key = $2) AS key_order_id \
     FROM (SELECT carts.*, carts.xmin::text AS version FROM carts WHERE token = $1) c \
     LEFT JOIN cart_lines l ON l.cart_id = c.id"
);

/// A new cart with its lines (merged: one per variant, in the order given).
const CREATE: &str = concat!(
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
const ADD: &str = concat!(
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

fn snapshot(rows: Vec<CartRow>) -> Option<CartSnapshot> {
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
async fn priced_with(
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
fn variant_ids(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Prices a cart the caller holds locked, reading its lines.
async fn price(
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

fn stock_warnings(priced: &PricedCart) -> Vec<CartWarning> {
    priced
        .lines
        .iter()
        .filter_map(|line| {
            let v = priced.variants.get(&line.variant_id)?;
            if v.inventory_policy == "CONTINUE" || v.quantity_available >= line.quantity as i64 {
                return None;
            }
            let target = crate::ids::encode("ProductVariant", v.id);
            Some(if v.quantity_available <= 0 {
                CartWarning {
                    code: CartWarningCode::MerchandiseOutOfStock,
                    target,
                    message: format!("{} is out of stock.", v.title),
                }
            } else {
                CartWarning {
                    code: CartWarningCode::MerchandiseNotEnoughStock,
                    target,
                    message: format!(
                        "Only {} of {} are available.",
                        v.quantity_available, v.title
                    ),
                }
            })
        })
        .collect()
}

/// The payload of a change: the cart priced, the user errors, and stock warnings when the
/// change went through.
fn outcome_of(priced: PricedCart, user_errors: Vec<CartUserError>) -> CartOutcome {
    let warnings = if user_errors.is_empty() {
        stock_warnings(&priced)
    } else {
        vec![]
    };
    CartOutcome {
        cart: Some(priced),
        user_errors,
        warnings,
    }
}

/// [`outcome_of`] for a locked cart whose lines are read now.
async fn outcome(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    rules: &CartRules<'_>,
    user_errors: Vec<CartUserError>,
) -> Result<CartOutcome, DbError> {
    Ok(outcome_of(price(conn, cart, rules).await?, user_errors))
}

fn too_many_lines(lines: &[LineInput], rules: &CartRules<'_>) -> Option<CartUserError> {
    (lines.len() > rules.max_lines).then(|| {
        error(
            CartErrorCode::TooManyLines,
            &["lines"],
            format!("A cart can hold at most {} lines.", rules.max_lines),
        )
    })
}

/// The ids of `variants` that may be put in a cart.
fn sellable(variants: &[CartVariant]) -> HashSet<i64> {
    variants
        .iter()
        .filter(|v| v.sellable)
        .map(|v| v.variant.id)
        .collect()
}

/// Errors of new lines: merchandise that does not exist or is not for sale, quantities
/// out of range.
fn line_errors(
    lines: &[LineInput],
    rules: &CartRules<'_>,
    variants: &[CartVariant],
) -> Vec<CartUserError> {
    let sellable = sellable(variants);
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let index = i.to_string();
        match line.merchandise_id {
            Some(id) if sellable.contains(&id) => {}
            _ => errors.push(error(
                CartErrorCode::MerchandiseNotFound,
                &["lines", &index, "merchandiseId"],
                "The merchandise does not exist or is not for sale.",
            )),
        }
        check_quantity(
            line.quantity,
            rules,
            &["lines", &index, "quantity"],
            &mut errors,
            1,
        );
    }
    errors
}

/// New lines merged by merchandise, in the order of first mention, with their summed
/// quantities.
fn merged(lines: &[LineInput]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for line in lines {
        let Some(v) = line.merchandise_id else {
            continue;
        };
        match out.iter_mut().find(|(id, _)| *id == v) {
            Some((_, q)) => *q += line.quantity as i64,
            None => out.push((v, line.quantity as i64)),
        }
    }
    out
}

fn merged_too_large(rules: &CartRules<'_>) -> CartUserError {
    error(
        CartErrorCode::GreaterThan,
        &["lines"],
        format!("A line's quantity must be at most {}.", rules.max_quantity),
    )
}

/// After merging, no line may exceed the quantity limit and the cart the line limit.
fn check_merged(
    existing: &[CartLine],
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Vec<CartUserError> {
    let mut totals: HashMap<i64, i64> = existing
        .iter()
        .map(|l| (l.variant_id, l.quantity as i64))
        .collect();
    for (v, q) in merged(lines) {
        *totals.entry(v).or_default() += q;
    }
    let mut errors = Vec::new();
    if totals.len() > rules.max_lines {
        errors.push(error(
            CartErrorCode::TooManyLines,
            &["lines"],
            format!("A cart can hold at most {} lines.", rules.max_lines),
        ));
    }
    if totals.values().any(|q| *q > rules.max_quantity as i64) {
        errors.push(merged_too_large(rules));
    }
    errors
}

/// The merged lines as the `int8[]` and `int4[]` the writes take. The quantities were
/// checked against `MAX_LINE_QUANTITY`, so they fit.
fn line_columns(merged: &[(i64, i64)]) -> (Vec<i64>, Vec<i32>) {
    merged
        .iter()
        .map(|(v, q)| (*v, (*q).min(i32::MAX as i64) as i32))
        .unzip()
}

/// The variants of `ids` for a cart in `currency`; none for no ids.
async fn variants_for(
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

/// Creates a cart with `lines`: one statement reads the variants, one writes the cart and
/// its lines.
pub async fn create(
    conn: &mut AsyncPgConnection,
    currency: &str,
    country: Option<&str>,
    note: Option<&str>,
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Result<CartOutcome, DbError> {
    if let Some(e) = too_many_lines(lines, rules) {
        return Ok(CartOutcome::rejected(None, vec![e]));
    }
    let ids = variant_ids(lines.iter().filter_map(|l| l.merchandise_id));
    let variants = variants_for(conn, &ids, currency, rules).await?;
    let errors = line_errors(lines, rules, &variants);
    if !errors.is_empty() {
        return Ok(CartOutcome::rejected(None, errors));
    }
    let merged = merged(lines);
    if merged.iter().any(|(_, q)| *q > rules.max_quantity as i64) {
        return Ok(CartOutcome::rejected(None, vec![merged_too_large(rules)]));
    }
    let (v, q) = line_columns(&merged);
    let rows: Vec<CartRow> = Prepared(
        diesel::sql_query(CREATE)
            .bind::<Text, _>(new_token())
            .bind::<Text, _>(currency)
            .bind::<Nullable<Text>, _>(country)
            .bind::<Nullable<Text>, _>(note)
            .bind::<Array<BigInt>, _>(&v)
            .bind::<Array<Integer>, _>(&q),
    )
    .load(conn)
    .await?;
    let snap = snapshot(rows).ok_or(diesel::result::Error::NotFound)?;
    let priced = priced_with(conn, snap.cart, snap.lines, variants, rules).await?;
    Ok(outcome_of(priced, vec![]))
}

/// Adds lines to a cart: one statement reads the cart with its lines, one the variants,
/// one writes. When the cart changed between the read and the write, the second attempt
/// holds the cart's lock, so it cannot lose again.
pub async fn add_lines(
    conn: &mut AsyncPgConnection,
    token: &str,
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Result<CartOutcome, DbError> {
    if let Some(e) = too_many_lines(lines, rules) {
        let cart = load(conn, token, rules).await?;
        return Ok(CartOutcome::rejected(cart, vec![e]));
    }
    if let Some(outcome) = try_add_lines(conn, token, lines, rules).await? {
        return Ok(outcome);
    }
    conn.transaction::<_, DbError, _>(async |conn| {
        lock(conn, token).await?;
        try_add_lines(conn, token, lines, rules)
            .await?
            .ok_or_else(|| DbError::Unavailable("a locked cart changed".into()))
    })
    .await
}

/// One attempt of [`add_lines`]; `None` when the cart changed after it was read.
async fn try_add_lines(
    conn: &mut AsyncPgConnection,
    token: &str,
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Result<Option<CartOutcome>, DbError> {
    let new_ids = variant_ids(lines.iter().filter_map(|l| l.merchandise_id));
    let Some(snap) = read(conn, token, None).await? else {
        let variants = variants_for(conn, &new_ids, rules.shop_currency, rules).await?;
        let errors = line_errors(lines, rules, &variants);
        return Ok(Some(if errors.is_empty() {
            missing_cart()
        } else {
            CartOutcome::rejected(None, errors)
        }));
    };
    let ids = variant_ids(
        snap.lines
            .iter()
            .map(|l| l.variant_id)
            .chain(new_ids.iter().copied()),
    );
    let variants = variants_for(conn, &ids, &snap.cart.currency, rules).await?;
    let mut errors = line_errors(lines, rules, &variants);
    if errors.is_empty() {
        if snap.cart.completed_at.is_some() {
            return Ok(Some(completed_cart()));
        }
        errors = check_merged(&snap.lines, lines, rules);
    }
    if !errors.is_empty() {
        let priced = priced_with(conn, snap.cart, snap.lines, variants, rules).await?;
        return Ok(Some(outcome_of(priced, errors)));
    }
    let (v, q) = line_columns(&merged(lines));
    let rows: Vec<CartRow> = Prepared(
        diesel::sql_query(ADD)
            .bind::<BigInt, _>(snap.cart.id)
            .bind::<Text, _>(&snap.version)
            .bind::<Array<BigInt>, _>(&v)
            .bind::<Array<Integer>, _>(&q),
    )
    .load(conn)
    .await?;
    // Nothing written: the cart changed since it was read.
    let Some(written) = snapshot(rows) else {
        return Ok(None);
    };
    let mut all = snap.lines;
    for line in written.lines {
        match all.iter_mut().find(|l| l.id == line.id) {
            Some(old) => *old = line,
            None => all.push(line),
        }
    }
    all.sort_by_key(|l| (l.created_at, l.id));
    let priced = priced_with(conn, written.cart, all, variants, rules).await?;
    Ok(Some(outcome_of(priced, vec![])))
}

/// Marks a locked cart as changed now and returns its row.
async fn touch(conn: &mut AsyncPgConnection, cart_id: i64) -> QueryResult<Cart> {
    diesel::update(carts::table.filter(carts::id.eq(cart_id)))
        .set(carts::updated_at.eq(diesel::dsl::now))
        .returning(Cart::as_returning())
        .get_result(conn)
        .await
}

pub async fn update_lines(
    conn: &mut AsyncPgConnection,
    token: &str,
    updates: &[LineUpdate],
    rules: &CartRules<'_>,
) -> Result<CartOutcome, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let Some(mut cart) = lock_cart(conn, token).await? else {
            return Ok(missing_cart());
        };
        if cart.completed_at.is_some() {
            return Ok(completed_cart());
        }
        let existing: Vec<CartLine> = cart_lines::table
            .filter(cart_lines::cart_id.eq(cart.id))
            .select(CartLine::as_select())
            .load(conn)
            .await?;
        let mut errors = Vec::new();
        if updates.len() > rules.max_lines {
            errors.push(error(
                CartErrorCode::TooManyLines,
                &["lines"],
                format!("At most {} lines per call.", rules.max_lines),
            ));
        }
        let new_merch: Vec<i64> = updates
            .iter()
            .filter_map(|u| u.merchandise_id.flatten())
            .collect();
        let sellable = sellable(&variants_for(conn, &new_merch, rules.shop_currency, rules).await?);
        for (i, u) in updates.iter().enumerate() {
            let index = i.to_string();
            if !u
                .line_id
                .is_some_and(|id| existing.iter().any(|l| l.id == id))
            {
                errors.push(error(
                    CartErrorCode::InvalidMerchandiseLine,
                    &["lines", &index, "id"],
                    "The line does not exist in this cart.",
                ));
            }
            if let Some(q) = u.quantity {
                check_quantity(q, rules, &["lines", &index, "quantity"], &mut errors, 0);
            }
            match u.merchandise_id {
                Some(Some(id)) if !sellable.contains(&id) => errors.push(error(
                    CartErrorCode::MerchandiseNotFound,
                    &["lines", &index, "merchandiseId"],
                    "The merchandise does not exist or is not for sale.",
                )),
                Some(None) => errors.push(error(
                    CartErrorCode::MerchandiseNotFound,
                    &["lines", &index, "merchandiseId"],
                    "The merchandise ID is not valid.",
                )),
                Some(Some(variant)) => {
                    // Moving a line onto merchandise another line holds merges the two.
                    let current = existing
                        .iter()
                        .find(|l| Some(l.id) == u.line_id)
                        .map(|l| l.quantity)
                        .unwrap_or(0);
                    let quantity = u.quantity.unwrap_or(current) as i64;
                    if let Some(other) = existing
                        .iter()
                        .find(|l| l.variant_id == variant && Some(l.id) != u.line_id)
                        && other.quantity as i64 + quantity > rules.max_quantity as i64
                    {
                        errors.push(error(
                            CartErrorCode::GreaterThan,
                            &["lines", &index, "quantity"],
                            format!("A line's quantity must be at most {}.", rules.max_quantity),
                        ));
                    }
                }
                _ => {}
            }
        }
        // Updates apply one after the other: refuse sets whose outcome would depend on the
        // order (a line named twice, two lines moved onto one merchandise, or a line moved
        // onto merchandise of another line changed in the same call).
        let touched: HashSet<i64> = updates.iter().filter_map(|u| u.line_id).collect();
        let mut seen_lines = HashSet::new();
        let mut targets = HashSet::new();
        for (i, u) in updates.iter().enumerate() {
            let index = i.to_string();
            if let Some(id) = u.line_id
                && !seen_lines.insert(id)
            {
                errors.push(error(
                    CartErrorCode::Invalid,
                    &["lines", &index, "id"],
                    "The same line is updated twice.",
                ));
            }
            if let Some(Some(variant)) = u.merchandise_id {
                let holder = existing
                    .iter()
                    .find(|l| l.variant_id == variant && Some(l.id) != u.line_id);
                if !targets.insert(variant) || holder.is_some_and(|h| touched.contains(&h.id)) {
                    errors.push(error(
                        CartErrorCode::Invalid,
                        &["lines", &index, "merchandiseId"],
                        "Another line of this call holds or moves to the same merchandise.",
                    ));
                }
            }
        }
        if errors.is_empty() {
            for u in updates {
                let Some(line_id) = u.line_id else { continue };
                let target = cart_lines::table
                    .filter(cart_lines::id.eq(line_id))
                    .filter(cart_lines::cart_id.eq(cart.id));
                if u.quantity == Some(0) {
                    diesel::delete(target).execute(conn).await?;
                    continue;
                }
                if let Some(Some(variant)) = u.merchandise_id {
                    // Moving a line onto merchandise another line already holds merges them.
                    let other: Option<CartLine> = existing
                        .iter()
                        .find(|l| l.variant_id == variant && l.id != line_id)
                        .cloned();
                    let current = existing
                        .iter()
                        .find(|l| l.id == line_id)
                        .map(|l| l.quantity)
                        .unwrap_or(0);
                    let quantity = u.quantity.unwrap_or(current);
                    if let Some(other) = other {
                        let merged = other.quantity + quantity;
                        diesel::delete(target).execute(conn).await?;
                        diesel::update(cart_lines::table.filter(cart_lines::id.eq(other.id)))
                            .set((
                                cart_lines::quantity.eq(merged),
                                cart_lines::updated_at.eq(diesel::dsl::now),
                            ))
                            .execute(conn)
                            .await?;
                        continue;
                    }
                    diesel::update(target)
                        .set((
                            cart_lines::variant_id.eq(variant),
                            cart_lines::quantity.eq(quantity),
                            cart_lines::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)
                        .await?;
                } else if let Some(q) = u.quantity {
                    diesel::update(target)
                        .set((
                            cart_lines::quantity.eq(q),
                            cart_lines::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)
                        .await?;
                }
            }
            cart = touch(conn, cart.id).await?;
        }
        outcome(conn, cart, rules, errors).await
    })
    .await
}

pub async fn remove_lines(
    conn: &mut AsyncPgConnection,
    token: &str,
    line_ids: &[Option<i64>],
    rules: &CartRules<'_>,
) -> Result<CartOutcome, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let Some(mut cart) = lock_cart(conn, token).await? else {
            return Ok(missing_cart());
        };
        if cart.completed_at.is_some() {
            return Ok(completed_cart());
        }
        let existing: Vec<i64> = cart_lines::table
            .filter(cart_lines::cart_id.eq(cart.id))
            .select(cart_lines::id)
            .load(conn)
            .await?;
        let mut errors = Vec::new();
        if line_ids.len() > rules.max_lines {
            errors.push(error(
                CartErrorCode::TooManyLines,
                &["lineIds"],
                format!("At most {} lines per call.", rules.max_lines),
            ));
        }
        for (i, id) in line_ids.iter().enumerate() {
            if !id.is_some_and(|id| existing.contains(&id)) {
                errors.push(error(
                    CartErrorCode::InvalidMerchandiseLine,
                    &["lineIds", &i.to_string()],
                    "The line does not exist in this cart.",
                ));
            }
        }
        if errors.is_empty() {
            let ids: Vec<i64> = line_ids.iter().flatten().copied().collect();
            diesel::delete(
                cart_lines::table
                    .filter(cart_lines::cart_id.eq(cart.id))
                    .filter(cart_lines::id.eq_any(ids)),
            )
            .execute(conn)
            .await?;
            cart = touch(conn, cart.id).await?;
        }
        outcome(conn, cart, rules, errors).await
    })
    .await
}
