//! The response cache: an in-process tier (moka) in front of a shared Redis tier, with
//! invalidation by entity tags.
//!
//! What may be cached is decided by the GraphQL layer (queries that are not personal);
//! what an entry depends on is recorded while it is computed (the tags of every entity
//! the resolvers read, see [`tags`]). Invalidation starts in PostgreSQL: triggers notify
//! every gateway of each committed change ([`listener`]), and each gateway marks the tags
//! invalidated in Redis and then in its own tier. The rule for both tiers is the same: an
//! entry is valid only while none of its tags was invalidated after its computation began
//! (see [`redis`]), so a computation racing a change is never trusted. TTLs are a backstop.
//!
//! Reads from a replica may trail the primary: an entry computed from a replica is not
//! stored while one of its tags was invalidated less than `REPLICA_MAX_LAG_MS` ago (the
//! replica may not have replayed that change yet; lagging replicas leave the rotation).

pub mod listener;
pub mod persisted;
pub mod redis;
mod settings;
pub mod tags;

pub use settings::{CacheSettings, PersistedQueryMode};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use redis::{RedisTier, Stored};

pub type Key = [u8; 32];

/// Where concurrent misses of one key meet: the first computes, the others wait.
pub type Slot = Arc<OnceCell<Option<Arc<Entry>>>>;

/// A cached response.
pub struct Entry {
    pub body: Bytes,
    pub tags: Arc<[String]>,
    /// A weak validator (compression may change the bytes, not the meaning).
    pub etag: String,
    /// The operation's name, for per-operation `Cache-Control`.
    pub operation: Option<String>,
    born_at: Instant,
}

/// An entity lookup behind responses (a product by handle, a price range…), kept in
/// this process under the same tag rules as responses.
#[derive(Clone)]
struct EntityEntry {
    value: Arc<dyn std::any::Any + Send + Sync>,
    tags: Arc<[String]>,
    born_at: Instant,
}

/// Taken before a computation reads anything.
pub struct Born {
    at: Instant,
    /// The Redis epoch and sequence number, when Redis answered.
    seq: Option<(i64, i64)>,
}

#[derive(Default)]
pub struct Counters {
    pub hits_local: AtomicU64,
    pub entity_hits: AtomicU64,
    pub hits_redis: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub not_stored: AtomicU64,
    pub coalesced: AtomicU64,
    pub invalidated_tags: AtomicU64,
    pub flushes: AtomicU64,
}

#[derive(Serialize)]
pub struct CacheStatus {
    pub enabled: bool,
    pub listening: bool,
    pub redis_healthy: bool,
    pub local_entries: u64,
    pub hits_local: u64,
    pub hits_redis: u64,
    pub entity_hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub not_stored: u64,
    pub coalesced: u64,
    pub invalidated_tags: u64,
    pub flushes: u64,
    pub redis_errors: u64,
    pub redis_breaker_trips: u64,
    pub cdn_purge_failures: u64,
}

pub struct ResponseCache {
    pub config: CacheSettings,
    local: moka::future::Cache<Key, Arc<Entry>>,
    entities: moka::future::Cache<String, EntityEntry>,
    pub redis: Option<Arc<RedisTier>>,
    /// When each tag was last invalidated (entries older than the local TTL plus the
    /// replica window are pruned: nothing that old can still be checked against them).
    invalidated: RwLock<HashMap<String, Instant>>,
    flushed_at: RwLock<Instant>,
    inflight: Mutex<HashMap<Key, Slot>>,
    replica_window: Duration,
    http: reqwest::Client,
    pub counters: Counters,
    purge_failures: Arc<AtomicU64>,
    /// The invalidation listener is in place: without it nothing is trusted or stored.
    listening: AtomicBool,
}

/// Hashes the parts of a cache key, each length-prefixed so no two splits collide.
pub fn key_of(parts: &[&[u8]]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("W/\"{}\"", hex::encode(&digest[..12]))
}

impl ResponseCache {
    pub fn new(config: CacheSettings, replica_window: Duration) -> anyhow::Result<Self> {
        let redis = if config.enabled {
            Some(Arc::new(RedisTier::connect(&config)?))
        } else {
            None
        };
        let local = moka::future::Cache::builder()
            .max_capacity(config.local_max_bytes)
            .weigher(|_k: &Key, e: &Arc<Entry>| {
                (e.body.len() + e.tags.iter().map(|t| t.len() + 24).sum::<usize>() + 128)
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .time_to_live(config.local_ttl)
            .build();
        let entities = moka::future::Cache::builder()
            .max_capacity(config.local_entities)
            .time_to_live(config.local_ttl)
            .build();
        Ok(Self {
            local,
            entities,
            redis,
            invalidated: RwLock::new(HashMap::new()),
            flushed_at: RwLock::new(Instant::now()),
            inflight: Mutex::new(HashMap::new()),
            replica_window,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            counters: Counters::default(),
            purge_failures: Arc::new(AtomicU64::new(0)),
            listening: AtomicBool::new(false),
            config,
        })
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Caching is on and the invalidation listener is in place.
    pub fn active(&self) -> bool {
        self.config.enabled && self.listening.load(Ordering::Acquire)
    }

    pub(crate) fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
    }

    fn last_invalidated(&self, tags: &[String]) -> Option<Instant> {
        let flushed = *self.flushed_at.read().unwrap_or_else(|e| e.into_inner());
        let map = self.invalidated.read().unwrap_or_else(|e| e.into_inner());
        tags.iter()
            .filter_map(|t| map.get(t).copied())
            .chain(std::iter::once(flushed))
            .max()
    }

    fn fresh(&self, entry: &Entry) -> bool {
        self.last_invalidated(&entry.tags)
            .is_none_or(|at| entry.born_at > at)
    }

    /// A valid entry for `key`, from the in-process tier or else from Redis.
    pub async fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        if !self.active() {
            return None;
        }
        if let Some(entry) = self.local.get(key).await {
            if self.fresh(&entry) {
                self.counters.hits_local.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("gateway_cache_hits_total", "cache" => "response", "tier" => "local")
                    .increment(1);
                return Some(entry);
            }
            self.local.invalidate(key).await;
        }
        let redis = self.redis.as_ref()?;
        let fetched_at = Instant::now();
        let stored = redis.get(&hex::encode(key)).await?;
        let entry = Arc::new(Entry {
            body: stored.body,
            tags: stored.tags.into(),
            etag: stored.etag,
            operation: Some(stored.operation).filter(|o| !o.is_empty()),
            born_at: fetched_at,
        });
        if !self.fresh(&entry) {
            return None;
        }
        self.local.insert(*key, entry.clone()).await;
        self.counters.hits_redis.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("gateway_cache_hits_total", "cache" => "response", "tier" => "redis")
            .increment(1);
        Some(entry)
    }

    /// A valid cached entity of type `V` under `key`, with its tags.
    pub async fn entity<V: Send + Sync + 'static>(
        &self,
        key: &str,
    ) -> Option<(Arc<V>, Arc<[String]>)> {
        if !self.active() {
            return None;
        }
        let note = |result: &'static str| {
            metrics::counter!("gateway_cache_requests_total", "cache" => "entity", "result" => result)
                .increment(1);
        };
        let Some(entry) = self.entities.get(key).await else {
            note("miss");
            return None;
        };
        let fresh = self
            .last_invalidated(&entry.tags)
            .is_none_or(|at| entry.born_at > at);
        if !fresh {
            self.entities.invalidate(key).await;
            note("miss");
            return None;
        }
        let Ok(value) = entry.value.downcast::<V>() else {
            note("miss");
            return None;
        };
        self.counters.entity_hits.fetch_add(1, Ordering::Relaxed);
        note("hit");
        metrics::counter!("gateway_cache_hits_total", "cache" => "entity", "tier" => "local")
            .increment(1);
        Some((value, entry.tags))
    }

    /// Keeps an entity loaded after `born` (see [`Self::store`] for when it is kept).
    pub async fn put_entity<V: Send + Sync + 'static>(
        &self,
        key: String,
        value: Arc<V>,
        tags: Vec<String>,
        born: Instant,
        via_replica: bool,
    ) {
        if !self.active() || !self.storable(born, &tags, via_replica) {
            return;
        }
        let entry = EntityEntry {
            value,
            tags: tags.into(),
            born_at: born,
        };
        self.entities.insert(key, entry).await;
    }

    /// Nothing `tags` names was invalidated since `born` (and, for replica reads, for
    /// the replica window before it).
    fn storable(&self, born: Instant, tags: &[String], via_replica: bool) -> bool {
        let window = if via_replica {
            self.replica_window
        } else {
            Duration::ZERO
        };
        self.last_invalidated(tags)
            .is_none_or(|at| born > at + window)
    }

    /// Call before computing a response that may be stored.
    pub async fn begin(&self) -> Born {
        let at = Instant::now();
        let seq = match &self.redis {
            Some(r) => r.begin().await,
            None => None,
        };
        Born { at, seq }
    }

    /// Stores a computed response when nothing it depends on changed since `born`.
    /// Returns the entry (with its ETag) either way.
    pub async fn store(
        &self,
        key: &Key,
        born: Born,
        tags: Vec<String>,
        body: Bytes,
        operation: Option<String>,
        via_replica: bool,
    ) -> Arc<Entry> {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            etag: etag_of(&body),
            operation,
            body,
            tags: tags.into(),
            born_at: born.at,
        });
        if !self.storable(born.at, &entry.tags, via_replica) || !self.active() {
            self.counters.not_stored.fetch_add(1, Ordering::Relaxed);
            return entry;
        }
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
        self.local.insert(*key, entry.clone()).await;
        if let (Some(redis), Some((epoch, seq))) = (self.redis.clone(), born.seq) {
            let stored = Stored {
                born: seq,
                etag: entry.etag.clone(),
                operation: entry.operation.clone().unwrap_or_default(),
                tags: entry.tags.to_vec(),
                body: entry.body.clone(),
            };
            let name = hex::encode(key);
            // The answer does not wait for Redis.
            tokio::spawn(async move { redis.put(&name, epoch, &stored).await });
        }
        entry
    }

    /// The shared slot through which concurrent misses of one key compute once.
    pub fn inflight(&self, key: &Key) -> Slot {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(*key)
            .or_default()
            .clone()
    }

    pub fn inflight_done(&self, key: &Key, cell: &Slot) {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            map.remove(key);
        }
    }

    pub fn note_coalesced(&self) {
        self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("gateway_cache_coalesced_total", "cache" => "response").increment(1);
    }

    /// `gateway_redis_up` and `gateway_redis_breaker_trips_total` (at scrape time).
    pub fn record_gauges(&self) {
        if let Some(redis) = &self.redis {
            let up = if redis.is_healthy() { 1.0 } else { 0.0 };
            metrics::gauge!("gateway_redis_up").set(up);
            metrics::counter!("gateway_redis_breaker_trips_total")
                .absolute(redis.breaker_trips.load(Ordering::Relaxed));
        }
    }

    /// Invalidates `tags` (`*` = everything): Redis first, then this process, so that
    /// no entry fetched from Redis after this returns can carry a dropped tag. Returns
    /// false when Redis could not be told (the shared tier must move to a new epoch).
    pub async fn invalidate(&self, tags: &[String]) -> bool {
        if tags.is_empty() {
            return true;
        }
        let shared = match &self.redis {
            Some(redis) => redis.invalidate(tags).await,
            None => true,
        };
        let now = Instant::now();
        if tags.iter().any(|t| t == "*") {
            *self.flushed_at.write().unwrap_or_else(|e| e.into_inner()) = now;
            self.local.invalidate_all();
            self.entities.invalidate_all();
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("gateway_cache_flushes_total").increment(1);
        } else {
            let mut map = self.invalidated.write().unwrap_or_else(|e| e.into_inner());
            for t in tags {
                map.insert(t.clone(), now);
            }
            if map.len() > 50_000 {
                let horizon = self.config.local_ttl + self.replica_window + Duration::from_secs(1);
                map.retain(|_, at| now.duration_since(*at) < horizon);
            }
        }
        self.counters
            .invalidated_tags
            .fetch_add(tags.len() as u64, Ordering::Relaxed);
        // One tag set empties both tiers of responses and the entity tier.
        metrics::counter!("gateway_cache_invalidations_total", "cache" => "response")
            .increment(tags.len() as u64);
        metrics::counter!("gateway_cache_invalidations_total", "cache" => "entity")
            .increment(tags.len() as u64);
        self.purge_cdn(tags);
        shared
    }

    /// Moves the shared tier to `epoch` (from the database); drops this process's tier,
    /// which may hold entries fetched from the old one.
    pub fn set_epoch(&self, epoch: i64) {
        if let Some(redis) = &self.redis
            && redis.set_epoch(epoch)
        {
            self.invalidate_local_all();
            tracing::info!(epoch, "shared cache moved to a new epoch");
        }
    }

    /// Drops this process's tier (its invalidations may have been missed).
    pub fn invalidate_local_all(&self) {
        metrics::counter!("gateway_cache_flushes_total").increment(1);
        *self.flushed_at.write().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.local.invalidate_all();
        self.entities.invalidate_all();
    }

    /// Asks the configured CDN to drop what carries `tags` (in the background).
    fn purge_cdn(&self, tags: &[String]) {
        let Some(url) = self.config.cdn_purge_url.clone() else {
            return;
        };
        let body = if tags.iter().any(|t| t == "*") {
            serde_json::json!({ "all": true })
        } else {
            serde_json::json!({ "tags": tags })
        };
        let mut request = self.http.post(url).json(&body);
        if let Some(token) = &self.config.cdn_purge_token {
            request = request.bearer_auth(token);
        }
        let request = request.send();
        let tags_n = tags.len();
        let purge_failures = self.purge_failures.clone();
        tokio::spawn(async move {
            let ok = match request.await {
                Ok(r) if r.status().is_success() => true,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), tags = tags_n, "CDN purge refused");
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, tags = tags_n, "CDN purge failed");
                    false
                }
            };
            if !ok {
                purge_failures.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    pub fn status(&self) -> CacheStatus {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStatus {
            enabled: self.enabled(),
            listening: self.listening.load(Ordering::Acquire),
            redis_healthy: self.redis.as_ref().is_some_and(|r| r.is_healthy()),
            local_entries: self.local.entry_count(),
            hits_local: get(&c.hits_local),
            hits_redis: get(&c.hits_redis),
            entity_hits: get(&c.entity_hits),
            misses: get(&c.misses),
            stores: get(&c.stores),
            not_stored: get(&c.not_stored),
            coalesced: get(&c.coalesced),
            invalidated_tags: get(&c.invalidated_tags),
            flushes: get(&c.flushes),
            redis_errors: self.redis.as_ref().map_or(0, |r| get(&r.errors)),
            redis_breaker_trips: self.redis.as_ref().map_or(0, |r| get(&r.breaker_trips)),
            cdn_purge_failures: get(&self.purge_failures),
        }
    }
}
