//! The bundled observability stack against the real parts: a real Prometheus (Debian's)
//! started with the project's `prometheus/prometheus.yml` and alert rules scrapes a
//! gateway and a worker that served real traffic, and every PromQL expression of the
//! dashboards and rules is evaluated through its HTTP API; `promtool` lints the live
//! `/metrics` output; the static checks of `prometheus/`, `grafana/` and `compose.yaml`
//! run; and operation labels stay bounded whatever clients send.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::TestDb;
use common::shop::{
    Process, cart_with, checkout_input, complete, free_port, gql_at, signed_event, stocked_variant,
};
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A helper process, killed when dropped.
struct Child(#[allow(dead_code)] tokio::process::Child);

fn spawn(program: &str, args: &[String], env: &[(&str, String)]) -> Child {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Child(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} (scripts/test installs it): {e}")),
    )
}

async fn get_text(url: &str) -> Option<String> {
    let r = reqwest::get(url).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

/// The scrape and rule configuration of `prometheus/prometheus.yml`, with each job's
/// targets replaced by the local process playing it, 2 s intervals, and the rule files
/// by absolute path. Jobs without a local stand-in fail the test.
fn prometheus_config(targets: &HashMap<&str, String>, dir: &Path) -> String {
    let text = std::fs::read_to_string(repo("prometheus/prometheus.yml")).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let global = config["global"].as_mapping_mut().unwrap();
    for key in ["scrape_interval", "evaluation_interval"] {
        global.insert(key.into(), "2s".into());
    }
    // The exporters' scrapes run queries; on a loaded machine they need more than 1 s.
    global.insert("scrape_timeout".into(), "2s".into());
    // The rules as they are, but evaluated every 2 s (a group's own `interval` would
    // leave slow groups unevaluated for the length of the test).
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    for entry in std::fs::read_dir(repo("prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence_mut().unwrap() {
            group.as_mapping_mut().unwrap().remove("interval");
        }
        std::fs::write(
            rules_dir.join(path.file_name().unwrap()),
            serde_yaml::to_string(&doc).unwrap(),
        )
        .unwrap();
    }
    assert_eq!(
        config["rule_files"].as_sequence().map(|r| r.len()),
        Some(1),
        "prometheus.yml is expected to load rules/*.yml"
    );
    config["rule_files"] =
        serde_yaml::from_str(&format!("['{}/*.yml']", rules_dir.display())).unwrap();
    for job in config["scrape_configs"].as_sequence_mut().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_string();
        let target = targets
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no local stand-in for the scrape job {name}"));
        job["static_configs"] =
            serde_yaml::from_str(&format!("[{{targets: ['{target}']}}]")).unwrap();
    }
    serde_yaml::to_string(&config).unwrap()
}

/// Instant query through the HTTP API: the result vector (or scalar) as JSON.
async fn query(prometheus: &str, expr: &str) -> Result<Vec<Value>, String> {
    let response = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    match body["data"]["resultType"].as_str() {
        Some("vector") | Some("matrix") => Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()),
        _ => Ok(vec![body["data"]["result"].clone()]),
    }
}

/// Grafana's variables, as the dashboards use them, replaced by values Prometheus
/// evaluates; any other variable is an error in the dashboard.
fn substitute(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "5m")
        .replace("${instance:regex}", ".*")
        .replace("${instance}", ".*")
        .replace("$instance", ".*");
    assert!(!out.contains('$'), "unknown Grafana variable in: {expr}");
    out
}

/// Every `expr` in a dashboard, with the title of its panel.
fn dashboard_expressions(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let title = map
                .get("title")
                .and_then(|t| t.as_str())
                .unwrap_or(title)
                .to_string();
            for (k, child) in map {
                if k == "expr"
                    && let Some(e) = child.as_str()
                {
                    out.push((title.clone(), e.to_string()));
                } else {
                    dashboard_expressions(child, &title, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                dashboard_expressions(item, title, out);
            }
        }
        _ => {}
    }
}

/// (kind, name, expr) of every rule: kind `alert` or `record`.
fn rule_expressions() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo("prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml" && e != "yaml") {
            continue;
        }
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let expr = rule["expr"].as_str().unwrap().to_string();
                if let Some(a) = rule["alert"].as_str() {
                    out.push(("alert".into(), a.to_string(), expr));
                } else {
                    out.push((
                        "record".into(),
                        rule["record"].as_str().unwrap().to_string(),
                        expr,
                    ));
                }
            }
        }
    }
    out
}

/// The vector selectors of a PromQL expression (`metric{matchers}`), for alert
/// expressions that are empty while they do not fire: each selector must have data.
fn selectors(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    ];
    // Aggregations may put `by (…)` between their name and their argument.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    let mut skip_parens_after_keyword = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '(' && skip_parens_after_keyword {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_parens_after_keyword = false;
            i += 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let lower = word.to_ascii_lowercase();
            if WORDS.contains(&lower.as_str()) {
                skip_parens_after_keyword = matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if lower == "offset" {
                    // Skip the duration.
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                }
                continue;
            }
            if next == Some('(') || AGGREGATIONS.contains(&lower.as_str()) {
                continue; // a function or aggregation
            }
            let mut selector = word;
            if next == Some('{') {
                let mut k = j;
                while k < chars.len() && chars[k] != '}' {
                    if chars[k] == '"' {
                        k += 1;
                        while k < chars.len() && chars[k] != '"' {
                            k += 1;
                        }
                    }
                    k += 1;
                }
                selector.extend(&chars[j..=k.min(chars.len() - 1)]);
                i = k + 1;
            }
            out.insert(selector);
        } else {
            i += 1;
        }
    }
    out
}

/// Patterns (regexes are overkill: substrings) of expressions or selectors that may be
/// empty on this test's gateway, each with its reason (`tests/fixtures/observability/may-be-empty.txt`).
fn may_be_empty() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo("tests/fixtures/observability/may-be-empty.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (pattern, reason) = l.split_once(" # ").unwrap_or((l, ""));
            (pattern.trim().to_string(), reason.trim().to_string())
        })
        .collect()
}

/// Serves 500 to every webhook delivery, so the worker's webhook jobs retry and die.
async fn failing_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    (
        url,
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }),
    )
}

const PRODUCTS: &str =
    "query Catalog { products(first: 5) { edges { node { id title handle } } } }";

/// Storefront, checkout, payment and job traffic that gives the metrics something to say.
async fn traffic(db: &TestDb, base: &str, secret: &str) {
    let client = reqwest::Client::new();
    for _ in 0..3 {
        gql_at(&client, base, PRODUCTS, json!({})).await;
        gql_at(
            &client,
            base,
            "query Collections { collections(first: 5) { edges { node { handle title } } } }",
            json!({}),
        )
        .await;
        gql_at(
            &client,
            base,
            "query Menu { menu(handle: \"main-menu\") { title } }",
            json!({}),
        )
        .await;
    }
    let handle = gql_at(&client, base, PRODUCTS, json!({})).await["data"]["products"]["edges"][0]["node"]["handle"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..2 {
        gql_at(
            &client,
            base,
            "query Product($h: String!) { product(handle: $h) { title } }",
            json!({ "h": handle }),
        )
        .await;
    }
    // Errors: a validation error, and a document the limits refuse.
    gql_at(
        &client,
        base,
        "query Broken { products(first: 1) { edges { node { nope } } } }",
        json!({}),
    )
    .await;
    let deep = format!(
        "query Deep {{ {}id{} }}",
        "menu(handle: \"x\") { items { items { items { items { items { items { items { items { items { items { items { items { items { items { items { items { ",
        " } } } } } } } } } } } } } } } } }"
    );
    gql_at(&client, base, &deep, json!({})).await;
    // Automatic persisted query: unknown hash (miss), registration, then by hash (hit).
    let apq = "query Persisted { products(first: 2) { edges { node { id } } } }";
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(apq.as_bytes()))
    };
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    for body in [
        json!({ "extensions": ext }),
        json!({ "query": apq, "extensions": ext }),
        json!({ "extensions": ext }),
    ] {
        client
            .post(format!("{base}/graphql"))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    // Checkouts: completed, out of stock, declined; then the payment of the first.
    let v = stocked_variant(db, "metrics-stock", 2000, "DENY", &[1]).await;
    let cart = cart_with(&client, base, &[(&v.gid, 1)]).await;
    let paid = complete(&client, base, &cart, checkout_input("m-1", "tok_success")).await;
    assert!(paid["order"]["id"].is_string(), "{paid}");
    let cart = cart_with(&client, base, &[(&v.gid, 1)]).await;
    let short = complete(&client, base, &cart, checkout_input("m-2", "tok_success")).await;
    assert_eq!(short["userErrors"][0]["code"], "OUT_OF_STOCK", "{short}");
    let w = stocked_variant(db, "metrics-decline", 2000, "DENY", &[5]).await;
    let cart = cart_with(&client, base, &[(&w.gid, 1)]).await;
    let declined = complete(&client, base, &cart, checkout_input("m-3", "tok_decline")).await;
    assert_eq!(
        declined["userErrors"][0]["code"], "PAYMENT_DECLINED",
        "{declined}"
    );
    let reference = {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct R {
            #[diesel(sql_type = Text)]
            r: String,
        }
        let mut conn = db.conn().await;
        diesel::sql_query("SELECT payment_reference AS r FROM orders ORDER BY id LIMIT 1")
            .get_result::<R>(&mut conn)
            .await
            .unwrap()
            .r
    };
    let (body, signature) = signed_event(secret, "evt_metrics_1", "payment.succeeded", &reference);
    let r = client
        .post(format!("{base}/webhooks/payments/test"))
        .header("Payment-Signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "payment webhook: {}", r.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_has_data_for_every_dashboard_and_alert_expression() {
    let db = TestDb::new(30).await;
    let secret = "whsec_metrics".to_string();
    let (hook, _hook_task) = failing_endpoint().await;
    let worker_metrics = format!("127.0.0.1:{}", free_port());
    let common_env = vec![
        ("DATABASE_REPLICA_URLS", db.replica_url()),
        ("CACHE_ENABLED", "true".to_string()),
        (
            "CACHE_KEY_PREFIX",
            format!("obs{:08x}", rand::random::<u32>()),
        ),
        ("REPLICA_MAX_LAG_MS", "1000".to_string()),
        ("PAYMENT_WEBHOOK_SECRET", secret.clone()),
        ("ORDER_WEBHOOK_URLS", hook),
        ("ORDER_WEBHOOK_SECRET", "whsec_out".to_string()),
        // Every statement above 1 ms counts as slow, so the slow-query series exist.
        ("SLOW_QUERY_MS", "1".to_string()),
        ("RUST_LOG", "error".to_string()),
    ];
    let mut gateway_env = common_env.clone();
    gateway_env.push(("RUN_WORKERS", "false".to_string()));
    let gateway = Process::spawn(&db, "serve", &gateway_env).await;
    let mut worker_env = common_env.clone();
    worker_env.extend([
        ("METRICS_ADDR", worker_metrics.clone()),
        ("JOB_POLL_INTERVAL_MS", "20".to_string()),
        ("JOB_BACKOFF_BASE_MS", "1".to_string()),
        ("JOB_BACKOFF_MAX_MS", "20".to_string()),
    ]);
    let _worker = Process::spawn(&db, "worker", &worker_env).await;

    // The exporters compose runs, for the primary, the replica and Redis.
    let (pg, pg_replica, redis) = (free_port(), free_port(), free_port());
    let dsn = |url: &str| {
        format!(
            "{}?sslmode=disable",
            url.replace("postgres://", "postgresql://")
        )
    };
    let _pg = spawn(
        "prometheus-postgres-exporter",
        &[format!("--web.listen-address=127.0.0.1:{pg}")],
        &[("DATA_SOURCE_NAME", dsn(&db.url))],
    );
    let _pg_replica = spawn(
        "prometheus-postgres-exporter",
        &[format!("--web.listen-address=127.0.0.1:{pg_replica}")],
        &[("DATA_SOURCE_NAME", dsn(&db.replica_url()))],
    );
    let _redis = spawn(
        "prometheus-redis-exporter",
        &[
            "-redis.addr=redis://127.0.0.1:6379".to_string(),
            format!("-web.listen-address=127.0.0.1:{redis}"),
        ],
        &[],
    );

    traffic(&db, &gateway.base, &secret).await;

    // promtool lints the live exposition of both processes.
    for (who, url) in [
        ("gateway", format!("{}/metrics", gateway.base)),
        ("worker", format!("http://{worker_metrics}/metrics")),
    ] {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = response.text().await.unwrap();
        let mut lint = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian's prometheus package)");
        use std::io::Write;
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = lint.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics on the {who}'s /metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let prom_port = free_port();
    let gateway_addr = gateway.base.trim_start_matches("http://").to_string();
    let targets: HashMap<&str, String> = [
        ("gateway", gateway_addr),
        ("gateway-worker", worker_metrics.clone()),
        ("postgres", format!("127.0.0.1:{pg}")),
        ("postgres-replica", format!("127.0.0.1:{pg_replica}")),
        ("redis", format!("127.0.0.1:{redis}")),
        ("prometheus", format!("127.0.0.1:{prom_port}")),
    ]
    .into_iter()
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, prometheus_config(&targets, dir.path())).unwrap();
    let check = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let _prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &[],
    );
    let prometheus = format!("http://127.0.0.1:{prom_port}");

    // Light traffic keeps rates above zero while Prometheus scrapes.
    let base = gateway.base.clone();
    let background = tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let _ = client
                .post(format!("{base}/graphql"))
                .json(&json!({ "query": PRODUCTS }))
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let all_up = common::eventually(Duration::from_secs(60), || async {
        query(&prometheus, "up == 1")
            .await
            .is_ok_and(|r| r.len() == targets.len())
    })
    .await;
    let up = query(&prometheus, "up").await.unwrap_or_default();
    assert!(all_up, "not every target is up: {up:?}");
    // Enough scrapes for rate() windows and rule evaluations.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(get_text(&format!("{prometheus}/-/ready")).await.is_some());

    let allowed = may_be_empty();
    let excused = |text: &str| allowed.iter().any(|(p, _)| text.contains(p.as_str()));
    let mut empty = Vec::new();
    let mut failed = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut exprs = Vec::new();
        dashboard_expressions(&dashboard, "", &mut exprs);
        assert!(!exprs.is_empty(), "{} has no expressions", path.display());
        for (panel, expr) in exprs {
            checked += 1;
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            match query(&prometheus, &substitute(&expr)).await {
                Err(e) => failed.push(format!("{file} / {panel}: {expr}: {e}")),
                Ok(r) if r.is_empty() && !excused(&expr) => {
                    empty.push(format!("{file} / {panel}: {expr}"))
                }
                Ok(_) => {}
            }
        }
    }
    for (kind, name, expr) in rule_expressions() {
        checked += 1;
        let result = query(&prometheus, &expr).await;
        if let Err(e) = &result {
            failed.push(format!("{kind} {name}: {expr}: {e}"));
            continue;
        }
        if kind == "record" {
            if result.unwrap().is_empty() && !excused(&expr) {
                empty.push(format!("record {name}: {expr}"));
            }
            continue;
        }
        // An alert that does not fire is empty: each series it reads must exist (within
        // the last minute: one scrape that timed out on a loaded machine, such as an
        // exporter's, marks its series stale for an instant query).
        for selector in selectors(&expr) {
            match query(&prometheus, &format!("last_over_time({selector}[1m])")).await {
                Err(e) => failed.push(format!("alert {name}: selector {selector}: {e}")),
                Ok(r) if r.is_empty() && !excused(&selector) => {
                    empty.push(format!("alert {name}: selector {selector}"))
                }
                Ok(_) => {}
            }
        }
    }
    background.abort();
    assert!(checked > 50, "only {checked} expressions found");
    assert!(
        failed.is_empty(),
        "expressions Prometheus refused:\n{}",
        failed.join("\n")
    );
    assert!(
        empty.is_empty(),
        "expressions without data (fix them, or list them with a reason in \
         tests/fixtures/observability/may-be-empty.txt):\n{}",
        empty.join("\n")
    );
}

#[test]
fn selectors_are_pulled_out_of_promql() {
    let s = selectors(
        "sum by (route) (rate(gateway_http_request_duration_seconds_count{status_class=\"5xx\",route=~\"/graphql|x\"}[5m])) \
         / ignoring(x) sum(rate(gateway_http_request_duration_seconds_count[5m] offset 1h)) > 0.05 and on(instance) up == 1",
    );
    let expected: BTreeSet<String> = [
        "gateway_http_request_duration_seconds_count{status_class=\"5xx\",route=~\"/graphql|x\"}",
        "gateway_http_request_duration_seconds_count",
        "up",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(s, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn operation_labels_stay_bounded_whatever_clients_send() {
    let db = TestDb::new(1).await;
    let gateway = Process::spawn(
        &db,
        "serve",
        &[
            ("METRICS_MAX_OPERATIONS", "5".into()),
            ("RUN_WORKERS", "false".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    for i in 0..40 {
        let q = format!("query Op{i} {{ products(first: 1) {{ edges {{ node {{ id }} }} }} }}");
        gql_at(&client, &gateway.base, &q, json!({})).await;
    }
    // Made-up methods collapse into one label value.
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        client
            .request(method, format!("{}/graphql", gateway.base))
            .send()
            .await
            .unwrap();
    }
    let text = get_text(&format!("{}/metrics", gateway.base))
        .await
        .unwrap();
    let methods: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("gateway_http_request_duration_seconds_count{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.contains("_OTHER"), "{methods:?}");
    assert!(methods.iter().all(|m| !m.starts_with("FOO")), "{methods:?}");
    let names: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("gateway_graphql_operations_total{"))
        .filter_map(|l| l.split("operation=\"").nth(1)?.split('"').next())
        .collect();
    assert!(names.contains("__other"), "{names:?}");
    assert!(
        names.len() <= 6,
        "operation labels grew past the limit: {names:?}"
    );
    // The first names keep their own series.
    assert!(names.contains("Op0"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_be_turned_off() {
    let db = TestDb::new(0).await;
    let gateway = Process::spawn(
        &db,
        "serve",
        &[
            ("METRICS_ENABLED", "false".into()),
            ("RUN_WORKERS", "false".into()),
        ],
    )
    .await;
    let r = reqwest::get(format!("{}/metrics", gateway.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn the_bundled_stack_passes_its_static_checks() {
    // promtool check config/rules and test rules; Docker Compose's own `config` check of
    // compose.yaml; the dashboards type-checked against @grafana/schema; datasource uids.
    for script in ["scripts/check-stack.sh", "scripts/check-grafana.sh"] {
        let out = std::process::Command::new("bash")
            .arg(repo(script))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
