//! Mapping of domain errors to GraphQL errors with a code a client can switch on
//! (`extensions.code`). Internal details are logged, never sent.

use async_graphql::{Error, ErrorExtensions};

use crate::catalog::CatalogError;
use crate::db::DbError;
use crate::pagination::PageError;

pub fn coded(code: &str, message: impl Into<String>) -> Error {
    let code = code.to_string();
    Error::new(message.into()).extend_with(|_, e| e.set("code", code.clone()))
}

pub fn bad_input(message: impl Into<String>) -> Error {
    coded("BAD_USER_INPUT", message)
}

pub fn not_found(message: impl Into<String>) -> Error {
    coded("NOT_FOUND", message)
}

pub fn internal(error: &dyn std::fmt::Display) -> Error {
    tracing::error!(%error, "request failed");
    coded("INTERNAL_SERVER_ERROR", "Internal error. Please try again.")
}

pub fn from_db(error: &DbError) -> Error {
    match error {
        DbError::Unavailable(_) => {
            tracing::error!(%error, "database unavailable");
            coded(
                "SERVICE_UNAVAILABLE",
                "The store is temporarily unavailable. Please retry.",
            )
        }
        // The connection died under the statement (a primary restart, a network cut):
        // retryable, and not the client's fault.
        DbError::Query(e) if crate::db::is_connection_error(e) => {
            tracing::error!(%error, "database connection lost");
            coded(
                "SERVICE_UNAVAILABLE",
                "The store is temporarily unavailable. Please retry.",
            )
        }
        DbError::Query(_) => internal(error),
    }
}

pub fn from_catalog(error: CatalogError) -> Error {
    match error {
        CatalogError::Page(e) => bad_input(e.to_string()),
        CatalogError::Search(e) => bad_input(e.to_string()),
        CatalogError::BadInput(m) => bad_input(m),
        CatalogError::Db(e) => from_db(&e),
    }
}

pub fn from_page(error: PageError) -> Error {
    bad_input(error.to_string())
}
