//! Prometheus metrics: the recorder, bucket layouts, bounded label values, and the
//! gauges read at scrape time. Names and labels are listed in `docs/metrics.md`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The Content-Type of `GET /metrics` (Prometheus text format 0.0.4; Prometheus 3
/// refuses a scrape without one).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];
const COST_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 25000.0, 100000.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
static SLOW_QUERY_MICROS: AtomicU64 = AtomicU64::new(200_000);
static MAX_OPERATIONS: AtomicUsize = AtomicUsize::new(200);
static OPERATIONS: OnceLock<RwLock<HashSet<String>>> = OnceLock::new();

/// The operation label of anonymous operations.
pub const ANONYMOUS: &str = "__anonymous";
/// The operation label of names past `METRICS_MAX_OPERATIONS`.
pub const OTHER: &str = "__other";

/// `METRICS_ENABLED`, `METRICS_ADDR`, `SLOW_QUERY_MS`, `METRICS_MAX_OPERATIONS`.
#[derive(Clone, Debug)]
pub struct MetricsSettings {
    pub enabled: bool,
    /// Serve `/metrics` on this address too (the worker's only HTTP listener).
    pub addr: Option<std::net::SocketAddr>,
    pub slow_query: Duration,
    pub max_operations: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: None,
            slow_query: Duration::from_millis(200),
            max_operations: 200,
        }
    }
}

/// Installs the process-wide recorder (once; later calls keep the first). Without it
/// every `metrics` macro is a no-op.
pub fn install(config: &MetricsSettings) -> anyhow::Result<()> {
    SLOW_QUERY_MICROS.store(config.slow_query.as_micros() as u64, Ordering::Relaxed);
    MAX_OPERATIONS.store(config.max_operations, Ordering::Relaxed);
    if !config.enabled || HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("gateway_graphql_operation_cost".into()),
            COST_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        // Another recorder is in place (a test harness): leave it.
        return Ok(());
    }
    let _ = HANDLE.set(handle.clone());
    describe();
    let process = metrics_process::Collector::default();
    process.describe();
    let _ = PROCESS.set(process);
    gauge!("gateway_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Unlabelled counters exist from the start, so the first event is an increase from
    // 0 (not a new series that `increase()` cannot see) and panels read 0, not "No data".
    for name in [
        "gateway_orders_created_total",
        "gateway_stock_outs_total",
        "gateway_cache_flushes_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::counter!("gateway_cache_coalesced_total", "cache" => "response").increment(0);
    // Histograms keep their samples until upkeep folds them in.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    Ok(())
}

pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// The exposition text, with the process gauges read now.
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?;
    if let Some(p) = PROCESS.get() {
        p.collect();
    }
    Some(handle.render())
}

pub fn slow_query_threshold() -> Duration {
    Duration::from_micros(SLOW_QUERY_MICROS.load(Ordering::Relaxed))
}

/// The `operation` label for an operation name: registered (persisted) names always,
/// other names until `METRICS_MAX_OPERATIONS` distinct ones were seen, then `__other`.
pub fn operation_label(name: Option<&str>, registered: bool) -> String {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return ANONYMOUS.into();
    };
    // GraphQL names are [_A-Za-z][_0-9A-Za-z]*; anything else is not one.
    if name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return OTHER.into();
    }
    let seen = OPERATIONS.get_or_init(|| RwLock::new(HashSet::new()));
    if seen
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(name)
    {
        return name.into();
    }
    let max = MAX_OPERATIONS.load(Ordering::Relaxed);
    // Past the cap, unknown names never take the write lock.
    if !registered && seen.read().unwrap_or_else(|e| e.into_inner()).len() >= max {
        return OTHER.into();
    }
    let mut seen = seen.write().unwrap_or_else(|e| e.into_inner());
    if seen.contains(name) || registered || seen.len() < max {
        seen.insert(name.to_string());
        return name.into();
    }
    OTHER.into()
}

/// The `method` label: the standard methods, anything else `_OTHER` (a client can send
/// any token as a method).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `2xx`, `4xx`, …
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Error codes the gateway sends; anything else is counted as `OTHER`.
const ERROR_CODES: &[&str] = &[
    "BAD_USER_INPUT",
    "BAD_REQUEST",
    "FRAGMENT_CYCLE",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "INTERNAL_SERVER_ERROR",
    "MAX_ALIASES_EXCEEDED",
    "MAX_COST_EXCEEDED",
    "MAX_DEPTH_EXCEEDED",
    "MAX_FIELDS_EXCEEDED",
    "MAX_PAGE_SIZE_EXCEEDED",
    "MAX_ROOT_FIELDS_EXCEEDED",
    "MAX_TOKENS_EXCEEDED",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_INVALID",
    "PERSISTED_QUERY_ID_REQUIRED",
    "PERSISTED_QUERY_NOT_IN_LIST",
    "PERSISTED_QUERY_NOT_SUPPORTED",
    "PERSISTED_QUERY_HASH_MISMATCH",
    "SERVICE_UNAVAILABLE",
    "THROTTLED",
    "TIMEOUT",
    "UNAUTHENTICATED",
    "ACCESS_DENIED",
];

pub fn error_code_label(code: Option<&str>) -> &'static str {
    match code {
        None => "NONE",
        Some(c) => ERROR_CODES
            .iter()
            .find(|k| **k == c)
            .copied()
            .unwrap_or("OTHER"),
    }
}

fn describe() {
    use metrics::Unit;
    describe_histogram!(
        "gateway_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP requests by matched route, method and status class"
    );
    describe_gauge!(
        "gateway_http_requests_in_flight",
        "HTTP requests being served"
    );
    describe_counter!(
        "gateway_graphql_operations_total",
        "GraphQL operations by name, type and outcome (success, error, rejected)"
    );
    describe_histogram!(
        "gateway_graphql_operation_duration_seconds",
        Unit::Seconds,
        "GraphQL operation latency, cache hits included"
    );
    describe_histogram!(
        "gateway_graphql_operation_cost",
        "Computed cost of admitted GraphQL operations"
    );
    describe_counter!(
        "gateway_graphql_errors_total",
        "Errors in GraphQL responses by extensions.code"
    );
    describe_histogram!(
        "gateway_db_query_duration_seconds",
        Unit::Seconds,
        "SQL statements by pool and statement family"
    );
    describe_counter!(
        "gateway_db_slow_queries_total",
        "SQL statements slower than SLOW_QUERY_MS"
    );
    describe_counter!(
        "gateway_db_query_errors_total",
        "SQL statements that failed"
    );
    describe_gauge!(
        "gateway_db_pool_connections",
        "Pool connections by state (in_use, idle)"
    );
    describe_gauge!("gateway_db_pool_max_connections", "Pool size");
    describe_gauge!(
        "gateway_db_pool_waiting",
        "Tasks waiting for a pool connection"
    );
    describe_gauge!(
        "gateway_db_replica_lag_seconds",
        Unit::Seconds,
        "Replica replay lag at the last probe"
    );
    describe_gauge!(
        "gateway_db_replica_healthy",
        "1 while the replica is in the read rotation"
    );
    describe_counter!(
        "gateway_cache_requests_total",
        "Cache look-ups by cache and result (hit, miss)"
    );
    describe_counter!("gateway_cache_hits_total", "Cache hits by tier");
    describe_counter!(
        "gateway_cache_coalesced_total",
        "Misses that waited for a concurrent computation"
    );
    describe_counter!(
        "gateway_cache_invalidations_total",
        "Cache tags invalidated"
    );
    describe_counter!(
        "gateway_cache_flushes_total",
        "Whole-cache flushes (epoch changes)"
    );
    describe_histogram!(
        "gateway_redis_command_duration_seconds",
        Unit::Seconds,
        "Redis round trips by command"
    );
    describe_counter!(
        "gateway_redis_errors_total",
        "Failed or timed-out Redis commands"
    );
    describe_gauge!(
        "gateway_redis_up",
        "1 when Redis is reachable and the breaker closed"
    );
    describe_counter!(
        "gateway_redis_breaker_trips_total",
        "Times the Redis circuit breaker opened"
    );
    describe_counter!(
        "gateway_rate_limit_decisions_total",
        "Rate-limit decisions by plan and outcome"
    );
    describe_counter!(
        "gateway_rate_limit_fallback_total",
        "Rate-limit decisions taken on this instance's share because Redis did not answer"
    );
    describe_gauge!(
        "gateway_rate_limit_instances",
        "Live gateways sharing the rate-limit budgets, as last counted through Redis"
    );
    describe_counter!(
        "gateway_admin_operations_total",
        "Admin API requests by plan and outcome"
    );
    describe_counter!(
        "gateway_admission_rejections_total",
        "Requests refused by the query limits, by reason"
    );
    describe_counter!("gateway_checkouts_total", "Checkouts by outcome");
    describe_counter!("gateway_orders_created_total", "Orders created");
    describe_counter!(
        "gateway_stock_outs_total",
        "Cart lines refused at checkout for lack of stock"
    );
    describe_counter!(
        "gateway_payments_total",
        "Payment authorizations and payment events by provider and outcome"
    );
    describe_gauge!("gateway_jobs", "Jobs by queue and state");
    describe_gauge!(
        "gateway_jobs_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest due queued job"
    );
    describe_counter!(
        "gateway_job_runs_total",
        "Job runs by queue, kind and outcome (success, retry, dead)"
    );
    describe_histogram!(
        "gateway_job_duration_seconds",
        Unit::Seconds,
        "Job run time by queue and kind"
    );
    describe_gauge!("gateway_build_info", "Version of the running gateway");
}
