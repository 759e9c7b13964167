//! Partners: who they are ([`keys`]: API keys and their scopes), what they changed
//! ([`audit`]), and what they are told ([`webhooks`]: subscriptions and their deliveries).
//!
//! The admin writes themselves live with what they change (`catalog::edit`,
//! `inventory::levels`, `orders::transitions`); each runs in one transaction with its audit
//! entry, and they share the types here: who acts ([`Actor`]), and how a write is refused
//! ([`UserError`], [`AdminError`]). Cache invalidation follows from the database's
//! triggers (see `migrations/…_cache`).

pub mod audit;
pub mod keys;
pub mod webhooks;

/// How webhooks are sent (`ORDER_WEBHOOK_SECRET`, `WEBHOOK_TIMEOUT_MS`,
/// `WEBHOOK_ALLOW_PRIVATE_TARGETS`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `ORDER_WEBHOOK_SECRET`: HMAC key of the deliveries to `ORDER_WEBHOOK_URLS`.
    pub order_webhook_secret: Option<String>,
    /// `WEBHOOK_TIMEOUT_MS`: how long one outgoing webhook delivery may take.
    pub webhook_timeout: std::time::Duration,
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: partners' webhook subscriptions may point at
    /// loopback and private addresses (development and tests only).
    pub allow_private_targets: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            order_webhook_secret: None,
            webhook_timeout: std::time::Duration::from_millis(10_000),
            allow_private_targets: false,
        }
    }
}

/// Bulk inputs hold at most this many items (Shopify's limit).
pub const MAX_BULK: usize = 250;

/// A problem with one input, reported in a payload's `userErrors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    /// The path to the input field (`["variants", "3", "price"]`).
    pub field: Vec<String>,
    pub message: String,
    pub code: &'static str,
}

impl UserError {
    pub fn new(field: &[&str], code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
            code,
        }
    }
}

/// A bulk input over [`MAX_BULK`] items.
pub fn too_many(field: &str, n: usize) -> UserError {
    UserError::new(
        &[field],
        "TOO_MANY_ITEMS",
        format!("{n} items given; at most {MAX_BULK} are accepted per request."),
    )
}

/// Who is making a change: an API key, or the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub key_id: Option<i64>,
    pub name: String,
}

impl Actor {
    pub fn cli() -> Self {
        Self {
            key_id: None,
            name: "cli".into(),
        }
    }
}

/// Errors of admin operations: bad input the caller can fix, or the database.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Input(Vec<UserError>),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl AdminError {
    pub fn input(field: &[&str], code: &'static str, message: impl Into<String>) -> Self {
        AdminError::Input(vec![UserError::new(field, code, message)])
    }
}

/// Maps unique and foreign-key violations to input errors (a taken handle, an unknown
/// collection), everything else to the database error it is.
pub fn constraint(e: diesel::result::Error, field: &[&str]) -> AdminError {
    use diesel::result::{DatabaseErrorKind, Error};
    match &e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => AdminError::input(
            field,
            "TAKEN",
            format!(
                "Already in use ({}).",
                info.constraint_name().unwrap_or("unique")
            ),
        ),
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            AdminError::input(field, "NOT_FOUND", "A referenced record does not exist.")
        }
        Error::DatabaseError(DatabaseErrorKind::CheckViolation, info) => AdminError::input(
            field,
            "INVALID",
            format!(
                "The value breaks a rule ({}).",
                info.constraint_name().unwrap_or("check")
            ),
        ),
        _ => AdminError::Db(e),
    }
}
