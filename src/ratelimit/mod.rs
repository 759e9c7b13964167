//! Rate limits that hold across gateway instances.
//!
//! Every budget is a token bucket kept in Redis and changed by one Lua script (refill by
//! the time elapsed on Redis's own clock, then take or give back tokens), so N gateways
//! enforce one budget, not N. Two kinds of callers:
//!
//! - **Partners** ([`Limiter::charge`] / [`Limiter::refund`]): a plan's cost bucket,
//!   charged exactly with a query's requested cost before it runs and refunded the
//!   difference to its actual cost after.
//! - **Storefront** ([`Limiter::hit`]): one token a request, per buyer IP and per access
//!   token. A key takes its tokens from Redis in small leases (2 % of the budget, doubling
//!   while a lease is used up within 250 ms, at most 64; 1 for budgets under 100), so a
//!   shopper's page views or a flood from one address cost a Redis round trip every few
//!   requests instead of every request; a key Redis refused is refused locally until its
//!   retry time. Tokens of a lease that expires unused (after 10 s) are lost, so the limit
//!   errs on the strict side, by at most one lease per instance.
//!
//! In front of both, an in-process governor limiter per class holds each key to the whole
//! budget: an instance that alone sees more than the global budget refuses without asking
//! Redis. When Redis does not answer (`RATE_LIMIT_REDIS_TIMEOUT_MS`, then a breaker),
//! each instance enforces its share of the budget (budget ÷ instances, the count of live
//! instances last seen in Redis or `RATE_LIMIT_INSTANCES`): never unlimited, never
//! refusing everyone.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::*;

use crate::breaker::Breaker;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

mod clients;
mod settings;

pub use clients::{address_key, client_ip, fingerprint};

pub use settings::{BucketSpec, IpNet, Settings};

/// KEYS[1]: the bucket. ARGV: capacity, rate (tokens/s), min, max. Takes between `min`
/// and `max` tokens (as many as there are, up to `max`) when at least `min` are there; a
/// negative `min` (= `max`) gives tokens back. Returns {granted, tokens left, retry ms}.
const BUCKET_SCRIPT: &str = include_str!("bucket.lua");

/// KEYS[1]: the instance set. ARGV: this instance, liveness window (ms). Returns the
/// number of live instances.
const INSTANCES_SCRIPT: &str = include_str!("instances.lua");

/// How long the breaker stays open once Redis failed repeatedly.
const BREAKER_OPEN: Duration = Duration::from_secs(1);
/// How long a storefront lease may be used (its tokens were taken from the shared
/// budget, so holding them longer never admits more; an unused rest is lost, which errs
/// strict by at most one lease per instance and key), and how quickly a lease must be
/// used up for the next one to double.
const LEASE_TTL: Duration = Duration::from_secs(10);
const LEASE_HOT: Duration = Duration::from_millis(250);
const MAX_LEASE: u64 = 64;
/// An instance that has not said it is alive for this long is not counted.
const INSTANCE_WINDOW_MS: u64 = 15_000;

/// Where a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The shared budget in Redis (or a lease or refusal it gave).
    Redis,
    /// This instance's share, while Redis is unreachable.
    Fallback,
    /// The in-process first line: the key alone exceeded the whole budget here.
    FirstLine,
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    /// Tokens left after this decision (of the shared budget, or of the share).
    pub remaining: f64,
    pub capacity: u64,
    pub rate: f64,
    /// How long until the request could succeed (zero when allowed).
    pub retry_after: Duration,
    pub source: Source,
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up (never 0 for a refusal).
    pub fn retry_after_secs(&self) -> u64 {
        let ms = self.retry_after.as_millis() as u64;
        ms.div_ceil(1000).max(1)
    }
}

/// A class of budgets: a partner plan or one of the storefront limits.
struct Class {
    /// The `plan` label of the metrics.
    label: String,
    spec: BucketSpec,
    first_line: DefaultKeyedRateLimiter<u64>,
}

/// Storefront tokens taken from Redis and not yet used, or a refusal remembered.
struct Lease {
    tokens: u64,
    size: u64,
    granted_at: Instant,
    expires: Instant,
    blocked_until: Option<Instant>,
}

/// A key's share of its budget while Redis is away.
struct LocalBucket {
    tokens: f64,
    at: Instant,
    /// The share it was made with.
    capacity: f64,
    rate: f64,
}

pub struct Limiter {
    client: Client,
    bucket_sha: Mutex<Option<String>>,
    instances_sha: Mutex<Option<String>>,
    prefix: String,
    timeout: Duration,
    classes: HashMap<String, Class>,
    /// Keyed by [`slot`] (a hash of class and key: no allocation on the request path).
    leases: Mutex<HashMap<u64, Lease>>,
    local: Mutex<HashMap<u64, LocalBucket>>,
    configured_instances: u64,
    seen_instances: AtomicU64,
    instance_id: String,
    /// Open after repeated Redis failures: decisions fall back at once for a second.
    breaker: Breaker,
}

/// The class names of the storefront and authentication budgets.
pub const STOREFRONT_IP: &str = "storefront_ip";
pub const STOREFRONT_TOKEN: &str = "storefront_token";
pub const AUTH_FAILURES: &str = "auth_failures";

/// The in-process key of `key` in budget `class`: a 64-bit hash (two keys colliding
/// would share an instance's lease or first-line state; at 64 bits, never in practice).
fn slot(class: &str, key: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(Default::default);
    let mut h = SEED.build_hasher();
    h.write(class.as_bytes());
    h.write_u8(0xff);
    h.write(key.as_bytes());
    h.finish()
}

fn plan_class(plan: &str) -> String {
    format!("plan:{plan}")
}

fn quota(spec: BucketSpec) -> Quota {
    let burst =
        NonZeroU32::new(spec.capacity.min(u32::MAX as u64) as u32).unwrap_or(NonZeroU32::MIN);
    // One token every 1/rate seconds (governor's replenishment interval).
    let period = Duration::from_secs_f64(1.0 / spec.rate).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiter {
    /// Builds the limiter and starts connecting to Redis in the background.
    pub fn new(config: &Settings) -> anyhow::Result<Self> {
        let mut redis = Config::from_url(&config.redis_url)?;
        redis.fail_fast = true;
        let client = Builder::from_config(redis)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_millis(500);
                c.internal_command_timeout = Duration::from_millis(500);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = config.redis_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()?;
        client.connect();
        let mut classes = HashMap::new();
        let mut add = |key: String, label: &str, spec: BucketSpec| {
            classes.insert(
                key,
                Class {
                    label: label.to_string(),
                    spec,
                    first_line: RateLimiter::keyed(quota(spec)),
                },
            );
        };
        for (name, spec) in &config.plans {
            add(plan_class(name), name, *spec);
        }
        add(STOREFRONT_IP.into(), STOREFRONT_IP, config.storefront_ip);
        add(
            STOREFRONT_TOKEN.into(),
            STOREFRONT_TOKEN,
            config.storefront_token,
        );
        add(AUTH_FAILURES.into(), AUTH_FAILURES, config.auth_failures);
        for class in classes.values() {
            for outcome in ["allowed", "throttled"] {
                metrics::counter!("gateway_rate_limit_decisions_total", "plan" => class.label.clone(), "outcome" => outcome).increment(0);
            }
            metrics::counter!("gateway_rate_limit_fallback_total", "plan" => class.label.clone())
                .increment(0);
        }
        let instance_id = format!("{:016x}", rand::random::<u64>());
        Ok(Self {
            client,
            bucket_sha: Mutex::new(None),
            instances_sha: Mutex::new(None),
            prefix: config.key_prefix.clone(),
            timeout: config.redis_timeout,
            classes,
            leases: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            configured_instances: config.instances,
            seen_instances: AtomicU64::new(1),
            instance_id,
            breaker: Breaker::new(BREAKER_OPEN),
        })
    }

    /// Housekeeping every few seconds: counts live instances through Redis and forgets
    /// idle keys (governor's keyed state, leases, local shares).
    pub fn spawn_upkeep(self: &std::sync::Arc<Self>) {
        let this = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(limiter) = this.upgrade() else {
                    return;
                };
                limiter.heartbeat().await;
                limiter.forget_idle();
            }
        });
    }

    /// Live gateways sharing the budgets (at least 1).
    pub fn instances(&self) -> u64 {
        if self.configured_instances > 0 {
            self.configured_instances
        } else {
            self.seen_instances.load(Ordering::Relaxed).max(1)
        }
    }

    async fn heartbeat(&self) {
        let key = format!("{}:instances", self.prefix);
        let args = vec![self.instance_id.clone(), INSTANCE_WINDOW_MS.to_string()];
        if let Some(n) = self
            .script::<i64>(&self.instances_sha, INSTANCES_SCRIPT, key, args)
            .await
        {
            self.seen_instances
                .store(n.max(1) as u64, Ordering::Relaxed);
            metrics::gauge!("gateway_rate_limit_instances").set(n as f64);
        }
    }

    fn forget_idle(&self) {
        for class in self.classes.values() {
            class.first_line.retain_recent();
            class.first_line.shrink_to_fit();
        }
        let now = Instant::now();
        lock(&self.leases).retain(|_, l| {
            l.expires + Duration::from_secs(10) > now || l.blocked_until.is_some_and(|b| b > now)
        });
        // A share refilled to full is the same as no entry.
        lock(&self.local)
            .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * b.rate < b.capacity);
    }

    /// The spec of a partner plan, if the plan exists.
    pub fn plan(&self, plan: &str) -> Option<BucketSpec> {
        self.classes.get(&plan_class(plan)).map(|c| c.spec)
    }

    /// Charges `cost` points of a partner's plan bucket (exactly, in Redis).
    pub async fn charge(&self, plan: &str, key: &str, cost: u64) -> Decision {
        self.take(&plan_class(plan), key, cost.max(1)).await
    }

    /// Gives `points` back to a partner's bucket (the requested cost not spent), to where
    /// `charged` took them from (Redis, or this instance's share); returns the points
    /// available after. A Redis refund that fails is dropped: the limit errs strict.
    pub async fn refund(
        &self,
        plan: &str,
        key: &str,
        points: u64,
        charged: &Decision,
    ) -> Option<f64> {
        let class_key = plan_class(plan);
        let class = self.classes.get(&class_key)?;
        if charged.source == Source::Redis {
            if !self.redis_ready() {
                return None;
            }
            let neg = -(points as i64);
            return self
                .bucket(&class_key, class, key, neg, neg)
                .await
                .map(|(_, tokens, _)| tokens);
        }
        let mut local = lock(&self.local);
        let (cap, _) = self.share(class.spec);
        let b = self.local_bucket(&mut local, &class_key, key, class.spec);
        b.tokens = (b.tokens + points as f64).min(cap);
        Some(b.tokens)
    }

    /// One token of a budget, exactly (authentication failures). A refusal is also
    /// remembered here until its retry time (see [`Limiter::blocked`]).
    pub async fn take_one(&self, class: &str, key: &str) -> Decision {
        let d = self.take(class, key, 1).await;
        if !d.allowed {
            let now = Instant::now();
            let mut leases = lock(&self.leases);
            let entry = leases.entry(slot(class, key)).or_insert(Lease {
                tokens: 0,
                size: 1,
                granted_at: now,
                expires: now,
                blocked_until: None,
            });
            entry.blocked_until = Some(now + d.retry_after);
        }
        d
    }

    /// A refusal this instance remembers for `key` (no Redis round trip).
    pub fn blocked(&self, class_key: &str, key: &str) -> Option<Decision> {
        let class = self.classes.get(class_key)?;
        let now = Instant::now();
        let leases = lock(&self.leases);
        let until = leases.get(&slot(class_key, key))?.blocked_until?;
        (until > now).then(|| self.refusal(class, until - now, Source::Redis))
    }

    async fn take(&self, class_key: &str, key: &str, cost: u64) -> Decision {
        let Some(class) = self.classes.get(class_key) else {
            return allow_all();
        };
        if let Some(d) = self.first_line(class, key) {
            return self.record(class, d);
        }
        if self.redis_ready()
            && let Some((granted, tokens, retry)) = self
                .bucket(class_key, class, key, cost as i64, cost as i64)
                .await
        {
            return self.record(
                class,
                Decision {
                    allowed: granted > 0,
                    remaining: tokens,
                    capacity: class.spec.capacity,
                    rate: class.spec.rate,
                    retry_after: Duration::from_millis(retry),
                    source: Source::Redis,
                },
            );
        }
        let d = self.fallback(class_key, class, key, cost);
        self.record(class, d)
    }

    /// One storefront request of `key` in budget `class` (leased from Redis).
    pub async fn hit(&self, class_key: &str, key: &str) -> Decision {
        let Some(class) = self.classes.get(class_key) else {
            return allow_all();
        };
        if let Some(d) = self.first_line(class, key) {
            return self.record(class, d);
        }
        let now = Instant::now();
        let map_key = slot(class_key, key);
        let size = {
            let mut leases = lock(&self.leases);
            match leases.get_mut(&map_key) {
                Some(l) if l.blocked_until.is_some_and(|b| b > now) => {
                    let wait = l.blocked_until.map(|b| b - now).unwrap_or_default();
                    return self.record(class, self.refusal(class, wait, Source::Redis));
                }
                Some(l) if l.tokens > 0 && l.expires > now => {
                    l.tokens -= 1;
                    let remaining = l.tokens as f64;
                    return self.record(
                        class,
                        Decision {
                            allowed: true,
                            remaining,
                            capacity: class.spec.capacity,
                            rate: class.spec.rate,
                            retry_after: Duration::ZERO,
                            source: Source::Redis,
                        },
                    );
                }
                Some(l) => {
                    let max = (class.spec.capacity / 25).clamp(1, MAX_LEASE);
                    if now.duration_since(l.granted_at) < LEASE_HOT {
                        (l.size * 2).min(max)
                    } else {
                        (l.size / 2).max(base_lease(class.spec))
                    }
                }
                None => base_lease(class.spec),
            }
        };
        if self.redis_ready()
            && let Some((granted, tokens, retry)) =
                self.bucket(class_key, class, key, 1, size as i64).await
        {
            let now = Instant::now();
            let mut leases = lock(&self.leases);
            let entry = leases.entry(map_key).or_insert(Lease {
                tokens: 0,
                size,
                granted_at: now,
                expires: now,
                blocked_until: None,
            });
            if granted > 0 {
                // Concurrent requests of one key may each have taken a lease: pool them.
                let left = if entry.expires > now { entry.tokens } else { 0 };
                entry.tokens = left + granted as u64 - 1;
                entry.size = size;
                entry.granted_at = now;
                entry.expires = now + LEASE_TTL;
                entry.blocked_until = None;
                return self.record(
                    class,
                    Decision {
                        allowed: true,
                        remaining: tokens,
                        capacity: class.spec.capacity,
                        rate: class.spec.rate,
                        retry_after: Duration::ZERO,
                        source: Source::Redis,
                    },
                );
            }
            let wait = Duration::from_millis(retry);
            entry.blocked_until = Some(now + wait);
            entry.tokens = 0;
            entry.size = 1;
            return self.record(class, self.refusal(class, wait, Source::Redis));
        }
        let d = self.fallback(class_key, class, key, 1);
        self.record(class, d)
    }

    fn refusal(&self, class: &Class, wait: Duration, source: Source) -> Decision {
        Decision {
            allowed: false,
            remaining: 0.0,
            capacity: class.spec.capacity,
            rate: class.spec.rate,
            retry_after: wait,
            source,
        }
    }

    /// The in-process first line: one token a request against the whole budget.
    fn first_line(&self, class: &Class, key: &str) -> Option<Decision> {
        match class.first_line.check_key(&slot(&class.label, key)) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                Some(self.refusal(class, wait, Source::FirstLine))
            }
        }
    }

    fn record(&self, class: &Class, d: Decision) -> Decision {
        let outcome = if d.allowed { "allowed" } else { "throttled" };
        metrics::counter!("gateway_rate_limit_decisions_total", "plan" => class.label.clone(), "outcome" => outcome).increment(1);
        if d.source == Source::Fallback {
            metrics::counter!("gateway_rate_limit_fallback_total", "plan" => class.label.clone())
                .increment(1);
        }
        d
    }

    /// This instance's share of a budget: (capacity, rate).
    fn share(&self, spec: BucketSpec) -> (f64, f64) {
        let n = self.instances() as f64;
        ((spec.capacity as f64 / n).max(1.0), spec.rate / n)
    }

    fn local_bucket<'a>(
        &self,
        local: &'a mut HashMap<u64, LocalBucket>,
        class_key: &str,
        key: &str,
        spec: BucketSpec,
    ) -> &'a mut LocalBucket {
        let (cap, rate) = self.share(spec);
        let now = Instant::now();
        let b = local.entry(slot(class_key, key)).or_insert(LocalBucket {
            tokens: cap,
            at: now,
            capacity: cap,
            rate,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(cap);
        b.at = now;
        b
    }

    /// The decision of this instance's share (Redis is unreachable).
    fn fallback(&self, class_key: &str, class: &Class, key: &str, cost: u64) -> Decision {
        let (cap, rate) = self.share(class.spec);
        let mut local = lock(&self.local);
        let b = self.local_bucket(&mut local, class_key, key, class.spec);
        let cost = cost as f64;
        // A full share always admits one request, even one costing more than the share
        // (the bucket goes below zero and refills): otherwise such a query could never
        // run while Redis is away.
        if b.tokens >= cost || b.tokens >= cap {
            b.tokens -= cost;
            Decision {
                allowed: true,
                remaining: b.tokens,
                capacity: cap as u64,
                rate,
                retry_after: Duration::ZERO,
                source: Source::Fallback,
            }
        } else {
            // A cost above the whole share can never fit: wait as if the share were larger.
            let missing = (cost.min(cap) - b.tokens).max(0.0);
            Decision {
                allowed: false,
                remaining: b.tokens,
                capacity: cap as u64,
                rate,
                retry_after: Duration::from_secs_f64((missing / rate).max(0.001)),
                source: Source::Fallback,
            }
        }
    }

    fn redis_ready(&self) -> bool {
        self.breaker.allowed()
    }

    fn succeeded(&self) {
        if self.breaker.succeeded() {
            tracing::info!("Redis answers again: rate limits use the shared budgets");
        }
    }

    fn failed(&self, error: &str) {
        if self.breaker.failed() {
            tracing::warn!(
                error,
                instances = self.instances(),
                "Redis unreachable: each gateway enforces its share of every rate limit"
            );
        }
    }

    /// Runs the bucket script: (granted, tokens left, retry ms).
    async fn bucket(
        &self,
        class_key: &str,
        class: &Class,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<(i64, f64, u64)> {
        let redis_key = format!("{}:{class_key}:{key}", self.prefix);
        let args = vec![
            class.spec.capacity.to_string(),
            class.spec.rate.to_string(),
            min.to_string(),
            max.to_string(),
        ];
        let (granted, tokens, retry): (i64, String, i64) = self
            .script(&self.bucket_sha, BUCKET_SCRIPT, redis_key, args)
            .await?;
        Some((granted, tokens.parse().unwrap_or(0.0), retry.max(0) as u64))
    }

    /// EVALSHA of a script (loaded on first use, and again after Redis lost it), within
    /// the timeout, feeding the breaker.
    async fn script<R: fred::types::FromValue>(
        &self,
        sha: &Mutex<Option<String>>,
        lua: &'static str,
        key: String,
        args: Vec<String>,
    ) -> Option<R> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            for _ in 0..2 {
                let hash = lock(sha).clone();
                let hash = match hash {
                    Some(h) => h,
                    None => {
                        let h: String = self.client.script_load(lua).await?;
                        *lock(sha) = Some(h.clone());
                        h
                    }
                };
                match self
                    .client
                    .evalsha::<R, _, _, _>(hash, key.clone(), args.clone())
                    .await
                {
                    Err(e) if e.details().starts_with("NOSCRIPT") => {
                        *lock(sha) = None;
                    }
                    other => return other,
                }
            }
            Err(Error::new(ErrorKind::Unknown, "script could not be loaded"))
        })
        .await;
        metrics::histogram!("gateway_redis_command_duration_seconds", "command" => "rate_limit")
            .record(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(Ok(v)) => {
                self.succeeded();
                return Some(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".into(),
        };
        metrics::counter!("gateway_redis_errors_total", "command" => "rate_limit").increment(1);
        tracing::debug!(error, "rate limit script failed");
        self.failed(&error);
        None
    }

    /// Whether Redis answers (for `/readyz`).
    pub fn redis_healthy(&self) -> bool {
        self.breaker.is_closed() && self.client.is_connected()
    }
}

/// The lease a key starts with: 2 % of the budget (1 for small budgets, which are then
/// exact to the request). A shopper's page views then cost a Redis round trip every few
/// requests rather than every request.
fn base_lease(spec: BucketSpec) -> u64 {
    (spec.capacity / 50).clamp(1, MAX_LEASE)
}

fn allow_all() -> Decision {
    Decision {
        allowed: true,
        remaining: f64::INFINITY,
        capacity: u64::MAX,
        rate: f64::INFINITY,
        retry_after: Duration::ZERO,
        source: Source::FirstLine,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        let d = Decision {
            allowed: false,
            remaining: 0.0,
            capacity: 1,
            rate: 1.0,
            retry_after: Duration::from_millis(1001),
            source: Source::Redis,
        };
        assert_eq!(d.retry_after_secs(), 2);
    }
}
