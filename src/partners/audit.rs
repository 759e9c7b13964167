//! The audit log: one row per admin change (which key, when, what changed), written in
//! the change's own transaction so the log never misses or invents a change.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::Actor;
use crate::db::schema::audit_log;

pub async fn record(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    action: &str,
    resource_type: &str,
    resource_id: Option<String>,
    changes: Value,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::api_key_id.eq(actor.key_id),
            audit_log::actor.eq(&actor.name),
            audit_log::action.eq(action),
            audit_log::resource_type.eq(resource_type),
            audit_log::resource_id.eq(resource_id),
            audit_log::changes.eq(changes),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = audit_log)]
pub struct Entry {
    pub id: i64,
    pub api_key_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub changes: Value,
    pub created_at: DateTime<Utc>,
}

/// Entries after `after` (an id), newest first when `reverse`, optionally of one key,
/// one action or one resource; `limit + 1` rows are read to tell if more follow.
pub async fn list(
    conn: &mut AsyncPgConnection,
    after: Option<i64>,
    limit: i64,
    reverse: bool,
    key_id: Option<i64>,
    resource_id: Option<&str>,
) -> QueryResult<Vec<Entry>> {
    let mut query = audit_log::table.select(Entry::as_select()).into_boxed();
    if let Some(after) = after {
        query = if reverse {
            query.filter(audit_log::id.lt(after))
        } else {
            query.filter(audit_log::id.gt(after))
        };
    }
    if let Some(key_id) = key_id {
        query = query.filter(audit_log::api_key_id.eq(key_id));
    }
    if let Some(resource_id) = resource_id {
        query = query.filter(audit_log::resource_id.eq(resource_id));
    }
    query = if reverse {
        query.order(audit_log::id.desc())
    } else {
        query.order(audit_log::id.asc())
    };
    query.limit(limit + 1).load(conn).await
}
