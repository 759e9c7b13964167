//! Walking a parsed document: tokens, depth, aliases, root fields and cost, with
//! fragments expanded once (memoized) and cycles detected.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, Selection, SelectionSet, ServiceDocument, TypeKind,
    TypeSystemDefinition,
};
use async_graphql::{Name, ServerResult, Value, Variables};
use async_graphql_value::Value as DocValue;

use super::limit_error;

/// Field types of the schema, enough to price a selection.
pub struct TypeIndex {
    /// type → field → named type of the field (lists unwrapped)
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

    /// An index that knows no types (enough to walk fragments for cycles).
    pub(super) fn empty() -> Self {
        Self {
            fields: HashMap::new(),
            composite: HashSet::new(),
        }
    }

    pub fn field_type(&self, parent: &str, field: &str) -> Option<&str> {
        self.fields.get(parent)?.get(field).map(String::as_str)
    }

    fn is_composite(&self, ty: &str) -> bool {
        self.composite.contains(ty)
    }
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

pub(super) struct Walker<'a> {
    pub(super) doc: &'a ExecutableDocument,
    pub(super) types: &'a TypeIndex,
    pub(super) variables: &'a Variables,
    pub(super) max_page: u64,
    /// What a field of the mutation root costs before its selection (Shopify: 10).
    pub(super) mutation_cost: u64,
    /// Arguments whose list length multiplies a field's cost (`skus`, `variantIds`).
    pub(super) list_args: &'static [&'static str],
    /// `(type, field, n)`: list fields no argument bounds, priced at n elements.
    pub(super) fixed_lists: &'static [(&'static str, &'static str, u64)],
    pub(super) cost_memo: HashMap<Name, u64>,
    pub(super) depth_memo: HashMap<Name, usize>,
    pub(super) fields_memo: HashMap<Name, u64>,
    pub(super) visiting: HashSet<Name>,
    /// Fragment costs as nodes of a connection, by fragment and connection type.
    pub(super) node_memo: HashMap<(Name, String), u64>,
    /// Selections visited so far; a document that needs more cannot be priced.
    pub(super) steps: u64,
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

/// Most selections a walk visits before the document is refused. Fragments are memoized,
/// so ordinary documents need a few hundred; this stops pathological spreads.
const MAX_WALK_STEPS: u64 = 100_000;

/// Lists whose length is known without running them, priced per element.
const RECOMMENDATIONS: u64 = 10;

fn list_len(field: &Field, name: &str, variables: &Variables) -> Option<usize> {
    let (_, value) = field
        .arguments
        .iter()
        .find(|(n, _)| n.node.as_str() == name)?;
    match &value.node {
        DocValue::List(items) => Some(items.len()),
        DocValue::Variable(v) => match variables.get(v) {
            Some(Value::List(items)) => Some(items.len()),
            _ => Some(1),
        },
        _ => Some(1),
    }
}

impl Walker<'_> {
    pub(super) fn new<'a>(
        doc: &'a ExecutableDocument,
        types: &'a TypeIndex,
        variables: &'a Variables,
        max_page: u64,
    ) -> Walker<'a> {
        Walker {
            doc,
            types,
            variables,
            max_page,
            mutation_cost: 1,
            list_args: &[],
            fixed_lists: &[],
            cost_memo: HashMap::new(),
            depth_memo: HashMap::new(),
            fields_memo: HashMap::new(),
            visiting: HashSet::new(),
            node_memo: HashMap::new(),
            steps: 0,
        }
    }

    fn tick(&mut self) -> ServerResult<()> {
        self.steps += 1;
        if self.steps > MAX_WALK_STEPS {
            return Err(limit_error(
                "MAX_COST_EXCEEDED",
                "The document is too complex to price (its fragments expand too far).".into(),
            ));
        }
        Ok(())
    }

    /// `first`/`last` of a connection, refused above `MAX_PAGE_SIZE` before anything runs.
    fn page_size(&self, field: &Field) -> ServerResult<u64> {
        let n = arg_i64(field, "first", self.variables)
            .or_else(|| arg_i64(field, "last", self.variables));
        match n {
            Some(n) if n > self.max_page as i64 => Err(limit_error(
                "MAX_PAGE_SIZE_EXCEEDED",
                format!(
                    "first/last is {n}; the limit (MAX_PAGE_SIZE) is {}.",
                    self.max_page
                ),
            )),
            Some(n) => Ok(n.max(0) as u64),
            None => Ok(self.max_page),
        }
    }

    pub(super) fn fragment<T>(
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

    pub(super) fn cost(&mut self, set: &SelectionSet, parent: &str) -> ServerResult<u64> {
        let mut total: u64 = 0;
        for item in &set.items {
            self.tick()?;
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
        let name = field.name.node.as_str();
        let Some(ty) = self.types.field_type(parent, name).map(str::to_string) else {
            return Ok(0);
        };
        if !self.types.is_composite(&ty) {
            return Ok(0);
        }
        if ty.ends_with("Connection") {
            let n = self.page_size(field)?;
            let per_node = self.node_cost(&field.selection_set.node, &ty)?;
            return Ok(2u64.saturating_add(n.saturating_mul(per_node)));
        }
        let own = if parent == "Mutation" {
            self.mutation_cost
        } else {
            1
        };
        let each = own.saturating_add(self.cost(&field.selection_set.node, &ty)?);
        // Lists whose length the arguments or the implementation bound are priced per
        // element; other lists (options, selected options, menu items) are small.
        let count = match (parent, name) {
            (_, "nodes")
                if field
                    .arguments
                    .iter()
                    .any(|(n, _)| n.node.as_str() == "ids") =>
            {
                let len = list_len(field, "ids", self.variables).unwrap_or(1) as u64;
                if len > self.max_page {
                    return Err(limit_error(
                        "MAX_PAGE_SIZE_EXCEEDED",
                        format!(
                            "nodes(ids:) has {len} IDs; the limit (MAX_PAGE_SIZE) is {}.",
                            self.max_page
                        ),
                    ));
                }
                len
            }
            (_, "productRecommendations") => RECOMMENDATIONS,
            // Matched among the product's first MAX_PAGE_SIZE variants.
            (_, "variantBySelectedOptions") => {
                return Ok(2u64.saturating_add(self.max_page.saturating_mul(each)));
            }
            _ => {
                let arg = self
                    .list_args
                    .iter()
                    .find(|a| field.arguments.iter().any(|(n, _)| n.node.as_str() == **a));
                match arg {
                    Some(arg) => {
                        let len = list_len(field, arg, self.variables).unwrap_or(1) as u64;
                        if len > self.max_page {
                            return Err(limit_error(
                                "MAX_PAGE_SIZE_EXCEEDED",
                                format!(
                                    "{name}({arg}:) has {len} items; the limit (MAX_PAGE_SIZE) is {}.",
                                    self.max_page
                                ),
                            ));
                        }
                        len
                    }
                    None => self
                        .fixed_lists
                        .iter()
                        .find(|(t, f, _)| *t == parent && *f == name)
                        .map_or(1, |(_, _, n)| *n),
                }
            }
        };
        Ok(count.saturating_mul(each))
    }

    /// Cost of one node of a connection: `edges { node {..} }` and `nodes {..}`, each
    /// alias counted (every alias is resolved and serialized again).
    fn node_cost(&mut self, set: &SelectionSet, conn_type: &str) -> ServerResult<u64> {
        let mut total: u64 = 0;
        for item in &set.items {
            self.tick()?;
            let c = match &item.node {
                Selection::Field(f) if f.node.name.node.as_str() == "nodes" => {
                    let ty = self
                        .types
                        .field_type(conn_type, "nodes")
                        .unwrap_or_default()
                        .to_string();
                    1u64.saturating_add(self.cost(&f.node.selection_set.node, &ty)?)
                }
                Selection::Field(f) if f.node.name.node.as_str() == "edges" => {
                    let edge = self
                        .types
                        .field_type(conn_type, "edges")
                        .unwrap_or_default()
                        .to_string();
                    self.cost(&f.node.selection_set.node, &edge)?
                }
                Selection::Field(_) => 0,
                Selection::InlineFragment(f) => {
                    self.node_cost(&f.node.selection_set.node, conn_type)?
                }
                Selection::FragmentSpread(s) => {
                    let key = (s.node.fragment_name.node.clone(), conn_type.to_string());
                    if let Some(c) = self.node_memo.get(&key) {
                        *c
                    } else {
                        let c = self
                            .fragment(&key.0, |w, set, _| w.node_cost(set, conn_type))?
                            .unwrap_or(0);
                        self.node_memo.insert(key, c);
                        c
                    }
                }
            };
            total = total.saturating_add(c);
        }
        Ok(total)
    }

    pub(super) fn depth(&mut self, set: &SelectionSet) -> ServerResult<usize> {
        let mut deepest = 0;
        for item in &set.items {
            self.tick()?;
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

    /// The fields the executor will visit: every selection with fragments expanded
    /// (a fragment spread twice is visited twice), counted once per fragment. Bounds
    /// documents whose fragments spread one another repeatedly, which are small to send
    /// and exponential to execute.
    pub(super) fn expanded(&mut self, set: &SelectionSet) -> ServerResult<u64> {
        let mut total: u64 = 0;
        for item in &set.items {
            self.tick()?;
            let n = match &item.node {
                Selection::Field(f) => {
                    1u64.saturating_add(self.expanded(&f.node.selection_set.node)?)
                }
                Selection::InlineFragment(f) => self.expanded(&f.node.selection_set.node)?,
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if let Some(n) = self.fields_memo.get(name) {
                        *n
                    } else {
                        let n = self
                            .fragment(name, |w, set, _| w.expanded(set))?
                            .unwrap_or(0);
                        self.fields_memo.insert(name.clone(), n);
                        n
                    }
                }
            };
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    /// Names of the operation's top-level fields (fragments at the root expanded).
    pub(super) fn root_fields(
        &mut self,
        set: &SelectionSet,
        out: &mut Vec<String>,
    ) -> ServerResult<()> {
        for item in &set.items {
            self.tick()?;
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

pub(super) fn count_aliases(set: &SelectionSet) -> usize {
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
            Value::List(items) => items.iter().map(field).fold(0u64, u64::saturating_add),
            _ => 0,
        }
    }
    match value {
        Value::Object(root) => children(root),
        _ => 0,
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
