//! The GraphQL layer: thin resolvers that translate between the storefront schema and
//! the domain modules. Limits and per-request decisions live in [`limits`]; batching of
//! relations in [`loaders`].

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
    });
    let mut b = builder()
        // The document parser's own guard against pathological nesting.
        .limit_recursive_depth(64)
        .data(app.clone());
    if !app.config.introspection {
        b = b.disable_introspection();
    }
    Ok(Storefront {
        schema: b.finish(),
        limits,
        permits: Arc::new(tokio::sync::Semaphore::new(
            app.config.max_concurrent_requests,
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

/// Runs one storefront request: persisted query, admission (limits, cost, route,
/// `@inContext`), the response cache for shareable queries, execution with the request's
/// loaders, and the cost report.
///
/// `read_only` (GET requests) refuses mutations with the code `METHOD_NOT_ALLOWED`.
/// `version` is the API version of the path (part of the cache key).
pub async fn execute(
    app: &Arc<App>,
    storefront: &Storefront,
    mut request: async_graphql::Request,
    read_only: bool,
    version: &str,
) -> Executed {
    let persisted = match app.persisted.resolve(&app.db, &mut request).await {
        Ok(p) => p,
        Err(e) => {
            let mut response = async_graphql::Response::from_errors(vec![e]);
            limits::report(&mut response, None, None);
            return Executed::fresh(response);
        }
    };
    // `QUERY_STATS` measures the database work of each request: such requests skip the cache.
    let cacheable = app.cache.active() && !app.config.query_stats;
    // A request answered before (same version, document, operation and variables) is
    // served before it is even parsed: it passed admission when it was computed, and
    // only shareable queries are ever stored.
    let key = cacheable.then(|| cache_key::of(version, &request));
    if let Some(key) = &key
        && let Some(entry) = app.cache.get(key).await
    {
        let operation_name = persisted.name.clone().or_else(|| entry.operation.clone());
        return Executed {
            body: Body::Shared(entry),
            cache_status: Some("HIT"),
            personal: false,
            persisted,
            operation_name,
        };
    }
    let (scope, loader, gate) = scope::request_data(app);
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
        let statements = app.config.query_stats.then(|| scope.statements.get());
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
