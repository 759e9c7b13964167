//! The admin schema's roots: thin resolvers, one file per resource (`products_api`,
//! `collections_api`, `inventory_api`, `orders_api`, `partners_api`), merged into one
//! query and one mutation root. Which scope each field needs is in
//! [`super::scopes::REQUIRED`]; the check runs before execution.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MergedObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::types::*;
use crate::app::App;
use crate::catalog::writer::{ImageDraft, ProductDraft, VariantDraft};
use crate::catalog::{edit, records};
use crate::db::PgConn;
use crate::graphql::errors::{bad_input, from_db};
use crate::ids;
use crate::inventory::levels;
use crate::orders::{self, transitions};
use crate::pagination::Cursor;
use crate::partners::{self, AdminError, keys, webhooks};

mod collections_api;
mod inventory_api;
mod orders_api;
mod partners_api;
mod products_api;

// The admin API's query root: one object per resource, merged. (Plain comments: a doc
// comment here would become the type's description in the served schema.)
#[derive(MergedObject, Default)]
#[graphql(name = "QueryRoot")]
pub struct AdminQuery(
    products_api::ProductsQuery,
    collections_api::CollectionsQuery,
    inventory_api::InventoryQuery,
    orders_api::OrdersQuery,
    partners_api::PartnersQuery,
);

// The admin API's mutation root: one object per resource, merged; fields run one after
// another, as GraphQL requires of mutations.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation", serial)]
pub struct AdminMutation(
    products_api::ProductsMutation,
    collections_api::CollectionsMutation,
    inventory_api::InventoryMutation,
    orders_api::OrdersMutation,
    partners_api::PartnersMutation,
);

fn app<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    ctx.data_unchecked::<Arc<App>>()
}

fn request<'a>(ctx: &Context<'a>) -> &'a AdminRequest {
    ctx.data_unchecked::<AdminRequest>()
}

fn actor(ctx: &Context<'_>) -> partners::Actor {
    request(ctx).key.actor()
}

/// Whose webhook subscriptions a key sees and deletes: its own, or all with `admin`.
fn owner(ctx: &Context<'_>) -> Option<i64> {
    let key = &request(ctx).key;
    (!keys::grants(&key.scopes, "admin")).then_some(key.id)
}

async fn primary(ctx: &Context<'_>) -> Result<PgConn> {
    app(ctx)
        .db
        .primary(&request(ctx).counter)
        .await
        .map_err(|e| from_db(&e))
}

fn db(e: diesel::result::Error) -> async_graphql::Error {
    from_db(&e.into())
}

/// A global ID of `kind` (or a bare number) as a database id.
fn id_of(kind: &str, id: &ID) -> Result<i64> {
    ids::parse_any(kind, id.as_str())
        .ok_or_else(|| bad_input(format!("{:?} is not a {kind} ID.", id.as_str())))
}

fn ids_of(kind: &str, list: &[ID]) -> Result<Vec<i64>> {
    list.iter().map(|i| id_of(kind, i)).collect()
}

fn after_id(after: Option<&str>) -> Result<Option<i64>> {
    after
        .map(|a| Cursor::decode(a).map(|c| c.id))
        .transpose()
        .map_err(crate::graphql::errors::from_page)
}

fn check_first(first: i32) -> Result<i64> {
    if !(0..=250).contains(&first) {
        return Err(crate::graphql::errors::coded(
            "MAX_PAGE_SIZE_EXCEEDED",
            "first must be between 0 and 250.",
        ));
    }
    Ok(first as i64)
}

fn cursor(id: i64) -> Cursor {
    Cursor::new("ID", serde_json::Value::Null, id)
}

/// Splits a domain result into the payload's value and `userErrors` (database errors
/// become GraphQL errors).
fn split<T>(r: Result<T, AdminError>) -> Result<(Option<T>, Vec<UserError>)> {
    match r {
        Ok(v) => Ok((Some(v), vec![])),
        Err(AdminError::Input(errors)) => Ok((None, errors.into_iter().map(Into::into).collect())),
        Err(AdminError::Db(e)) => Err(db(e)),
    }
}

fn user_error(field: &str, code: &str, message: impl Into<String>) -> UserError {
    UserError {
        field: Some(vec![field.to_string()]),
        message: message.into(),
        code: code.to_string(),
    }
}

#[derive(SimpleObject)]
pub struct DeletePayload {
    pub deleted_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

/// The outcome of an update that may match no row: whether it did, and the user errors
/// (`NOT_FOUND` naming `what` when it did not).
fn updated(r: Result<bool, AdminError>, what: &str) -> Result<(bool, Vec<UserError>)> {
    let (found, mut user_errors) = split(r)?;
    if found == Some(false) {
        user_errors.push(user_error("id", "NOT_FOUND", format!("No such {what}.")));
    }
    Ok((found == Some(true), user_errors))
}

fn deleted(id: ID, r: Result<bool, AdminError>, what: &str) -> Result<DeletePayload> {
    let (found, user_errors) = updated(r, what)?;
    Ok(DeletePayload {
        deleted_id: found.then_some(id),
        user_errors,
    })
}

fn money(field: &[&str], text: &str, currency: &str) -> Result<i64, AdminError> {
    crate::money::parse_minor(text.trim(), currency)
        .filter(|m| *m >= 0)
        .ok_or_else(|| {
            AdminError::input(
                field,
                "INVALID",
                format!("{text:?} is not an amount in {currency}."),
            )
        })
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct SeoInput {
    pub title: Option<String>,
    pub description: Option<String>,
}

/// An optional ID where an empty string means "none": `Some(None)` clears.
fn clearable(kind: &str, text: &Option<String>) -> Result<Option<Option<i64>>> {
    match text.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(t) => Ok(Some(Some(id_of(kind, &ID::from(t))?))),
    }
}
