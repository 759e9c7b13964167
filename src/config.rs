//! Runtime configuration: read once at start-up from environment variables, validated,
//! and assembled into each module's own settings.
//!
//! Each module below this one owns its settings type and their defaults
//! ([`crate::db::DbSettings`], [`crate::cache::CacheSettings`],
//! [`crate::ratelimit::Settings`], [`crate::checkout::Settings`], [`crate::jobs::Settings`],
//! …); this file only reads the environment,
//! checks every value (a typo fails the start with a message naming the variable) and puts
//! them together. Dependencies point from here to the modules, never back. The settings of
//! the layers above (the HTTP server and the GraphQL limits) live here, since those layers
//! read the configuration through [`crate::app::App`].
//!
//! [`Config::defaults`] is the documented defaults alone: tests build on it, so the
//! developer's environment never changes what a test runs with. The README's
//! configuration table lists the same names; keep the two together.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cache::{CacheSettings, PersistedQueryMode};
use crate::db::DbSettings;
use crate::ratelimit::{BucketSpec, IpNet};
use crate::telemetry::metrics::MetricsSettings;
use crate::{cart, checkout, inventory, jobs, mail, orders, partners, payments, ratelimit};

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

/// The HTTP server and the GraphQL endpoint.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// `LISTEN_ADDR`: where the HTTP server listens.
    pub listen_addr: SocketAddr,
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
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            introspection: true,
            query_stats: false,
            request_timeout: Duration::from_millis(15_000),
            max_concurrent_requests: default_concurrency(),
            max_body_bytes: 256 * 1024,
            shutdown_grace: Duration::from_millis(20_000),
        }
    }
}

/// The shop as buyers see it.
#[derive(Clone, Debug)]
pub struct ShopSettings {
    /// `SHOP_CURRENCY`: the currency prices fall back to.
    pub currency: String,
    /// `SHOP_URL`: public base URL, used for `checkoutUrl` and menu links.
    pub url: String,
    /// `IMAGE_URL_TEMPLATE`: image-CDN URL built by `Image.url(transform:)`.
    pub image_url_template: String,
}

impl Default for ShopSettings {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            url: "http://127.0.0.1:8080".into(),
            image_url_template: "{url}".into(),
        }
    }
}

/// What `serve` does to the database before it listens.
#[derive(Clone, Debug)]
pub struct StartupSettings {
    /// `AUTO_MIGRATE`: run pending migrations when `serve` starts.
    pub auto_migrate: bool,
    /// `AUTO_SEED_PRODUCTS`: products of demo catalog seeded into an empty database (0 = off).
    pub auto_seed_products: u32,
}

impl Default for StartupSettings {
    fn default() -> Self {
        Self {
            auto_migrate: true,
            auto_seed_products: 200,
        }
    }
}

/// Everything a gateway process is configured with, one field per module.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub server: ServerSettings,
    /// `MAX_QUERY_*`, `MAX_PAGE_SIZE`.
    pub limits: QueryLimits,
    pub shop: ShopSettings,
    pub startup: StartupSettings,
    pub db: DbSettings,
    pub cache: CacheSettings,
    pub rate_limits: ratelimit::Settings,
    pub cart: cart::Settings,
    pub checkout: checkout::Settings,
    pub orders: orders::Settings,
    pub inventory: inventory::Settings,
    pub payments: payments::Settings,
    pub mail: mail::Settings,
    pub partners: partners::Settings,
    pub jobs: jobs::Settings,
    pub metrics: MetricsSettings,
}

impl Config {
    /// The documented defaults, with nothing read from the environment (tests start here).
    pub fn defaults() -> Self {
        Self::default()
    }

    /// The defaults, overridden by the environment; fails on the first invalid value.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::defaults();
        let server = server_from_env(&d.server)?;
        let shop = shop_from_env(&d.shop, server.listen_addr)?;
        let cache = cache_from_env(&d.cache)?;
        let rate_limits = rate_limits_from_env(&d.rate_limits, &cache.redis_url)?;
        Ok(Self {
            limits: limits_from_env(&d.limits)?,
            startup: StartupSettings {
                auto_migrate: flag("AUTO_MIGRATE", d.startup.auto_migrate)?,
                auto_seed_products: parse("AUTO_SEED_PRODUCTS", d.startup.auto_seed_products)?,
            },
            db: db_from_env(&d.db)?,
            cart: cart::Settings {
                max_lines: parse("MAX_CART_LINES", d.cart.max_lines)?,
                max_quantity: parse("MAX_LINE_QUANTITY", d.cart.max_quantity)?,
            },
            checkout: checkout_from_env(&d.checkout)?,
            orders: orders_from_env()?,
            inventory: inventory::Settings {
                low_threshold: parse("INVENTORY_LOW_THRESHOLD", d.inventory.low_threshold)?,
            },
            payments: payments::Settings {
                webhook_secret: var("PAYMENT_WEBHOOK_SECRET"),
                webhook_tolerance: Duration::from_secs(parse(
                    "PAYMENT_WEBHOOK_TOLERANCE_SECS",
                    d.payments.webhook_tolerance.as_secs(),
                )?),
            },
            mail: mail::Settings {
                smtp_url: var("SMTP_URL"),
                from: var("MAIL_FROM").unwrap_or(d.mail.from),
                timeout: millis("SMTP_TIMEOUT_MS", d.mail.timeout)?,
            },
            partners: partners::Settings {
                order_webhook_secret: var("ORDER_WEBHOOK_SECRET"),
                webhook_timeout: millis("WEBHOOK_TIMEOUT_MS", d.partners.webhook_timeout)?,
                allow_private_targets: flag(
                    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
                    d.partners.allow_private_targets,
                )?,
            },
            jobs: jobs_from_env(&d.jobs)?,
            metrics: metrics_from_env(&d.metrics)?,
            server,
            shop,
            cache,
            rate_limits,
        })
        .and_then(Self::validated)
    }

    /// Checks that span several modules' settings.
    fn validated(self) -> anyhow::Result<Self> {
        if !self.orders.hooks.urls.is_empty() && self.partners.order_webhook_secret.is_none() {
            bail!("ORDER_WEBHOOK_URLS needs ORDER_WEBHOOK_SECRET to sign the deliveries");
        }
        Ok(self)
    }
}

fn server_from_env(d: &ServerSettings) -> anyhow::Result<ServerSettings> {
    Ok(ServerSettings {
        listen_addr: parse("LISTEN_ADDR", d.listen_addr)?,
        introspection: flag("INTROSPECTION", d.introspection)?,
        query_stats: flag("QUERY_STATS", d.query_stats)?,
        request_timeout: millis("REQUEST_TIMEOUT_MS", d.request_timeout)?,
        max_body_bytes: parse("MAX_BODY_BYTES", d.max_body_bytes)?,
        max_concurrent_requests: parse("MAX_CONCURRENT_REQUESTS", d.max_concurrent_requests)?
            .max(1),
        shutdown_grace: millis("SHUTDOWN_GRACE_MS", d.shutdown_grace)?,
    })
}

fn shop_from_env(d: &ShopSettings, listen_addr: SocketAddr) -> anyhow::Result<ShopSettings> {
    let currency = var("SHOP_CURRENCY")
        .unwrap_or_else(|| d.currency.clone())
        .to_uppercase();
    if crate::money::exponent(&currency).is_none() {
        bail!("SHOP_CURRENCY={currency:?} is not a supported ISO 4217 currency code");
    }
    let url = var("SHOP_URL").unwrap_or_else(|| format!("http://{listen_addr}"));
    let url = url.trim_end_matches('/').to_string();
    url::Url::parse(&url).with_context(|| format!("SHOP_URL={url:?}"))?;
    let image_url_template =
        var("IMAGE_URL_TEMPLATE").unwrap_or_else(|| d.image_url_template.clone());
    if !image_url_template.contains("{url}") {
        bail!("IMAGE_URL_TEMPLATE must contain the {{url}} placeholder");
    }
    Ok(ShopSettings {
        currency,
        url,
        image_url_template,
    })
}

fn limits_from_env(d: &QueryLimits) -> anyhow::Result<QueryLimits> {
    let limits = QueryLimits {
        max_depth: parse("MAX_QUERY_DEPTH", d.max_depth)?,
        max_cost: parse("MAX_QUERY_COST", d.max_cost)?,
        max_aliases: parse("MAX_QUERY_ALIASES", d.max_aliases)?,
        max_root_fields: parse("MAX_QUERY_ROOT_FIELDS", d.max_root_fields)?,
        max_tokens: parse("MAX_QUERY_TOKENS", d.max_tokens)?,
        max_page_size: parse("MAX_PAGE_SIZE", d.max_page_size)?,
        max_fields: parse("MAX_QUERY_FIELDS", d.max_fields)?,
    };
    if limits.max_page_size == 0 || limits.max_depth == 0 {
        bail!("MAX_PAGE_SIZE and MAX_QUERY_DEPTH must be at least 1");
    }
    Ok(limits)
}

fn db_from_env(d: &DbSettings) -> anyhow::Result<DbSettings> {
    let pool_size = parse("DATABASE_POOL_SIZE", d.pool_size)?;
    if pool_size == 0 {
        bail!("DATABASE_POOL_SIZE must be at least 1");
    }
    Ok(DbSettings {
        url: var("DATABASE_URL").unwrap_or_else(|| d.url.clone()),
        replica_urls: list("DATABASE_REPLICA_URLS"),
        pool_size,
        connect_timeout: millis("DATABASE_CONNECT_TIMEOUT_MS", d.connect_timeout)?,
        generic_plans: flag("DATABASE_GENERIC_PLANS", d.generic_plans)?,
        replica_max_lag: millis("REPLICA_MAX_LAG_MS", d.replica_max_lag)?,
        replica_health_interval: millis("REPLICA_HEALTH_INTERVAL_MS", d.replica_health_interval)?,
    })
}

fn cache_from_env(d: &CacheSettings) -> anyhow::Result<CacheSettings> {
    let redis_url = var("REDIS_URL").unwrap_or_else(|| d.redis_url.clone());
    url::Url::parse(&redis_url).with_context(|| format!("REDIS_URL={redis_url:?}"))?;
    let cache_control_by_operation = match var("CACHE_CONTROL_BY_OPERATION") {
        Some(json) => serde_json::from_str(&json).context(
            "CACHE_CONTROL_BY_OPERATION must be a JSON object of operation name to Cache-Control",
        )?,
        None => d.cache_control_by_operation.clone(),
    };
    let cdn_purge_url = var("CDN_PURGE_URL");
    if let Some(u) = &cdn_purge_url {
        url::Url::parse(u).with_context(|| format!("CDN_PURGE_URL={u:?}"))?;
    }
    let persisted_queries = match var("PERSISTED_QUERIES").as_deref() {
        None => d.persisted_queries,
        Some("automatic") => PersistedQueryMode::Automatic,
        Some("allowlist") => PersistedQueryMode::AllowList,
        Some(other) => bail!("PERSISTED_QUERIES={other:?}: use automatic or allowlist"),
    };
    let key_prefix = var("CACHE_KEY_PREFIX").unwrap_or_else(|| d.key_prefix.clone());
    if key_prefix.is_empty() || key_prefix.contains(char::is_whitespace) {
        bail!("CACHE_KEY_PREFIX must be non-empty and without spaces");
    }
    Ok(CacheSettings {
        enabled: flag("CACHE_ENABLED", d.enabled)?,
        redis_url,
        redis_timeout: millis("REDIS_TIMEOUT_MS", d.redis_timeout)?,
        breaker_open: millis("REDIS_BREAKER_OPEN_MS", d.breaker_open)?,
        key_prefix,
        ttl: secs("CACHE_TTL_SECS", d.ttl)?.max(Duration::from_secs(1)),
        local_ttl: secs("CACHE_LOCAL_TTL_SECS", d.local_ttl)?.max(Duration::from_secs(1)),
        local_max_bytes: parse("CACHE_LOCAL_MAX_MB", d.local_max_bytes / (1024 * 1024))?
            * 1024
            * 1024,
        local_entities: parse("CACHE_LOCAL_ENTITIES", d.local_entities)?,
        cache_control: var("CACHE_CONTROL").unwrap_or_else(|| d.cache_control.clone()),
        cache_control_by_operation,
        cdn_purge_url,
        cdn_purge_token: var("CDN_PURGE_TOKEN"),
        persisted_queries,
        manifest: var("PERSISTED_QUERY_MANIFEST").map(Into::into),
        apq_ttl: secs("APQ_TTL_SECS", d.apq_ttl)?,
    })
}

fn rate_limits_from_env(
    d: &ratelimit::Settings,
    redis_url: &str,
) -> anyhow::Result<ratelimit::Settings> {
    let plans = match var("ADMIN_PLANS") {
        None => d.plans.clone(),
        Some(spec) => parse_plans(&spec)?,
    };
    let key_prefix = var("RATE_LIMIT_KEY_PREFIX").unwrap_or_else(|| d.key_prefix.clone());
    if key_prefix.contains(char::is_whitespace) {
        bail!("RATE_LIMIT_KEY_PREFIX must not contain spaces");
    }
    let redis_url = var("RATE_LIMIT_REDIS_URL").unwrap_or_else(|| redis_url.to_string());
    url::Url::parse(&redis_url).with_context(|| format!("RATE_LIMIT_REDIS_URL={redis_url:?}"))?;
    let bucket = |name: &str, default: BucketSpec| match var(name) {
        None => Ok(default),
        Some(text) => BucketSpec::parse(name, &text),
    };
    Ok(ratelimit::Settings {
        storefront_enabled: flag("RATE_LIMIT_ENABLED", d.storefront_enabled)?,
        redis_url,
        redis_timeout: millis("RATE_LIMIT_REDIS_TIMEOUT_MS", d.redis_timeout)?,
        key_prefix,
        instances: parse("RATE_LIMIT_INSTANCES", d.instances)?,
        plans,
        storefront_ip: bucket("STOREFRONT_IP_LIMIT", d.storefront_ip)?,
        storefront_token: bucket("STOREFRONT_TOKEN_LIMIT", d.storefront_token)?,
        auth_failures: bucket("AUTH_FAILURE_LIMIT", d.auth_failures)?,
        trusted_proxies: list("TRUSTED_PROXIES")
            .iter()
            .map(|t| IpNet::parse(t).context("TRUSTED_PROXIES"))
            .collect::<anyhow::Result<_>>()?,
        private_tokens: list("STOREFRONT_PRIVATE_TOKENS"),
    })
}

/// Parses `ADMIN_PLANS`: `name=capacity:rate,…`.
fn parse_plans(spec: &str) -> anyhow::Result<Vec<(String, BucketSpec)>> {
    let mut plans = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
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
    Ok(plans)
}

fn checkout_from_env(d: &checkout::Settings) -> anyhow::Result<checkout::Settings> {
    Ok(checkout::Settings {
        tax_rate_bps: parse("TAX_RATE_BPS", d.tax_rate_bps)?,
        shipping_methods: match var("SHIPPING_METHODS") {
            Some(spec) => checkout::parse_shipping_methods(&spec)?,
            None => d.shipping_methods.clone(),
        },
        reservation_ttl: secs("RESERVATION_TTL_SECS", d.reservation_ttl)?,
    })
}

fn orders_from_env() -> anyhow::Result<orders::Settings> {
    let order_webhook_urls = list("ORDER_WEBHOOK_URLS");
    for u in &order_webhook_urls {
        let parsed =
            url::Url::parse(u).with_context(|| format!("ORDER_WEBHOOK_URLS entry {u:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("ORDER_WEBHOOK_URLS entry {u:?} must be an http(s) URL");
        }
    }
    Ok(orders::Settings {
        hooks: orders::events::Hooks::new(order_webhook_urls),
    })
}

fn jobs_from_env(d: &jobs::Settings) -> anyhow::Result<jobs::Settings> {
    let w = &d.worker;
    Ok(jobs::Settings {
        embedded: flag("RUN_WORKERS", d.embedded)?,
        worker: jobs::worker::WorkerSettings {
            queues: parse_queues(&var("JOB_QUEUES").unwrap_or_default())?,
            poll_interval: millis("JOB_POLL_INTERVAL_MS", w.poll_interval)?,
            job_timeout: millis("JOB_TIMEOUT_MS", w.job_timeout)?,
            import_timeout: millis("IMPORT_TIMEOUT_MS", w.import_timeout)?,
            backoff_base: millis("JOB_BACKOFF_BASE_MS", w.backoff_base)?,
            backoff_max: millis("JOB_BACKOFF_MAX_MS", w.backoff_max)?,
            shutdown_grace: millis("SHUTDOWN_GRACE_MS", w.shutdown_grace)?,
        },
    })
}

fn metrics_from_env(d: &MetricsSettings) -> anyhow::Result<MetricsSettings> {
    Ok(MetricsSettings {
        enabled: flag("METRICS_ENABLED", d.enabled)?,
        addr: match var("METRICS_ADDR") {
            Some(a) => Some(
                a.parse()
                    .with_context(|| format!("METRICS_ADDR: {a:?} is not host:port"))?,
            ),
            None => d.addr,
        },
        slow_query: millis("SLOW_QUERY_MS", d.slow_query)?,
        max_operations: parse("METRICS_MAX_OPERATIONS", d.max_operations)?,
    })
}

/// Parses `queue=concurrency,…`; queues not named keep their default.
fn parse_queues(spec: &str) -> anyhow::Result<Vec<(String, usize)>> {
    let mut queues = crate::jobs::worker::WorkerSettings::default().queues;
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

fn millis(name: &str, default: Duration) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(parse(
        name,
        default.as_millis() as u64,
    )?))
}

fn secs(name: &str, default: Duration) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(parse(name, default.as_secs())?))
}

/// Four executions per core: enough to keep the cores busy while others wait on the
/// database (more in flight only adds memory: measured in bench/README.md).
fn default_concurrency() -> usize {
    4 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documented_values() {
        let c = Config::defaults();
        assert_eq!(
            c.db.url,
            "postgres://postgres@127.0.0.1:5432/commerce_gateway"
        );
        assert_eq!(c.db.pool_size, 16);
        assert_eq!(c.cache.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.shop.currency, "USD");
        assert_eq!(c.limits.max_depth, 15);
        assert_eq!(c.cart.max_lines, 250);
        assert_eq!(c.checkout.shipping_methods.len(), 2);
        assert!(c.jobs.embedded);
        assert_eq!(c.jobs.worker.queues.len(), jobs::QUEUES.len());
        assert!(c.validated().is_ok());
    }

    #[test]
    fn job_queues_override_only_the_named_queues() {
        let q = parse_queues("email=5").unwrap();
        assert!(q.contains(&("email".to_string(), 5)));
        assert!(q.contains(&("orders".to_string(), 4)));
        assert!(parse_queues("nope=1").is_err());
    }

    #[test]
    fn admin_plans_parse() {
        let p = parse_plans("a=10:1.5, b=20:2").unwrap();
        assert_eq!(
            p[0],
            (
                "a".to_string(),
                BucketSpec {
                    capacity: 10,
                    rate: 1.5
                }
            )
        );
        assert!(parse_plans("bad name=1:1").is_err());
        assert!(parse_plans("").is_err());
    }
}
