//! The `commerce-gateway` binary: server, migrations, seeding, import and schema export.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use commerce_gateway::config::Config;
use commerce_gateway::{app, db, graphql, http, jobs, startup};
use diesel_async::{AsyncConnection, AsyncPgConnection};

/// jemalloc: a GraphQL response is hundreds of small short-lived allocations, and glibc's
/// malloc took a fifth of the CPU of an uncached collection page (bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        action: KeysAction,
    },
    /// Run the job workers only (no HTTP server).
    Worker,
    /// Inspect and retry background jobs.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Manage the operations registered for persisted queries (the allow-list).
    PersistedQueries {
        #[command(subcommand)]
        action: PersistedAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key and print its secret (shown once, never stored).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read_products, write_products, read_inventory, write_inventory,
        /// read_orders, write_orders, read_webhooks, write_webhooks, admin.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A plan of ADMIN_PLANS.
        #[arg(long, default_value = "standard")]
        plan: String,
        /// Expiry (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id or prefix; it stops working at once on every gateway.
    Revoke { key: String },
}

#[derive(Subcommand)]
enum PersistedAction {
    /// Register every operation of an Apollo persisted-query manifest.
    Register {
        /// The manifest (`apollo-persisted-query-manifest`, version 1).
        manifest: PathBuf,
    },
    /// List the registered operations.
    List,
}

#[derive(Subcommand)]
enum JobsAction {
    /// Jobs per queue and state, with the age of the oldest.
    Stats,
    /// List dead jobs (those that used up their attempts).
    Dead {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put dead jobs back in their queue with fresh attempts.
    Retry {
        /// Job ids to retry.
        ids: Vec<i64>,
        /// Retry every dead job.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = commerce_gateway::telemetry::init();
    let result = run(Cli::parse()).await;
    telemetry.shutdown().await;
    result
}

/// Serves `/metrics` (and `/healthz`) on `METRICS_ADDR` when it is set.
async fn spawn_metrics_listener(
    config: &Config,
    app: Option<std::sync::Arc<app::App>>,
) -> anyhow::Result<()> {
    let Some(addr) = config.metrics.addr else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR {addr}"))?;
    tracing::info!(%addr, "metrics at /metrics");
    let router = http::metrics_router(app);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Schema { admin } => {
            if admin {
                print!("{}", graphql::admin::sdl());
            } else {
                print!("{}", graphql::sdl());
            }
        }
        Command::Keys { action } => {
            let config = Config::from_env()?;
            db::ensure_database(&config.db.url).await?;
            db::migrate::run(&config.db.url).await?;
            let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
            let actor = commerce_gateway::partners::Actor::cli();
            use commerce_gateway::partners::keys;
            match action {
                KeysAction::Create {
                    name,
                    scopes,
                    plan,
                    expires_at,
                } => {
                    let plans: Vec<String> = config
                        .rate_limits
                        .plans
                        .iter()
                        .map(|(n, _)| n.clone())
                        .collect();
                    let scopes: Vec<String> = scopes
                        .iter()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    let new = keys::NewKey {
                        name: &name,
                        scopes: &scopes,
                        plan: &plan,
                        expires_at,
                    };
                    match keys::create(&mut conn, &new, &plans, &actor).await {
                        Ok((key, secret)) => {
                            eprintln!(
                                "created key {} ({}), scopes {}, plan {}; the secret is shown only now:",
                                key.id,
                                key.prefix,
                                key.scopes.join(","),
                                key.plan
                            );
                            println!("{secret}");
                        }
                        Err(commerce_gateway::partners::AdminError::Input(errors)) => {
                            for e in errors {
                                eprintln!("{}: {}", e.field.join("."), e.message);
                            }
                            anyhow::bail!("the key was not created");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                KeysAction::List => {
                    println!(
                        "{:<6} {:<14} {:<20} {:<10} {:<8} {:<25} {:<25} scopes",
                        "id", "prefix", "name", "plan", "state", "expires", "last used"
                    );
                    let now = chrono::Utc::now();
                    for k in keys::list(&mut conn).await? {
                        let state = if k.revoked_at.is_some() {
                            "revoked"
                        } else if !k.is_active(now) {
                            "expired"
                        } else {
                            "active"
                        };
                        println!(
                            "{:<6} {:<14} {:<20} {:<10} {:<8} {:<25} {:<25} {}",
                            k.id,
                            k.prefix,
                            k.name,
                            k.plan,
                            state,
                            k.expires_at
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_else(|| "-".into()),
                            k.last_used_at
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_else(|| "never".into()),
                            k.scopes.join(",")
                        );
                    }
                }
                KeysAction::Revoke { key } => {
                    let Some(found) = keys::find(&mut conn, &key).await? else {
                        anyhow::bail!("no key {key:?}");
                    };
                    keys::revoke(&mut conn, found.id, &actor).await?;
                    println!("revoked key {} ({})", found.id, found.prefix);
                }
            }
        }
        Command::Serve => {
            let config = Config::from_env()?;
            commerce_gateway::telemetry::metrics::install(&config.metrics)?;
            let addr = config.server.listen_addr;
            let app = startup::prepare(config).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, "commerce-gateway listening (GraphiQL at /graphql)");
            spawn_metrics_listener(&app.config, Some(app.clone())).await?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let workers = if app.config.jobs.embedded {
                Some(app::spawn_workers(&app.config, stop_rx)?)
            } else {
                None
            };
            http::serve(app, listener, http::shutdown_signal()).await?;
            let _ = stop_tx.send(true);
            if let Some(workers) = workers {
                let _ = workers.await;
            }
        }
        Command::Worker => {
            let config = Config::from_env()?;
            commerce_gateway::telemetry::metrics::install(&config.metrics)?;
            spawn_metrics_listener(&config, None).await?;
            db::ensure_database(&config.db.url).await?;
            if config.startup.auto_migrate {
                db::migrate::run(&config.db.url).await?;
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let workers = app::spawn_workers(&config, stop_rx)?;
            http::shutdown_signal().await;
            tracing::info!("stopping workers: running jobs get SHUTDOWN_GRACE_MS to finish");
            let _ = stop_tx.send(true);
            let _ = workers.await;
        }
        Command::PersistedQueries { action } => {
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
        }
        Command::Jobs { action } => {
            let config = Config::from_env()?;
            let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
            match action {
                JobsAction::Stats => {
                    println!(
                        "{:<10} {:<8} {:>8} {:>12}",
                        "queue", "state", "jobs", "oldest (s)"
                    );
                    for s in jobs::stats(&mut conn).await? {
                        println!(
                            "{:<10} {:<8} {:>8} {:>12.1}",
                            s.queue, s.state, s.jobs, s.oldest_age_seconds
                        );
                    }
                }
                JobsAction::Dead { limit } => {
                    for j in jobs::list(&mut conn, "dead", limit).await? {
                        println!(
                            "{}\t{}\t{}\tattempts {}/{}\t{}",
                            j.id,
                            j.queue,
                            j.kind,
                            j.attempts,
                            j.max_attempts,
                            j.last_error.unwrap_or_default()
                        );
                    }
                }
                JobsAction::Retry { ids, all } => {
                    if ids.is_empty() && !all {
                        anyhow::bail!("name job ids to retry, or pass --all");
                    }
                    let n = jobs::retry_dead(&mut conn, (!all).then_some(ids.as_slice())).await?;
                    println!("requeued {n} dead job(s)");
                }
            }
        }
        Command::Migrate => {
            let config = Config::from_env()?;
            db::ensure_database(&config.db.url).await?;
            let applied = db::migrate::run(&config.db.url).await?;
            println!("applied {applied} migration(s)");
        }
        Command::Seed { products } => {
            let config = Config::from_env()?;
            db::ensure_database(&config.db.url).await?;
            db::migrate::run(&config.db.url).await?;
            let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
            db::sync_shop_currency(&mut conn, &config.shop.currency).await?;
            let started = std::time::Instant::now();
            let report = commerce_gateway::catalog::seed::seed(
                &mut conn,
                products,
                &config.shop.currency,
                &config.shop.url,
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
        Command::Import { file, background } => {
            let config = Config::from_env()?;
            db::ensure_database(&config.db.url).await?;
            db::migrate::run(&config.db.url).await?;
            let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
            db::sync_shop_currency(&mut conn, &config.shop.currency).await?;
            if background {
                let content = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let id =
                    commerce_gateway::catalog::import_jobs::enqueue(&mut conn, &name, &content)
                        .await?;
                println!("queued import {id}; follow it with: commerce-gateway import-status {id}");
                return Ok(());
            }
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} importing [{bar:40}] {pos}/{len} products",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let report = commerce_gateway::catalog::import::import(
                &mut conn,
                reader,
                &config.shop.currency,
                &mut |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish_and_clear();
            print!("{report}");
        }
        Command::ImportStatus { id } => {
            let config = Config::from_env()?;
            let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
            let Some(s) = commerce_gateway::catalog::import_jobs::status(&mut conn, id).await?
            else {
                anyhow::bail!("no import {id}");
            };
            println!(
                "import {} ({}): {} {}/{} products",
                s.id,
                s.filename,
                s.status,
                s.rows_done,
                s.rows_total.map_or("?".to_string(), |t| t.to_string())
            );
            if let Some(report) = s.report {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
    }
    Ok(())
}
