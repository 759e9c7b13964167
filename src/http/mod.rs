//! The HTTP layer: routes, middleware (compression, body limit, timeout), health
//! endpoints, and a server that drains in-flight requests on SIGTERM.
//!
//! HTTP/1.1 and HTTP/2 over cleartext (h2c, prior knowledge) are served on one port.

mod admin;
mod checkout;
mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::App;
use crate::graphql::{self, Storefront};

#[derive(Clone)]
pub struct HttpState {
    app: Arc<App>,
    storefront: Storefront,
    admin: crate::graphql::admin::Admin,
    /// Set on SIGTERM: `/readyz` fails so load balancers stop sending traffic.
    draining: Arc<AtomicBool>,
}

/// Responses smaller than this are not compressed.
const MIN_COMPRESSED_BYTES: u64 = 1024;

impl FromRef<HttpState> for Arc<App> {
    fn from_ref(state: &HttpState) -> Self {
        state.app.clone()
    }
}

pub fn router(app: Arc<App>) -> anyhow::Result<(Router, Arc<AtomicBool>)> {
    let storefront = graphql::build(app.clone())?;
    let admin = graphql::admin::build(app.clone())?;
    let draining = Arc::new(AtomicBool::new(false));
    let state = HttpState {
        app: app.clone(),
        storefront,
        admin,
        draining: draining.clone(),
    };
    // Storefront limits run before the request is even parsed.
    let graphql_routes =
        get(graphql_get)
            .post(graphql_post)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                admin::storefront_limits,
            ));
    let router = Router::new()
        .route("/graphql", graphql_routes.clone())
        .route("/api/{version}/graphql.json", graphql_routes)
        .route("/admin/graphql", post(admin::graphql))
        .route("/admin/exports/{file}", get(admin::export_download))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_endpoint))
        .route("/readyz", get(readyz))
        .route(
            "/checkouts/c/{token}",
            get(checkout::show).post(checkout::submit),
        )
        .route("/orders/{token}", get(checkout::order_page))
        .route("/orders/{token}/invoice", get(checkout::invoice))
        .route(
            "/webhooks/payments/{provider}",
            post(webhooks::payment_webhook),
        )
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(app.config.server.max_body_bytes))
        // Small bodies are sent as they are: below ~1 KiB compression saves a few hundred
        // bytes and costs an encoder context per response (zstd's is megabytes of memset;
        // it was 7 % of the gateway's CPU in the checkout benchmark).
        .layer(
            CompressionLayer::new().compress_when(
                SizeAbove::new(MIN_COMPRESSED_BYTES)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::IMAGES)
                    .and(NotForContentType::SSE),
            ),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            app.config.server.request_timeout,
        ))
        // Outside the limits, so it also sees the rejections of the layers above.
        .layer(axum::middleware::map_response(graphql_shaped_rejections))
        // Outermost: the server span and the request metrics cover everything.
        .layer(axum::middleware::from_fn(observe));
    Ok((router, draining))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// A GraphQL-shaped error for requests that never reached the executor (with the trace
/// id when traces are exported).
fn request_error(status: StatusCode, code: &str, message: String) -> Response {
    let mut extensions = serde_json::json!({ "code": code });
    if let Some(trace_id) = crate::telemetry::current_trace_id() {
        extensions["traceId"] = trace_id.into();
    }
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (status, Json(body)).into_response()
}

/// Counts a request in flight until dropped (also when the client hangs up).
struct InFlight;

impl InFlight {
    fn new() -> Self {
        metrics::gauge!("gateway_http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("gateway_http_requests_in_flight").decrement(1.0);
    }
}

/// The HTTP server span (OpenTelemetry HTTP conventions; the parent comes from the
/// request's `traceparent`) and `gateway_http_request_duration_seconds`. Health checks
/// and scrapes are measured but not traced.
async fn observe(request: Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    use tracing::field::Empty;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let started = std::time::Instant::now();
    let _in_flight = InFlight::new();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    // The standard methods, or `_OTHER` (OpenTelemetry's rule; a client can send any token).
    let method = crate::telemetry::metrics::method_label(request.method());
    let traced = crate::telemetry::tracing_enabled()
        && !matches!(route.as_str(), "/metrics" | "/healthz" | "/readyz");
    // The sampling decision comes first: an unsampled request makes no span at all.
    let parent = if traced && request.headers().contains_key("traceparent") {
        crate::telemetry::propagation::extract(request.headers())
    } else {
        opentelemetry::Context::new()
    };
    let span = if traced && crate::telemetry::sample(&parent) {
        let version = format!("{:?}", request.version());
        let span = tracing::info_span!(
            "http.request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = Empty,
            url.scheme = "http",
            network.protocol.name = "http",
            network.protocol.version = version.trim_start_matches("HTTP/"),
            user_agent.original = request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let _ = span.set_parent(parent);
        span
    } else {
        tracing::Span::none()
    };
    // Recorded when dropped: a request whose client hung up is measured too (as 4xx,
    // nginx's 499), so the slowest requests are not missing from the histogram.
    let mut timing = RequestTiming {
        started,
        route,
        method,
        status: 499,
    };
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    timing.status = status;
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    response
}

struct RequestTiming {
    started: std::time::Instant,
    route: String,
    method: &'static str,
    status: u16,
}

impl Drop for RequestTiming {
    fn drop(&mut self) {
        metrics::histogram!(
            "gateway_http_request_duration_seconds",
            "route" => std::mem::take(&mut self.route),
            "method" => self.method,
            "status_class" => crate::telemetry::metrics::status_class(self.status)
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// `GET /metrics`: the Prometheus text exposition, with the pool, replica and Redis
/// gauges read now. 404 when `METRICS_ENABLED=false`.
async fn metrics_endpoint(State(state): State<HttpState>) -> Response {
    metrics_response(Some(&state.app))
}

/// The router of `METRICS_ADDR`: `/metrics` and `/healthz` (a worker has no app: its
/// job gauges are set by the workers themselves).
pub fn metrics_router(app: Option<Arc<App>>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let app = app.clone();
                async move { metrics_response(app.as_deref()) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

pub fn metrics_response(app: Option<&App>) -> Response {
    if let Some(app) = app {
        app.db.record_gauges();
        app.cache.record_gauges();
    }
    match crate::telemetry::metrics::render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                crate::telemetry::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are off (METRICS_ENABLED=false)\n",
        )
            .into_response(),
    }
}

/// Middleware rejections (body too large, timeout) answered as GraphQL errors, so clients
/// can read them like any other error.
async fn graphql_shaped_rejections(response: Response) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.contains("html"));
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !json => request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "The request body is too large (MAX_BODY_BYTES).".into(),
        ),
        StatusCode::GATEWAY_TIMEOUT if !json => request_error(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            "The request took longer than REQUEST_TIMEOUT_MS.".into(),
        ),
        _ => response,
    }
}

async fn graphql_get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if wants_html(&headers) && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        return Html(
            GraphiQLSource::build()
                .endpoint(request.uri().path())
                .finish(),
        )
        .into_response();
    }
    execute(state, request).await
}

async fn graphql_post(State(state): State<HttpState>, request: Request) -> Response {
    execute(state, request).await
}

async fn execute(state: HttpState, request: Request) -> Response {
    let is_get = request.method() == axum::http::Method::GET;
    let version = request
        .uri()
        .path()
        .strip_prefix("/api/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("default")
        .to_string();
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed =
        match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
            request,
            &(),
        )
        .await
        {
            Ok(r) => r.into_inner(),
            Err(rejection) => {
                let text = rejection.0.to_string();
                let too_large = text.contains("length limit");
                let code = if too_large {
                    "PAYLOAD_TOO_LARGE"
                } else {
                    "BAD_REQUEST"
                };
                metrics::counter!("gateway_graphql_errors_total", "code" => code).increment(1);
                // Body limit breaches surface as a failed body read.
                if too_large {
                    return request_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        "The request body is too large (MAX_BODY_BYTES).".into(),
                    );
                }
                return request_error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    format!("The request is not a valid GraphQL request: {text}"),
                );
            }
        };
    let executed = graphql::execute(&state.app, &state.storefront, parsed, is_get, &version).await;
    respond(&state.app, executed, is_get, &if_none_match)
}

/// The largest `Surrogate-Key` header sent; a response with more tags is not cached by CDNs.
const MAX_SURROGATE_HEADER: usize = 16 * 1024;
const GRAPHQL_JSON: &str = "application/graphql-response+json";

/// Turns an executed request into HTTP, with the caching headers it deserves: persisted
/// queries over GET are cacheable by browsers and CDNs (`Cache-Control`, `ETag`,
/// `Surrogate-Key`/`Cache-Tag` for purging by tag); one buyer's answers never are.
fn respond(
    app: &App,
    executed: graphql::Executed,
    is_get: bool,
    if_none_match: &Option<String>,
) -> Response {
    use axum::http::HeaderValue;
    let graphql::Executed {
        body,
        cache_status,
        personal,
        persisted,
        operation_name,
    } = executed;
    let entry = match body {
        graphql::Body::Fresh(response) => {
            let refused = response
                .errors
                .first()
                .and_then(|e| e.extensions.as_ref())
                .and_then(|x| x.get("code"))
                == Some(&async_graphql::Value::from("METHOD_NOT_ALLOWED"));
            let mut http = GraphQLResponse::from(*response).into_response();
            if refused {
                *http.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            }
            let headers = http.headers_mut();
            if personal {
                headers.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                );
            }
            if let Some(status) = cache_status {
                headers.insert("x-cache", HeaderValue::from_static(status));
            }
            return http;
        }
        graphql::Body::Shared(entry) => entry,
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(GRAPHQL_JSON));
    if let Some(status) = cache_status {
        headers.insert("x-cache", HeaderValue::from_static(status));
    }
    let cdn_cacheable = is_get && persisted.by_hash;
    if cdn_cacheable {
        let config = &app.config.cache;
        let control = operation_name
            .as_deref()
            .and_then(|n| config.cache_control_by_operation.get(n))
            .unwrap_or(&config.cache_control);
        let surrogate = entry.tags.join(" ");
        let fits = surrogate.len() <= MAX_SURROGATE_HEADER;
        let control = if fits {
            control.as_str()
        } else {
            "public, max-age=0, s-maxage=0"
        };
        if let Ok(v) = HeaderValue::from_str(control) {
            headers.insert(header::CACHE_CONTROL, v);
        }
        if fits
            && let (Ok(space), Ok(comma)) = (
                HeaderValue::from_str(&surrogate),
                HeaderValue::from_str(&entry.tags.join(",")),
            )
        {
            headers.insert("surrogate-key", space);
            headers.insert("cache-tag", comma);
        }
        if let Ok(v) = HeaderValue::from_str(&entry.etag) {
            headers.insert(header::ETAG, v);
        }
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        let matches = if_none_match.as_deref().is_some_and(|given| {
            given.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == entry.etag.trim_start_matches("W/")
            })
        });
        if matches {
            headers.remove(header::CONTENT_TYPE);
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
    }
    (headers, axum::body::Body::from(entry.body.clone())).into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let replicas = state.app.db.replicas().status();
    let cache = state.app.cache.status();
    // Rate limits run without Redis (each instance its share), so they never make the
    // gateway unready; their state is reported beside the cache's.
    let limits = serde_json::json!({
        "redis": state.app.limiter.redis_healthy(),
        "instances": state.app.limiter.instances(),
    });
    if state.draining.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "draining", "replicas": replicas, "cache": cache, "rateLimits": limits })),
        )
            .into_response();
    }
    match state.app.db.ping_primary().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "replicas": replicas, "cache": cache, "rateLimits": limits })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "database unreachable", "error": e.to_string(), "replicas": replicas, "cache": cache, "rateLimits": limits })),
        )
            .into_response(),
    }
}

/// Serves until `shutdown` resolves, then stops accepting, marks itself not ready and
/// waits up to `SHUTDOWN_GRACE_MS` for in-flight requests.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (router, draining) = router(app.clone())?;
    let grace = app.config.server.shutdown_grace;
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        draining.store(true, Ordering::Release);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stopped_tx.send(());
    };
    // The peer address is what storefront limits key anonymous buyers by.
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(stopped_rx);
    tokio::select! {
        result = server => { result??; }
        _ = async {
            let _ = (&mut stopped_rx).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight requests did not finish within SHUTDOWN_GRACE_MS");
        }
    }
    // Checkouts whose requests were cut off still finish (order or voided authorization).
    app.background.close();
    if tokio::time::timeout(grace, app.background.wait())
        .await
        .is_err()
    {
        tracing::error!(
            running = app.background.len(),
            "checkouts still running after SHUTDOWN_GRACE_MS; their payment authorizations may need voiding by hand"
        );
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
