//! What `serve` does before it takes traffic: create the database if missing, migrate,
//! and seed a demo catalog into an empty store.

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::app::App;
use crate::catalog::writer;
use crate::config::Config;
use crate::db;

/// Prepares the database as configured and builds the app.
pub async fn prepare(config: Config) -> anyhow::Result<Arc<App>> {
    if config.startup.auto_migrate {
        db::ensure_database(&config.db.url).await?;
        let applied = db::migrate::run(&config.db.url).await?;
        if applied > 0 {
            tracing::info!(applied, "database migrated");
        }
    }
    let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
    writer::sync_shop_currency(&mut conn, &config.shop.currency).await?;
    if config.startup.auto_seed_products > 0 && writer::product_count(&mut conn).await? == 0 {
        let report = crate::catalog::seed::seed(
            &mut conn,
            config.startup.auto_seed_products as usize,
            &config.shop.currency,
            &config.shop.url,
        )
        .await?;
        tracing::info!(
            products = report.products,
            variants = report.variants,
            "seeded a demo catalog into the empty store"
        );
    }
    if let Some(path) = &config.cache.manifest {
        let manifest = crate::cache::persisted::Manifest::read(path)?;
        let n = crate::cache::persisted::register(&mut conn, &manifest).await?;
        tracing::info!(operations = n, manifest = %path.display(), "persisted queries registered");
    }
    App::new(config)
}
