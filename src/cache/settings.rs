//! The response cache's settings (`CACHE_*`, `REDIS_*`, `CDN_*`, `PERSISTED_*`, `APQ_*`).
//! [`crate::config`] reads them from the environment; the defaults here are the documented
//! ones and work on a developer machine.

use std::time::Duration;

/// How persisted queries are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersistedQueryMode {
    /// Automatic persisted queries (Apollo APQ) plus free-form documents.
    Automatic,
    /// Only operations registered from a manifest or by `persisted-queries register`.
    AllowList,
}

/// The response cache, persisted queries and CDN headers.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// `CACHE_ENABLED`: cache storefront responses (Redis and in-process).
    pub enabled: bool,
    /// `REDIS_URL`: `redis://`, `rediss://`, `redis-sentinel://` or `redis-cluster://`.
    pub redis_url: String,
    /// `REDIS_TIMEOUT_MS`: the longest a request waits on Redis before using the database.
    pub redis_timeout: Duration,
    /// `REDIS_BREAKER_OPEN_MS`: after repeated Redis failures, how long Redis is left alone.
    pub breaker_open: Duration,
    /// `CACHE_KEY_PREFIX`: prefix of every Redis key (one per store sharing a Redis).
    pub key_prefix: String,
    /// `CACHE_TTL_SECS`: lifetime of a Redis entry (a backstop; invalidation is by tags).
    pub ttl: Duration,
    /// `CACHE_LOCAL_TTL_SECS`: lifetime of an in-process entry.
    pub local_ttl: Duration,
    /// `CACHE_LOCAL_MAX_MB`: memory for the in-process tier.
    pub local_max_bytes: u64,
    /// `CACHE_LOCAL_ENTITIES`: entity lookups kept in process (products, price ranges…).
    pub local_entities: u64,
    /// `CACHE_CONTROL`: `Cache-Control` of persisted queries sent with GET.
    pub cache_control: String,
    /// `CACHE_CONTROL_BY_OPERATION`: JSON object, operation name → `Cache-Control`.
    pub cache_control_by_operation: std::collections::HashMap<String, String>,
    /// `CDN_PURGE_URL`: POSTed `{"tags": [...]}` (or `{"all": true}`) on every invalidation.
    pub cdn_purge_url: Option<String>,
    /// `CDN_PURGE_TOKEN`: sent as a bearer token with purge calls.
    pub cdn_purge_token: Option<String>,
    /// `PERSISTED_QUERIES`: `automatic` or `allowlist`.
    pub persisted_queries: PersistedQueryMode,
    /// `PERSISTED_QUERY_MANIFEST`: an Apollo persisted-query manifest registered at start.
    pub manifest: Option<std::path::PathBuf>,
    /// `APQ_TTL_SECS`: how long Redis keeps an automatically persisted document.
    pub apq_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_timeout: Duration::from_millis(50),
            breaker_open: Duration::from_millis(1_000),
            key_prefix: "cg".into(),
            ttl: Duration::from_secs(3_600),
            local_ttl: Duration::from_secs(60),
            local_max_bytes: 64 * 1024 * 1024,
            local_entities: 50_000,
            cache_control: "public, max-age=0, s-maxage=60, stale-while-revalidate=30".into(),
            cache_control_by_operation: Default::default(),
            cdn_purge_url: None,
            cdn_purge_token: None,
            persisted_queries: PersistedQueryMode::Automatic,
            manifest: None,
            apq_ttl: Duration::from_secs(7 * 24 * 3_600),
        }
    }
}
