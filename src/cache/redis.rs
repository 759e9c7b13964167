//! The shared tier: responses in Redis, checked against per-tag invalidation sequence
//! numbers, behind a circuit breaker.
//!
//! Validity without scanning: `{p}:{epoch}:seq` is a counter. A computation takes a fresh
//! number (`born`) before it reads the database; an invalidation takes a fresh number and
//! writes it to `{p}:{epoch}:t:{tag}` for each tag (and `…:t:*` to drop everything).
//! Entries are `{p}:{epoch}:r:{key}`. An entry is valid
//! while every one of its tags (and `*`) was last invalidated before it was born. A
//! computation that overlaps an invalidation is therefore never trusted, whatever the
//! interleaving, and purging is O(tags changed), not O(entries). A Redis that restarted
//! empty shows a counter below the entry's `born`, which also invalidates it.
//!
//! Every command has a deadline (`REDIS_TIMEOUT_MS`); repeated failures open the breaker
//! for `REDIS_BREAKER_OPEN_MS`, during which Redis is not tried at all. Keys live under an
//! epoch kept in PostgreSQL (`cache_epoch`): an invalidation that could not be written
//! moves every gateway to the next epoch (see [`super::listener`]), so entries that
//! missed it are never read again. An entry is stored in the epoch its computation began
//! in, so one that straddles a move stays behind in the old epoch.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fred::prelude::*;
use fred::types::Expiration;

use super::CacheSettings;
use crate::breaker::Breaker;

pub struct RedisTier {
    client: Client,
    /// `host:port` of the server (span attribute).
    server: String,
    prefix: String,
    timeout: Duration,
    ttl: Duration,
    /// Open after repeated failures: requests skip Redis for `REDIS_BREAKER_OPEN_MS`.
    breaker: Breaker,
    breaker_open_ms: u64,
    /// The namespace of entries and tag marks (0 until the listener has read it).
    epoch: AtomicI64,
    pub errors: AtomicU64,
    pub breaker_trips: AtomicU64,
    /// Commands that succeeded (the listener compares it across epoch moves).
    pub successes: AtomicU64,
}

/// What an entry carries besides its body.
pub struct Stored {
    pub born: i64,
    pub etag: String,
    /// The operation's name ("" when it has none).
    pub operation: String,
    pub tags: Vec<String>,
    pub body: Bytes,
}

impl Stored {
    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.body.len() + 64 + self.tags.len() * 16);
        out.put_i64(self.born);
        out.put_u16(self.etag.len() as u16);
        out.put_slice(self.etag.as_bytes());
        out.put_u16(self.operation.len() as u16);
        out.put_slice(self.operation.as_bytes());
        out.put_u32(self.tags.len() as u32);
        for t in &self.tags {
            out.put_u16(t.len() as u16);
            out.put_slice(t.as_bytes());
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    fn decode(mut raw: Bytes) -> Option<Self> {
        fn text(raw: &mut Bytes, len: usize) -> Option<String> {
            if raw.remaining() < len {
                return None;
            }
            String::from_utf8(raw.split_to(len).to_vec()).ok()
        }
        if raw.remaining() < 10 {
            return None;
        }
        let born = raw.get_i64();
        let etag_len = raw.get_u16() as usize;
        let etag = text(&mut raw, etag_len)?;
        if raw.remaining() < 2 {
            return None;
        }
        let operation_len = raw.get_u16() as usize;
        let operation = text(&mut raw, operation_len)?;
        if raw.remaining() < 4 {
            return None;
        }
        let n = raw.get_u32() as usize;
        let mut tags = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            if raw.remaining() < 2 {
                return None;
            }
            let len = raw.get_u16() as usize;
            tags.push(text(&mut raw, len)?);
        }
        Some(Self {
            born,
            etag,
            operation,
            tags,
            body: raw,
        })
    }
}

impl RedisTier {
    /// Builds the client and starts connecting in the background: the gateway starts
    /// (and answers from the database) while Redis is away.
    pub fn connect(config: &CacheSettings) -> anyhow::Result<Self> {
        let mut redis = Config::from_url(&config.redis_url)?;
        // Commands fail at once while disconnected instead of queueing behind a reconnect.
        redis.fail_fast = true;
        let timeout = config.redis_timeout;
        let client = Builder::from_config(redis)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_millis(500);
                c.internal_command_timeout = Duration::from_millis(500);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()?;
        client.connect();
        let server = url::Url::parse(&config.redis_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port().unwrap_or(6379)))
            })
            .unwrap_or_default();
        for command in ["get", "set", "incr", "get_tags", "set_tags"] {
            metrics::counter!("gateway_redis_errors_total", "command" => command).increment(0);
        }
        Ok(Self {
            client,
            server,
            prefix: config.key_prefix.clone(),
            timeout,
            ttl: config.ttl,
            breaker: Breaker::new(config.breaker_open),
            breaker_open_ms: config.breaker_open.as_millis() as u64,
            epoch: AtomicI64::new(0),
            errors: AtomicU64::new(0),
            breaker_trips: AtomicU64::new(0),
            successes: AtomicU64::new(0),
        })
    }

    fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A key of `epoch`. One operation reads the epoch once and keeps to it, so a move
    /// to a new epoch never mixes keys of two epochs in one check.
    fn key(&self, epoch: i64, kind: &str, name: &str) -> String {
        format!("{}:{epoch}:{kind}:{name}", self.prefix)
    }

    /// A key outside the epochs (persisted documents, which never go stale).
    pub fn lasting_key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    /// Moves to `epoch` (never back). Returns whether it changed.
    pub fn set_epoch(&self, epoch: i64) -> bool {
        self.epoch.fetch_max(epoch, Ordering::AcqRel) < epoch
    }

    fn has_epoch(&self) -> bool {
        self.epoch() > 0
    }

    /// Closed, or open long enough that one request may try (half-open).
    fn allowed(&self) -> bool {
        self.breaker.allowed()
    }

    fn succeeded(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        if self.breaker.succeeded() {
            tracing::info!("Redis answers again: cache tier closed its breaker");
        }
    }

    fn failed(&self, what: &str, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.breaker.failed() {
            self.breaker_trips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                what,
                error,
                open_ms = self.breaker_open_ms,
                "Redis failing: cache tier opens its breaker and answers from the database"
            );
        } else {
            tracing::debug!(what, error, "Redis command failed");
        }
    }

    /// One Redis round trip, bounded by `REDIS_TIMEOUT_MS`, in a client span, timed into
    /// `gateway_redis_command_duration_seconds`. `what` is the command (`get`,
    /// `get_tags` for a pipeline of GETs, …).
    async fn run<T, F>(&self, what: &'static str, f: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        use tracing::Instrument;
        let span = if crate::telemetry::child_spans() {
            tracing::info_span!(
                "redis.command",
                otel.name = what,
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                db.system.name = "redis",
                db.operation.name = what,
                server.address = %self.server,
                error.type = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, f)
            .instrument(span.clone())
            .await;
        metrics::histogram!("gateway_redis_command_duration_seconds", "command" => what)
            .record(started.elapsed().as_secs_f64());
        let failure = match result {
            Ok(Ok(v)) => {
                self.succeeded();
                return Some(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        metrics::counter!("gateway_redis_errors_total", "command" => what).increment(1);
        span.record("otel.status_code", "ERROR");
        span.record("error.type", failure.as_str());
        self.failed(what, &failure);
        None
    }

    /// Ready to be used: an epoch is known and the breaker is closed (or half-open).
    fn ready(&self) -> bool {
        self.has_epoch() && self.allowed()
    }

    pub fn is_healthy(&self) -> bool {
        self.breaker.is_closed() && self.client.is_connected()
    }

    /// The epoch and a fresh sequence number, for a computation about to read the
    /// database. Its entry is stored in that epoch, so an entry computed before a move
    /// to a new epoch can never be read in the new one.
    pub async fn begin(&self) -> Option<(i64, i64)> {
        if !self.ready() {
            return None;
        }
        let epoch = self.epoch();
        let seq = self
            .run("incr", self.client.incr(self.key(epoch, "seq", "")))
            .await?;
        Some((epoch, seq))
    }

    /// The entry under `key`, when it is still valid.
    pub async fn get(&self, key: &str) -> Option<Stored> {
        if !self.ready() {
            return None;
        }
        let epoch = self.epoch();
        let raw: Option<Bytes> = self
            .run("get", self.client.get(self.key(epoch, "r", key)))
            .await?;
        let stored = Stored::decode(raw?)?;
        let pipeline = self.client.pipeline();
        let checks = async {
            let _: () = pipeline.get(self.key(epoch, "seq", "")).await?;
            let _: () = pipeline.get(self.key(epoch, "t", "*")).await?;
            for t in &stored.tags {
                let _: () = pipeline.get(self.key(epoch, "t", t)).await?;
            }
            pipeline.all::<Vec<Option<i64>>>().await
        };
        let seqs = self.run("get_tags", checks).await?;
        let (current, invalidated) = seqs.split_first()?;
        let valid = current.is_some_and(|c| c >= stored.born)
            && invalidated.iter().all(|t| t.unwrap_or(0) < stored.born);
        valid.then_some(stored)
    }

    /// Stores an entry in the epoch its computation began in (see [`Self::begin`]).
    pub async fn put(&self, key: &str, epoch: i64, stored: &Stored) {
        if !self.ready() {
            return;
        }
        let ttl = self.ttl.as_secs() as i64;
        let _: Option<()> = self
            .run(
                "set",
                self.client.set(
                    self.key(epoch, "r", key),
                    stored.encode(),
                    Some(Expiration::EX(ttl)),
                    None,
                    false,
                ),
            )
            .await;
    }

    /// Marks `tags` invalidated for every entry born before now. False when Redis could
    /// not be told (the caller then moves everyone to a new epoch).
    pub async fn invalidate(&self, tags: &[String]) -> bool {
        if !self.has_epoch() {
            return true;
        }
        self.allowed() && self.write_invalidation(tags).await
    }

    async fn write_invalidation(&self, tags: &[String]) -> bool {
        let epoch = self.epoch();
        let Some(seq) = self
            .run::<i64, _>("incr", self.client.incr(self.key(epoch, "seq", "")))
            .await
        else {
            return false;
        };
        // Tag marks outlive every entry they could invalidate.
        let ttl = self.ttl.as_secs() as i64 + 60;
        let pipeline = self.client.pipeline();
        let writes = async {
            for t in tags {
                let _: () = pipeline
                    .set(
                        self.key(epoch, "t", t),
                        seq,
                        Some(Expiration::EX(ttl)),
                        None,
                        false,
                    )
                    .await?;
            }
            pipeline.all::<()>().await
        };
        self.run("set_tags", writes).await.is_some()
    }

    /// Reads a plain value (persisted documents).
    pub async fn get_text(&self, key: &str) -> Option<String> {
        if !self.allowed() {
            return None;
        }
        self.run("get", self.client.get::<Option<String>, _>(key.to_string()))
            .await
            .flatten()
    }

    pub async fn set_text(&self, key: &str, value: &str, ttl: Duration) {
        if !self.allowed() {
            return;
        }
        let _: Option<()> = self
            .run(
                "set",
                self.client.set(
                    key.to_string(),
                    value.to_string(),
                    Some(Expiration::EX(ttl.as_secs().max(1) as i64)),
                    None,
                    false,
                ),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let stored = Stored {
            born: 42,
            etag: "W/\"abc\"".into(),
            operation: "ProductPage".into(),
            tags: vec!["product:1".into(), "products".into()],
            body: Bytes::from_static(b"{\"data\":{}}"),
        };
        let back = Stored::decode(stored.encode()).unwrap();
        assert_eq!(back.born, 42);
        assert_eq!(back.etag, "W/\"abc\"");
        assert_eq!(back.operation, "ProductPage");
        assert_eq!(back.tags, ["product:1", "products"]);
        assert_eq!(&back.body[..], b"{\"data\":{}}");
        assert!(Stored::decode(Bytes::from_static(b"short")).is_none());
        let mut truncated = stored.encode().to_vec();
        truncated.truncate(14);
        assert!(Stored::decode(Bytes::from(truncated)).is_none());
    }
}
