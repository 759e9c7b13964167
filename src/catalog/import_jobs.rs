//! CSV imports as background jobs: the file is stored in `imports`, a job runs the
//! importer, and progress and the final report are written to the import's row.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::db::PgPool;
use crate::db::schema::imports;
use crate::jobs::{self, Kind, NewJob};

/// Stores `content` and queues its import; returns the import's id.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    filename: &str,
    content: &str,
) -> QueryResult<i64> {
    conn.transaction(async |conn| {
        let id: i64 = diesel::insert_into(imports::table)
            .values((imports::filename.eq(filename), imports::content.eq(content)))
            .returning(imports::id)
            .get_result(conn)
            .await?;
        // One attempt: the importer upserts, so a manual retry is safe, but a failing
        // file should not be re-run automatically.
        let mut job = NewJob::new(Kind::ImportCsv, serde_json::json!({ "import_id": id }));
        job.max_attempts = 1;
        jobs::enqueue(conn, &[job]).await?;
        Ok(id)
    })
    .await
}

/// [`enqueue`] for a partner: the import and its audit entry in one transaction.
pub async fn enqueue_audited(
    conn: &mut AsyncPgConnection,
    filename: &str,
    content: &str,
    actor: &crate::partners::Actor,
) -> QueryResult<i64> {
    conn.transaction(async |conn| {
        let id = enqueue(conn, filename, content).await?;
        crate::partners::audit::record(
            conn,
            actor,
            "productImportCreate",
            "ProductImport",
            Some(id.to_string()),
            serde_json::json!({ "filename": filename, "bytes": content.len() }),
        )
        .await?;
        Ok(id)
    })
    .await
}

/// An import as `import-status` shows it.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = imports)]
pub struct ImportStatus {
    pub id: i64,
    pub filename: String,
    pub status: String,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub report: Option<Value>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn status(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ImportStatus>> {
    imports::table
        .find(id)
        .select(ImportStatus::as_select())
        .first(conn)
        .await
        .optional()
}

async fn set(pool: &PgPool, id: i64, sql: &str, done: i64, total: i64, report: Option<Value>) {
    let Ok(mut conn) = pool.get().await else {
        return;
    };
    let result = diesel::sql_query(sql)
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(done)
        .bind::<BigInt, _>(total)
        .bind::<Nullable<Jsonb>, _>(report)
        .execute(&mut conn)
        .await;
    if let Err(e) = result {
        tracing::warn!(import = id, error = %e, "cannot record import progress");
    }
}

const PROGRESS_SQL: &str = "UPDATE imports SET status = 'RUNNING', rows_done = $2, rows_total = $3, \
     report = COALESCE($4, report), updated_at = now() WHERE id = $1";
const DONE_SQL: &str = "UPDATE imports SET status = 'DONE', rows_done = $2, rows_total = $3, \
     report = $4, updated_at = now(), finished_at = now() WHERE id = $1";
const FAILED_SQL: &str = "UPDATE imports SET status = 'FAILED', rows_done = $2, rows_total = $3, \
     report = $4, updated_at = now(), finished_at = now() WHERE id = $1";

/// Runs import `id` (the `import_csv` job), writing progress every half second.
pub async fn run(pool: &PgPool, id: i64, shop_currency: &str) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let file: Option<(String, String)> = imports::table
        .find(id)
        .select((imports::status, imports::content))
        .first(&mut *conn)
        .await
        .optional()
        .map_err(|e| e.to_string())?;
    let Some((status, content)) = file else {
        return Ok(());
    };
    if status == "DONE" {
        return Ok(());
    }
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    // Stopped when this function returns or is dropped (job timeout, shutdown), so it can
    // never write over the final status.
    let ticker = AbortOnDrop(Some({
        let (pool, counts) = (pool.clone(), counts.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (done, total) = *counts.lock().unwrap();
                set(&pool, id, PROGRESS_SQL, done as i64, total as i64, None).await;
            }
        })
    }));
    let result = {
        let counts = counts.clone();
        let mut progress = move |done: u64, total: u64| {
            *counts.lock().unwrap() = (done, total);
        };
        crate::catalog::import::import(&mut conn, content.as_bytes(), shop_currency, &mut progress)
            .await
    };
    ticker.stop().await;
    let (done, total) = *counts.lock().unwrap();
    match result {
        Ok(report) => {
            set(
                pool,
                id,
                DONE_SQL,
                done as i64,
                total as i64,
                Some(report.to_json()),
            )
            .await;
            tracing::info!(import = id, %report, "import finished");
            Ok(())
        }
        Err(e) => {
            let report = serde_json::json!({ "error": e.to_string() });
            set(
                pool,
                id,
                FAILED_SQL,
                done as i64,
                total as i64,
                Some(report),
            )
            .await;
            Err(format!("import {id} failed: {e}"))
        }
    }
}

/// A task aborted when dropped; `stop` also waits until it has ended.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
