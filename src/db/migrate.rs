//! Embedded diesel migrations, run without libpq through diesel-async's harness.

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Applies every pending migration to the database at `url`; returns how many ran.
/// Needs the multi-threaded tokio runtime (the harness blocks in place).
pub async fn run(url: &str) -> anyhow::Result<usize> {
    let conn = AsyncPgConnection::establish(url)
        .await
        .with_context(|| format!("connecting to {}", super::redact(url)))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    for version in &applied {
        tracing::info!(%version, "applied migration");
    }
    Ok(applied.len())
}
