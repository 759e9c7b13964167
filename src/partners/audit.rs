//! The audit log: one row per admin change (which key, when, what changed), written in
//! the change's own transaction so the log never misses or invents a change.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::Actor;

pub async fn record(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    action: &str,
    resource_type: &str,
    resource_id: Option<String>,
    changes: Value,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO audit_log (api_key_id, actor, action, resource_type, resource_id, changes) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind::<Nullable<BigInt>, _>(actor.key_id)
    .bind::<Text, _>(&actor.name)
    .bind::<Text, _>(action)
    .bind::<Text, _>(resource_type)
    .bind::<Nullable<Text>, _>(resource_id)
    .bind::<Jsonb, _>(changes)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName, Debug, Clone)]
pub struct Entry {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub api_key_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub actor: String,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Text)]
    pub resource_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_id: Option<String>,
    #[diesel(sql_type = Jsonb)]
    pub changes: Value,
    #[diesel(sql_type = Timestamptz)]
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
    let sql = format!(
        "SELECT id, api_key_id, actor, action, resource_type, resource_id, changes, created_at \
         FROM audit_log WHERE ($1::int8 IS NULL OR id {cmp} $1) \
           AND ($2::int8 IS NULL OR api_key_id = $2) AND ($3::text IS NULL OR resource_id = $3) \
         ORDER BY id {dir} LIMIT $4",
        cmp = if reverse { "<" } else { ">" },
        dir = if reverse { "DESC" } else { "ASC" },
    );
    diesel::sql_query(sql)
        .bind::<Nullable<BigInt>, _>(after)
        .bind::<Nullable<BigInt>, _>(key_id)
        .bind::<Nullable<Text>, _>(resource_id)
        .bind::<BigInt, _>(limit + 1)
        .load(conn)
        .await
}
