//! Which scope each admin field needs, checked over the whole document before anything
//! runs. Root fields fail closed: a root field missing from [`REQUIRED`] is refused to
//! every key, so a new field cannot ship unguarded (and the scope test, generated from
//! the schema, fails until it is listed). Nested fields are listed where they reach into
//! another scope's data.

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, ServerError};

use crate::graphql::limits::TypeIndex;
use crate::partners::keys::grants;

/// `(type, field, scope)`; `None`: any valid key.
pub const REQUIRED: &[(&str, &str, Option<&str>)] = &[
    ("QueryRoot", "products", Some("read_products")),
    ("QueryRoot", "product", Some("read_products")),
    ("QueryRoot", "productByHandle", Some("read_products")),
    ("QueryRoot", "productVariant", Some("read_products")),
    ("QueryRoot", "productVariantsBySku", Some("read_products")),
    ("QueryRoot", "collections", Some("read_products")),
    ("QueryRoot", "collection", Some("read_products")),
    ("QueryRoot", "categories", Some("read_products")),
    ("QueryRoot", "productExport", Some("read_products")),
    ("QueryRoot", "productImport", Some("read_products")),
    ("QueryRoot", "locations", Some("read_inventory")),
    ("QueryRoot", "inventoryLevels", Some("read_inventory")),
    ("QueryRoot", "orders", Some("read_orders")),
    ("QueryRoot", "order", Some("read_orders")),
    ("QueryRoot", "webhookSubscriptions", Some("read_webhooks")),
    ("QueryRoot", "currentApiKey", None),
    ("QueryRoot", "apiKeys", Some("admin")),
    ("QueryRoot", "auditLog", Some("admin")),
    ("ProductVariant", "inventoryLevels", Some("read_inventory")),
    ("Mutation", "productCreate", Some("write_products")),
    ("Mutation", "productsBulkUpsert", Some("write_products")),
    ("Mutation", "productUpdate", Some("write_products")),
    ("Mutation", "productDelete", Some("write_products")),
    (
        "Mutation",
        "productVariantsBulkUpdate",
        Some("write_products"),
    ),
    (
        "Mutation",
        "productVariantsBulkDelete",
        Some("write_products"),
    ),
    ("Mutation", "productImageCreate", Some("write_products")),
    ("Mutation", "productImageUpdate", Some("write_products")),
    ("Mutation", "productImageDelete", Some("write_products")),
    ("Mutation", "collectionCreate", Some("write_products")),
    ("Mutation", "collectionUpdate", Some("write_products")),
    ("Mutation", "collectionDelete", Some("write_products")),
    ("Mutation", "collectionAddProducts", Some("write_products")),
    (
        "Mutation",
        "collectionRemoveProducts",
        Some("write_products"),
    ),
    ("Mutation", "categoryCreate", Some("write_products")),
    ("Mutation", "categoryUpdate", Some("write_products")),
    ("Mutation", "categoryDelete", Some("write_products")),
    ("Mutation", "productExportCreate", Some("read_products")),
    ("Mutation", "productImportCreate", Some("write_products")),
    ("Mutation", "locationAdd", Some("write_inventory")),
    (
        "Mutation",
        "inventorySetQuantities",
        Some("write_inventory"),
    ),
    (
        "Mutation",
        "inventoryAdjustQuantities",
        Some("write_inventory"),
    ),
    ("Mutation", "orderFulfill", Some("write_orders")),
    ("Mutation", "orderCancel", Some("write_orders")),
    ("Mutation", "orderRefund", Some("write_orders")),
    (
        "Mutation",
        "webhookSubscriptionCreate",
        Some("write_webhooks"),
    ),
    (
        "Mutation",
        "webhookSubscriptionDelete",
        Some("write_webhooks"),
    ),
    ("Mutation", "apiKeyCreate", Some("admin")),
    ("Mutation", "apiKeyRevoke", Some("admin")),
];

const ROOTS: &[&str] = &["QueryRoot", "Mutation"];

fn required(ty: &str, field: &str) -> Option<Option<&'static str>> {
    REQUIRED
        .iter()
        .find(|(t, f, _)| *t == ty && *f == field)
        .map(|(_, _, s)| *s)
}

/// Refusals found in a document, in the order met.
struct Check<'a> {
    doc: &'a ExecutableDocument,
    types: &'a TypeIndex,
    held: &'a [String],
    denied: Vec<(String, String)>,
    /// Fragments already checked: a fragment's requirements depend only on its own type
    /// condition, so each is walked once however often it is spread (no exponential
    /// walk through fragments that spread one another twice).
    checked: HashSet<Name>,
    steps: usize,
}

/// Selections walked at most; far above any real document (admission bounds tokens).
const MAX_STEPS: usize = 100_000;

impl Check<'_> {
    fn set(&mut self, set: &SelectionSet, ty: &str) {
        for item in &set.items {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                self.denied
                    .push(("the document".into(), "(too large to check)".into()));
                return;
            }
            match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    if name.starts_with("__") {
                        continue;
                    }
                    match required(ty, name) {
                        Some(Some(scope)) if !grants(self.held, scope) => self
                            .denied
                            .push((format!("{ty}.{name}"), scope.to_string())),
                        None if ROOTS.contains(&ty) => self
                            .denied
                            .push((format!("{ty}.{name}"), "(no key may use it)".to_string())),
                        _ => {}
                    }
                    if let Some(child) = self.types.field_type(ty, name) {
                        let child = child.to_string();
                        self.set(&f.node.selection_set.node, &child);
                    }
                }
                Selection::InlineFragment(f) => {
                    let on = f
                        .node
                        .type_condition
                        .as_ref()
                        .map(|t| t.node.on.node.to_string())
                        .unwrap_or_else(|| ty.to_string());
                    self.set(&f.node.selection_set.node, &on);
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.clone();
                    if !self.checked.insert(name.clone()) {
                        continue;
                    }
                    if let Some(frag) = self.doc.fragments.get(&name) {
                        let on = frag.node.type_condition.node.on.node.to_string();
                        self.set(&frag.node.selection_set.node, &on);
                    }
                }
            }
        }
    }
}

/// `ACCESS_DENIED` naming each field and the scope it needs, or `Ok` when `held`
/// grants everything the selected operation touches.
pub fn check(
    doc: &ExecutableDocument,
    operation: Option<&str>,
    types: &TypeIndex,
    held: &[String],
) -> Result<(), ServerError> {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(n)) => ops.get(n).map(|o| &o.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|o| &o.node)
        }
        _ => None,
    };
    // No operation to run: validation reports it.
    let Some(op) = op else {
        return Ok(());
    };
    let root = match op.ty {
        OperationType::Query => "QueryRoot",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    let mut check = Check {
        doc,
        types,
        held,
        denied: vec![],
        checked: HashSet::new(),
        steps: 0,
    };
    check.set(&op.selection_set.node, root);
    if check.denied.is_empty() {
        return Ok(());
    }
    let mut scopes: Vec<&str> = check.denied.iter().map(|(_, s)| s.as_str()).collect();
    scopes.sort();
    scopes.dedup();
    let fields: Vec<&str> = check.denied.iter().map(|(f, _)| f.as_str()).collect();
    let mut e = ServerError::new(
        format!(
            "Access denied for {}. Required access: {}.",
            fields.join(", "),
            scopes
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None,
    );
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "ACCESS_DENIED");
    ext.set(
        "requiredScopes",
        async_graphql::Value::List(scopes.iter().map(|s| (*s).into()).collect()),
    );
    e.extensions = Some(ext);
    Err(e)
}
