//! Limits every document must pass before it runs, the cost it is charged, and the
//! per-request decisions taken from the document (`@inContext`, primary or replica).
//!
//! All checks run in [`Limits::admit`], before validation and execution, so an abusive
//! document costs a parse and a walk, never a database round trip. This is deliberately
//! not an async-graphql extension: with any extension registered, every field's resolver
//! goes through the extension chain (a boxed future per field), which cost about a tenth
//! of the gateway's CPU on a product grid. Each limit
//! fails with its own `extensions.code`: `MAX_TOKENS_EXCEEDED`, `MAX_DEPTH_EXCEEDED`,
//! `MAX_ALIASES_EXCEEDED`, `MAX_ROOT_FIELDS_EXCEEDED`, `MAX_FIELDS_EXCEEDED`, `MAX_COST_EXCEEDED`,
//! `FRAGMENT_CYCLE`.
//!
//! Cost follows Shopify's model: an object costs 1, a scalar 0, and a connection costs 2
//! plus `first` (or `last`) times the cost of one node. The requested cost is computed
//! from the arguments before execution; the actual cost from the nodes the response holds.
//! Both are reported in `extensions.cost` on every response.

use std::sync::Arc;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
};
use async_graphql::{Name, Pos, Request, Response, ServerError, ServerResult, Value, Variables};
use async_graphql_value::Value as DocValue;

use super::scope::RequestScope;
use crate::config::QueryLimits;
use crate::db::Route;

mod in_context;
mod walk;

pub use in_context::InContextDirective;
pub use walk::{TypeIndex, actual_cost, count_tokens};
use walk::{Walker, count_aliases};

fn limit_error(code: &str, message: String) -> ServerError {
    let mut e = ServerError::new(message, Some(Pos::default()));
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

/// The admission step: limits, cost and per-request decisions, shared by all requests.
pub struct Limits {
    pub limits: QueryLimits,
    pub types: Arc<TypeIndex>,
    /// The cost of each mutation root field (1 on the storefront, 10 on the admin API).
    pub mutation_cost: u64,
    /// Arguments whose list length multiplies a field's cost.
    pub list_args: &'static [&'static str],
    /// `(type, field, n)`: unbounded list fields priced at n elements.
    pub fixed_lists: &'static [(&'static str, &'static str, u64)],
}

/// What admission measured, reported on the response.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    pub requested_cost: u64,
    /// The selected operation is a mutation.
    pub mutation: bool,
    /// A query whose answer is the same for every buyer (no cart, no order): it may be
    /// cached and shared.
    pub shareable: bool,
    /// The selected operation's name, as the document gives it.
    pub operation_name: Option<String>,
}

/// Root fields whose answers belong to one buyer.
const PERSONAL_ROOTS: &[&str] = &["cart", "order"];

fn operation_name(doc: &ExecutableDocument, name: Option<&str>) -> Option<String> {
    match (&doc.operations, name) {
        (DocumentOperations::Multiple(ops), Some(name)) if ops.contains_key(name) => {
            Some(name.to_string())
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        _ => None,
    }
}

fn pick_operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|o| &o.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|o| &o.node)
        }
        _ => None,
    }
}

impl Limits {
    /// Parses the request's document (async-graphql reuses the parse), applies every limit,
    /// and records the route and `@inContext` on `scope`.
    pub fn admit(&self, request: &mut Request, scope: &RequestScope) -> ServerResult<Admitted> {
        self.admit_with(request, Some(scope))
    }

    /// [`Limits::admit`] for a request without storefront decisions (the admin API).
    pub fn admit_with(
        &self,
        request: &mut Request,
        scope: Option<&RequestScope>,
    ) -> ServerResult<Admitted> {
        let tokens = count_tokens(&request.query);
        if tokens > self.limits.max_tokens {
            return Err(limit_error(
                "MAX_TOKENS_EXCEEDED",
                format!(
                    "The document has {tokens} tokens; the limit (MAX_QUERY_TOKENS) is {}.",
                    self.limits.max_tokens
                ),
            ));
        }
        // PostgreSQL text cannot hold NUL: refuse it here with a clear error rather than
        // failing a statement (and every key batched with it) later.
        if request.query.contains('\0')
            || request.query.to_ascii_lowercase().contains("\\u0000")
            || has_nul(&request.variables)
        {
            return Err(limit_error(
                "BAD_USER_INPUT",
                "Strings may not contain the NUL character.".into(),
            ));
        }
        let query = request.query.clone();
        let operation_name = request.operation_name.clone();
        let variables = request.variables.clone();
        let doc = match request.parsed_query() {
            Ok(doc) => doc,
            Err(e) => return Err(self.classify_parse_error(e, &query)),
        };
        let (requested_cost, shareable) =
            self.check(doc, &variables, operation_name.as_deref(), scope)?;
        let mutation = pick_operation(doc, operation_name.as_deref())
            .is_some_and(|op| op.ty == OperationType::Mutation);
        Ok(Admitted {
            requested_cost,
            mutation,
            shareable,
            operation_name: self::operation_name(doc, operation_name.as_deref()),
        })
    }

    fn check(
        &self,
        doc: &ExecutableDocument,
        variables: &Variables,
        name: Option<&str>,
        scope: Option<&RequestScope>,
    ) -> ServerResult<(u64, bool)> {
        let aliases: usize = match &doc.operations {
            DocumentOperations::Single(op) => count_aliases(&op.node.selection_set.node),
            DocumentOperations::Multiple(ops) => ops
                .values()
                .map(|op| count_aliases(&op.node.selection_set.node))
                .sum(),
        } + doc
            .fragments
            .values()
            .map(|f| count_aliases(&f.node.selection_set.node))
            .sum::<usize>();
        if aliases > self.limits.max_aliases {
            return Err(limit_error(
                "MAX_ALIASES_EXCEEDED",
                format!(
                    "The document uses {aliases} aliases; the limit (MAX_QUERY_ALIASES) is {}.",
                    self.limits.max_aliases
                ),
            ));
        }
        // An unknown operation name is reported by validation; nothing to price here.
        let Some(op) = pick_operation(doc, name) else {
            return Ok((0, false));
        };
        let mut walker = Walker::new(
            doc,
            &self.types,
            variables,
            self.limits.max_page_size as u64,
        );
        walker.mutation_cost = self.mutation_cost;
        walker.list_args = self.list_args;
        walker.fixed_lists = self.fixed_lists;
        // Fragment cycles anywhere in the document are rejected before any walk.
        for name in doc.fragments.keys() {
            walker.fragment(name, |w, set, _| w.depth(set))?;
        }
        let depth = walker.depth(&op.selection_set.node)?;
        if depth > self.limits.max_depth {
            return Err(limit_error(
                "MAX_DEPTH_EXCEEDED",
                format!(
                    "The query is {depth} levels deep; the limit (MAX_QUERY_DEPTH) is {}.",
                    self.limits.max_depth
                ),
            ));
        }
        let fields = walker.expanded(&op.selection_set.node)?;
        if fields > self.limits.max_fields {
            return Err(limit_error(
                "MAX_FIELDS_EXCEEDED",
                format!(
                    "The operation selects {fields} fields once its fragments are expanded; the limit (MAX_QUERY_FIELDS) is {}.",
                    self.limits.max_fields
                ),
            ));
        }
        let mut roots = Vec::new();
        walker.root_fields(&op.selection_set.node, &mut roots)?;
        if roots.len() > self.limits.max_root_fields {
            return Err(limit_error(
                "MAX_ROOT_FIELDS_EXCEEDED",
                format!(
                    "The operation selects {} root fields; the limit (MAX_QUERY_ROOT_FIELDS) is {}.",
                    roots.len(),
                    self.limits.max_root_fields
                ),
            ));
        }
        let root_type = match op.ty {
            OperationType::Query => "QueryRoot",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        let cost = walker.cost(&op.selection_set.node, root_type)?;
        if cost > self.limits.max_cost {
            return Err(limit_error(
                "MAX_COST_EXCEEDED",
                format!(
                    "The query's cost is {cost}; the limit (MAX_QUERY_COST) is {}.",
                    self.limits.max_cost
                ),
            ));
        }
        if let Some(scope) = scope {
            let primary = op.ty != OperationType::Query || roots.iter().any(|r| r == "cart");
            let _ = scope.route.set(if primary {
                Route::Primary
            } else {
                Route::Replica
            });
            self.read_context(op, variables, scope)?;
        }
        let shareable = op.ty == OperationType::Query
            && !roots.iter().any(|r| PERSONAL_ROOTS.contains(&r.as_str()));
        Ok((cost, shareable))
    }

    /// Gives errors raised while parsing a code. The parser's own recursion guard also
    /// trips on fragment cycles; those are told apart by looking for a cycle.
    fn classify_parse_error(&self, mut e: ServerError, query: &str) -> ServerError {
        if e.extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some())
        {
            return e;
        }
        let code = if e.message.contains("recursion depth") {
            let cyclic = async_graphql::parser::parse_query(query)
                .ok()
                .is_some_and(|doc| {
                    let types = TypeIndex::empty();
                    let vars = Variables::default();
                    let mut walker = Walker::new(&doc, &types, &vars, 1);
                    doc.fragments
                        .keys()
                        .any(|name| walker.fragment(name, |w, set, _| w.depth(set)).is_err())
                });
            if cyclic {
                "FRAGMENT_CYCLE"
            } else {
                "MAX_DEPTH_EXCEEDED"
            }
        } else {
            "GRAPHQL_PARSE_FAILED"
        };
        let mut ext = e.extensions.take().unwrap_or_default();
        ext.set("code", code);
        e.extensions = Some(ext);
        e
    }

    /// `@inContext(country:, language:)` chooses the currency prices are shown in.
    fn read_context(
        &self,
        op: &OperationDefinition,
        variables: &Variables,
        scope: &RequestScope,
    ) -> ServerResult<()> {
        let Some(directive) = op
            .directives
            .iter()
            .find(|d| d.node.name.node.as_str() == "inContext")
        else {
            return Ok(());
        };
        let country = directive
            .node
            .arguments
            .iter()
            .find(|(n, _)| n.node.as_str() == "country")
            .and_then(|(_, v)| match &v.node {
                DocValue::Enum(e) => Some(e.to_string()),
                DocValue::String(s) => Some(s.clone()),
                DocValue::Variable(var) => match variables.get(var) {
                    Some(async_graphql::Value::Enum(e)) => Some(e.to_string()),
                    Some(async_graphql::Value::String(s)) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            });
        if let Some(country) = &country
            && let Some(currency) = super::types::common::currency_for_country(country)
        {
            let _ = scope.currency.set(currency.to_string());
        }
        let _ = scope.country.set(country);
        Ok(())
    }
}

fn has_nul(variables: &Variables) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::List(items) => items.iter().any(walk),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    variables.iter().any(|(_, v)| walk(v))
}

/// Adds `extensions.cost` (and, with `QUERY_STATS`, `extensions.stats`) to a response.
pub fn report(response: &mut Response, admitted: Option<&Admitted>, statements: Option<u64>) {
    let actual = match admitted {
        Some(_) => actual_cost(&response.data),
        None => 0,
    };
    let mut cost = async_graphql::indexmap::IndexMap::new();
    cost.insert(
        Name::new("requestedQueryCost"),
        Value::from(admitted.map(|a| a.requested_cost).unwrap_or(0)),
    );
    cost.insert(Name::new("actualQueryCost"), Value::from(actual));
    response
        .extensions
        .insert("cost".into(), Value::Object(cost));
    if let Some(n) = statements {
        let mut stats = async_graphql::indexmap::IndexMap::new();
        stats.insert(Name::new("sqlStatements"), Value::from(n));
        response
            .extensions
            .insert("stats".into(), Value::Object(stats));
    }
}
