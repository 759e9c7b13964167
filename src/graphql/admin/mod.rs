//! The partner admin API (`POST /admin/graphql`): its own schema (`admin.graphql`), API
//! keys with scopes, and Shopify's cost model and throttle reporting.
//!
//! A request passes, in order: the document limits and its requested cost (from the
//! same walker as the storefront; a mutation field costs 10), the scope check over every
//! field ([`scopes`]), and the plan's cost bucket ([`crate::ratelimit`]), charged the
//! requested cost. Only then does it run; the difference to the actual cost is refunded
//! after. Every response carries `extensions.cost` with the throttle status.

pub mod resolvers;
pub mod scopes;
pub mod types;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptySubscription, Name, Schema, Value};

use crate::app::App;
use crate::graphql::limits::{self, Limits, TypeIndex};
use crate::partners::keys::ApiKey;
use crate::ratelimit::Decision;

pub type AdminSchema = Schema<resolvers::AdminQuery, resolvers::AdminMutation, EmptySubscription>;

fn builder()
-> async_graphql::SchemaBuilder<resolvers::AdminQuery, resolvers::AdminMutation, EmptySubscription>
{
    Schema::build(
        resolvers::AdminQuery::default(),
        resolvers::AdminMutation::default(),
        EmptySubscription,
    )
}

/// The SDL the admin API serves (also written to `admin.graphql`).
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// What a mutation field costs (Shopify's admin API).
pub const MUTATION_COST: u64 = 10;

/// Arguments that list what a field returns: it costs one element per item.
const LIST_ARGS: &[&str] = &["skus", "variantIds"];

/// Lists no argument bounds, priced at an estimate (the actual cost refunds the rest).
const FIXED_LISTS: &[(&str, &str, u64)] = &[
    ("QueryRoot", "categories", 100),
    ("QueryRoot", "locations", 20),
    ("QueryRoot", "apiKeys", 50),
    ("QueryRoot", "webhookSubscriptions", 50),
    ("ProductVariant", "inventoryLevels", 10),
];

#[derive(Clone)]
pub struct Admin {
    pub schema: AdminSchema,
    pub limits: Arc<Limits>,
}

pub fn build(app: Arc<App>) -> anyhow::Result<Admin> {
    let types = Arc::new(TypeIndex::from_sdl(&sdl())?);
    let mut query_limits = app.config.limits.clone();
    // The plan's bucket bounds a query's cost (MAX_COST_EXCEEDED), not MAX_QUERY_COST.
    query_limits.max_cost = u64::MAX;
    let limits = Arc::new(Limits {
        limits: query_limits,
        types,
        mutation_cost: MUTATION_COST,
        list_args: LIST_ARGS,
        fixed_lists: FIXED_LISTS,
    });
    let mut b = builder().limit_recursive_depth(64).data(app.clone());
    if !app.config.server.introspection {
        b = b.disable_introspection();
    }
    Ok(Admin {
        schema: b.finish(),
        limits,
    })
}

/// An executed admin request, for the HTTP layer.
pub struct AdminResponse {
    pub response: async_graphql::Response,
    /// 429 with `Retry-After` when throttled.
    pub retry_after: Option<u64>,
}

fn coded_error(code: &str, message: String) -> async_graphql::ServerError {
    let mut e = async_graphql::ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

fn coded_response(code: &str, message: String) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![coded_error(code, message)])
}

/// `THROTTLED`: HTTP 429 with `Retry-After` and the throttle status.
fn throttled(plan: &str, requested: u64, charged: &Decision) -> AdminResponse {
    metrics::counter!("gateway_admin_operations_total", "plan" => plan.to_string(), "outcome" => "throttled")
        .increment(1);
    let mut response = coded_response(
        "THROTTLED",
        format!(
            "Throttled: the query costs {requested} and {} of {} points are available (restoring {}/s).",
            charged.remaining.max(0.0).floor(),
            charged.capacity,
            charged.rate
        ),
    );
    response.extensions.insert(
        "cost".into(),
        cost_extension(requested, None, Some(status_of(charged))),
    );
    AdminResponse {
        response,
        retry_after: Some(charged.retry_after_secs()),
    }
}

/// `extensions.cost`, Shopify's shape.
fn cost_extension(requested: u64, actual: Option<u64>, status: Option<(f64, f64, f64)>) -> Value {
    let mut cost = async_graphql::indexmap::IndexMap::new();
    cost.insert(Name::new("requestedQueryCost"), Value::from(requested));
    cost.insert(
        Name::new("actualQueryCost"),
        actual.map(Value::from).unwrap_or(Value::Null),
    );
    if let Some((max, current, rate)) = status {
        let mut t = async_graphql::indexmap::IndexMap::new();
        t.insert(Name::new("maximumAvailable"), Value::from(max));
        t.insert(
            Name::new("currentlyAvailable"),
            Value::from(current.floor()),
        );
        t.insert(Name::new("restoreRate"), Value::from(rate));
        cost.insert(Name::new("throttleStatus"), Value::Object(t));
    }
    Value::Object(cost)
}

fn status_of(d: &Decision) -> (f64, f64, f64) {
    (d.capacity as f64, d.remaining.max(0.0), d.rate)
}

/// Runs one admin request of `key`.
pub async fn execute(
    app: &Arc<App>,
    admin: &Admin,
    key: ApiKey,
    mut request: async_graphql::Request,
) -> AdminResponse {
    let outcome = |o: &'static str| {
        metrics::counter!("gateway_admin_operations_total", "plan" => key.plan.clone(), "outcome" => o)
            .increment(1);
    };
    let Some(plan) = app.limiter.plan(&key.plan) else {
        outcome("error");
        return AdminResponse {
            response: coded_response(
                "INTERNAL_SERVER_ERROR",
                format!(
                    "The key's plan {:?} is not configured (ADMIN_PLANS).",
                    key.plan
                ),
            ),
            retry_after: None,
        };
    };
    let bucket_key = key.id.to_string();
    // A refusal before execution still costs one point (and reports the throttle
    // status): a key cannot send an endless stream of oversized or forbidden documents.
    let refuse = async |error: async_graphql::ServerError, requested: u64, label: &'static str| {
        let charged = app.limiter.charge(&key.plan, &bucket_key, 1).await;
        if !charged.allowed {
            return throttled(&key.plan, requested, &charged);
        }
        outcome(label);
        let mut response = async_graphql::Response::from_errors(vec![error]);
        response.extensions.insert(
            "cost".into(),
            cost_extension(requested, Some(0), Some(status_of(&charged))),
        );
        AdminResponse {
            response,
            retry_after: None,
        }
    };
    let admitted = match admin.limits.admit_with(&mut request, None) {
        Ok(a) => a,
        Err(e) => return refuse(e, 0, "rejected").await,
    };
    let requested = admitted.requested_cost.max(1);
    if requested > plan.capacity {
        let e = coded_error(
            "MAX_COST_EXCEEDED",
            format!(
                "The query's cost is {requested}, above the single query maximum of {} of plan {:?}.",
                plan.capacity, key.plan
            ),
        );
        return refuse(e, requested, "rejected").await;
    }
    // Scopes, over the parsed document (reused from admission).
    let operation = request.operation_name.clone();
    let denied = match request.parsed_query() {
        Ok(doc) => scopes::check(doc, operation.as_deref(), &admin.limits.types, &key.scopes),
        Err(e) => Err(e),
    };
    if let Err(e) = denied {
        return refuse(e, requested, "access_denied").await;
    }
    let charged = app.limiter.charge(&key.plan, &bucket_key, requested).await;
    if !charged.allowed {
        return throttled(&key.plan, requested, &charged);
    }
    let counter = crate::db::StatementCounter::default();
    let loader = DataLoader::with_cache(
        types::AdminLoader {
            app: app.clone(),
            counter: counter.clone(),
        },
        tokio::spawn,
        async_graphql::dataloader::HashMapCache::default(),
    );
    let mutation = admitted.mutation;
    let key_for_request = key.clone();
    let request = request
        .data(types::AdminRequest {
            key: key_for_request,
            counter,
        })
        .data(loader);
    let mut response = Schema::execute(&admin.schema, request).await;
    let mut actual = limits::actual_cost(&response.data).max(1);
    if mutation && let Value::Object(root) = &response.data {
        let fields = root
            .values()
            .filter(|v| matches!(v, Value::Object(_)))
            .count() as u64;
        actual = actual.saturating_add(fields * (MUTATION_COST - 1));
    }
    let actual = actual.min(requested);
    let mut status = status_of(&charged);
    if actual < requested
        && let Some(left) = app
            .limiter
            .refund(&key.plan, &bucket_key, requested - actual, &charged)
            .await
    {
        status.1 = left;
    }
    response.extensions.insert(
        "cost".into(),
        cost_extension(requested, Some(actual), Some(status)),
    );
    outcome(if response.errors.is_empty() {
        "success"
    } else {
        "error"
    });
    AdminResponse {
        response,
        retry_after: None,
    }
}
