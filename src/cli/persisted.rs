//! `persisted-queries register|list`: the allow-list of operations.

use std::path::PathBuf;

use clap::Subcommand;
use commerce_gateway::config::Config;
use diesel_async::{AsyncConnection, AsyncPgConnection};

#[derive(Subcommand)]
pub enum PersistedAction {
    /// Register every operation of an Apollo persisted-query manifest.
    Register {
        /// The manifest (`apollo-persisted-query-manifest`, version 1).
        manifest: PathBuf,
    },
    /// List the registered operations.
    List,
}

pub async fn run(action: PersistedAction) -> anyhow::Result<()> {
    use commerce_gateway::cache::persisted;
    let config = Config::from_env()?;
    let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
    match action {
        PersistedAction::Register { manifest } => {
            let m = persisted::Manifest::read(&manifest)?;
            let n = persisted::register(&mut conn, &m).await?;
            println!("registered {n} operations from {}", manifest.display());
        }
        PersistedAction::List => {
            for (hash, name) in persisted::list(&mut conn).await? {
                println!("{hash} {}", name.unwrap_or_default());
            }
        }
    }
    Ok(())
}
