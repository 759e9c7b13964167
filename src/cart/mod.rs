//! Carts: lines of merchandise priced on the server from current prices.
//!
//! Every change runs in one transaction on the primary that first locks the cart row, so
//! concurrent edits of one cart apply one after the other. Input is
//! validated completely before anything is written: a mutation with any user error changes
//! nothing. Not having enough stock is a warning, not an error (the cart may hold more than
//! is available; checkout is where stock is reserved).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::Rng;

use crate::catalog::models::Variant;
use crate::catalog::store;
use crate::db::DbError;
use crate::db::schema::{cart_lines, carts, products};

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

/// Variants that may be put in a cart: existing, with a published product and a price in
/// the shop currency.
pub async fn sellable_variants(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
    shop_currency: &str,
) -> QueryResult<HashSet<i64>> {
    use crate::db::schema::{product_variants, variant_prices};
    let rows: Vec<i64> = product_variants::table
        .inner_join(products::table)
        .inner_join(variant_prices::table)
        .filter(product_variants::id.eq_any(ids))
        .filter(products::status.eq("ACTIVE"))
        .filter(products::published_at.le(diesel::dsl::now))
        .filter(variant_prices::currency.eq(shop_currency))
        .select(product_variants::id)
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
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

/// Locks the cart `token` for the rest of the transaction.
pub async fn lock(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<Option<Cart>> {
    lock_cart(conn, token).await
}

/// Prices a cart the caller holds (see [`lock`]).
pub async fn price_locked(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    rules: &CartRules<'_>,
) -> QueryResult<PricedCart> {
    price(conn, cart, rules).await
}

async fn lock_cart(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<Option<Cart>> {
    carts::table
        .filter(carts::token.eq(token))
        .select(Cart::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

fn missing_cart() -> CartOutcome {
    CartOutcome {
        cart: None,
        user_errors: vec![error(
            CartErrorCode::Invalid,
            &["cartId"],
            "The specified cart does not exist.",
        )],
        warnings: vec![],
    }
}

fn completed_cart() -> CartOutcome {
    CartOutcome {
        cart: None,
        user_errors: vec![error(
            CartErrorCode::Invalid,
            &["cartId"],
            "The cart has been completed and can no longer change.",
        )],
        warnings: vec![],
    }
}

/// Loads a cart and prices it (used for queries and for every mutation's payload).
pub async fn load(
    conn: &mut AsyncPgConnection,
    token: &str,
    rules: &CartRules<'_>,
) -> Result<Option<PricedCart>, DbError> {
    let Some(cart) = carts::table
        .filter(carts::token.eq(token))
        .select(Cart::as_select())
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    Ok(Some(price(conn, cart, rules).await?))
}

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
    let ids: Vec<i64> = lines.iter().map(|l| l.variant_id).collect();
    let mut currency = cart.currency.trim().to_string();
    let mut variants = if ids.is_empty() {
        Vec::new()
    } else {
        store::variants_by_ids(conn, &ids, &currency, rules.shop_currency).await?
    };
    if variants.iter().any(|v| v.currency != currency) {
        currency = rules.shop_currency.to_string();
        variants = store::variants_by_ids(conn, &ids, &currency, &currency).await?;
    }
    Ok(PricedCart {
        cart,
        lines,
        variants: variants.into_iter().map(|v| (v.id, v)).collect(),
        currency,
    })
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

/// The payload of a change: the cart priced now, the user errors, and stock warnings
/// when the change went through.
async fn outcome(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    rules: &CartRules<'_>,
    user_errors: Vec<CartUserError>,
) -> Result<CartOutcome, DbError> {
    let priced = price(conn, cart, rules).await?;
    let warnings = if user_errors.is_empty() {
        stock_warnings(&priced)
    } else {
        vec![]
    };
    Ok(CartOutcome {
        cart: Some(priced),
        user_errors,
        warnings,
    })
}

/// Validates new lines: quantities, merchandise that exists and is for sale.
async fn validate_lines(
    conn: &mut AsyncPgConnection,
    lines: &[LineInput],
    rules: &CartRules<'_>,
    field: &str,
) -> QueryResult<Vec<CartUserError>> {
    let mut errors = Vec::new();
    if lines.len() > rules.max_lines {
        errors.push(error(
            CartErrorCode::TooManyLines,
            &[field],
            format!("A cart can hold at most {} lines.", rules.max_lines),
        ));
        return Ok(errors);
    }
    let ids: Vec<i64> = lines.iter().filter_map(|l| l.merchandise_id).collect();
    let sellable = sellable_variants(conn, &ids, rules.shop_currency).await?;
    for (i, line) in lines.iter().enumerate() {
        let index = i.to_string();
        match line.merchandise_id {
            Some(id) if sellable.contains(&id) => {}
            _ => errors.push(error(
                CartErrorCode::MerchandiseNotFound,
                &[field, &index, "merchandiseId"],
                "The merchandise does not exist or is not for sale.",
            )),
        }
        check_quantity(
            line.quantity,
            rules,
            &[field, &index, "quantity"],
            &mut errors,
            1,
        );
    }
    Ok(errors)
}

/// Marks a locked cart as changed now and returns its row.
async fn touch(conn: &mut AsyncPgConnection, cart_id: i64) -> QueryResult<Cart> {
    diesel::update(carts::table.filter(carts::id.eq(cart_id)))
        .set(carts::updated_at.eq(diesel::dsl::now))
        .returning(Cart::as_returning())
        .get_result(conn)
        .await
}

/// Adds lines to a locked cart, merging lines of the same merchandise.
async fn insert_lines(
    conn: &mut AsyncPgConnection,
    cart_id: i64,
    lines: &[LineInput],
) -> QueryResult<Cart> {
    for line in lines {
        let Some(variant_id) = line.merchandise_id else {
            continue;
        };
        diesel::insert_into(cart_lines::table)
            .values((
                cart_lines::cart_id.eq(cart_id),
                cart_lines::variant_id.eq(variant_id),
                cart_lines::quantity.eq(line.quantity),
            ))
            .on_conflict((cart_lines::cart_id, cart_lines::variant_id))
            .do_update()
            .set((
                cart_lines::quantity
                    .eq(cart_lines::quantity + diesel::upsert::excluded(cart_lines::quantity)),
                cart_lines::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    touch(conn, cart_id).await
}

/// After merging, no line may exceed the quantity limit and the cart the line limit.
async fn check_merged(
    conn: &mut AsyncPgConnection,
    cart_id: i64,
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> QueryResult<Vec<CartUserError>> {
    let existing: Vec<(i64, i32)> = cart_lines::table
        .filter(cart_lines::cart_id.eq(cart_id))
        .select((cart_lines::variant_id, cart_lines::quantity))
        .load(conn)
        .await?;
    let mut totals: HashMap<i64, i64> = existing.iter().map(|(v, q)| (*v, *q as i64)).collect();
    for line in lines {
        if let Some(v) = line.merchandise_id {
            *totals.entry(v).or_default() += line.quantity as i64;
        }
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
        errors.push(error(
            CartErrorCode::GreaterThan,
            &["lines"],
            format!("A line's quantity must be at most {}.", rules.max_quantity),
        ));
    }
    Ok(errors)
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    currency: &str,
    country: Option<&str>,
    note: Option<&str>,
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Result<CartOutcome, DbError> {
    let errors = validate_lines(conn, lines, rules, "lines").await?;
    if !errors.is_empty() {
        return Ok(CartOutcome {
            cart: None,
            user_errors: errors,
            warnings: vec![],
        });
    }
    let mut merged: HashMap<i64, i64> = HashMap::new();
    for line in lines {
        if let Some(v) = line.merchandise_id {
            *merged.entry(v).or_default() += line.quantity as i64;
        }
    }
    if merged.values().any(|q| *q > rules.max_quantity as i64) {
        return Ok(CartOutcome {
            cart: None,
            user_errors: vec![error(
                CartErrorCode::GreaterThan,
                &["lines"],
                format!("A line's quantity must be at most {}.", rules.max_quantity),
            )],
            warnings: vec![],
        });
    }
    let priced = conn
        .transaction::<_, DbError, _>(async |conn| {
            let cart: Cart = diesel::insert_into(carts::table)
                .values((
                    carts::token.eq(new_token()),
                    carts::currency.eq(currency),
                    carts::country.eq(country),
                    carts::note.eq(note),
                ))
                .returning(Cart::as_returning())
                .get_result(conn)
                .await?;
            let cart = insert_lines(conn, cart.id, lines).await?;
            Ok(price(conn, cart, rules).await?)
        })
        .await?;
    let warnings = stock_warnings(&priced);
    Ok(CartOutcome {
        cart: Some(priced),
        user_errors: vec![],
        warnings,
    })
}

pub async fn add_lines(
    conn: &mut AsyncPgConnection,
    token: &str,
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Result<CartOutcome, DbError> {
    let errors = validate_lines(conn, lines, rules, "lines").await?;
    if !errors.is_empty() {
        let cart = load(conn, token, rules).await?;
        return Ok(CartOutcome {
            cart,
            user_errors: errors,
            warnings: vec![],
        });
    }
    conn.transaction::<_, DbError, _>(async |conn| {
        let Some(cart) = lock_cart(conn, token).await? else {
            return Ok(missing_cart());
        };
        if cart.completed_at.is_some() {
            return Ok(completed_cart());
        }
        let errors = check_merged(conn, cart.id, lines, rules).await?;
        if !errors.is_empty() {
            return outcome(conn, cart, rules, errors).await;
        }
        let cart = insert_lines(conn, cart.id, lines).await?;
        outcome(conn, cart, rules, vec![]).await
    })
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
        let sellable = sellable_variants(conn, &new_merch, rules.shop_currency).await?;
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
