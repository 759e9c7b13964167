//! `serve` (the HTTP server, with the job workers unless `RUN_WORKERS=false`) and `worker`
//! (the job workers alone), each with the optional metrics listener on `METRICS_ADDR`.

use anyhow::Context;
use commerce_gateway::config::Config;
use commerce_gateway::{app, db, http, startup};

pub async fn serve() -> anyhow::Result<()> {
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
    Ok(())
}

pub async fn worker() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    commerce_gateway::telemetry::metrics::install(&config.metrics)?;
    // The checkout series exist at 0 on every process's /metrics (`serve` starts them in
    // `App::new`).
    commerce_gateway::checkout::init_metrics();
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
    Ok(())
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
