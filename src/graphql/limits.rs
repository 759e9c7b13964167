//! Limits every document must pass before it runs, the cost it is charged, and the
//! per-request decisions taken from the document (`@inContext`, primary or replica).
//!
//! All checks run in the `parse_query` hook, before validation and execution, so an
//! abusive document costs a parse and a walk, never a database round trip. Each limit
//! fails with its own `extensions.code`: `MAX_TOKENS_EXCEEDED`, `MAX_DEPTH_EXCEEDED`,
//! `MAX_ALIASES_EXCEEDED`, `MAX_ROOT_FIELDS_EXCEEDED`, `MAX_COST_EXCEEDED`,
//! `FRAGMENT_CYCLE`.
//!
//! Cost follows Shopify's model: an object costs 1, a scalar 0, and a connection costs 2
//! plus `first` (or `last`) times the cost of one node. The requested cost is computed
//! from the arguments before execution; the actual cost from the nodes the response holds.
//! Both are reported in `extensions.cost` on every response.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest,
};
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet, ServiceDocument, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Pos, Request, Response, ServerError, ServerResult, Value, Variables};
use async_graphql_value::Value as DocValue;

use super::scope::RequestScope;
use crate::config::QueryLimits;
use crate::db::Route;

/// Field types of the schema, enough to price a selection.
pub struct TypeIndex {
    /// type → field → (named type, is list)
    fields: HashMap<String, HashMap<String, String>>,
    composite: HashSet<String>,
}

impl TypeIndex {
    pub fn from_sdl(sdl: &str) -> anyhow::Result<Self> {
        let doc: ServiceDocument = async_graphql::parser::parse_schema(sdl)?;
        let mut fields = HashMap::new();
        let mut composite = HashSet::new();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let name = t.node.name.node.to_string();
            let field_defs = match &t.node.kind {
                TypeKind::Object(o) => Some(&o.fields),
                TypeKind::Interface(i) => Some(&i.fields),
                TypeKind::Union(_) => None,
                _ => continue,
            };
            composite.insert(name.clone());
            let mut map = HashMap::new();
            for f in field_defs.into_iter().flatten() {
                let mut ty = &f.node.ty.node;
                while let BaseType::List(inner) = &ty.base {
                    ty = inner;
                }
                if let BaseType::Named(n) = &ty.base {
                    map.insert(f.node.name.node.to_string(), n.to_string());
                }
            }
            fields.insert(name, map);
        }
        Ok(Self { fields, composite })
    }

    fn field_type(&self, parent: &str, field: &str) -> Option<&str> {
        self.fields.get(parent)?.get(field).map(String::as_str)
    }

    fn is_composite(&self, ty: &str) -> bool {
        self.composite.contains(ty)
    }
}

fn limit_error(code: &str, message: String) -> ServerError {
    let mut e = ServerError::new(message, Some(Pos::default()));
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

/// Counts lexical tokens (names, numbers, strings, punctuators) without building a tree.
pub fn count_tokens(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut tokens = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                tokens += 1;
                let block = bytes[i..].starts_with(b"\"\"\"");
                i += if block { 3 } else { 1 };
                while i < bytes.len() {
                    if block && bytes[i..].starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    }
                    if !block && bytes[i] == b'"' {
                        i += 1;
                        break;
                    }
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                tokens += 1;
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                tokens += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'-' | b'+'))
                {
                    i += 1;
                }
            }
            _ => {
                tokens += 1;
                i += 1;
            }
        }
    }
    tokens
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    types: &'a TypeIndex,
    variables: &'a Variables,
    max_page: u64,
    cost_memo: HashMap<Name, u64>,
    depth_memo: HashMap<Name, usize>,
    visiting: HashSet<Name>,
}

fn arg_i64(field: &Field, name: &str, variables: &Variables) -> Option<i64> {
    let (_, value) = field
        .arguments
        .iter()
        .find(|(n, _)| n.node.as_str() == name)?;
    match &value.node {
        DocValue::Number(n) => n.as_i64(),
        DocValue::Variable(v) => match variables.get(v) {
            Some(async_graphql::Value::Number(n)) => n.as_i64(),
            _ => None,
        },
        _ => None,
    }
}

impl Walker<'_> {
    fn fragment<T>(
        &mut self,
        name: &Name,
        f: impl FnOnce(&mut Self, &SelectionSet, &str) -> ServerResult<T>,
    ) -> ServerResult<Option<T>> {
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Ok(None);
        };
        if !self.visiting.insert(name.clone()) {
            return Err(limit_error(
                "FRAGMENT_CYCLE",
                format!("Fragment \"{name}\" spreads itself."),
            ));
        }
        let ty = fragment.node.type_condition.node.on.node.to_string();
        let result = f(self, &fragment.node.selection_set.node, &ty);
        self.visiting.remove(name);
        result.map(Some)
    }

    fn cost(&mut self, set: &SelectionSet, parent: &str) -> ServerResult<u64> {
        let mut total: u64 = 0;
        for item in &set.items {
            let c = match &item.node {
                Selection::Field(field) => self.field_cost(&field.node, parent)?,
                Selection::InlineFragment(f) => {
                    let ty = f
                        .node
                        .type_condition
                        .as_ref()
                        .map(|t| t.node.on.node.to_string())
                        .unwrap_or_else(|| parent.to_string());
                    self.cost(&f.node.selection_set.node, &ty)?
                }
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if let Some(c) = self.cost_memo.get(name) {
                        *c
                    } else {
                        let c = self
                            .fragment(name, |w, set, ty| w.cost(set, ty))?
                            .unwrap_or(0);
                        self.cost_memo.insert(name.clone(), c);
                        c
                    }
                }
            };
            total = total.saturating_add(c);
        }
        Ok(total)
    }

    fn field_cost(&mut self, field: &Field, parent: &str) -> ServerResult<u64> {
        let Some(ty) = self
            .types
            .field_type(parent, field.name.node.as_str())
            .map(str::to_string)
        else {
            return Ok(0);
        };
        if !self.types.is_composite(&ty) {
            return Ok(0);
        }
        if ty.ends_with("Connection") {
            let n = arg_i64(field, "first", self.variables)
                .or_else(|| arg_i64(field, "last", self.variables))
                .map(|n| n.clamp(0, self.max_page as i64) as u64)
                .unwrap_or(self.max_page);
            let per_node = self.node_cost(&field.selection_set.node, &ty)?;
            return Ok(2u64.saturating_add(n.saturating_mul(per_node)));
        }
        Ok(1u64.saturating_add(self.cost(&field.selection_set.node, &ty)?))
    }

    /// Cost of one node of a connection: `edges { node {..} }` or `nodes {..}`.
    fn node_cost(&mut self, set: &SelectionSet, conn_type: &str) -> ServerResult<u64> {
        let mut best = 0;
        for item in &set.items {
            match &item.node {
                Selection::Field(f) if f.node.name.node.as_str() == "nodes" => {
                    let ty = self
                        .types
                        .field_type(conn_type, "nodes")
                        .unwrap_or_default()
                        .to_string();
                    best =
                        best.max(1u64.saturating_add(self.cost(&f.node.selection_set.node, &ty)?));
                }
                Selection::Field(f) if f.node.name.node.as_str() == "edges" => {
                    let edge = self
                        .types
                        .field_type(conn_type, "edges")
                        .unwrap_or_default()
                        .to_string();
                    best = best.max(self.cost(&f.node.selection_set.node, &edge)?);
                }
                Selection::Field(_) => {}
                Selection::InlineFragment(f) => {
                    best = best.max(self.node_cost(&f.node.selection_set.node, conn_type)?)
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.clone();
                    let c = self
                        .fragment(&name, |w, set, _| w.node_cost(set, conn_type))?
                        .unwrap_or(0);
                    best = best.max(c);
                }
            }
        }
        Ok(best)
    }

    fn depth(&mut self, set: &SelectionSet) -> ServerResult<usize> {
        let mut deepest = 0;
        for item in &set.items {
            let d = match &item.node {
                Selection::Field(f) => 1 + self.depth(&f.node.selection_set.node)?,
                Selection::InlineFragment(f) => self.depth(&f.node.selection_set.node)?,
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if let Some(d) = self.depth_memo.get(name) {
                        *d
                    } else {
                        let d = self.fragment(name, |w, set, _| w.depth(set))?.unwrap_or(0);
                        self.depth_memo.insert(name.clone(), d);
                        d
                    }
                }
            };
            deepest = deepest.max(d);
        }
        Ok(deepest)
    }

    /// Names of the operation's top-level fields (fragments at the root expanded).
    fn root_fields(&mut self, set: &SelectionSet, out: &mut Vec<String>) -> ServerResult<()> {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push(f.node.name.node.to_string()),
                Selection::InlineFragment(f) => {
                    self.root_fields(&f.node.selection_set.node, out)?
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.clone();
                    self.fragment(&name, |w, set, _| w.root_fields(set, out))?;
                }
            }
        }
        Ok(())
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Actual cost of a response, by the same rules as the requested cost.
pub fn actual_cost(value: &Value) -> u64 {
    fn children(map: &async_graphql::indexmap::IndexMap<Name, Value>) -> u64 {
        map.values().map(field).fold(0u64, u64::saturating_add)
    }
    fn field(value: &Value) -> u64 {
        match value {
            Value::Object(map) if map.contains_key("edges") || map.contains_key("nodes") => {
                let per = |list: Option<&Value>, unwrap_node: bool| -> u64 {
                    let Some(Value::List(items)) = list else {
                        return 0;
                    };
                    items
                        .iter()
                        .map(|item| {
                            let node = if unwrap_node {
                                match item {
                                    Value::Object(m) => m.get("node"),
                                    _ => None,
                                }
                            } else {
                                Some(item)
                            };
                            match node {
                                Some(Value::Object(m)) => 1 + children(m),
                                _ => 0,
                            }
                        })
                        .fold(0u64, u64::saturating_add)
                };
                2 + per(map.get("edges"), true).max(per(map.get("nodes"), false))
            }
            Value::Object(map) => 1 + children(map),
            Value::List(items) => items.iter().map(field).max().unwrap_or(0),
            _ => 0,
        }
    }
    match value {
        Value::Object(root) => children(root),
        _ => 0,
    }
}

/// What the limits hook learnt about the request, reported after execution.
#[derive(Default)]
struct Measured {
    operation_name: Option<String>,
    requested_cost: Option<u64>,
    /// Captured when the document is parsed: the `request` hook cannot see request data.
    scope: Option<Arc<RequestScope>>,
}

pub struct Limits {
    pub limits: QueryLimits,
    pub types: Arc<TypeIndex>,
    pub query_stats: bool,
}

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension {
            limits: self.limits.clone(),
            types: self.types.clone(),
            query_stats: self.query_stats,
            measured: Mutex::new(Measured::default()),
        })
    }
}

struct LimitsExtension {
    limits: QueryLimits,
    types: Arc<TypeIndex>,
    query_stats: bool,
    measured: Mutex<Measured>,
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

impl LimitsExtension {
    fn check(
        &self,
        doc: &ExecutableDocument,
        variables: &Variables,
        scope: Option<&RequestScope>,
    ) -> ServerResult<u64> {
        let name = self
            .measured
            .lock()
            .ok()
            .and_then(|m| m.operation_name.clone());
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
        let Some(op) = pick_operation(doc, name.as_deref()) else {
            return Ok(0);
        };
        let mut walker = Walker {
            doc,
            types: &self.types,
            variables,
            max_page: self.limits.max_page_size as u64,
            cost_memo: HashMap::new(),
            depth_memo: HashMap::new(),
            visiting: HashSet::new(),
        };
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
        Ok(cost)
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
                    let types = TypeIndex {
                        fields: HashMap::new(),
                        composite: HashSet::new(),
                    };
                    let vars = Variables::default();
                    let mut walker = Walker {
                        doc: &doc,
                        types: &types,
                        variables: &vars,
                        max_page: 1,
                        cost_memo: HashMap::new(),
                        depth_memo: HashMap::new(),
                        visiting: HashSet::new(),
                    };
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

#[async_graphql::async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let _ = self.query_stats;
        let mut response = next.run(ctx).await;
        let requested = self.measured.lock().ok().and_then(|m| m.requested_cost);
        let actual = if response.errors.is_empty() || !matches!(response.data, Value::Null) {
            actual_cost(&response.data)
        } else {
            0
        };
        let mut cost = async_graphql::indexmap::IndexMap::new();
        cost.insert(
            Name::new("requestedQueryCost"),
            Value::from(requested.unwrap_or(0)),
        );
        cost.insert(
            Name::new("actualQueryCost"),
            Value::from(if requested.is_some() { actual } else { 0 }),
        );
        response
            .extensions
            .insert("cost".into(), Value::Object(cost));
        let scope = self.measured.lock().ok().and_then(|m| m.scope.clone());
        if self.query_stats
            && let Some(scope) = scope
        {
            let mut stats = async_graphql::indexmap::IndexMap::new();
            stats.insert(
                Name::new("sqlStatements"),
                Value::from(scope.statements.get()),
            );
            response
                .extensions
                .insert("stats".into(), Value::Object(stats));
        }
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Ok(mut m) = self.measured.lock() {
            m.operation_name = request.operation_name.clone();
        }
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
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = match next.run(ctx, query, variables).await {
            Ok(doc) => doc,
            Err(e) => return Err(self.classify_parse_error(e, query)),
        };
        let scope = ctx.data_opt::<Arc<RequestScope>>().cloned();
        if let Ok(mut m) = self.measured.lock() {
            m.scope = scope.clone();
        }
        let cost = self.check(&doc, variables, scope.as_deref())?;
        if let Ok(mut m) = self.measured.lock() {
            m.requested_cost = Some(cost);
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        next.run(ctx, operation_name).await
    }
}

/// Registers `directive @inContext(country: CountryCode, language: LanguageCode) on QUERY | MUTATION`
/// so that documents using it validate; its arguments are read in the limits hook.
pub struct InContextDirective;

impl async_graphql::CustomDirectiveFactory for InContextDirective {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "inContext".into()
    }

    fn register(&self, registry: &mut async_graphql::registry::Registry) {
        use async_graphql::InputType;
        use async_graphql::registry::{__DirectiveLocation, MetaDirective, MetaInputValue};
        let country =
            <Option<super::types::common::CountryCode> as InputType>::create_type_info(registry);
        let language =
            <Option<super::types::common::LanguageCode> as InputType>::create_type_info(registry);
        let arg = |name: &str, ty: String, desc: &str| MetaInputValue {
            name: name.to_string(),
            description: Some(desc.to_string()),
            ty,
            deprecation: Default::default(),
            default_value: None,
            visible: None,
            inaccessible: false,
            tags: vec![],
            is_secret: false,
            directive_invocations: vec![],
        };
        let mut args = async_graphql::indexmap::IndexMap::new();
        args.insert(
            "country".to_string(),
            arg(
                "country",
                country,
                "The country code for the request (selects the currency).",
            ),
        );
        args.insert(
            "language".to_string(),
            arg("language", language, "The language code for the request."),
        );
        registry.add_directive(MetaDirective {
            name: "inContext".into(),
            description: Some(
                "Contextualizes data: prices in the country's currency where the catalog has them."
                    .into(),
            ),
            locations: vec![__DirectiveLocation::QUERY, __DirectiveLocation::MUTATION],
            args,
            is_repeatable: false,
            visible: None,
            composable: None,
        });
    }

    fn create(
        &self,
        _ctx: &async_graphql::ContextDirective<'_>,
        _directive: &async_graphql::parser::types::Directive,
    ) -> ServerResult<Box<dyn async_graphql::CustomDirective>> {
        Err(ServerError::new(
            "@inContext is only allowed on operations",
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_of_a_document() {
        assert_eq!(count_tokens("{ a }"), 3);
        assert_eq!(
            count_tokens("query Q($x: Int = 3) { f(x: $x) { ...F } } # c"),
            23
        );
        assert_eq!(count_tokens("{ f(s: \"a b, c\") }"), 8);
    }
}
