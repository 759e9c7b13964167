//! The shared state of a running gateway: one per process, cloned into every request.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::cache::ResponseCache;
use crate::cache::persisted::PersistedQueries;
use crate::cart::CartRules;
use crate::checkout::{self, CheckoutInput, CheckoutOutcome};
use crate::config::Config;
use crate::db::{Db, DbError, PgConn};
use crate::dispatch::Handlers;
use crate::mail::Mailer;
use crate::payments::Payments;

pub struct App {
    /// Validated settings; read-only after start.
    pub config: Config,
    /// The primary and replica pools, and the routing between them.
    pub db: Db,
    /// Payment providers and webhook verification.
    pub payments: Payments,
    /// Work that must finish even when the request that started it is cut off (a
    /// checkout past its payment authorization); `serve` waits for it before exiting.
    pub background: TaskTracker,
    /// The response cache (in-process and Redis tiers).
    pub cache: Arc<ResponseCache>,
    /// Automatic persisted queries and the allow-list.
    pub persisted: PersistedQueries,
    /// Rate limits of partners and storefront clients (budgets in Redis).
    pub limiter: Arc<crate::ratelimit::Limiter>,
    /// When this process last recorded each API key's use (`last_used_at` is written at
    /// most once a minute a key).
    pub key_touches: std::sync::Mutex<std::collections::HashMap<i64, std::time::Instant>>,
    /// Turns true once the cache's invalidation listener is in place.
    pub cache_ready: watch::Receiver<bool>,
    /// Dropped with the app: stops the invalidation listener.
    _stop_listener: watch::Sender<bool>,
}

impl App {
    pub fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let db = Db::new(&config.db)?;
        db.replicas()
            .spawn_health_task(config.db.replica_health_interval);
        let payments = Payments::new(&config.payments);
        // Every checkout outcome has a series from the start (a no-op without a recorder).
        checkout::init_metrics();
        let cache = Arc::new(ResponseCache::new(
            config.cache.clone(),
            config.db.replica_max_lag,
        )?);
        let persisted = PersistedQueries::new(&config.cache, cache.redis.clone());
        let limiter = Arc::new(crate::ratelimit::Limiter::new(&config.rate_limits)?);
        limiter.spawn_upkeep();
        if config.rate_limits.storefront_enabled && config.rate_limits.trusted_proxies.is_empty() {
            tracing::info!(
                "storefront limits key buyers by the connection's address; behind a load balancer or CDN set TRUSTED_PROXIES, or every buyer shares its budget"
            );
        }
        let (ready_tx, cache_ready) = watch::channel(false);
        let (stop_listener, stop_rx) = watch::channel(false);
        if config.cache.enabled {
            tokio::spawn(crate::cache::listener::run(
                cache.clone(),
                config.db.url.clone(),
                ready_tx,
                stop_rx,
            ));
        }
        Ok(Arc::new(Self {
            config,
            db,
            payments,
            background: TaskTracker::new(),
            cache,
            persisted,
            limiter,
            key_touches: Default::default(),
            cache_ready,
            _stop_listener: stop_listener,
        }))
    }

    pub fn cart_rules(&self) -> CartRules<'_> {
        CartRules {
            max_lines: self.config.cart.max_lines,
            max_quantity: self.config.cart.max_quantity,
            shop_currency: &self.config.shop.currency,
        }
    }

    /// Completes a checkout on a task of its own, so that a request deadline or a client
    /// that hangs up can never leave a payment authorized without its order (or an
    /// order half made): once started, the checkout ends in an order or a voided
    /// authorization. Gives the connection back for the caller's follow-up reads.
    pub async fn complete_checkout(
        self: &Arc<Self>,
        mut conn: PgConn,
        cart_token: String,
        input: CheckoutInput,
    ) -> Result<(CheckoutOutcome, PgConn), DbError> {
        use tracing::Instrument;
        let app = self.clone();
        // The checkout's own span: its statements and payment calls nest under it, and
        // its outcome is an attribute (a cut-off request's trace still shows the end).
        let span = if crate::telemetry::child_spans() {
            tracing::info_span!(
                "checkout.complete",
                checkout.outcome = tracing::field::Empty,
                checkout.order = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        let task = self.background.spawn(
            async move {
                let outcome = checkout::complete(
                    &mut conn,
                    &cart_token,
                    &input,
                    &checkout::Rules {
                        checkout: &app.config.checkout,
                        cart: app.cart_rules(),
                        orders: &app.config.orders,
                        inventory: &app.config.inventory,
                    },
                    app.payments.default_provider().as_ref(),
                )
                .await;
                let label = checkout::record_outcome(&outcome);
                let current = tracing::Span::current();
                current.record("checkout.outcome", label.as_str());
                if let Ok(CheckoutOutcome {
                    order: Some(order), ..
                }) = &outcome
                {
                    current.record("checkout.order", order.id);
                }
                outcome.map(|o| (o, conn))
            }
            .instrument(span),
        );
        task.await
            .map_err(|e| DbError::Unavailable(format!("checkout task failed: {e}")))?
    }
}

/// Starts the job workers of `config` on their own pool (so jobs never take the
/// connections requests need). They stop when `shutdown` turns true; await the handle.
pub fn spawn_workers(
    config: &Config,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let worker = config.jobs.worker.clone();
    let size: usize = worker.queues.iter().map(|(_, n)| n).sum::<usize>() + 2;
    let pool = crate::db::build_pool(
        &config.db.url,
        size,
        config.db.connect_timeout,
        crate::db::PoolInfo::new("jobs", "primary", &config.db.url),
    )?;
    let mailer = config
        .mail
        .smtp_url
        .as_deref()
        .map(|url| Mailer::new(url, &config.mail.from, config.mail.timeout))
        .transpose()?;
    let handlers = Handlers::new(pool.clone(), mailer, config)?;
    Ok(tokio::spawn(crate::jobs::worker::run(
        pool, handlers, worker, shutdown,
    )))
}
