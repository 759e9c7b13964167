//! The admin API's HTTP side (authentication, `429` with `Retry-After`, CSV download)
//! and the storefront's rate limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{HttpState, request_error};
use crate::app::App;
use crate::partners::keys::{self, Refused};
use crate::ratelimit::{self, AUTH_FAILURES, Decision, STOREFRONT_IP, STOREFRONT_TOKEN};

fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The address a request is limited by (see [`ratelimit::client_ip`]), as a bucket key.
/// Every `X-Forwarded-For` line counts (a proxy may append a line of its own rather than
/// extend the client's).
fn client_ip(app: &App, request: &Request) -> String {
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
    ratelimit::client_ip(
        peer(request),
        forwarded.as_deref(),
        &app.config.rate_limits.trusted_proxies,
    )
    .map(ratelimit::address_key)
    .unwrap_or_else(|| "unknown".into())
}

/// `429 Too Many Requests`, GraphQL-shaped, with `Retry-After`.
fn throttled(d: &Decision, message: &str) -> Response {
    let mut r = request_error(
        StatusCode::TOO_MANY_REQUESTS,
        "THROTTLED",
        message.to_string(),
    );
    if let Ok(v) = HeaderValue::from_str(&d.retry_after_secs().to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The key of a request: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    header(headers, "authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(str::trim)
        })
        .or_else(|| header(headers, "x-api-key"))
}

fn unauthenticated(message: &str) -> Response {
    let mut r = request_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        message.to_string(),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Authenticates a request's key; a refusal charges the address's budget of failures,
/// so a flood of guesses is answered `429` without touching the database.
/// The address and presented key of a request (taken out before any await: the body
/// of a request is not `Sync`).
fn credentials(app: &App, request: &Request) -> (String, Option<String>) {
    (
        client_ip(app, request),
        presented_key(request.headers()).map(str::to_string),
    )
}

async fn check_key(
    app: &Arc<App>,
    ip: String,
    presented: Option<String>,
) -> Result<keys::ApiKey, Response> {
    if let Some(wait) = app.limiter.blocked(AUTH_FAILURES, &ip) {
        metrics::counter!("gateway_admin_operations_total", "plan" => "none", "outcome" => "unauthenticated").increment(1);
        return Err(throttled(
            &wait,
            "Too many failed authentications from this address; retry later.",
        ));
    }
    let refusal = match presented.as_deref() {
        None => "Send an API key: `Authorization: Bearer <key>` or `X-Api-Key`.",
        Some(presented) => {
            let mut conn = match app.db.primary(&Default::default()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "admin authentication: database unavailable");
                    return Err(request_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SERVICE_UNAVAILABLE",
                        "The store is temporarily unavailable. Please retry.".into(),
                    ));
                }
            };
            match keys::authenticate(&mut conn, presented).await {
                Ok(Ok(key)) => {
                    // Last use, off the request's path: at most one write a minute a key,
                    // and this process does not even ask more often.
                    let app = app.clone();
                    let id = key.id;
                    if !due_for_touch(&app, id) {
                        return Ok(key);
                    }
                    tokio::spawn(async move {
                        if let Ok(mut conn) = app.db.primary(&Default::default()).await
                            && let Err(e) = keys::touch(&mut conn, id).await
                        {
                            tracing::warn!(error = %e, "could not record the key's last use");
                        }
                    });
                    return Ok(key);
                }
                Ok(Err(Refused::Unknown)) => "The API key is not valid.",
                Ok(Err(Refused::Revoked)) => "The API key was revoked.",
                Ok(Err(Refused::Expired)) => "The API key has expired.",
                Err(e) => {
                    tracing::error!(error = %e, "admin authentication failed");
                    return Err(request_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SERVICE_UNAVAILABLE",
                        "The store is temporarily unavailable. Please retry.".into(),
                    ));
                }
            }
        }
    };
    metrics::counter!("gateway_admin_operations_total", "plan" => "none", "outcome" => "unauthenticated").increment(1);
    let d = app.limiter.take_one(AUTH_FAILURES, &ip).await;
    if !d.allowed {
        return Err(throttled(
            &d,
            "Too many failed authentications from this address; retry later.",
        ));
    }
    Err(unauthenticated(refusal))
}

/// Whether this process should record a use of key `id` now (once a minute a key).
fn due_for_touch(app: &App, id: i64) -> bool {
    use std::time::{Duration, Instant};
    let mut last = app.key_touches.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if last
        .get(&id)
        .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
    {
        return false;
    }
    if last.len() > 10_000 {
        last.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
    }
    last.insert(id, now);
    true
}

/// `POST /admin/graphql`.
pub async fn graphql(State(state): State<HttpState>, request: Request) -> Response {
    let app = state.app.clone();
    let (ip, presented) = credentials(&app, &request);
    let key = match check_key(&app, ip, presented).await {
        Ok(k) => k,
        Err(r) => return r,
    };
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
                if text.contains("length limit") {
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
    let executed = crate::graphql::admin::execute(&app, &state.admin, key, parsed).await;
    let mut response = GraphQLResponse::from(executed.response).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(secs) = executed.retry_after {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

/// `GET /admin/exports/{id}.csv`: a finished product export (key with `read_products`).
pub async fn export_download(
    State(state): State<HttpState>,
    Path(file): Path<String>,
    request: Request,
) -> Response {
    let app = state.app.clone();
    let (ip, presented) = credentials(&app, &request);
    let key = match check_key(&app, ip, presented).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    if !keys::grants(&key.scopes, "read_products") {
        return request_error(
            StatusCode::FORBIDDEN,
            "ACCESS_DENIED",
            "Downloading an export requires `read_products`.".into(),
        );
    }
    let Some(id) = file
        .strip_suffix(".csv")
        .and_then(|i| i.parse::<i64>().ok())
    else {
        return request_error(StatusCode::NOT_FOUND, "NOT_FOUND", "No such export.".into());
    };
    let content = match app.db.primary(&Default::default()).await {
        Ok(mut conn) => crate::catalog::export::content(&mut conn, id).await,
        Err(e) => {
            return request_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                format!("The store is temporarily unavailable: {e}"),
            );
        }
    };
    match content {
        Ok(Some(csv)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"products-{id}.csv\""),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_string()),
            ],
            csv,
        )
            .into_response(),
        Ok(None) => request_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "No finished export with this id (see productExport for its status).".into(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "export download failed");
            request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "Internal error. Please try again.".into(),
            )
        }
    }
}

/// The storefront's limits, before any GraphQL work: anonymous buyers per IP address,
/// storefront apps per access token. A server token (`STOREFRONT_PRIVATE_TOKENS`) may
/// name its buyer's address in `Shopify-Storefront-Buyer-IP`; anyone else's address
/// comes from the connection (or `X-Forwarded-For` of a trusted proxy).
pub async fn storefront_limits(
    State(state): State<HttpState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let app = &state.app;
    let limits = &app.config.rate_limits;
    if !limits.storefront_enabled {
        return next.run(request).await;
    }
    let headers = request.headers();
    let private = header(headers, "shopify-storefront-private-token")
        .or_else(|| header(headers, "x-shopify-storefront-access-token"))
        .filter(|t| {
            use subtle::ConstantTimeEq;
            limits
                .private_tokens
                .iter()
                .any(|p| bool::from(p.as_bytes().ct_eq(t.as_bytes())))
        });
    let mut checks: Vec<(&str, String)> = Vec::with_capacity(2);
    match private {
        Some(token) => {
            checks.push((STOREFRONT_TOKEN, ratelimit::fingerprint(token)));
            if let Some(ip) = header(headers, "shopify-storefront-buyer-ip")
                .and_then(|v| v.parse::<IpAddr>().ok())
            {
                checks.push((STOREFRONT_IP, ip.to_string()));
            }
        }
        None => {
            if let Some(token) = header(headers, "x-shopify-storefront-access-token") {
                checks.push((STOREFRONT_TOKEN, ratelimit::fingerprint(token)));
            }
            checks.push((STOREFRONT_IP, client_ip(app, &request)));
        }
    }
    // Both budgets at once: a request pays one round trip, not two.
    let decisions = futures::future::join_all(
        checks
            .iter()
            .map(|(class, key)| app.limiter.hit(class, key)),
    )
    .await;
    for ((class, _), d) in checks.iter().zip(&decisions) {
        if !d.allowed {
            let message = if *class == STOREFRONT_IP {
                "Too many requests from this address; retry later."
            } else {
                "Too many requests for this storefront access token; retry later."
            };
            return throttled(d, message);
        }
    }
    next.run(request).await
}
