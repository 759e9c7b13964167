//! The GraphQL layer: thin resolvers that translate between the storefront schema and
//! the domain modules. Limits and per-request decisions live in [`limits`]; batching of
//! relations in [`loaders`].

pub mod admin;
pub mod cache_key;
pub mod errors;
pub mod limits;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod scope;
pub mod types;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, EmptySubscription, Schema};

use crate::app::App;
use crate::cache::Entry;
use crate::cache::persisted::Persisted;
pub use scope::RequestScope;

pub type StorefrontSchema = Schema<query::QueryRoot, mutation::MutationRoot, EmptySubscription>;

fn builder()
-> async_graphql::SchemaBuilder<query::QueryRoot, mutation::MutationRoot, EmptySubscription> {
    Schema::build(query::QueryRoot, mutation::MutationRoot, EmptySubscription)
        .directive(limits::InContextDirective)
        .register_output_type::<types::node::Node>()
}

/// The SDL the server serves (also written to `schema.graphql`).
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The storefront schema and the admission step every request passes before it.
#[derive(Clone)]
pub struct Storefront {
    pub schema: StorefrontSchema,
    pub limits: Arc<limits::Limits>,
    /// `MAX_CONCURRENT_REQUESTS` permits.
    pub permits: Arc<tokio::sync::Semaphore>,
}

/// Builds the storefront schema with the app's limits.
pub fn build(app: Arc<App>) -> anyhow::Result<Storefront> {
    let types = Arc::new(limits::TypeIndex::from_sdl(&sdl())?);
    let limits = Arc::new(limits::Limits {
        limits: app.config.limits.clone(),
        types,
        mutation_cost: 1,
        list_args: &[],
        fixed_lists: &[],
    });
    let mut b = builder()
        // The document parser's own guard against pathological nesting.
        .limit_recursive_depth(64)
        .data(app.clone());
    if !app.config.server.introspection {
        b = b.disable_introspection();
    }
    Ok(Storefront {
        schema: b.finish(),
        limits,
        permits: Arc::new(tokio::sync::Semaphore::new(
            app.config.server.max_concurrent_requests,
        )),
    })
}

/// How a request was answered, for the HTTP layer.
pub enum Body {
    /// Executed for this request only.
    Fresh(Box<async_graphql::Response>),
    /// A shared response: from the cache, or computed now and cached.
    Shared(Arc<Entry>),
}

pub struct Executed {
    pub body: Body,
    /// `HIT` or `MISS` for shareable responses; `None` when the cache was not consulted.
    pub cache_status: Option<&'static str>,
    /// The response belongs to one buyer (a cart, an order, a mutation).
    pub personal: bool,
    /// What the persisted-query step found.
    pub persisted: Persisted,
    /// The operation's registered or document name.
    pub operation_name: Option<String>,
}

impl Executed {
    fn fresh(response: async_graphql::Response) -> Self {
        Self {
            body: Body::Fresh(Box::new(response)),
            cache_status: None,
            personal: false,
            persisted: Persisted::default(),
            operation_name: None,
        }
    }
}

/// What the execution learned about the operation, for its span and metrics.
#[derive(Default)]
struct OperationInfo {
    /// Passed admission (or was admitted when its cached answer was computed).
    admitted: bool,
    op_type: Option<&'static str>,
    cost: Option<u64>,
}

/// Runs one storefront request (see [`execute_inner`]) inside a `graphql.operation`
/// span, and records it in the GraphQL metrics: operations by name, type and outcome,
/// duration, cost, errors by code. Error responses carry the trace id in
/// `extensions.traceId` when traces are exported.
pub async fn execute(
    app: &Arc<App>,
    storefront: &Storefront,
    request: async_graphql::Request,
    read_only: bool,
    version: &str,
) -> Executed {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let mut request = request;
    let mut info = OperationInfo::default();
    // A request cut off by the deadline (or a client that hung up) is counted as
    // `cancelled` when this future is dropped.
    let mut cancelled = Cancelled {
        started,
        operation_name: request.operation_name.clone(),
        armed: true,
    };
    // The document of a persisted query is known after this step, and with it the
    // operation the span is named after (a span's name is fixed once it has children).
    let resolved = app.persisted.resolve(&app.db, &mut request).await;
    let span = operation_span(&request, resolved.as_ref().ok());
    let mut executed = match resolved {
        Ok(persisted) => {
            execute_inner(
                app, storefront, request, persisted, read_only, version, &mut info,
            )
            .instrument(span.clone())
            .await
        }
        Err(e) => {
            let mut response = async_graphql::Response::from_errors(vec![e]);
            limits::report(&mut response, None, None);
            Executed::fresh(response)
        }
    };
    let elapsed = started.elapsed();
    let op_type = info.op_type.unwrap_or("unknown");
    let operation = crate::telemetry::metrics::operation_label(
        executed.operation_name.as_deref(),
        executed.persisted.name.is_some(),
    );
    let errors: &[async_graphql::ServerError] = match &mut executed.body {
        Body::Fresh(response) => {
            // async-graphql's validation errors come without a code; every error a
            // client sees has one.
            if response.data == async_graphql::Value::Null {
                // Validation errors have no path; execution errors do.
                for error in response.errors.iter_mut().filter(|e| e.path.is_empty()) {
                    let ext = error.extensions.get_or_insert_with(Default::default);
                    if ext.get("code").is_none() {
                        ext.set("code", "GRAPHQL_VALIDATION_FAILED");
                    }
                }
            }
            if !response.errors.is_empty()
                && let Some(trace_id) = crate::telemetry::current_trace_id_of(&span)
            {
                for error in &mut response.errors {
                    error
                        .extensions
                        .get_or_insert_with(Default::default)
                        .set("traceId", trace_id.as_str());
                }
            }
            &response.errors
        }
        Body::Shared(_) => &[],
    };
    // Each error's code, as a bounded label, read once.
    let codes: Vec<&'static str> = errors
        .iter()
        .map(|e| {
            let code = match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(c)) => Some(c.as_str()),
                _ => None,
            };
            crate::telemetry::metrics::error_code_label(code)
        })
        .collect();
    for &code in &codes {
        metrics::counter!("gateway_graphql_errors_total", "code" => code).increment(1);
        if !info.admitted
            && let Some(reason) = admission_reason(code)
        {
            metrics::counter!("gateway_admission_rejections_total", "reason" => reason)
                .increment(1);
        }
    }
    // Errors the gateway caused (not the client) count apart: they spend the SLO.
    let server_failed = codes.iter().any(|c| {
        matches!(
            *c,
            "INTERNAL_SERVER_ERROR" | "SERVICE_UNAVAILABLE" | "TIMEOUT"
        )
    });
    let outcome = if server_failed {
        "server_error"
    } else if !info.admitted {
        "rejected"
    } else if errors.is_empty() {
        "success"
    } else {
        "error"
    };
    metrics::counter!("gateway_graphql_operations_total", "operation" => operation.clone(), "type" => op_type, "outcome" => outcome).increment(1);
    metrics::histogram!("gateway_graphql_operation_duration_seconds", "operation" => operation.clone(), "type" => op_type)
        .record(elapsed.as_secs_f64());
    if let Some(status) = executed.cache_status {
        let result = if status == "HIT" { "hit" } else { "miss" };
        metrics::counter!("gateway_cache_requests_total", "cache" => "response", "result" => result)
            .increment(1);
    }
    if let Some(cost) = info.cost {
        metrics::histogram!("gateway_graphql_operation_cost", "operation" => operation.clone(), "type" => op_type)
            .record(cost as f64);
    }
    cancelled.armed = false;
    if !span.is_none() {
        span.record("graphql.operation.type", op_type);
        if let Some(name) = executed.operation_name.as_deref() {
            span.record("graphql.operation.name", name);
        }
        if let Some(cost) = info.cost {
            span.record("graphql.cost", cost);
        }
        span.record("graphql.cache", executed.cache_status.unwrap_or("BYPASS"));
        span.record("graphql.persisted", executed.persisted.by_hash);
        span.record("graphql.outcome", outcome);
        if !errors.is_empty() {
            span.record("graphql.errors", errors.len());
            span.record("otel.status_code", "ERROR");
        }
    }
    executed
}

/// The `graphql.operation` span, named `{type} {name}` after the operation the
/// document selects (OpenTelemetry GraphQL conventions), from a light scan of the
/// document: the full parse comes later, and only when the cache misses.
fn operation_span(
    request: &async_graphql::Request,
    persisted: Option<&Persisted>,
) -> tracing::Span {
    use tracing::field::Empty;
    if !crate::telemetry::child_spans() {
        return tracing::Span::none();
    }
    let (op_type, scanned) =
        cache_key::operation_of(&request.query, request.operation_name.as_deref());
    let name = persisted
        .and_then(|p| p.name.clone())
        .or_else(|| request.operation_name.clone())
        .or(scanned);
    let span_name = match &name {
        Some(n) => format!("{op_type} {n}"),
        None => op_type.to_string(),
    };
    let span = tracing::info_span!(
        "graphql.operation",
        otel.name = %span_name,
        graphql.operation.name = Empty,
        graphql.operation.type = Empty,
        graphql.document.hash = Empty,
        graphql.cost = Empty,
        graphql.cache = Empty,
        graphql.persisted = Empty,
        graphql.errors = Empty,
        graphql.outcome = Empty,
        otel.status_code = Empty,
    );
    if !request.query.is_empty() {
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(request.query.as_bytes()));
        span.record("graphql.document.hash", hash.as_str());
    }
    span
}

struct Cancelled {
    started: std::time::Instant,
    operation_name: Option<String>,
    armed: bool,
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let operation =
            crate::telemetry::metrics::operation_label(self.operation_name.as_deref(), false);
        metrics::counter!("gateway_graphql_operations_total", "operation" => operation.clone(), "type" => "unknown", "outcome" => "cancelled").increment(1);
        metrics::histogram!("gateway_graphql_operation_duration_seconds", "operation" => operation, "type" => "unknown")
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The `reason` label of an admission refusal, from its error code.
fn admission_reason(code: &str) -> Option<&'static str> {
    Some(match code {
        "MAX_DEPTH_EXCEEDED" => "depth",
        "MAX_COST_EXCEEDED" => "cost",
        "MAX_ALIASES_EXCEEDED" => "aliases",
        "MAX_ROOT_FIELDS_EXCEEDED" => "root_fields",
        "MAX_TOKENS_EXCEEDED" => "tokens",
        "MAX_FIELDS_EXCEEDED" => "fields",
        "MAX_PAGE_SIZE_EXCEEDED" => "page_size",
        "FRAGMENT_CYCLE" => "other",
        _ => return None,
    })
}

/// Runs one storefront request: persisted query, admission (limits, cost, route,
/// `@inContext`), the response cache for shareable queries, execution with the request's
/// loaders, and the cost report.
///
/// `read_only` (GET requests) refuses mutations with the code `METHOD_NOT_ALLOWED`.
/// `version` is the API version of the path (part of the cache key).
async fn execute_inner(
    app: &Arc<App>,
    storefront: &Storefront,
    mut request: async_graphql::Request,
    persisted: Persisted,
    read_only: bool,
    version: &str,
    info: &mut OperationInfo,
) -> Executed {
    // `QUERY_STATS` measures the database work of each request: such requests skip the cache.
    let cacheable = app.cache.active() && !app.config.server.query_stats;
    // A request answered before (same version, document, operation and variables) is
    // served before it is even parsed: it passed admission when it was computed, and
    // only shareable queries are ever stored.
    let key = cacheable.then(|| cache_key::of(version, &request));
    if let Some(key) = &key
        && let Some(entry) = app.cache.get(key).await
    {
        let operation_name = persisted.name.clone().or_else(|| entry.operation.clone());
        info.admitted = true;
        info.op_type = Some("query");
        return Executed {
            body: Body::Shared(entry),
            cache_status: Some("HIT"),
            personal: false,
            persisted,
            operation_name,
        };
    }
    let (scope, loader, gate) = loaders::request_data(app);
    scope.note_document(&request.query);
    let admitted = match storefront.limits.admit(&mut request, &scope) {
        Err(error) => {
            let mut response = async_graphql::Response::from_errors(vec![error]);
            limits::report(&mut response, None, None);
            return Executed {
                persisted,
                ..Executed::fresh(response)
            };
        }
        Ok(admitted) if admitted.mutation && read_only => {
            let error = errors::coded("METHOD_NOT_ALLOWED", "Mutations must be sent with POST.");
            let mut response = async_graphql::Response::from_errors(vec![
                error.into_server_error(async_graphql::Pos::default()),
            ]);
            limits::report(&mut response, None, None);
            return Executed {
                persisted,
                personal: true,
                ..Executed::fresh(response)
            };
        }
        Ok(admitted) => admitted,
    };
    info.admitted = true;
    info.op_type = Some(if admitted.mutation {
        "mutation"
    } else {
        "query"
    });
    info.cost = Some(admitted.requested_cost);
    let operation_name = persisted
        .name
        .clone()
        .or_else(|| admitted.operation_name.clone());
    let run = async |request: async_graphql::Request, loader, gate, scope: &Arc<RequestScope>| {
        // The semaphore is never closed, so a permit always comes.
        let _permit = storefront.permits.acquire().await.ok();
        let request = request.data(scope.clone()).data(loader);
        let mut response =
            scope::Gated::new(Schema::execute(&storefront.schema, request), gate).await;
        let statements = app
            .config
            .server
            .query_stats
            .then(|| scope.statements.get());
        limits::report(&mut response, Some(&admitted), statements);
        response
    };
    let Some(key) = key.filter(|_| admitted.shareable) else {
        let response = run(request, loader, gate, &scope).await;
        return Executed {
            body: Body::Fresh(Box::new(response)),
            cache_status: None,
            personal: !admitted.shareable,
            persisted,
            operation_name,
        };
    };
    let shared = |entry, status| Executed {
        body: Body::Shared(entry),
        cache_status: Some(status),
        personal: false,
        persisted: Persisted {
            by_hash: persisted.by_hash,
            name: persisted.name.clone(),
        },
        operation_name: operation_name.clone(),
    };
    // Concurrent misses of one key compute once; the others wait for its answer.
    let cell = app.cache.inflight(&key);
    let mut mine = Some((request, loader, gate));
    let mut uncacheable = None;
    let (mine_ref, uncacheable_ref, scope_ref, key_ref, operation_ref) =
        (&mut mine, &mut uncacheable, &scope, &key, &operation_name);
    let via_replica = scope.route() == crate::db::Route::Replica && app.db.replicas().configured();
    let computed = cell
        .get_or_init(|| async move {
            // Stored between this request's first look and now (by a request that held
            // the previous slot).
            if let Some(entry) = app.cache.get(key_ref).await {
                return Some(entry);
            }
            let (request, loader, gate) = mine_ref.take()?;
            let born = app.cache.begin().await;
            let response = run(request, loader, gate, scope_ref).await;
            if !response.errors.is_empty() || scope_ref.tags.is_personal() {
                *uncacheable_ref = Some(response);
                return None;
            }
            let body = match serde_json::to_vec(&response) {
                Ok(b) => bytes::Bytes::from(b),
                Err(_) => {
                    *uncacheable_ref = Some(response);
                    return None;
                }
            };
            Some(
                app.cache
                    .store(
                        key_ref,
                        born,
                        scope_ref.tags.take(),
                        body,
                        operation_ref.clone(),
                        via_replica,
                    )
                    .await,
            )
        })
        .await
        .clone();
    app.cache.inflight_done(&key, &cell);
    match (computed, mine, uncacheable) {
        (_, _, Some(response)) => Executed {
            body: Body::Fresh(Box::new(response)),
            cache_status: Some("MISS"),
            personal: false,
            persisted,
            operation_name,
        },
        (Some(entry), None, None) => shared(entry, "MISS"),
        (Some(entry), Some(_), None) => {
            app.cache.note_coalesced();
            shared(entry, "HIT")
        }
        // Another request computed and could not share its answer: compute ours.
        (None, Some((request, loader, gate)), None) => {
            let response = run(request, loader, gate, &scope).await;
            Executed {
                body: Body::Fresh(Box::new(response)),
                cache_status: Some("MISS"),
                personal: false,
                persisted,
                operation_name,
            }
        }
        (None, None, None) => unreachable!("the computing request keeps its response"),
    }
}

pub fn app_from<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    ctx.data_unchecked::<Arc<App>>()
}

pub fn scope_from<'a>(ctx: &Context<'a>) -> &'a Arc<RequestScope> {
    ctx.data_unchecked::<Arc<RequestScope>>()
}

pub fn loader_from<'a>(
    ctx: &Context<'a>,
) -> &'a DataLoader<loaders::CatalogLoader, async_graphql::dataloader::HashMapCache> {
    ctx.data_unchecked::<DataLoader<loaders::CatalogLoader, async_graphql::dataloader::HashMapCache>>()
}
