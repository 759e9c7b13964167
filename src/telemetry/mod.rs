//! Observability: logs, OpenTelemetry traces and Prometheus metrics.
//!
//! - **Logs** go to stderr, as text or as JSON (`LOG_FORMAT=json`) carrying the trace and
//!   span ids of the span they were written in.
//! - **Traces** are exported over OTLP (gRPC or HTTP/protobuf) when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set; the SDK reads the other
//!   standard variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_TRACES_SAMPLER`/`…_ARG`, `OTEL_BSP_*`). Spans go through a batch processor with
//!   a bounded queue on a thread of its own: a slow or absent collector costs dropped
//!   spans, never a blocked or failed request. W3C `traceparent` and `baggage` are read
//!   from requests ([`propagation`]) and written into jobs and outgoing webhooks.
//! - **Metrics** are recorded with the `metrics` facade and rendered by
//!   [`metrics::render`] for `GET /metrics`; `docs/metrics.md` is the catalog.

pub mod metrics;
pub mod propagation;
pub mod sql;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The service name traces carry unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// name another.
pub const SERVICE_NAME: &str = "commerce-gateway";

static TRACING: AtomicBool = AtomicBool::new(false);
/// The head sampler from `OTEL_TRACES_SAMPLER`/`…_ARG`: (ratio, parent-based).
static SAMPLER: std::sync::OnceLock<(f64, bool)> = std::sync::OnceLock::new();

/// `OTEL_TRACES_SAMPLER` and its argument, as the specification defines them.
fn head_sampler() -> (f64, bool) {
    let arg = || {
        std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|a| a.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0)
    };
    match std::env::var("OTEL_TRACES_SAMPLER")
        .as_deref()
        .map(str::trim)
    {
        Ok("always_on") => (1.0, false),
        Ok("always_off") => (0.0, false),
        Ok("traceidratio") => (arg(), false),
        Ok("parentbased_always_off") => (0.0, true),
        Ok("parentbased_traceidratio") => (arg(), true),
        _ => (1.0, true),
    }
}

/// The sampling decision for a trace starting here (a request, with the remote parent
/// its `traceparent` names, or a job): parent-based samplers follow a valid parent's
/// flag; otherwise the ratio decides. It is taken before any span exists, so an
/// unsampled request or job costs no span at all; the SDK then records every span it is
/// given (its sampler is always-on).
pub fn sample(parent: &opentelemetry::Context) -> bool {
    if !tracing_enabled() {
        return false;
    }
    let (ratio, parent_based) = *SAMPLER.get_or_init(head_sampler);
    let span = parent.span();
    let sc = span.span_context();
    if parent_based && sc.is_valid() {
        return sc.is_sampled();
    }
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    // Like the SDK's TraceIdRatioBased: a known trace id decides by its low 64 bits, so
    // every service sampling the same trace agrees; a new trace has no id yet.
    let draw = if sc.is_valid() {
        let bytes = sc.trace_id().to_bytes();
        u64::from_be_bytes(bytes[8..16].try_into().unwrap_or([0; 8])) >> 1
    } else {
        rand::random::<u64>() >> 1
    };
    (draw as f64) < ratio * (1u64 << 63) as f64
}

/// True when spans are exported: the code then spends time on span attributes that are
/// only worth computing for a trace (statement text, document hash).
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Should a child span be made here? Only under a span that is being recorded: an
/// unsampled request runs without spans (its HTTP span is dropped once the sampler has
/// said no), so at 10 % sampling nine requests in ten pay for one span, not a dozen.
/// Statements and commands outside any request (probes, listeners) make no spans either.
pub fn child_spans() -> bool {
    tracing_enabled()
        && tracing::Span::current()
            .metadata()
            .is_some_and(|m| m.target() != LOG_ONLY)
}

/// The target of spans made for log lines only (an unsampled job): the trace layer
/// ignores them, and no child span is made under them.
pub const LOG_ONLY: &str = "log_only";

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes what is queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued (bounded by `OTEL_BSP_EXPORT_TIMEOUT`), off the
    /// async threads.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = provider.shutdown() {
                    eprintln!("trace exporter shutdown: {e}");
                }
            })
            .await;
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Is trace export asked for? An OTLP endpoint must be set, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`.
fn export_configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn tracer_provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().build()?;
    let named = env_set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = opentelemetry_sdk::Resource::builder().with_attribute(
        opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    );
    if !named {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    // OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG are applied at the head (`sample`),
    // before any span is made; what reaches the SDK is to be recorded.
    let _ = SAMPLER.set(head_sampler());
    Ok(SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Sets up logging and, when configured, trace export. Call once, inside the runtime
/// (the gRPC exporter needs it).
pub fn init() -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs = if json {
        fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(JsonWithTrace)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    opentelemetry::global::set_text_map_propagator(propagation::propagator());
    let (provider, problem) = if export_configured() {
        match tracer_provider() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    // Spans of this crate only, whatever RUST_LOG says: a quiet log level must not
    // silence traces, and the exporter's own HTTP/gRPC client must not trace itself.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            .with_filter(
                Targets::new()
                    .with_target("commerce_gateway", LevelFilter::INFO)
                    .with_default(LevelFilter::OFF),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    TRACING.store(provider.is_some(), Ordering::Relaxed);
    if let Some(e) = problem {
        tracing::error!(error = %e, "cannot set up the OTLP trace exporter: traces are off");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { provider }
}

/// The trace id of the current span, when spans are exported (for error responses, so
/// support can find the trace).
pub fn current_trace_id() -> Option<String> {
    current_trace_id_of(&tracing::Span::current())
}

/// The trace id of `span`, when spans are exported.
pub fn current_trace_id_of(span: &tracing::Span) -> Option<String> {
    if !tracing_enabled() || span.is_none() {
        return None;
    }
    let cx = span.context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// JSON log lines: `timestamp`, `level`, `target`, `message` and the event's fields,
/// the spans it happened in (names and fields), and `trace_id`/`span_id` when traces are
/// exported.
struct JsonWithTrace;

impl<S, N> fmt::FormatEvent<S, N> for JsonWithTrace
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &fmt::FmtContext<'_, S, N>,
        mut writer: fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use serde_json::{Map, Value};
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut fields = FieldsToJson(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|span| {
                    let mut o = Map::new();
                    o.insert("name".into(), span.name().into());
                    let ext = span.extensions();
                    if let Some(f) = ext.get::<fmt::FormattedFields<N>>()
                        && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(f)
                    {
                        o.extend(m);
                    }
                    Value::Object(o)
                })
                .collect();
            if !spans.is_empty() {
                line.insert("spans".into(), Value::Array(spans));
            }
        }
        if tracing_enabled() {
            let cx = tracing::Span::current().context();
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                line.insert("trace_id".into(), sc.trace_id().to_string().into());
                line.insert("span_id".into(), sc.span_id().to_string().into());
            }
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct FieldsToJson(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for FieldsToJson {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}
