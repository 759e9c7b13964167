//! `seed`, `import` and `import-status`: the catalog, from the shell.

use std::path::Path;

use anyhow::Context;
use commerce_gateway::config::Config;
use diesel_async::{AsyncConnection, AsyncPgConnection};

pub async fn seed(products: usize) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut conn = super::migrated_connection(&config).await?;
    commerce_gateway::catalog::writer::sync_shop_currency(&mut conn, &config.shop.currency).await?;
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
    Ok(())
}

pub async fn import(file: &Path, background: bool) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut conn = super::migrated_connection(&config).await?;
    commerce_gateway::catalog::writer::sync_shop_currency(&mut conn, &config.shop.currency).await?;
    if background {
        let content = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id =
            commerce_gateway::catalog::import_jobs::enqueue(&mut conn, &name, &content).await?;
        println!("queued import {id}; follow it with: commerce-gateway import-status {id}");
        return Ok(());
    }
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
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
    Ok(())
}

pub async fn import_status(id: i64) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut conn = AsyncPgConnection::establish(&config.db.url).await?;
    let Some(s) = commerce_gateway::catalog::import_jobs::status(&mut conn, id).await? else {
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
    Ok(())
}
