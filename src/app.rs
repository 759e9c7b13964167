//! The shared state of a running gateway: one per process, cloned into every request.

use std::sync::Arc;

use tokio::sync::watch;

use crate::checkout::payments::Payments;
use crate::config::Config;
use crate::db::Db;
use crate::jobs::handlers::Handlers;
use crate::mail::Mailer;

pub struct App {
    /// Validated settings; read-only after start.
    pub config: Config,
    /// The primary and replica pools, and the routing between them.
    pub db: Db,
    /// Payment providers and webhook verification.
    pub payments: Payments,
}

impl App {
    pub fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let db = Db::new(&config)?;
        db.replicas()
            .spawn_health_task(config.replica_health_interval);
        let payments = Payments::new(
            config.payment_webhook_secret.clone(),
            config.payment_webhook_tolerance,
        );
        Ok(Arc::new(Self {
            config,
            db,
            payments,
        }))
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
    let pool = crate::db::build_pool(&config.database_url, size, config.connect_timeout)?;
    let mailer = config
        .smtp_url
        .as_deref()
        .map(|url| Mailer::new(url, &config.mail_from, config.smtp_timeout))
        .transpose()?;
    let handlers = Handlers::new(pool.clone(), mailer, config)?;
    Ok(tokio::spawn(crate::jobs::worker::run(
        pool, handlers, worker, shutdown,
    )))
}
