//! OpenTelemetry traces, end to end: the real binary exports to a real OTLP receiver
//! (gRPC and HTTP/protobuf), one request makes one trace (HTTP → GraphQL operation →
//! database on the replica, and Redis), the client's `traceparent` is honoured, jobs link
//! to the request that enqueued them, outgoing webhooks carry the trace on, and an
//! unreachable collector changes nothing for clients.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestDb;
use common::otlp::{ReceivedSpan, Receiver};
use common::shop::{Process, cart_with, checkout_input, complete, free_port, stocked_variant};
use serde_json::{Value, json};

const QUERY: &str = "query Catalog { products(first: 3) { edges { node { title handle priceRange { minVariantPrice { amount } } } } } }";

fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// A W3C `traceparent` with fresh ids: (header, trace id, parent span id).
fn traceparent() -> (String, String, String) {
    let trace = format!("{:032x}", rand::random::<u128>());
    let span = format!("{:016x}", rand::random::<u64>());
    (format!("00-{trace}-{span}-01"), trace, span)
}

async fn replica_healthy(base: &str) -> bool {
    let client = reqwest::Client::new();
    common::eventually(Duration::from_secs(20), || async {
        let Ok(r) = client.get(format!("{base}/readyz")).send().await else {
            return false;
        };
        let body: Value = r.json().await.unwrap_or_default();
        body["replicas"][0]["healthy"].as_bool() == Some(true)
    })
    .await
}

fn gateway_env(receiver: &Receiver, protocol: &str, db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ("OTEL_SERVICE_NAME", "cg-trace-test".to_string()),
        ("CACHE_ENABLED", "true".to_string()),
        ("CACHE_KEY_PREFIX", unique("tr")),
        ("DATABASE_REPLICA_URLS", db.replica_url()),
        ("RUN_WORKERS", "false".to_string()),
        // Answers read on a replica are cached once no tag changed for this long (the
        // cache's start counts as a change of everything).
        ("REPLICA_MAX_LAG_MS", "1000".to_string()),
    ]
}

/// Is `ancestor` on the parent chain of `span` (within `spans`)?
fn descends_from(span: &ReceivedSpan, ancestor: &str, spans: &[ReceivedSpan]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(p) => parent = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

async fn one_request_makes_one_connected_trace(protocol: &str) {
    let receiver = if protocol == "grpc" {
        Receiver::grpc().await
    } else {
        Receiver::http().await
    };
    let db = TestDb::new(5).await;
    let gateway = Process::spawn(&db, "serve", &gateway_env(&receiver, protocol, &db)).await;
    assert!(
        replica_healthy(&gateway.base).await,
        "the replica never became healthy"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (header, trace_id, remote_parent) = traceparent();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/graphql", gateway.base))
        .header("traceparent", &header)
        .header("baggage", "tenant=acme")
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "MISS");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");

    // Batches leave every 100 ms; wait until the whole trace is there.
    let complete = common::eventually(Duration::from_secs(20), || async {
        let spans = receiver.received.of_trace(&trace_id);
        spans.iter().any(|s| s.name == "POST /graphql")
            && spans.iter().any(|s| s.name.starts_with("query "))
            && spans
                .iter()
                .any(|s| s.attributes.get("db.replica").is_some_and(|v| v == "true"))
            && spans.iter().any(|s| {
                s.attributes
                    .get("db.system.name")
                    .is_some_and(|v| v == "redis")
            })
    })
    .await;
    let spans = receiver.received.of_trace(&trace_id);
    let names: Vec<(&str, Option<&String>)> = spans
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.attributes.get("db.client.connection.pool.name"),
            )
        })
        .collect();
    assert!(complete, "incomplete trace over {protocol}: {names:?}");

    let http = spans.iter().find(|s| s.name == "POST /graphql").unwrap();
    assert_eq!(http.kind, 2, "the HTTP span is a server span");
    assert_eq!(
        http.parent_span_id, remote_parent,
        "the HTTP span continues the client's traceparent"
    );
    assert_eq!(http.service, "cg-trace-test");
    assert_eq!(http.attributes["http.route"], "/graphql");
    assert_eq!(http.attributes["http.request.method"], "POST");
    assert_eq!(http.attributes["http.response.status_code"], "200");
    // Paths can hold bearer tokens (/checkouts/c/{token}): only the route template is kept.
    assert!(!http.attributes.contains_key("url.path"));

    let operation = spans.iter().find(|s| s.name == "query Catalog").unwrap();
    assert_eq!(operation.parent_span_id, http.span_id);
    assert_eq!(operation.attributes["graphql.operation.name"], "Catalog");
    assert_eq!(operation.attributes["graphql.operation.type"], "query");
    assert_eq!(operation.attributes["graphql.cache"], "MISS");
    assert_eq!(operation.attributes["graphql.document.hash"].len(), 64);
    assert!(operation.attributes.contains_key("graphql.cost"));

    let db_spans: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| {
            s.attributes
                .get("db.system.name")
                .is_some_and(|v| v == "postgresql")
        })
        .collect();
    assert!(!db_spans.is_empty());
    for s in &db_spans {
        assert_eq!(s.kind, 3, "database spans are client spans");
        assert!(
            descends_from(s, &operation.span_id, &spans),
            "database span {} is not under the operation",
            s.name
        );
        let text = &s.attributes["db.query.text"];
        assert!(!text.contains('\''), "literal in statement text: {text}");
        assert!(s.attributes.contains_key("server.address"));
        assert!(s.attributes.contains_key("db.client.connection.pool.name"));
    }
    let on_replica = db_spans
        .iter()
        .find(|s| s.attributes["db.replica"] == "true")
        .expect("a statement on the replica");
    assert!(on_replica.attributes["db.client.connection.pool.name"].starts_with("replica-"));
    assert_eq!(on_replica.attributes["db.operation.name"], "SELECT");

    let redis: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| {
            s.attributes
                .get("db.system.name")
                .is_some_and(|v| v == "redis")
        })
        .collect();
    for s in &redis {
        assert_eq!(s.kind, 3);
        assert!(descends_from(s, &operation.span_id, &spans));
    }

    // Every span of the request is in this one trace: nothing of it started another.
    let others: Vec<String> = receiver
        .received
        .spans()
        .iter()
        .filter(|s| s.trace_id != trace_id && s.name == "query Catalog")
        .map(|s| s.name.clone())
        .collect();
    assert!(
        others.is_empty(),
        "the operation appears in other traces: {others:?}"
    );

    // A second identical request is a cache hit, and says so on its span.
    let (header, trace_id, _) = traceparent();
    let response = client
        .post(format!("{}/graphql", gateway.base))
        .header("traceparent", &header)
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-cache"], "HIT");
    let hit = common::eventually(Duration::from_secs(20), || async {
        receiver
            .received
            .of_trace(&trace_id)
            .iter()
            .any(|s| s.name == "query Catalog" && s.attributes["graphql.cache"] == "HIT")
    })
    .await;
    assert!(hit, "the cache hit's operation span never arrived");
    assert!(
        !receiver.received.of_trace(&trace_id).iter().any(|s| s
            .attributes
            .get("db.system.name")
            .is_some_and(|v| v == "postgresql")),
        "a cache hit must not touch the database"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_is_one_trace_over_otlp_grpc() {
    one_request_makes_one_connected_trace("grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_is_one_trace_over_otlp_http_protobuf() {
    one_request_makes_one_connected_trace("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_the_trace_id_and_a_code() {
    let receiver = Receiver::grpc().await;
    let db = TestDb::new(1).await;
    let mut env = gateway_env(&receiver, "grpc", &db);
    env.retain(|(k, _)| *k != "DATABASE_REPLICA_URLS");
    let gateway = Process::spawn(&db, "serve", &env).await;
    let (header, trace_id, _) = traceparent();
    let body: Value = reqwest::Client::new()
        .post(format!("{}/graphql", gateway.base))
        .header("traceparent", &header)
        .json(&json!({ "query": "{ products(first: 1) { edges { node { titel } } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["traceId"], trace_id,
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_trace_and_span_ids_of_the_request() {
    use tokio::io::AsyncBufReadExt;
    let receiver = Receiver::grpc().await;
    let db = TestDb::new(3).await;
    let port = free_port();
    let mut child = common::gateway_command_async()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTO_MIGRATE", "false")
        .env("AUTO_SEED_PRODUCTS", "0")
        .env("CACHE_ENABLED", "false")
        .env("RUN_WORKERS", "false")
        .env_remove("DATABASE_REPLICA_URLS")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("LOG_FORMAT", "json")
        // Spans are listed in log lines when RUST_LOG enables them.
        .env("RUST_LOG", "warn,commerce_gateway=info")
        // Every statement is "slow": each logs a warning inside the request's spans.
        .env("SLOW_QUERY_MS", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    assert!(
        common::eventually(Duration::from_secs(30), || async {
            client.get(format!("{base}/healthz")).send().await.is_ok()
        })
        .await
    );
    let (header, trace_id, _) = traceparent();
    let r = client
        .post(format!("{base}/graphql"))
        .header("traceparent", &header)
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                panic!("a log line that is not JSON: {line}");
            };
            if entry["message"] == "slow query" && entry["trace_id"] == trace_id.as_str() {
                return entry;
            }
        }
        panic!("the log ended without the request's slow-query line");
    })
    .await
    .expect("no log line of the request");
    assert_eq!(found["level"], "WARN");
    let span_id = found["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16);
    assert!(span_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(found["fields"]["statement"].is_string(), "{found}");
    let spans: Vec<&str> = found["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(spans.first(), Some(&"http.request"), "{found}");
    assert!(spans.contains(&"graphql.operation"), "{found}");
}

/// Records the `traceparent` of every webhook delivery it receives.
async fn webhook_sink() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sink = sink.clone();
            async move {
                if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                    sink.lock().unwrap().push(tp.to_string());
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, seen, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_link_to_the_request_that_enqueued_them_and_webhooks_carry_the_trace() {
    let receiver = Receiver::grpc().await;
    let db = TestDb::new(0).await;
    let variant = stocked_variant(&db, "traced", 1500, "DENY", &[5]).await;
    let (hook_url, deliveries, _hook) = webhook_sink().await;
    let mut env = gateway_env(&receiver, "grpc", &db);
    env.retain(|(k, _)| !matches!(*k, "DATABASE_REPLICA_URLS" | "RUN_WORKERS"));
    env.push(("RUN_WORKERS", "true".into()));
    env.push(("JOB_POLL_INTERVAL_MS", "50".into()));
    env.push(("ORDER_WEBHOOK_URLS", hook_url));
    env.push(("ORDER_WEBHOOK_SECRET", "whsec_test".into()));
    let gateway = Process::spawn(&db, "serve", &env).await;

    let (header, trace_id, _) = traceparent();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("traceparent", header.parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let cart = cart_with(&client, &gateway.base, &[(&variant.gid, 1)]).await;
    let done = complete(
        &client,
        &gateway.base,
        &cart,
        checkout_input("trace-key-1", "tok_success"),
    )
    .await;
    assert!(done["order"]["id"].is_string(), "{done}");

    // The webhook job: a trace of its own, linked to the checkout request's trace, whose
    // delivery span's context reached the subscriber.
    let linked =
        common::eventually(Duration::from_secs(30), || async {
            receiver.received.spans().iter().any(|s| {
                s.name == "job order_webhook" && s.links.iter().any(|(t, _)| *t == trace_id)
            }) && !deliveries.lock().unwrap().is_empty()
        })
        .await;
    let spans = receiver.received.spans();
    assert!(
        linked,
        "no linked webhook job span / delivery: jobs {:?}, deliveries {:?}",
        spans
            .iter()
            .filter(|s| s.name.starts_with("job "))
            .map(|s| (&s.name, &s.links))
            .collect::<Vec<_>>(),
        deliveries.lock().unwrap()
    );
    let job = spans
        .iter()
        .find(|s| s.name == "job order_webhook" && s.links.iter().any(|(t, _)| *t == trace_id))
        .unwrap();
    assert_eq!(job.kind, 5, "a job span is a consumer span");
    assert_ne!(job.trace_id, trace_id, "a job runs in a trace of its own");
    assert!(job.parent_span_id.is_empty() || job.parent_span_id == "0000000000000000");
    // The link names a span of the checkout request.
    let (_, linked_span) = job.links.iter().find(|(t, _)| *t == trace_id).unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            receiver
                .received
                .of_trace(&trace_id)
                .iter()
                .any(|s| s.span_id == *linked_span)
        })
        .await,
        "the link points at no span of the request"
    );
    // The delivery's client span, child of the job's span (it may arrive in a later batch).
    let delivered = common::eventually(Duration::from_secs(10), || async {
        receiver
            .received
            .of_trace(&job.trace_id)
            .iter()
            .any(|s| s.name == "POST" && s.parent_span_id == job.span_id)
    })
    .await;
    assert!(delivered, "no delivery span under the job span");
    let delivery = receiver
        .received
        .of_trace(&job.trace_id)
        .into_iter()
        .find(|s| s.name == "POST" && s.parent_span_id == job.span_id)
        .unwrap();
    assert_eq!(delivery.kind, 3);
    let tp = deliveries.lock().unwrap()[0].clone();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(
        parts[1], job.trace_id,
        "the webhook continues the job's trace"
    );
    assert_eq!(
        parts[2], delivery.span_id,
        "the webhook's parent is the delivery span"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_collector_changes_nothing_for_clients() {
    // A closed port (connection refused) and a blackhole that accepts and never answers.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole = format!("http://{}", blackhole.local_addr().unwrap());
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = blackhole.accept().await {
            held.push(s);
        }
    });
    let db = TestDb::new(5).await;
    for (endpoint, protocol) in [
        (closed.as_str(), "grpc"),
        (hole.as_str(), "http/protobuf"),
        (hole.as_str(), "grpc"),
    ] {
        let gateway = Process::spawn(
            &db,
            "serve",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_string()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
                ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "64".into()),
                ("RUN_WORKERS", "false".into()),
            ],
        )
        .await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        // Enough requests to fill the span queue many times over.
        let requests = (0..200).map(|_| {
            let client = client.clone();
            let url = format!("{}/graphql", gateway.base);
            async move {
                let r = client
                    .post(url)
                    .json(&json!({ "query": QUERY }))
                    .send()
                    .await?;
                let status = r.status();
                let body: Value = r.json().await?;
                Ok::<_, reqwest::Error>((status, body))
            }
        });
        let results = futures::future::join_all(requests).await;
        for result in results {
            let (status, body) = result.unwrap_or_else(|e| {
                panic!("a request failed with the collector at {endpoint} ({protocol}): {e}")
            });
            assert_eq!(status, 200, "{body}");
            assert!(body.get("errors").is_none(), "{body}");
            assert_eq!(
                body["data"]["products"]["edges"].as_array().map(Vec::len),
                Some(3)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sampler_from_the_environment_decides_per_trace() {
    let receiver = Receiver::grpc().await;
    let db = TestDb::new(3).await;
    let mut env = gateway_env(&receiver, "grpc", &db);
    env.retain(|(k, _)| *k != "DATABASE_REPLICA_URLS" && *k != "CACHE_ENABLED");
    env.push(("CACHE_ENABLED", "false".into()));
    env.push(("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".into()));
    env.push(("OTEL_TRACES_SAMPLER_ARG", "0.1".into()));
    let gateway = Process::spawn(&db, "serve", &env).await;
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", gateway.base);
    for _ in 0..300 {
        let r = client
            .post(&url)
            .json(&json!({ "query": QUERY }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A parent's decision wins over the ratio, both ways.
    let (sampled, sampled_trace, _) = traceparent();
    let (unsampled, unsampled_trace, _) = traceparent();
    let unsampled = unsampled.replace("-01", "-00");
    for header in [&sampled, &unsampled] {
        client
            .post(&url)
            .header("traceparent", header)
            .json(&json!({ "query": QUERY }))
            .send()
            .await
            .unwrap();
    }
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            !receiver.received.of_trace(&sampled_trace).is_empty()
        })
        .await,
        "a request whose parent was sampled was not traced"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = receiver.received.spans();
    assert!(
        spans.iter().all(|s| s.trace_id != unsampled_trace),
        "an unsampled parent was traced"
    );
    let roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.name == "POST /graphql" && s.trace_id != sampled_trace)
        .collect();
    // 300 requests at 10 %: 30 expected; [8, 65] holds with overwhelming probability.
    assert!(
        (8..=65).contains(&roots.len()),
        "{} of 300 requests traced at a ratio of 0.1",
        roots.len()
    );
    // A sampled request is traced whole; an unsampled one leaves nothing behind.
    for root in &roots {
        let trace = receiver.received.of_trace(&root.trace_id);
        assert!(trace.iter().any(|s| s.name == "query Catalog"), "{trace:?}");
        assert!(trace.iter().any(|s| {
            s.attributes
                .get("db.system.name")
                .is_some_and(|v| v == "postgresql")
        }));
    }
    let traced: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        traced.len(),
        roots.len() + 1,
        "spans outside the sampled requests' traces"
    );
}
