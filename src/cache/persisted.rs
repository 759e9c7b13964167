//! Persisted queries: Apollo's automatic persisted queries (APQ) and an allow-list.
//!
//! APQ: a client sends `extensions.persistedQuery.sha256Hash` alone; an unknown hash is
//! answered with `PersistedQueryNotFound`, and the client sends hash and document once,
//! after which every instance knows it (Redis, `APQ_TTL_SECS`). Registered operations
//! (an Apollo persisted-query manifest, or `commerce-gateway persisted-queries register`)
//! live in PostgreSQL and never expire. With `PERSISTED_QUERIES=allowlist`, only those run.

use std::sync::Arc;

use async_graphql::{Request, ServerError, Value};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::redis::RedisTier;
use super::{CacheSettings, PersistedQueryMode};
use crate::db::Db;
use crate::db::schema::persisted_queries;

/// One registered operation.
#[derive(Clone, Debug)]
pub struct Registered {
    pub document: Arc<str>,
    pub name: Option<String>,
}

/// How long a gateway believes a hash is not registered (an operation registered on the
/// command line is accepted everywhere within this).
const NEGATIVE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

pub struct PersistedQueries {
    mode: PersistedQueryMode,
    apq_ttl: std::time::Duration,
    registered: moka::future::Cache<String, Registered>,
    /// Hashes PostgreSQL did not know lately (so unknown hashes cost no query each).
    unregistered: moka::future::Cache<String, ()>,
    automatic: moka::future::Cache<String, Arc<str>>,
    redis: Option<Arc<RedisTier>>,
}

/// What resolving a request's persisted query found.
#[derive(Default)]
pub struct Persisted {
    /// The request named its document by hash.
    pub by_hash: bool,
    /// The operation's registered name, if any.
    pub name: Option<String>,
}

fn error(code: &str, message: &str) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn requested_hash(request: &Request) -> Result<Option<String>, ServerError> {
    let Some(ext) = request.extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let Value::Object(ext) = ext else {
        return Err(error(
            "PERSISTED_QUERY_INVALID",
            "extensions.persistedQuery must be an object with version and sha256Hash.",
        ));
    };
    if ext.get("version") != Some(&Value::from(1)) {
        return Err(error(
            "PERSISTED_QUERY_INVALID",
            "Only persisted query version 1 is supported.",
        ));
    }
    match ext.get("sha256Hash") {
        Some(Value::String(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(h.to_ascii_lowercase()))
        }
        _ => Err(error(
            "PERSISTED_QUERY_INVALID",
            "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits.",
        )),
    }
}

impl PersistedQueries {
    pub fn new(config: &CacheSettings, redis: Option<Arc<RedisTier>>) -> Self {
        Self {
            mode: config.persisted_queries,
            apq_ttl: config.apq_ttl,
            registered: moka::future::Cache::builder().max_capacity(100_000).build(),
            unregistered: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(NEGATIVE_TTL)
                .build(),
            automatic: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(config.apq_ttl.min(std::time::Duration::from_secs(3_600)))
                .build(),
            redis,
        }
    }

    async fn registered(&self, db: &Db, hash: &str) -> Option<Registered> {
        if let Some(r) = self.registered.get(hash).await {
            return Some(r);
        }
        if self.unregistered.contains_key(hash) {
            return None;
        }
        let looked_up = async {
            let mut conn = db.primary(&Default::default()).await?;
            Ok::<_, crate::db::DbError>(
                persisted_queries::table
                    .find(hash)
                    .select((persisted_queries::document, persisted_queries::name))
                    .first::<(String, Option<String>)>(&mut conn)
                    .await
                    .optional()?,
            )
        };
        let row = match looked_up.await {
            Ok(row) => row,
            Err(e) => {
                // Not remembered as unknown: the next request asks again.
                tracing::warn!(error = %e, "cannot look up a registered persisted query");
                return None;
            }
        };
        let Some((document, name)) = row else {
            self.unregistered.insert(hash.to_string(), ()).await;
            return None;
        };
        let r = Registered {
            document: document.into(),
            name,
        };
        self.registered.insert(hash.to_string(), r.clone()).await;
        Some(r)
    }

    async fn automatic(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(d) = self.automatic.get(hash).await {
            return Some(d);
        }
        let redis = self.redis.as_ref()?;
        let document: Arc<str> = redis
            .get_text(&redis.lasting_key("apq", hash))
            .await?
            .into();
        // Redis is shared: check what it holds before running it.
        if sha256_hex(&document) != hash {
            return None;
        }
        self.automatic
            .insert(hash.to_string(), document.clone())
            .await;
        Some(document)
    }

    /// Fills in the request's document from its hash, or refuses the request.
    pub async fn resolve(&self, db: &Db, request: &mut Request) -> Result<Persisted, ServerError> {
        let hash = requested_hash(request)?;
        let Some(hash) = hash else {
            if self.mode == PersistedQueryMode::AllowList {
                return Err(error(
                    "PERSISTED_QUERY_ID_REQUIRED",
                    "This store only runs registered operations: send extensions.persistedQuery.sha256Hash.",
                ));
            }
            return Ok(Persisted::default());
        };
        // The common case first, without a statement: a document this gateway knows.
        if self.mode == PersistedQueryMode::Automatic
            && request.query.is_empty()
            && !self.registered.contains_key(&hash)
            && let Some(document) = self.automatic.get(&hash).await
        {
            note_lookup("hit");
            request.query = document.to_string();
            return Ok(Persisted {
                by_hash: true,
                name: None,
            });
        }
        if let Some(r) = self.registered(db, &hash).await {
            note_lookup("hit");
            request.query = r.document.to_string();
            return Ok(Persisted {
                by_hash: true,
                name: r.name,
            });
        }
        if self.mode == PersistedQueryMode::AllowList {
            return Err(error(
                "PERSISTED_QUERY_NOT_IN_LIST",
                "The operation is not registered with this store.",
            ));
        }
        if request.query.is_empty() {
            return match self.automatic(&hash).await {
                Some(document) => {
                    note_lookup("hit");
                    request.query = document.to_string();
                    Ok(Persisted {
                        by_hash: true,
                        name: None,
                    })
                }
                None => {
                    note_lookup("miss");
                    Err(error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"))
                }
            };
        }
        if sha256_hex(&request.query) != hash {
            return Err(error(
                "PERSISTED_QUERY_HASH_MISMATCH",
                "provided sha does not match query",
            ));
        }
        let document: Arc<str> = request.query.as_str().into();
        self.automatic.insert(hash.clone(), document).await;
        if let Some(redis) = &self.redis {
            redis
                .set_text(
                    &redis.lasting_key("apq", &hash),
                    &request.query,
                    self.apq_ttl,
                )
                .await;
        }
        Ok(Persisted {
            by_hash: true,
            name: None,
        })
    }
}

/// An Apollo persisted-query manifest (`apollo-persisted-query-manifest`, version 1).
#[derive(Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub operations: Vec<ManifestOperation>,
}

#[derive(Deserialize)]
pub struct ManifestOperation {
    pub id: String,
    pub name: Option<String>,
    pub body: String,
}

impl Manifest {
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a persisted-query manifest", path.display()))?;
        if manifest.format != "apollo-persisted-query-manifest" || manifest.version != 1 {
            anyhow::bail!(
                "{}: expected format apollo-persisted-query-manifest, version 1",
                path.display()
            );
        }
        for op in &manifest.operations {
            let parsed = async_graphql::parser::parse_query(&op.body);
            if let Err(e) = parsed {
                anyhow::bail!("operation {:?} does not parse: {e}", op.name);
            }
            if sha256_hex(&op.body) != op.id.to_ascii_lowercase() {
                anyhow::bail!(
                    "operation {:?}: id {} is not the SHA-256 of its body",
                    op.name,
                    op.id
                );
            }
        }
        Ok(manifest)
    }
}

/// Registers (or renames) every operation of `manifest`; returns how many.
pub async fn register(conn: &mut AsyncPgConnection, manifest: &Manifest) -> QueryResult<usize> {
    use diesel::upsert::excluded;
    let rows: Vec<_> = manifest
        .operations
        .iter()
        .map(|op| {
            (
                persisted_queries::hash.eq(op.id.to_ascii_lowercase()),
                persisted_queries::document.eq(&op.body),
                persisted_queries::name.eq(op.name.as_deref()),
            )
        })
        .collect();
    let mut n = 0;
    for chunk in rows.chunks(1_000) {
        n += diesel::insert_into(persisted_queries::table)
            .values(chunk)
            .on_conflict(persisted_queries::hash)
            .do_update()
            .set(persisted_queries::name.eq(excluded(persisted_queries::name)))
            .execute(conn)
            .await?;
    }
    Ok(n)
}

/// Every registered operation: (hash, name).
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, Option<String>)>> {
    persisted_queries::table
        .select((persisted_queries::hash, persisted_queries::name))
        .order(persisted_queries::registered_at)
        .load(conn)
        .await
}

/// `gateway_cache_requests_total{cache="persisted_query"}`: a hash was turned into its
/// document (`hit`) or was unknown (`miss`, the client then registers it).
fn note_lookup(result: &'static str) {
    metrics::counter!("gateway_cache_requests_total", "cache" => "persisted_query", "result" => result)
        .increment(1);
}
