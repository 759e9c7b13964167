//! The shared state of a running gateway: one per process, cloned into every request.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;

pub struct App {
    /// Validated settings; read-only after start.
    pub config: Config,
    /// The primary and replica pools, and the routing between them.
    pub db: Db,
}

impl App {
    pub fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let db = Db::new(&config)?;
        db.replicas()
            .spawn_health_task(config.replica_health_interval);
        Ok(Arc::new(Self { config, db }))
    }
}
