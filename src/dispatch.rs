//! The job dispatch table: what each kind of job does. The queue ([`crate::jobs`]) stores,
//! claims and retries jobs without knowing what they do; this table, beside [`crate::app`],
//! maps each [`Kind`] to the domain function that does the work, so the queue depends on
//! no domain and every domain can enqueue jobs. Every handler is idempotent: it may run
//! more than once for one job (at-least-once delivery), and the second run changes nothing.

use std::sync::Arc;
use tracing::Instrument;

use crate::db::PgPool;
use crate::jobs::worker::ClaimedJob;
use crate::jobs::{Handler, JobError, Kind};
use crate::mail::Mailer;
use crate::orders::{documents, payment_events, transitions};

/// What handlers need.
pub struct Handlers {
    pub pool: PgPool,
    pub mailer: Option<Mailer>,
    pub shop_url: String,
    /// Where order events go (`ORDER_WEBHOOK_URLS`, partners' subscriptions).
    pub hooks: crate::orders::events::Hooks,
    /// Signs outgoing webhooks (`ORDER_WEBHOOK_SECRET`).
    pub webhook_secret: Option<String>,
    pub http: reqwest::Client,
    pub shop_currency: String,
}

impl Handler for Handlers {
    fn run<'a>(
        &'a self,
        kind: Kind,
        job: &'a ClaimedJob,
    ) -> futures::future::BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.dispatch(kind, job))
    }
}

impl Handlers {
    pub fn new(
        pool: PgPool,
        mailer: Option<Mailer>,
        config: &crate::config::Config,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            pool,
            mailer,
            shop_url: config.shop.url.clone(),
            shop_currency: config.shop.currency.clone(),
            hooks: config.orders.hooks.clone(),
            webhook_secret: config.partners.order_webhook_secret.clone(),
            http: reqwest::Client::builder()
                .timeout(config.partners.webhook_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("commerce-gateway/", env!("CARGO_PKG_VERSION")))
                .build()?,
        }))
    }

    async fn dispatch(&self, kind: Kind, job: &ClaimedJob) -> Result<(), JobError> {
        match kind {
            Kind::PaymentEvent => {
                let provider = str_field(job, "provider")?;
                let event_id = str_field(job, "event_id")?;
                let mut conn = self.connection().await?;
                match payment_events::process(&mut conn, &provider, &event_id, &self.hooks).await? {
                    payment_events::EventOutcome::Done(outcome) => {
                        tracing::info!(job = job.id, %outcome, "payment event processed");
                        Ok(())
                    }
                    // Retried with backoff; after the last attempt it waits in the dead
                    // letters, visible, instead of being dropped.
                    payment_events::EventOutcome::OrderNotYetKnown => {
                        Err(JobError::retry("no order has this payment reference (yet)"))
                    }
                }
            }
            Kind::ExpireReservation => {
                let order_id = id_field(job, "order_id")?;
                let mut conn = self.connection().await?;
                match transitions::expire(&mut conn, order_id, &self.hooks).await? {
                    Some(transitions::Transition::Applied) => {
                        tracing::info!(order = order_id, "unpaid order expired; stock released");
                        Ok(())
                    }
                    Some(transitions::Transition::AlreadySettled) => Ok(()),
                    // Not due yet (the job ran early): try again when it is.
                    None => Err(JobError::retry("the reservation has not expired yet")),
                }
            }
            Kind::OrderConfirmation => {
                let order_id = id_field(job, "order_id")?;
                let mut conn = self.connection().await?;
                self.send_confirmation(&mut conn, order_id).await
            }
            Kind::OrderWebhook => self.deliver_webhook(job).await,
            Kind::ImportCsv => {
                // Takes its own connections (one importing, one writing progress).
                let import_id = id_field(job, "import_id")?;
                crate::catalog::import_jobs::run(&self.pool, import_id, &self.shop_currency)
                    .await
                    .map_err(JobError::permanent)
            }
            Kind::ExportCsv => {
                let export_id = id_field(job, "export_id")?;
                let mut conn = self.connection().await?;
                crate::catalog::export::run(&mut conn, export_id, &self.shop_currency)
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))
            }
            Kind::Invoice => {
                let order_id = id_field(job, "order_id")?;
                let mut conn = self.connection().await?;
                documents::store_invoice(&mut conn, order_id).await?;
                Ok(())
            }
        }
    }

    async fn connection(&self) -> Result<crate::db::PgConn, JobError> {
        self.pool
            .get()
            .await
            .map_err(|e| JobError::retry(format!("no database connection: {e}")))
    }

    /// POSTs one order event to one subscriber; any 2xx is success, anything else (or
    /// no answer within `WEBHOOK_TIMEOUT_MS`) is retried with backoff.
    async fn deliver_webhook(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let url = str_field(job, "url")?;
        let body = str_field(job, "body")?;
        let event = str_field(job, "event")?;
        let webhook_id = str_field(job, "webhook_id")?;
        // A partner's subscription signs with its own secret; a deleted subscription
        // gets nothing more.
        let secret = match job.payload.get("subscription_id").and_then(|v| v.as_i64()) {
            Some(id) => {
                let mut conn = self.connection().await?;
                match crate::partners::webhooks::secret_of(&mut conn, id).await? {
                    Some(secret) => secret,
                    None => return Ok(()),
                }
            }
            None => match &self.webhook_secret {
                Some(s) => s.clone(),
                None => return Err(JobError::permanent("ORDER_WEBHOOK_SECRET is not set")),
            },
        };
        let secret = &secret;
        let signature =
            crate::signing::sign(secret, chrono::Utc::now().timestamp(), body.as_bytes());
        // A client span; the subscriber receives its `traceparent`, so its own trace
        // continues the order's.
        let span = if crate::telemetry::child_spans() {
            let host = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            tracing::info_span!(
                "webhook.deliver",
                otel.name = "POST",
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                http.request.method = "POST",
                server.address = %host,
                webhook.event = %event,
                http.response.status_code = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        let mut headers = reqwest::header::HeaderMap::new();
        span.in_scope(|| crate::telemetry::propagation::inject_current(&mut headers));
        let response = self
            .http
            .post(&url)
            .headers(headers)
            .header("content-type", "application/json")
            .header("webhook-id", &webhook_id)
            .header("webhook-event", &event)
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .instrument(span.clone())
            .await
            .map_err(|e| {
                span.record("otel.status_code", "ERROR");
                JobError::retry(format!("webhook to {url}: {e}"))
            })?;
        span.record("http.response.status_code", response.status().as_u16());
        if !response.status().is_success() {
            span.record("otel.status_code", "ERROR");
        }
        if response.status().is_success() {
            Ok(())
        } else {
            Err(JobError::retry(format!(
                "webhook to {url}: HTTP {}",
                response.status()
            )))
        }
    }

    async fn send_confirmation(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        order_id: i64,
    ) -> Result<(), JobError> {
        documents::send_confirmation(conn, self.mailer.as_ref(), &self.shop_url, order_id)
            .await
            .map_err(|e| match e {
                documents::SendError::Db(e) => e.into(),
                documents::SendError::Smtp(e) => JobError::retry(format!("SMTP: {e}")),
            })
    }
}

fn str_field(job: &ClaimedJob, name: &str) -> Result<String, JobError> {
    job.payload
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| JobError::permanent(format!("payload has no string {name:?}")))
}

fn id_field(job: &ClaimedJob, name: &str) -> Result<i64, JobError> {
    job.payload
        .get(name)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| JobError::permanent(format!("payload has no integer {name:?}")))
}
