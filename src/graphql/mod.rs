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

/// Builds the storefront schema with the app's limits.
pub fn build_schema(app: Arc<App>) -> anyhow::Result<StorefrontSchema> {
    let types = Arc::new(limits::TypeIndex::from_sdl(&sdl())?);
    let mut b = builder()
        .extension(limits::Limits {
            limits: app.config.limits.clone(),
            types,
            query_stats: app.config.query_stats,
        })
        // The document parser's own guard against pathological nesting.
        .limit_recursive_depth(64)
        .data(app.clone());
    if !app.config.introspection {
        b = b.disable_introspection();
    }
    Ok(b.finish())
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
