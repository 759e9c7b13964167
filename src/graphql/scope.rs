//! Per-request state shared by resolvers and loaders.

use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::DataLoader;

use super::loaders::CatalogLoader;
use crate::app::App;
use crate::db::{Route, StatementCounter};

/// What one GraphQL request decided before execution, and what it measured.
pub struct RequestScope {
    /// Primary for mutations and cart reads, replica otherwise (set when the document is
    /// parsed; replica until then).
    pub route: OnceLock<Route>,
    /// From `@inContext(country:)`.
    pub country: OnceLock<Option<String>>,
    /// Prices are shown in this currency where the catalog has it.
    pub currency: OnceLock<String>,
    /// Statements this request sent.
    pub statements: StatementCounter,
}

impl RequestScope {
    pub fn route(&self) -> Route {
        self.route.get().copied().unwrap_or(Route::Replica)
    }

    pub fn currency<'a>(&'a self, app: &'a App) -> &'a str {
        self.currency.get().map(String::as_str).unwrap_or(&app.config.shop_currency)
    }

    pub fn country(&self) -> Option<&str> {
        self.country.get().and_then(|c| c.as_deref())
    }
}

/// Builds the data a request's resolvers read: the app, the scope and the loaders.
pub fn request_data(app: &Arc<App>) -> (Arc<RequestScope>, DataLoader<CatalogLoader>) {
    let scope = Arc::new(RequestScope {
        route: OnceLock::new(),
        country: OnceLock::new(),
        currency: OnceLock::new(),
        statements: StatementCounter::default(),
    });
    let loader = DataLoader::new(
        CatalogLoader {
            app: app.clone(),
            scope: scope.clone(),
        },
        tokio::spawn,
    );
    (scope, loader)
}
