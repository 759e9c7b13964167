//! The durable job queue with real worker processes and a real SMTP receiver: crashes,
//! timeouts, retries, dead letters and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::shop::{Process, cart_with, checkout_input, complete, free_port, stocked_variant};
use common::smtp::SmtpReceiver;
use common::{TestDb, TestServer, config, eventually};
use serde_json::json;

/// A database with one pending order, whose confirmation email job is queued.
async fn one_order() -> TestDb {
    let db = TestDb::new(0).await;
    let v = stocked_variant(&db, "mug", 1200, "DENY", &[3]).await;
    let server = TestServer::start(config(&db)).await;
    let base = server.url("");
    let cart = cart_with(&server.client, &base, &[(&v.gid, 1)]).await;
    let done = complete(
        &server.client,
        &base,
        &cart,
        checkout_input("job-key", "tok_success"),
    )
    .await;
    assert_eq!(done["userErrors"], json!([]), "{done}");
    server.shutdown().await;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'order_confirmation'")
            .await,
        1
    );
    db
}

fn worker_env(smtp: &str, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("SMTP_URL", smtp.to_string()),
        ("MAIL_FROM", "Shop <orders@shop.test>".into()),
        ("JOB_POLL_INTERVAL_MS", "50".into()),
        ("JOB_TIMEOUT_MS", "4000".into()),
        ("JOB_BACKOFF_BASE_MS", "100".into()),
        ("JOB_BACKOFF_MAX_MS", "400".into()),
        ("SMTP_TIMEOUT_MS", "30000".into()),
    ];
    for (k, v) in extra {
        let key: &'static str = Box::leak(k.to_string().into_boxed_str());
        env.retain(|(e, _)| *e != key);
        env.push((key, v.to_string()));
    }
    env
}

async fn confirmation_state(db: &TestDb) -> (i64, i64) {
    (
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'order_confirmation'")
            .await,
        db.count("SELECT count(*) AS n FROM orders WHERE confirmation_sent_at IS NOT NULL")
            .await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_job_is_replaced_and_the_email_goes_out_once() {
    let db = one_order().await;
    let smtp = SmtpReceiver::start().await;
    smtp.hold_next();
    let env = worker_env(&smtp.url(), &[]);
    let mut first = Process::spawn(&db, "worker", &env).await;
    tokio::time::timeout(Duration::from_secs(30), smtp.holding.notified())
        .await
        .expect("the worker reached the SMTP data phase");
    first.kill().await;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'order_confirmation' AND state = 'running' AND attempts = 1").await,
        1,
        "the killed worker's job is still leased"
    );
    assert!(smtp.delivered().is_empty());

    // Another worker takes the job over once the dead worker's lease runs out.
    let mut second = Process::spawn(&db, "worker", &env).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            confirmation_state(&db).await == (0, 1)
        })
        .await,
        "the confirmation was sent by the second worker"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = smtp.delivered();
    assert_eq!(delivered.len(), 1, "exactly one email");
    assert!(
        delivered[0].contains("Order #1001 confirmed"),
        "{}",
        delivered[0]
    );
    assert!(delivered[0].contains("buyer@example.com"));
    assert!(second.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_jobs_back_off_then_rest_as_dead_letters_until_retried() {
    let db = one_order().await;
    db.run_sql("UPDATE jobs SET max_attempts = 4 WHERE kind = 'order_confirmation'")
        .await;
    // Nothing listens on this port: every attempt fails.
    let closed = format!("smtp://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut worker = Process::spawn(&db, "worker", &worker_env(&closed, &[])).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            db.count("SELECT count(*) AS n FROM jobs WHERE state = 'dead' AND attempts = 4")
                .await
                == 1
        })
        .await,
        "the job is dead after 4 attempts"
    );
    // Three backoffs of at least 50, 100 and 200 ms (base 100 ms, doubled, ±50 %).
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(worker.terminate().await.success());

    let run = |args: &[&str]| common::shop::cli(&db, args);
    let dead = run(&["jobs", "dead"]);
    assert!(
        dead.contains("order_confirmation") && dead.contains("attempts 4/4"),
        "{dead}"
    );
    assert!(dead.contains("SMTP"), "{dead}");
    let stats = run(&["jobs", "stats"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("email") && l.contains("dead")),
        "{stats}"
    );

    // With the mail server back, a retry by command delivers.
    let smtp = SmtpReceiver::start().await;
    let mut worker = Process::spawn(&db, "worker", &worker_env(&smtp.url(), &[])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.delivered().is_empty(),
        "dead jobs stay dead until retried"
    );
    assert_eq!(
        run(&["jobs", "retry", "--all"]).trim(),
        "requeued 1 dead job(s)"
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            confirmation_state(&db).await == (0, 1)
        })
        .await
    );
    assert_eq!(smtp.delivered().len(), 1);
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_runs_too_long_is_abandoned_and_retried() {
    let db = one_order().await;
    let smtp = SmtpReceiver::start().await;
    smtp.hold_next();
    let env = worker_env(
        &smtp.url(),
        &[("JOB_TIMEOUT_MS", "2500"), ("JOB_BACKOFF_BASE_MS", "1500")],
    );
    let mut worker = Process::spawn(&db, "worker", &env).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            db.count("SELECT count(*) AS n FROM jobs WHERE state = 'queued' AND attempts = 1 AND last_error LIKE 'timed out%'").await == 1
        })
        .await,
        "the hung attempt was abandoned and the job rescheduled"
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            confirmation_state(&db).await == (0, 1)
        })
        .await
    );
    assert_eq!(smtp.delivered().len(), 1);
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_releases_a_running_job_without_counting_the_attempt() {
    let db = one_order().await;
    let smtp = SmtpReceiver::start().await;
    smtp.hold_next();
    let env = worker_env(
        &smtp.url(),
        &[("SHUTDOWN_GRACE_MS", "300"), ("JOB_TIMEOUT_MS", "60000")],
    );
    let mut worker = Process::spawn(&db, "worker", &env).await;
    tokio::time::timeout(Duration::from_secs(30), smtp.holding.notified())
        .await
        .expect("the job is running");
    assert!(worker.terminate().await.success());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'order_confirmation' AND state = 'queued' AND attempts = 0 AND locked_by IS NULL").await,
        1,
        "the running job was handed back"
    );
    // The next worker picks it up at once (no lease to wait for).
    let mut next = Process::spawn(&db, "worker", &worker_env(&smtp.url(), &[])).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            confirmation_state(&db).await == (0, 1)
        })
        .await
    );
    assert_eq!(smtp.delivered().len(), 1);
    assert!(next.terminate().await.success());
}
