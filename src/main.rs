//! The `commerce-gateway` binary: server, migrations, seeding, import and schema export.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use commerce_gateway::config::Config;
use commerce_gateway::{db, graphql, http, startup};
use diesel_async::{AsyncConnection, AsyncPgConnection};

#[derive(Parser)]
#[command(
    name = "commerce-gateway",
    version,
    about = "GraphQL gateway for online stores"
)]
struct Cli {
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
    },
    /// Print the storefront schema (SDL).
    Schema,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", graphql::sdl());
        }
        Command::Serve => {
            let config = Config::from_env()?;
            let addr = config.listen_addr;
            let app = startup::prepare(config).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, "commerce-gateway listening (GraphiQL at /graphql)");
            http::serve(app, listener, http::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let config = Config::from_env()?;
            db::ensure_database(&config.database_url).await?;
            let applied = db::migrate::run(&config.database_url).await?;
            println!("applied {applied} migration(s)");
        }
        Command::Seed { products } => {
            let config = Config::from_env()?;
            db::ensure_database(&config.database_url).await?;
            db::migrate::run(&config.database_url).await?;
            let mut conn = AsyncPgConnection::establish(&config.database_url).await?;
            db::sync_shop_currency(&mut conn, &config.shop_currency).await?;
            let started = std::time::Instant::now();
            let report = commerce_gateway::catalog::seed::seed(
                &mut conn,
                products,
                &config.shop_currency,
                &config.shop_url,
            )
            .await?;
            println!(
                "seeded {} products, {} variants, {} images, {} collections in {:.1}s",
                report.products,
                report.variants,
                report.images,
                report.collections,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Import { file } => {
            let config = Config::from_env()?;
            db::ensure_database(&config.database_url).await?;
            db::migrate::run(&config.database_url).await?;
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let mut conn = AsyncPgConnection::establish(&config.database_url).await?;
            db::sync_shop_currency(&mut conn, &config.shop_currency).await?;
            let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = commerce_gateway::catalog::import::import(
                &mut conn,
                reader,
                &config.shop_currency,
                show_progress,
            )
            .await?;
            print!("{report}");
        }
    }
    Ok(())
}
