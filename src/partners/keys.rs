//! API keys: `cg_<prefix>_<secret>`, 256 random bits of secret. Only the SHA-256 of the
//! whole key is stored; the public prefix finds the row and the digest is compared in
//! constant time. Every request is checked against the primary database, so a revoked or
//! expired key stops working at once on every instance.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Actor, AdminError, audit};
use crate::db::schema::api_keys;

diesel::define_sql_function!(
    /// SQL's `COALESCE` of two timestamps (a revocation keeps its first time).
    fn coalesce(
        x: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        y: diesel::sql_types::Timestamptz,
    ) -> diesel::sql_types::Timestamptz;
);

/// Every scope a key can hold. `write_x` includes `read_x`; `admin` manages keys and
/// reads the audit log.
pub const SCOPES: &[&str] = &[
    "read_products",
    "write_products",
    "read_inventory",
    "write_inventory",
    "read_orders",
    "write_orders",
    "read_webhooks",
    "write_webhooks",
    "admin",
];

/// Whether `held` grants `needed` (`write_x` grants `read_x`).
pub fn grants(held: &[String], needed: &str) -> bool {
    held.iter().any(|s| {
        s == needed
            || needed
                .strip_prefix("read_")
                .is_some_and(|r| s.strip_prefix("write_") == Some(r))
    })
}

/// A key as partners and the CLI see it (never its secret's digest).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn actor(&self) -> Actor {
        Actor {
            key_id: Some(self.id),
            name: self.name.clone(),
        }
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A new key's fields.
pub struct NewKey<'a> {
    pub name: &'a str,
    pub scopes: &'a [String],
    pub plan: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Validates and creates a key; returns it with its secret (shown once, never stored).
pub async fn create(
    conn: &mut AsyncPgConnection,
    new: &NewKey<'_>,
    plans: &[String],
    actor: &Actor,
) -> Result<(ApiKey, String), AdminError> {
    let mut errors = Vec::new();
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 {
        errors.push(super::UserError::new(
            &["name"],
            "INVALID",
            "The name must be 1 to 100 characters.",
        ));
    }
    if new.scopes.is_empty() {
        errors.push(super::UserError::new(
            &["scopes"],
            "INVALID",
            "A key needs at least one scope.",
        ));
    }
    for s in new.scopes {
        if !SCOPES.contains(&s.as_str()) {
            errors.push(super::UserError::new(
                &["scopes"],
                "INVALID",
                format!("Unknown scope {s:?}; scopes: {}.", SCOPES.join(", ")),
            ));
        }
    }
    if !plans.iter().any(|p| p == new.plan) {
        errors.push(super::UserError::new(
            &["plan"],
            "INVALID",
            format!("Unknown plan {:?}; plans: {}.", new.plan, plans.join(", ")),
        ));
    }
    if new.expires_at.is_some_and(|e| e <= Utc::now()) {
        errors.push(super::UserError::new(
            &["expiresAt"],
            "INVALID",
            "The expiry must be in the future.",
        ));
    }
    if !errors.is_empty() {
        return Err(AdminError::Input(errors));
    }
    let mut scopes: Vec<String> = new.scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let mut prefix = [0u8; 6];
    let mut secret = [0u8; 32];
    {
        let mut rng = rand::rng();
        rng.fill_bytes(&mut prefix);
        rng.fill_bytes(&mut secret);
    }
    use base64::Engine;
    let prefix = hex::encode(prefix);
    let secret = format!(
        "cg_{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = digest(&secret);
    use diesel_async::AsyncConnection;
    let key = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let key: ApiKey = diesel::insert_into(api_keys::table)
                .values((
                    api_keys::name.eq(name),
                    api_keys::prefix.eq(&prefix),
                    api_keys::secret_hash.eq(&hash[..]),
                    api_keys::scopes.eq(&scopes),
                    api_keys::plan.eq(new.plan),
                    api_keys::expires_at.eq(new.expires_at),
                    api_keys::created_by.eq(actor.key_id),
                ))
                .returning(ApiKey::as_returning())
                .get_result(conn)
                .await?;
            audit::record(
                conn,
                actor,
                "apiKeyCreate",
                "ApiKey",
                Some(key.id.to_string()),
                serde_json::json!({ "name": key.name, "prefix": key.prefix, "scopes": key.scopes,
                                    "plan": key.plan, "expiresAt": key.expires_at }),
            )
            .await?;
            Ok(key)
        })
        .await?;
    Ok((key, secret))
}

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .order(api_keys::id)
        .select(ApiKey::as_select())
        .load(conn)
        .await
}

/// Finds a key by id or prefix.
pub async fn find(conn: &mut AsyncPgConnection, id_or_prefix: &str) -> QueryResult<Option<ApiKey>> {
    let id: Option<i64> = id_or_prefix.parse().ok();
    api_keys::table
        .filter(
            api_keys::id
                .nullable()
                .eq(id)
                .or(api_keys::prefix.eq(id_or_prefix)),
        )
        .order(api_keys::id)
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()
}

/// Revokes a key (idempotent); `None` when there is no such key.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    id: i64,
    actor: &Actor,
) -> QueryResult<Option<ApiKey>> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let key: Option<ApiKey> = diesel::update(api_keys::table.find(id))
            .set(
                api_keys::revoked_at
                    .eq(coalesce(api_keys::revoked_at, diesel::dsl::now).nullable()),
            )
            .returning(ApiKey::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        if let Some(k) = &key {
            audit::record(
                conn,
                actor,
                "apiKeyRevoke",
                "ApiKey",
                Some(k.id.to_string()),
                serde_json::json!({ "revokedAt": k.revoked_at }),
            )
            .await?;
        }
        Ok(key)
    })
    .await
}

/// Why a presented key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a key of ours (malformed, unknown prefix, wrong secret).
    Unknown,
    Revoked,
    Expired,
}

/// Checks a presented key. The digest comparison takes the same time whatever the
/// secret; a malformed key still costs one digest so timing does not tell them apart.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    presented: &str,
) -> QueryResult<Result<ApiKey, Refused>> {
    let presented_hash = digest(presented);
    let prefix = presented
        .strip_prefix("cg_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(p, _)| p)
        .filter(|p| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    let Some(prefix) = prefix else {
        return Ok(Err(Refused::Unknown));
    };
    let row: Option<(ApiKey, Vec<u8>)> = api_keys::table
        .filter(api_keys::prefix.eq(prefix))
        .select((ApiKey::as_select(), api_keys::secret_hash))
        .first(conn)
        .await
        .optional()?;
    let Some((key, secret_hash)) = row else {
        return Ok(Err(Refused::Unknown));
    };
    if !bool::from(secret_hash.as_slice().ct_eq(&presented_hash[..])) {
        return Ok(Err(Refused::Unknown));
    }
    if key.revoked_at.is_some() {
        return Ok(Err(Refused::Revoked));
    }
    if key.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Ok(Err(Refused::Expired));
    }
    Ok(Ok(key))
}

/// Records that a key was used, at most once a minute per key (a write per request
/// would make every partner request a database write).
pub async fn touch(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    // Raw SQL: the database's clock decides "a minute ago" (diesel's `now` is a
    // `timestamp`, which does not compare with this `timestamptz` column).
    diesel::sql_query(
        "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')",
    )
    .bind::<diesel::sql_types::BigInt, _>(id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_scopes_include_read() {
        let held = vec!["write_products".to_string()];
        assert!(grants(&held, "read_products"));
        assert!(grants(&held, "write_products"));
        assert!(!grants(&held, "read_orders"));
        assert!(!grants(&["read_products".to_string()], "write_products"));
    }
}
