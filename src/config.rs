//! Runtime configuration, read once at start-up from environment variables.
//!
//! Every setting has a default that works on a developer machine (PostgreSQL on
//! localhost). The README's configuration table lists the same names; keep the two together.
//! Values are validated here so that a typo fails the start with a message naming the
//! variable, instead of surfacing later as odd behaviour.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

/// Limits applied to every GraphQL document before it runs. Each one has the name that
/// appears in the error code a client receives when it is exceeded.
#[derive(Clone, Debug)]
pub struct QueryLimits {
    /// `MAX_QUERY_DEPTH`: deepest field nesting (Next.js Commerce reaches 12).
    pub max_depth: usize,
    /// `MAX_QUERY_COST`: requested cost, computed from `first`/`last` before execution.
    pub max_cost: u64,
    /// `MAX_QUERY_ALIASES`: aliased fields per document (alias floods).
    pub max_aliases: usize,
    /// `MAX_QUERY_ROOT_FIELDS`: top-level fields per operation.
    pub max_root_fields: usize,
    /// `MAX_QUERY_TOKENS`: lexical tokens per document (huge documents).
    pub max_tokens: usize,
    /// `MAX_PAGE_SIZE`: the largest `first`/`last` (and `nodes(ids:)` length) accepted.
    pub max_page_size: usize,
    /// `MAX_QUERY_FIELDS`: fields of the operation with its fragments expanded (a few
    /// hundred bytes of fragments spreading one another can expand without end).
    pub max_fields: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_cost: 100_000,
            max_aliases: 30,
            max_root_fields: 20,
            max_tokens: 15_000,
            max_page_size: 250,
            max_fields: 5_000,
        }
    }
}

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
pub struct CacheConfig {
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

impl CacheConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let redis_url = var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        url::Url::parse(&redis_url).with_context(|| format!("REDIS_URL={redis_url:?}"))?;
        let cache_control_by_operation = match var("CACHE_CONTROL_BY_OPERATION") {
            Some(json) => serde_json::from_str(&json).context(
                "CACHE_CONTROL_BY_OPERATION must be a JSON object of operation name to Cache-Control",
            )?,
            None => Default::default(),
        };
        let cdn_purge_url = var("CDN_PURGE_URL");
        if let Some(u) = &cdn_purge_url {
            url::Url::parse(u).with_context(|| format!("CDN_PURGE_URL={u:?}"))?;
        }
        let persisted_queries = match var("PERSISTED_QUERIES").as_deref() {
            None | Some("automatic") => PersistedQueryMode::Automatic,
            Some("allowlist") => PersistedQueryMode::AllowList,
            Some(other) => bail!("PERSISTED_QUERIES={other:?}: use automatic or allowlist"),
        };
        let key_prefix = var("CACHE_KEY_PREFIX").unwrap_or_else(|| "cg".into());
        if key_prefix.is_empty() || key_prefix.contains(char::is_whitespace) {
            bail!("CACHE_KEY_PREFIX must be non-empty and without spaces");
        }
        Ok(Self {
            enabled: flag("CACHE_ENABLED", true)?,
            redis_url,
            redis_timeout: millis("REDIS_TIMEOUT_MS", 50)?,
            breaker_open: millis("REDIS_BREAKER_OPEN_MS", 1_000)?,
            key_prefix,
            ttl: Duration::from_secs(parse("CACHE_TTL_SECS", 3_600u64)?.max(1)),
            local_ttl: Duration::from_secs(parse("CACHE_LOCAL_TTL_SECS", 60u64)?.max(1)),
            local_max_bytes: parse("CACHE_LOCAL_MAX_MB", 64u64)? * 1024 * 1024,
            local_entities: parse("CACHE_LOCAL_ENTITIES", 50_000u64)?,
            cache_control: var("CACHE_CONTROL").unwrap_or_else(|| {
                "public, max-age=0, s-maxage=60, stale-while-revalidate=30".into()
            }),
            cache_control_by_operation,
            cdn_purge_url,
            cdn_purge_token: var("CDN_PURGE_TOKEN"),
            persisted_queries,
            manifest: var("PERSISTED_QUERY_MANIFEST").map(Into::into),
            apq_ttl: Duration::from_secs(parse("APQ_TTL_SECS", 7 * 24 * 3_600u64)?),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: the primary, which takes every write.
    pub database_url: String,
    /// `DATABASE_REPLICA_URLS`: streaming replicas for reads that tolerate lag.
    pub replica_urls: Vec<String>,
    /// `DATABASE_POOL_SIZE`: connections per pool (primary and each replica).
    pub pool_size: usize,
    /// `DATABASE_CONNECT_TIMEOUT_MS`: how long a pool waits to open a connection.
    pub connect_timeout: Duration,
    /// `DATABASE_GENERIC_PLANS`: the request pools' sessions run with
    /// `plan_cache_mode = force_generic_plan` (see [`crate::db::session_url`]).
    pub generic_plans: bool,
    /// `REPLICA_MAX_LAG_MS`: a replica further behind than this leaves the rotation.
    pub replica_max_lag: Duration,
    /// `REPLICA_HEALTH_INTERVAL_MS`: how often replicas are probed.
    pub replica_health_interval: Duration,
    /// The response cache, persisted queries and CDN headers.
    pub cache: CacheConfig,
    /// `LISTEN_ADDR`: where the HTTP server listens.
    pub listen_addr: SocketAddr,
    /// `AUTO_MIGRATE`: run pending migrations when `serve` starts.
    pub auto_migrate: bool,
    /// `AUTO_SEED_PRODUCTS`: products of demo catalog seeded into an empty database (0 = off).
    pub auto_seed_products: u32,
    /// `SHOP_CURRENCY`: the currency prices fall back to.
    pub shop_currency: String,
    /// `SHOP_URL`: public base URL, used for `checkoutUrl` and menu links.
    pub shop_url: String,
    /// `IMAGE_URL_TEMPLATE`: image-CDN URL built by `Image.url(transform:)`.
    pub image_url_template: String,
    /// `INTROSPECTION`: allow schema introspection.
    pub introspection: bool,
    /// `QUERY_STATS`: report SQL statements per request in `extensions.stats` (benchmarks, tests).
    pub query_stats: bool,
    /// `REQUEST_TIMEOUT_MS`: whole-request deadline.
    pub request_timeout: Duration,
    /// `MAX_CONCURRENT_REQUESTS`: GraphQL executions in flight at once; more wait their
    /// turn. Bounds memory (each holds its response tree) without costing throughput.
    pub max_concurrent_requests: usize,
    /// `MAX_BODY_BYTES`: request body limit.
    pub max_body_bytes: usize,
    /// `SHUTDOWN_GRACE_MS`: how long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// `MAX_CART_LINES`: distinct lines one cart may hold.
    pub max_cart_lines: usize,
    /// `MAX_LINE_QUANTITY`: the largest quantity of one line.
    pub max_line_quantity: i32,
    pub limits: QueryLimits,
    /// Checkout: taxes, shipping methods, reservation time.
    pub checkout: crate::checkout::CheckoutSettings,
    /// `PAYMENT_WEBHOOK_SECRET`: HMAC key of payment webhooks (refused while unset).
    pub payment_webhook_secret: Option<String>,
    /// `PAYMENT_WEBHOOK_TOLERANCE_SECS`: how old a webhook signature may be.
    pub payment_webhook_tolerance: Duration,
    /// `SMTP_URL`: where order emails go (`smtp://host:port`); unset = not sent.
    pub smtp_url: Option<String>,
    /// `MAIL_FROM`: the sender of order emails.
    pub mail_from: String,
    /// `SMTP_TIMEOUT_MS`
    pub smtp_timeout: Duration,
    /// `ORDER_WEBHOOK_SECRET`: HMAC key of outgoing order webhooks.
    pub order_webhook_secret: Option<String>,
    /// `WEBHOOK_TIMEOUT_MS`: how long one outgoing webhook delivery may take.
    pub webhook_timeout: Duration,
    /// Job queue workers.
    pub jobs: JobsConfig,
    /// `METRICS_ENABLED`, `METRICS_ADDR`, `SLOW_QUERY_MS`, `METRICS_MAX_OPERATIONS`.
    pub metrics: crate::telemetry::metrics::MetricsConfig,
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: partners' webhook subscriptions may point at
    /// loopback and private addresses (development and tests only).
    pub webhook_allow_private_targets: bool,
    /// `RATE_LIMIT_*`, `ADMIN_PLANS`, `STOREFRONT_*_LIMIT`, `TRUSTED_PROXIES`, `STOREFRONT_PRIVATE_TOKENS`.
    pub rate_limits: RateLimitConfig,
}

/// A token bucket: `capacity` tokens, refilled at `rate` tokens per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketSpec {
    pub capacity: u64,
    pub rate: f64,
}

impl BucketSpec {
    /// Parses `capacity:rate` (tokens, tokens per second).
    pub fn parse(name: &str, text: &str) -> anyhow::Result<Self> {
        let (c, r) = text
            .split_once(':')
            .with_context(|| format!("{name}: {text:?} is not capacity:rate"))?;
        let capacity: u64 = c
            .trim()
            .parse()
            .with_context(|| format!("{name}: bad capacity in {text:?}"))?;
        let rate: f64 = r
            .trim()
            .parse()
            .with_context(|| format!("{name}: bad rate in {text:?}"))?;
        if capacity == 0 || !(rate.is_finite() && rate > 0.0) {
            bail!("{name}: capacity and rate must be positive in {text:?}");
        }
        Ok(Self { capacity, rate })
    }
}

/// Rate limits: partner plans (cost buckets) and storefront buckets (requests).
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_ENABLED`: storefront limits (partner plans always apply).
    pub storefront_enabled: bool,
    /// `RATE_LIMIT_REDIS_URL` (default `REDIS_URL`): where the shared budgets live.
    pub redis_url: String,
    /// `RATE_LIMIT_REDIS_TIMEOUT_MS`: a decision waits this long for Redis, then falls back.
    pub redis_timeout: Duration,
    /// `RATE_LIMIT_KEY_PREFIX`: namespace of the budgets in Redis.
    pub key_prefix: String,
    /// `RATE_LIMIT_INSTANCES`: gateways sharing the budgets when Redis is down
    /// (0: counted through Redis while it is up).
    pub instances: u64,
    /// `ADMIN_PLANS`: `name=capacity:rate,…` (points, points per second).
    pub plans: Vec<(String, BucketSpec)>,
    /// `STOREFRONT_IP_LIMIT`: requests per buyer IP address.
    pub storefront_ip: BucketSpec,
    /// `STOREFRONT_TOKEN_LIMIT`: requests per storefront access token.
    pub storefront_token: BucketSpec,
    /// `AUTH_FAILURE_LIMIT`: failed admin authentications per IP address.
    pub auth_failures: BucketSpec,
    /// `TRUSTED_PROXIES`: peers (CIDR) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `STOREFRONT_PRIVATE_TOKENS`: server tokens that may name the buyer's IP address
    /// (`Shopify-Storefront-Buyer-IP`).
    pub private_tokens: Vec<String>,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("{text:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| format!("{text:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl RateLimitConfig {
    pub fn from_env(redis_url: &str) -> anyhow::Result<Self> {
        let plans_spec = var("ADMIN_PLANS")
            .unwrap_or_else(|| "standard=1000:50,plus=2000:100,enterprise=10000:500".into());
        let mut plans = Vec::new();
        for part in plans_spec
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, spec) = part
                .split_once('=')
                .with_context(|| format!("ADMIN_PLANS entry {part:?} is not name=capacity:rate"))?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("ADMIN_PLANS: plan name {name:?} must be letters, digits, - or _");
            }
            plans.push((name.to_string(), BucketSpec::parse("ADMIN_PLANS", spec)?));
        }
        if plans.is_empty() {
            bail!("ADMIN_PLANS must name at least one plan");
        }
        let key_prefix = var("RATE_LIMIT_KEY_PREFIX").unwrap_or_else(|| "cg:rl".into());
        if key_prefix.contains(char::is_whitespace) {
            bail!("RATE_LIMIT_KEY_PREFIX must not contain spaces");
        }
        let redis_url = var("RATE_LIMIT_REDIS_URL").unwrap_or_else(|| redis_url.to_string());
        url::Url::parse(&redis_url)
            .with_context(|| format!("RATE_LIMIT_REDIS_URL={redis_url:?}"))?;
        let bucket = |name: &str, default: &str| {
            BucketSpec::parse(name, &var(name).unwrap_or_else(|| default.into()))
        };
        Ok(Self {
            storefront_enabled: flag("RATE_LIMIT_ENABLED", true)?,
            redis_url,
            redis_timeout: millis("RATE_LIMIT_REDIS_TIMEOUT_MS", 50)?,
            key_prefix,
            instances: parse("RATE_LIMIT_INSTANCES", 0u64)?,
            plans,
            storefront_ip: bucket("STOREFRONT_IP_LIMIT", "1000:50")?,
            storefront_token: bucket("STOREFRONT_TOKEN_LIMIT", "20000:2000")?,
            auth_failures: bucket("AUTH_FAILURE_LIMIT", "20:0.5")?,
            trusted_proxies: list("TRUSTED_PROXIES")
                .iter()
                .map(|t| IpNet::parse(t).context("TRUSTED_PROXIES"))
                .collect::<anyhow::Result<_>>()?,
            private_tokens: list("STOREFRONT_PRIVATE_TOKENS"),
        })
    }

    pub fn plan(&self, name: &str) -> Option<BucketSpec> {
        self.plans.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
    }
}

/// Background job settings.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// `RUN_WORKERS`: `serve` runs the job workers in-process too.
    pub embedded: bool,
    /// `JOB_QUEUES`, `JOB_POLL_INTERVAL_MS`, `JOB_TIMEOUT_MS`, `IMPORT_TIMEOUT_MS`, `JOB_BACKOFF_BASE_MS`,
    /// `JOB_BACKOFF_MAX_MS` and `SHUTDOWN_GRACE_MS`.
    pub worker: crate::jobs::worker::WorkerConfig,
}

/// Parses `queue=concurrency,…`; queues not named keep their default.
fn parse_queues(spec: &str) -> anyhow::Result<Vec<(String, usize)>> {
    let mut queues: Vec<(String, usize)> = vec![
        ("orders".into(), 4),
        ("email".into(), 2),
        ("webhooks".into(), 4),
        ("imports".into(), 1),
    ];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, n)) = part.split_once('=') else {
            bail!("JOB_QUEUES entry {part:?} is not queue=concurrency");
        };
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("JOB_QUEUES entry {part:?}: bad concurrency"))?;
        match queues.iter_mut().find(|(q, _)| q == name.trim()) {
            Some(entry) => entry.1 = n,
            None => bail!(
                "JOB_QUEUES names unknown queue {:?}; queues: {}",
                name.trim(),
                crate::jobs::QUEUES.join(", ")
            ),
        }
    }
    Ok(queues)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={raw:?} is not valid: {e}")),
    }
}

/// A comma-separated list (empty when unset).
fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn flag(name: &str, default: bool) -> anyhow::Result<bool> {
    match var(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => bail!("{name}={other:?} is not a boolean (use true or false)"),
    }
}

fn millis(name: &str, default_ms: u64) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(parse(name, default_ms)?))
}

/// Four executions per core: enough to keep the cores busy while others wait on the
/// database (more in flight only adds memory: measured in bench/README.md).
fn default_concurrency() -> usize {
    4 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let database_url = var("DATABASE_URL")
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/commerce_gateway".into());
        let replica_urls = list("DATABASE_REPLICA_URLS");
        let listen_addr = parse("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let shop_currency = var("SHOP_CURRENCY")
            .unwrap_or_else(|| "USD".into())
            .to_uppercase();
        if crate::money::exponent(&shop_currency).is_none() {
            bail!("SHOP_CURRENCY={shop_currency:?} is not a supported ISO 4217 currency code");
        }
        let shop_url = var("SHOP_URL").unwrap_or_else(|| format!("http://{listen_addr}"));
        let shop_url = shop_url.trim_end_matches('/').to_string();
        url::Url::parse(&shop_url).with_context(|| format!("SHOP_URL={shop_url:?}"))?;
        let image_url_template = var("IMAGE_URL_TEMPLATE").unwrap_or_else(|| "{url}".into());
        if !image_url_template.contains("{url}") {
            bail!("IMAGE_URL_TEMPLATE must contain the {{url}} placeholder");
        }
        let defaults = QueryLimits::default();
        let limits = QueryLimits {
            max_depth: parse("MAX_QUERY_DEPTH", defaults.max_depth)?,
            max_cost: parse("MAX_QUERY_COST", defaults.max_cost)?,
            max_aliases: parse("MAX_QUERY_ALIASES", defaults.max_aliases)?,
            max_root_fields: parse("MAX_QUERY_ROOT_FIELDS", defaults.max_root_fields)?,
            max_tokens: parse("MAX_QUERY_TOKENS", defaults.max_tokens)?,
            max_page_size: parse("MAX_PAGE_SIZE", defaults.max_page_size)?,
            max_fields: parse("MAX_QUERY_FIELDS", defaults.max_fields)?,
        };
        if limits.max_page_size == 0 || limits.max_depth == 0 {
            bail!("MAX_PAGE_SIZE and MAX_QUERY_DEPTH must be at least 1");
        }
        let order_webhook_urls = list("ORDER_WEBHOOK_URLS");
        for u in &order_webhook_urls {
            let parsed =
                url::Url::parse(u).with_context(|| format!("ORDER_WEBHOOK_URLS entry {u:?}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("ORDER_WEBHOOK_URLS entry {u:?} must be an http(s) URL");
            }
        }
        let order_webhook_secret = var("ORDER_WEBHOOK_SECRET");
        if !order_webhook_urls.is_empty() && order_webhook_secret.is_none() {
            bail!("ORDER_WEBHOOK_URLS needs ORDER_WEBHOOK_SECRET to sign the deliveries");
        }
        let pool_size = parse("DATABASE_POOL_SIZE", 16usize)?;
        let cache = CacheConfig::from_env()?;
        let rate_limits = RateLimitConfig::from_env(&cache.redis_url)?;
        if pool_size == 0 {
            bail!("DATABASE_POOL_SIZE must be at least 1");
        }
        Ok(Self {
            database_url,
            replica_urls,
            pool_size,
            connect_timeout: millis("DATABASE_CONNECT_TIMEOUT_MS", 2_000)?,
            generic_plans: flag("DATABASE_GENERIC_PLANS", true)?,
            replica_max_lag: millis("REPLICA_MAX_LAG_MS", 5_000)?,
            replica_health_interval: millis("REPLICA_HEALTH_INTERVAL_MS", 1_000)?,
            cache,
            listen_addr,
            auto_migrate: flag("AUTO_MIGRATE", true)?,
            auto_seed_products: parse("AUTO_SEED_PRODUCTS", 200u32)?,
            shop_currency,
            shop_url,
            image_url_template,
            introspection: flag("INTROSPECTION", true)?,
            query_stats: flag("QUERY_STATS", false)?,
            request_timeout: millis("REQUEST_TIMEOUT_MS", 15_000)?,
            max_body_bytes: parse("MAX_BODY_BYTES", 256 * 1024usize)?,
            max_concurrent_requests: parse("MAX_CONCURRENT_REQUESTS", default_concurrency())?
                .max(1),
            shutdown_grace: millis("SHUTDOWN_GRACE_MS", 20_000)?,
            max_cart_lines: parse("MAX_CART_LINES", 250usize)?,
            max_line_quantity: parse("MAX_LINE_QUANTITY", 10_000i32)?,
            limits,
            checkout: crate::checkout::CheckoutSettings {
                tax_rate_bps: parse("TAX_RATE_BPS", 0u32)?,
                shipping_methods: crate::checkout::parse_shipping_methods(
                    &var("SHIPPING_METHODS").unwrap_or_else(|| {
                        "standard:Standard shipping:5.00,express:Express shipping:15.00".into()
                    }),
                )?,
                reservation_ttl: Duration::from_secs(parse("RESERVATION_TTL_SECS", 900u64)?),
                hooks: crate::checkout::events::Hooks::new(order_webhook_urls),
                inventory_low_threshold: parse("INVENTORY_LOW_THRESHOLD", 5i64)?,
            },
            order_webhook_secret,
            webhook_timeout: millis("WEBHOOK_TIMEOUT_MS", 10_000)?,
            payment_webhook_secret: var("PAYMENT_WEBHOOK_SECRET"),
            payment_webhook_tolerance: Duration::from_secs(parse(
                "PAYMENT_WEBHOOK_TOLERANCE_SECS",
                300u64,
            )?),
            smtp_url: var("SMTP_URL"),
            mail_from: var("MAIL_FROM").unwrap_or_else(|| "Shop <shop@localhost>".into()),
            smtp_timeout: millis("SMTP_TIMEOUT_MS", 10_000)?,
            jobs: JobsConfig {
                embedded: flag("RUN_WORKERS", true)?,
                worker: crate::jobs::worker::WorkerConfig {
                    queues: parse_queues(&var("JOB_QUEUES").unwrap_or_default())?,
                    poll_interval: millis("JOB_POLL_INTERVAL_MS", 250)?,
                    job_timeout: millis("JOB_TIMEOUT_MS", 60_000)?,
                    import_timeout: millis("IMPORT_TIMEOUT_MS", 3_600_000)?,
                    backoff_base: millis("JOB_BACKOFF_BASE_MS", 1_000)?,
                    backoff_max: millis("JOB_BACKOFF_MAX_MS", 3_600_000)?,
                    shutdown_grace: millis("SHUTDOWN_GRACE_MS", 20_000)?,
                },
            },
            metrics: crate::telemetry::metrics::MetricsConfig {
                enabled: flag("METRICS_ENABLED", true)?,
                addr: var("METRICS_ADDR")
                    .map(|a| {
                        a.parse()
                            .with_context(|| format!("METRICS_ADDR: {a:?} is not host:port"))
                    })
                    .transpose()?,
                slow_query: millis("SLOW_QUERY_MS", 200)?,
                max_operations: parse("METRICS_MAX_OPERATIONS", 200usize)?,
            },
            rate_limits,
            webhook_allow_private_targets: flag("WEBHOOK_ALLOW_PRIVATE_TARGETS", false)?,
        })
    }
}
