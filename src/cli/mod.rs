//! The command line: one binary with subcommands (server, worker, migrations, seeding,
//! imports, keys, jobs, persisted queries, schema export), each in the file of its topic.
//! Every command that needs the database or the server reads its configuration from the
//! environment ([`Config::from_env`]).

mod catalog;
mod jobs;
mod keys;
mod persisted;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use commerce_gateway::config::Config;
use commerce_gateway::{db, graphql};
use diesel_async::{AsyncConnection, AsyncPgConnection};

#[derive(Parser)]
#[command(
    name = "commerce-gateway",
    version,
    about = "GraphQL gateway for online stores"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (migrates and seeds an empty store first, unless turned off).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Add a deterministic synthetic catalog.
    Seed {
        /// How many products to create.
        #[arg(long, default_value_t = 1000)]
        products: usize,
    },
    /// Import a Shopify product CSV file.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Store the file and import it in the job queue (`import-status` shows progress).
        #[arg(long)]
        background: bool,
    },
    /// Show the progress and report of a background import.
    ImportStatus {
        /// The import id `import --background` printed.
        id: i64,
    },
    /// Print the storefront schema (SDL), or the admin API's with `--admin`.
    Schema {
        #[arg(long)]
        admin: bool,
    },
    /// Manage the API keys of the admin API.
    Keys {
        #[command(subcommand)]
        action: keys::KeysAction,
    },
    /// Run the job workers only (no HTTP server).
    Worker,
    /// Inspect and retry background jobs.
    Jobs {
        #[command(subcommand)]
        action: jobs::JobsAction,
    },
    /// Manage the operations registered for persisted queries (the allow-list).
    PersistedQueries {
        #[command(subcommand)]
        action: persisted::PersistedAction,
    },
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve::serve().await,
        Command::Worker => serve::worker().await,
        Command::Migrate => {
            let config = Config::from_env()?;
            db::ensure_database(&config.db.url).await?;
            let applied = db::migrate::run(&config.db.url).await?;
            println!("applied {applied} migration(s)");
            Ok(())
        }
        Command::Seed { products } => catalog::seed(products).await,
        Command::Import { file, background } => catalog::import(&file, background).await,
        Command::ImportStatus { id } => catalog::import_status(id).await,
        Command::Schema { admin } => {
            if admin {
                print!("{}", graphql::admin::sdl());
            } else {
                print!("{}", graphql::sdl());
            }
            Ok(())
        }
        Command::Keys { action } => keys::run(action).await,
        Command::Jobs { action } => jobs::run(action).await,
        Command::PersistedQueries { action } => persisted::run(action).await,
    }
}

/// A connection to the configured database, created and migrated first when needed.
async fn migrated_connection(config: &Config) -> anyhow::Result<AsyncPgConnection> {
    db::ensure_database(&config.db.url).await?;
    db::migrate::run(&config.db.url).await?;
    Ok(AsyncPgConnection::establish(&config.db.url).await?)
}
