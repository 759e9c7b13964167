//! The GraphQL layer: thin resolvers that translate between the storefront schema and
//! the domain modules. Limits and per-request decisions live in [`limits`]; batching of
//! relations in [`loaders`].

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

/// Runs one storefront request: admission (limits, cost, route, `@inContext`), then
/// execution with the request's loaders, then the cost report.
///
/// `read_only` (GET requests) refuses mutations with the code `METHOD_NOT_ALLOWED`.
pub async fn execute(
    app: &Arc<App>,
    storefront: &Storefront,
    mut request: async_graphql::Request,
    read_only: bool,
) -> async_graphql::Response {
    let (scope, loader, gate) = scope::request_data(app);
    let (admitted, mut response) = match storefront.limits.admit(&mut request, &scope) {
        Err(error) => (None, async_graphql::Response::from_errors(vec![error])),
        Ok(admitted) if admitted.mutation && read_only => {
            let error = errors::coded("METHOD_NOT_ALLOWED", "Mutations must be sent with POST.");
            (
                None,
                async_graphql::Response::from_errors(vec![
                    error.into_server_error(async_graphql::Pos::default()),
                ]),
            )
        }
        Ok(admitted) => {
            // The semaphore is never closed, so a permit always comes.
            let _permit = storefront.permits.acquire().await.ok();
            let request = request.data(scope.clone()).data(loader);
            let response =
                scope::Gated::new(Schema::execute(&storefront.schema, request), gate).await;
            (Some(admitted), response)
        }
    };
    let statements = app.config.query_stats.then(|| scope.statements.get());
    limits::report(&mut response, admitted, statements);
    response
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
