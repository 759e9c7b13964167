//! Catalog writes of the admin API: products (one or in bulk), variants and their prices,
//! images ([`products`]); collections and their products, categories ([`collections`]).
//! Each call is one transaction with its audit entry.

mod collections;
mod products;

pub use collections::*;
pub use products::*;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::partners::{Actor, AdminError, audit, constraint};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Deletes a row of `table` by id, with its audit entry; whether it existed.
async fn delete_row(
    conn: &mut AsyncPgConnection,
    table: &'static str,
    resource: &'static str,
    action: &'static str,
    id: i64,
    actor: &Actor,
) -> Result<bool, AdminError> {
    conn.transaction::<_, AdminError, _>(async |conn| {
        let n = diesel::sql_query(format!("DELETE FROM {table} WHERE id = $1"))
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await
            .map_err(|e| constraint(e, &["id"]))?;
        if n > 0 {
            audit::record(
                conn,
                actor,
                action,
                resource,
                Some(id.to_string()),
                json!({}),
            )
            .await?;
        }
        Ok(n > 0)
    })
    .await
}

/// A handle from a title: lowercase ASCII words joined by `-`.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(200).collect()
}
