//! The cart mutations: `cartCreate`, `cartLinesAdd` (optimistic, retried once under the
//! cart's lock when they lose a race), `cartLinesUpdate` and `cartLinesRemove` (under the
//! cart's lock). Each validates the whole input with [`super::rules`] before it writes.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::rules::*;
use super::store::*;
use super::{
    Cart, CartErrorCode, CartLine, CartOutcome, CartRules, CartUserError, LineInput, LineUpdate,
};
use crate::db::DbError;
use crate::db::schema::cart_lines;
use crate::db::sql::Prepared;

/// [`outcome_of`] for a locked cart whose lines are read now.
async fn outcome(
    conn: &mut AsyncPgConnection,
    cart: Cart,
    rules: &CartRules<'_>,
    user_errors: Vec<CartUserError>,
) -> Result<CartOutcome, DbError> {
    Ok(outcome_of(price(conn, cart, rules).await?, user_errors))
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
