//! What `serve` does before it takes traffic: create the database if missing, migrate,
//! and seed a demo catalog into an empty store.

use std::sync::Arc;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::app::App;
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
    db::sync_shop_currency(&mut conn, &config.shop.currency).await?;
    if config.startup.auto_seed_products > 0 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let count: Count = diesel::sql_query("SELECT count(*) AS n FROM products")
            .get_result(&mut conn)
            .await?;
        if count.n == 0 {
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
    }
    if let Some(path) = &config.cache.manifest {
        let manifest = crate::cache::persisted::Manifest::read(path)?;
        let n = crate::cache::persisted::register(&mut conn, &manifest).await?;
        tracing::info!(operations = n, manifest = %path.display(), "persisted queries registered");
    }
    App::new(config)
}
