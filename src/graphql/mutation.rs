//! The storefront's mutation root: the cart mutations and checkout. Every mutation runs on the
//! primary, and so do the reads that build its payload.

use async_graphql::{Context, ID, Object, Result};

use super::errors::from_db;
use super::types::cart::*;
use super::types::order::{CartCompleteInput, CartCompletePayload};
use super::{app_from, scope_from};
use crate::cart::{self, CartOutcome, CartRules, LineInput, LineUpdate};
use crate::db::PgConn;
use crate::ids;

pub struct MutationRoot;

/// The token of a cart's global ID.
pub fn cart_token(id: &ID) -> Option<String> {
    let (kind, key) = ids::decode(id)?;
    (kind == "Cart" && key.len() == 32 && key.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(key)
}

pub(super) fn cart_rules<'a>(ctx: &Context<'a>) -> CartRules<'a> {
    app_from(ctx).cart_rules()
}

/// A connection to the primary, where every mutation runs.
pub(super) async fn primary(ctx: &Context<'_>) -> Result<PgConn> {
    app_from(ctx)
        .db
        .primary(&scope_from(ctx).statements)
        .await
        .map_err(|e| from_db(&e))
}

fn invalid_cart_id() -> CartOutcome {
    CartOutcome {
        cart: None,
        user_errors: vec![cart::CartUserError {
            code: cart::CartErrorCode::Invalid,
            field: vec!["cartId".into()],
            message: "The cart ID is not valid.".into(),
        }],
        warnings: vec![],
    }
}

fn line_inputs(lines: &[CartLineInput]) -> Vec<LineInput> {
    lines
        .iter()
        .map(|l| LineInput {
            merchandise_id: ids::parse("ProductVariant", &l.merchandise_id),
            quantity: l.quantity,
        })
        .collect()
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a new cart.
    async fn cart_create(
        &self,
        ctx: &Context<'_>,
        input: Option<CartInput>,
    ) -> Result<CartCreatePayload> {
        let app = app_from(ctx);
        let scope = scope_from(ctx);
        let input = input.unwrap_or_default();
        let country = input
            .buyer_identity
            .as_ref()
            .and_then(|b| b.country_code)
            .map(|c| c.as_str().to_string())
            .or_else(|| scope.country().map(str::to_string));
        let currency = country
            .as_deref()
            .and_then(super::types::common::currency_for_country)
            .unwrap_or_else(|| scope.currency(app))
            .to_string();
        let lines = line_inputs(input.lines.as_deref().unwrap_or_default());
        let mut conn = primary(ctx).await?;
        let outcome = cart::create(
            &mut conn,
            &currency,
            country.as_deref(),
            input.note.as_deref(),
            &lines,
            &cart_rules(ctx),
        )
        .await
        .map_err(|e| from_db(&e))?;
        Ok(outcome.into())
    }

    /// Adds merchandise to a cart.
    async fn cart_lines_add(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        lines: Vec<CartLineInput>,
    ) -> Result<CartLinesAddPayload> {
        let Some(token) = cart_token(&cart_id) else {
            return Ok(invalid_cart_id().into());
        };
        let mut conn = primary(ctx).await?;
        let outcome = cart::add_lines(&mut conn, &token, &line_inputs(&lines), &cart_rules(ctx))
            .await
            .map_err(|e| from_db(&e))?;
        Ok(outcome.into())
    }

    /// Updates quantities or merchandise of cart lines; quantity 0 removes a line.
    async fn cart_lines_update(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        lines: Vec<CartLineUpdateInput>,
    ) -> Result<CartLinesUpdatePayload> {
        let Some(token) = cart_token(&cart_id) else {
            return Ok(invalid_cart_id().into());
        };
        let updates: Vec<LineUpdate> = lines
            .iter()
            .map(|l| LineUpdate {
                line_id: ids::parse("CartLine", &l.id),
                merchandise_id: l
                    .merchandise_id
                    .as_ref()
                    .map(|m| ids::parse("ProductVariant", m)),
                quantity: l.quantity,
            })
            .collect();
        let mut conn = primary(ctx).await?;
        let outcome = cart::update_lines(&mut conn, &token, &updates, &cart_rules(ctx))
            .await
            .map_err(|e| from_db(&e))?;
        Ok(outcome.into())
    }

    /// Removes lines from a cart.
    async fn cart_lines_remove(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        line_ids: Vec<ID>,
    ) -> Result<CartLinesRemovePayload> {
        let Some(token) = cart_token(&cart_id) else {
            return Ok(invalid_cart_id().into());
        };
        let ids: Vec<Option<i64>> = line_ids
            .iter()
            .map(|id| ids::parse("CartLine", id))
            .collect();
        let mut conn = primary(ctx).await?;
        let outcome = cart::remove_lines(&mut conn, &token, &ids, &cart_rules(ctx))
            .await
            .map_err(|e| from_db(&e))?;
        Ok(outcome.into())
    }

    /// Completes the checkout of a cart: re-prices it, reserves stock for every line,
    /// authorizes the payment and creates the order, all or nothing. Retrying with the
    /// same `idempotencyKey` returns the same order.
    async fn cart_complete(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        input: CartCompleteInput,
    ) -> Result<CartCompletePayload> {
        use crate::checkout::{self, CheckoutErrorCode, CheckoutOutcome, CheckoutUserError};
        let Some(token) = cart_token(&cart_id) else {
            return Ok(CartCompletePayload::new(
                CheckoutOutcome {
                    order: None,
                    user_errors: vec![CheckoutUserError {
                        code: CheckoutErrorCode::CartNotFound,
                        field: vec!["cartId".into()],
                        message: "The cart ID is not valid.".into(),
                        lines: vec![],
                    }],
                    lines: None,
                },
                None,
            ));
        };
        let app = app_from(ctx);
        let input = checkout::CheckoutInput {
            email: input.email,
            shipping_address: input.shipping_address.into(),
            shipping_method: input.shipping_method,
            payment_token: input.payment_token,
            idempotency_key: input.idempotency_key,
        };
        let conn = primary(ctx).await?;
        let (mut outcome, mut conn) = app
            .complete_checkout(conn, token, input)
            .await
            .map_err(|e| from_db(&e))?;
        let created = outcome.lines.take();
        let lines = match &outcome.order {
            Some(_) if created.is_some() => created,
            Some(order) => Some(
                crate::orders::lines_of(&mut conn, order.id)
                    .await
                    .map_err(|e| from_db(&e.into()))?,
            ),
            None => None,
        };
        Ok(CartCompletePayload::new(outcome, lines))
    }
}
