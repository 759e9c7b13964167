//! W3C Trace Context (`traceparent`, `tracestate`) and Baggage across process
//! boundaries: read from incoming requests, written into jobs and outgoing webhooks.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapCompositePropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

struct HeaderReader<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderWriter<'a>(&'a mut axum::http::HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The remote parent a request's headers name (an empty context when none).
pub fn extract(headers: &axum::http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderReader(headers)))
}

/// Adds the current span's `traceparent` (and baggage) to outgoing headers.
pub fn inject_current(headers: &mut axum::http::HeaderMap) {
    if !super::tracing_enabled() {
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderWriter(headers))
    });
}

/// The current span's context as a small map (`traceparent`, `tracestate`), for storing
/// with a job; `None` when traces are off or there is no valid span.
pub fn current_as_map() -> Option<serde_json::Value> {
    if !super::tracing_enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut map: HashMap<String, String> = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    // Only the trace context: baggage is the client's, and a job row outlives the request.
    map.retain(|k, _| k == "traceparent" || k == "tracestate");
    serde_json::to_value(map).ok()
}

/// The span context stored by [`current_as_map`], to link a job's span to the request
/// that enqueued it.
pub fn span_context_of(stored: &serde_json::Value) -> Option<SpanContext> {
    let map: HashMap<String, String> = serde_json::from_value(stored.clone()).ok()?;
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&map));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}
