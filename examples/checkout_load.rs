//! Checkout load generator for `bench/checkout.sh`: each virtual buyer loops over
//! cartCreate (one line) → cartLinesAdd (a second line) → cartComplete, for a fixed time,
//! and the run reports orders per second and latency percentiles as JSON on stdout.
//!
//! Usage: checkout_load <base-url> <concurrency> <seconds> <variant-gids-file>
//! The file holds two variant global IDs per line (tab-separated): the first line item
//! and the second; buyers take lines round-robin.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CREATE: &str = "mutation($v: ID!) { cartCreate(input: { lines: [{ merchandiseId: $v, quantity: 1 }] }) { cart { id } userErrors { code } } }";
const ADD: &str = "mutation($c: ID!, $v: ID!) { cartLinesAdd(cartId: $c, lines: [{ merchandiseId: $v, quantity: 1 }]) { cart { id } userErrors { code } } }";
const COMPLETE: &str = "mutation($c: ID!, $i: CartCompleteInput!) { cartComplete(cartId: $c, input: $i) { order { orderNumber } userErrors { code } } }";

async fn gql(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let response = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body.get("errors").is_some() {
        return Err(body["errors"].to_string());
    }
    Ok(body["data"].clone())
}

/// One buyer's cart → add → complete; returns the latency of each step.
async fn buy(
    client: &reqwest::Client,
    url: &str,
    first: &str,
    second: &str,
    key: &str,
) -> Result<[Duration; 3], String> {
    let t0 = Instant::now();
    let created = gql(client, url, CREATE, json!({ "v": first })).await?;
    let cart = created["cartCreate"]["cart"]["id"]
        .as_str()
        .ok_or_else(|| format!("cartCreate: {created}"))?
        .to_string();
    let t1 = Instant::now();
    let added = gql(client, url, ADD, json!({ "c": cart, "v": second })).await?;
    if added["cartLinesAdd"]["userErrors"] != json!([]) {
        return Err(format!("cartLinesAdd: {added}"));
    }
    let t2 = Instant::now();
    let input = json!({
        "email": "bench@example.com",
        "shippingAddress": { "lastName": "Bench", "address1": "1 Load St", "city": "Berlin", "zip": "10115", "countryCode": "DE" },
        "paymentToken": "tok_success",
        "idempotencyKey": key,
    });
    let done = gql(client, url, COMPLETE, json!({ "c": cart, "i": input })).await?;
    if done["cartComplete"]["order"].is_null() {
        return Err(format!("cartComplete: {done}"));
    }
    let t3 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: checkout_load <base-url> <concurrency> <seconds> <variant-gids-file>");
        std::process::exit(2);
    }
    let url = format!("{}/graphql", args[1].trim_end_matches('/'));
    let concurrency: usize = args[2].parse().expect("concurrency");
    let seconds: f64 = args[3].parse().expect("seconds");
    let pairs: Vec<(String, String)> = std::fs::read_to_string(&args[4])
        .expect("variant file")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .collect();
    assert!(!pairs.is_empty(), "no variant pairs in {}", args[4]);
    let pairs = Arc::new(pairs);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let run = std::process::id();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, pairs, next, errors) = (
            client.clone(),
            url.clone(),
            pairs.clone(),
            next.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut first_error = None;
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let (a, b) = &pairs[n % pairs.len()];
                let t = Instant::now();
                match buy(&client, &url, a, b, &format!("bench-{run}-{n}")).await {
                    Ok(steps) => samples.push((t.elapsed(), steps)),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                }
            }
            (samples, first_error)
        }));
    }
    let mut flows = Vec::new();
    let mut completes = Vec::new();
    let mut first_error = None;
    for task in tasks {
        let (samples, error) = task.await.unwrap();
        for (flow, steps) in samples {
            flows.push(flow);
            completes.push(steps[2]);
        }
        if first_error.is_none() {
            first_error = error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    flows.sort();
    completes.sort();
    let report = json!({
        "orders": flows.len(),
        "errors": errors.load(Ordering::Relaxed),
        "first_error": first_error,
        "seconds": elapsed,
        "orders_per_s": flows.len() as f64 / elapsed,
        "flow_p50_ms": percentile(&flows, 0.50),
        "flow_p99_ms": percentile(&flows, 0.99),
        "complete_p50_ms": percentile(&completes, 0.50),
        "complete_p99_ms": percentile(&completes, 0.99),
    });
    println!("{report}");
}
