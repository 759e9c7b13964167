//! `POST /webhooks/payments/{provider}`: payment provider events.
//!
//! The signature (`Payment-Signature: t=…,v1=…`, HMAC-SHA256 over `"{t}.{raw body}"`) is
//! checked on the raw bytes before anything is parsed; a bad or stale signature is
//! answered 401 and changes nothing. A verified event is stored (deduplicated by its id)
//! and its processing queued in one transaction, then answered at once: the order
//! changes in the job queue, not while the provider waits.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::db::StatementCounter;
use crate::orders::payment_events::{self, EventReceipt};
use crate::payments::{self, EVENT_KINDS, PaymentEvent};

pub const SIGNATURE_HEADER: &str = "payment-signature";

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    reply(
        status,
        serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

pub async fn payment_webhook(
    State(app): State<Arc<App>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app.payments.provider(&provider).is_none() {
        return refuse(
            StatusCode::NOT_FOUND,
            "UNKNOWN_PROVIDER",
            "No such payment provider.",
        );
    }
    let Some(secret) = app.payments.secret() else {
        tracing::error!("payment webhook refused: PAYMENT_WEBHOOK_SECRET is not set");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_CONFIGURED",
            "Payment webhooks are not configured.",
        );
    };
    let Some(signature) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "BAD_SIGNATURE",
            "The Payment-Signature header is missing.",
        );
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = payments::verify(secret, signature, &body, now, app.payments.tolerance()) {
        tracing::warn!(provider, error = %e, "payment webhook with a bad signature");
        return refuse(StatusCode::UNAUTHORIZED, "BAD_SIGNATURE", &e.to_string());
    }
    let raw: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_PAYLOAD",
                "The body is not JSON.",
            );
        }
    };
    let event: PaymentEvent = match serde_json::from_value(raw.clone()) {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_PAYLOAD",
                &format!("The event is not a payment event: {e}"),
            );
        }
    };
    if event.id.is_empty() || event.id.len() > 255 || event.data.reference.len() > 255 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_PAYLOAD",
            "The event id or reference is not valid.",
        );
    }
    if !EVENT_KINDS.contains(&event.kind.as_str()) {
        // Providers send many kinds of events; the ones this gateway does not use are
        // acknowledged so they are not redelivered.
        return reply(
            StatusCode::OK,
            serde_json::json!({ "received": true, "ignored": true }),
        );
    }
    let mut conn = match app.db.primary(&StatementCounter::default()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "payment webhook: database unavailable");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Please retry.",
            );
        }
    };
    match payment_events::receive(&mut conn, &provider, &event, &raw).await {
        Ok(receipt) => reply(
            StatusCode::OK,
            serde_json::json!({ "received": true, "duplicate": receipt == EventReceipt::Duplicate }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "payment webhook not stored");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Please retry.",
            )
        }
    }
}
