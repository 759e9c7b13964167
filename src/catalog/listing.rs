//! Listings: one page of products, collections or pages, filtered by Shopify's search
//! syntax and sorted with keyset cursors. The statement is built before any connection is
//! taken, so bad input costs no database work; values always travel as bind parameters.

use super::models::ListedProduct;
use super::search_syntax::{Cmp, Expr, Term};
use super::store::PUBLISHED;
use super::{CatalogError, CollectionScope, ProductListing, ProductSort, SimpleSort};
use crate::db::sql::{Bind, DynSql};
use crate::pagination::{Cursor, Page};

/// The sort expression, how its cursor value is bound, and its natural direction.
struct SortSpec {
    expr: String,
    kind: SortValue,
}

#[derive(Clone, Copy)]
enum SortValue {
    Text,
    BigInt,
    Int,
    Float,
    Timestamp,
    None,
}

fn bind_sort_value(
    q: &mut DynSql,
    kind: SortValue,
    value: &serde_json::Value,
) -> Result<(), CatalogError> {
    let bad = || CatalogError::Page(crate::pagination::PageError::InvalidCursor);
    match kind {
        SortValue::Text => {
            q.bind(Bind::Text(value.as_str().ok_or_else(bad)?.to_string()));
        }
        SortValue::BigInt => {
            q.bind(Bind::BigInt(value.as_i64().ok_or_else(bad)?));
        }
        SortValue::Int => {
            let v = value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(bad)?;
            q.bind(Bind::Int(v));
        }
        SortValue::Float => {
            q.bind(Bind::Float(value.as_f64().ok_or_else(bad)?));
        }
        SortValue::Timestamp => {
            let micros = value
                .as_i64()
                .filter(|m| {
                    chrono::DateTime::from_timestamp_micros(*m)
                        .is_some_and(|t| (1..=9999).contains(&chrono::Datelike::year(&t)))
                })
                .ok_or_else(bad)?;
            q.push("('epoch'::timestamptz + ");
            q.bind(Bind::BigInt(micros));
            q.push(" * interval '1 microsecond')");
        }
        SortValue::None => unreachable!("sorts without a value compare ids only"),
    }
    Ok(())
}

/// Adds the keyset condition, ORDER BY and LIMIT of a listing whose rows are aliased `t`.
fn keyset(
    q: &mut DynSql,
    alias: &str,
    spec: &SortSpec,
    descending: bool,
    page: &Page,
) -> Result<(), CatalogError> {
    let (op, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cursor) = &page.cursor {
        match spec.kind {
            SortValue::None => {
                q.push(&format!(" AND {alias}.id {op} "));
                q.bind(Bind::BigInt(cursor.id));
            }
            kind => {
                q.push(&format!(" AND ({}, {alias}.id) {op} (", spec.expr));
                bind_sort_value(q, kind, &cursor.value)?;
                q.push(", ");
                q.bind(Bind::BigInt(cursor.id));
                q.push(")");
            }
        }
    }
    match spec.kind {
        SortValue::None => q.push(&format!(" ORDER BY {alias}.id {dir}")),
        _ => q.push(&format!(" ORDER BY {} {dir}, {alias}.id {dir}", spec.expr)),
    };
    // A literal, not a parameter: with `LIMIT $n` the planner prices a generic plan as if
    // it read a tenth of the table, so it planned anew on every execution (a third of a
    // millisecond of a collection page's 1.7 ms in PostgreSQL). With a literal it keeps
    // the generic plan. Page sizes are rounded up to a few steps so that clients cannot
    // multiply the prepared statements; the extra rows are cut off by the caller.
    q.push(&format!(" LIMIT {}", limit_step(page.limit + 1)));
    Ok(())
}

/// The smallest step at or above `n`: every size up to 11, then a few steps per decade.
fn limit_step(n: usize) -> usize {
    const STEPS: [usize; 10] = [13, 17, 21, 25, 33, 51, 76, 101, 151, 201];
    if n <= 11 {
        return n;
    }
    STEPS
        .iter()
        .copied()
        .find(|&s| s >= n)
        .unwrap_or(n.next_multiple_of(50))
}

/// Free-text words of a search, for relevance scoring.
fn free_text(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| free_text(p, out)),
        Expr::Not(_) => {}
        Expr::Term(Term {
            field: None, value, ..
        }) => out.push(value.clone()),
        Expr::Term(Term {
            field: Some(f),
            value,
            ..
        }) if f == "title" => out.push(value.clone()),
        Expr::Term(_) => {}
    }
}

fn like_pattern(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match escaped.strip_suffix('*') {
        Some(prefix) => format!("%{prefix}%"),
        None => format!("%{escaped}%"),
    }
}

fn parse_bool(field: &str, value: &str) -> Result<bool, CatalogError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(CatalogError::BadInput(format!(
            "{field}: expects true or false, got {value:?}"
        ))),
    }
}

/// Compiles a search expression into a boolean SQL condition; `term` writes one term.
fn condition(
    q: &mut DynSql,
    expr: &Expr,
    term: &mut dyn FnMut(&mut DynSql, &Term) -> Result<(), CatalogError>,
) -> Result<(), CatalogError> {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            q.push("(");
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    q.push(joiner);
                }
                condition(q, part, term)?;
            }
            q.push(")");
        }
        Expr::Not(inner) => {
            q.push("NOT (");
            condition(q, inner, term)?;
            q.push(")");
        }
        Expr::Term(t) => term(q, t)?,
    }
    Ok(())
}

fn product_term(q: &mut DynSql, term: &Term, shop_currency: &str) -> Result<(), CatalogError> {
    let value = term.value.clone();
    match term.field.as_deref() {
        None | Some("title") => {
            q.push("p.title ILIKE ");
            q.bind(Bind::Text(like_pattern(&value)));
        }
        Some("tag") => {
            q.push("p.tags @> ARRAY[");
            q.bind(Bind::Text(value));
            q.push("]::text[]");
        }
        Some("tag_not") => {
            q.push("NOT p.tags @> ARRAY[");
            q.bind(Bind::Text(value));
            q.push("]::text[]");
        }
        Some("product_type") => {
            q.push("lower(p.product_type) = lower(");
            q.bind(Bind::Text(value));
            q.push(")");
        }
        Some("vendor") => {
            q.push("lower(p.vendor) = lower(");
            q.bind(Bind::Text(value));
            q.push(")");
        }
        Some("handle") => {
            q.push("p.handle = ");
            q.bind(Bind::Text(value));
        }
        Some("sku") => {
            q.push("EXISTS (SELECT 1 FROM product_variants sv WHERE sv.product_id = p.id AND sv.sku = ");
            q.bind(Bind::Text(value));
            q.push(")");
        }
        Some("id") => {
            let id = crate::ids::parse_any("Product", &value).ok_or_else(|| {
                CatalogError::BadInput(format!("id: {value:?} is not a product id"))
            })?;
            q.push(&format!("p.id {} ", term.cmp.sql()));
            q.bind(Bind::BigInt(id));
        }
        Some("available_for_sale") => {
            let wanted = parse_bool("available_for_sale", &value)?;
            q.push(if wanted { "EXISTS" } else { "NOT EXISTS" });
            q.push(
                " (SELECT 1 FROM product_variants av WHERE av.product_id = p.id AND \
                 (av.inventory_policy = 'CONTINUE' OR av.available > 0))",
            );
        }
        Some("price" | "variants.price") => {
            let minor = crate::money::parse_minor(&value, shop_currency).ok_or_else(|| {
                CatalogError::BadInput(format!("price: {value:?} is not a decimal amount"))
            })?;
            // A product matches when some variant's price satisfies the comparison; the
            // cheapest and dearest prices answer every comparison but equality.
            let column = match term.cmp {
                Cmp::Gt | Cmp::Ge => "p.max_price_minor",
                Cmp::Lt | Cmp::Le => "p.min_price_minor",
                Cmp::Eq => {
                    q.push(
                        "EXISTS (SELECT 1 FROM product_variants ev JOIN variant_prices ep ON ep.variant_id = ev.id \
                         WHERE ev.product_id = p.id AND ep.currency = ",
                    );
                    q.bind(Bind::Text(shop_currency.to_string()));
                    q.push(" AND ep.amount_minor = ");
                    q.bind(Bind::BigInt(minor));
                    q.push(")");
                    return Ok(());
                }
            };
            q.push(&format!("{column} {} ", term.cmp.sql()));
            q.bind(Bind::BigInt(minor));
        }
        Some(other) => {
            return Err(CatalogError::BadInput(format!(
                "unknown search field {other:?}; use title, tag, tag_not, product_type, vendor, handle, sku, id, available_for_sale or price"
            )));
        }
    }
    Ok(())
}

fn product_sort_spec(sort: ProductSort, relevance: Option<&str>) -> SortSpec {
    let (expr, kind) = match sort {
        ProductSort::Title => ("p.title".to_string(), SortValue::Text),
        ProductSort::Price => ("p.min_price_minor".to_string(), SortValue::BigInt),
        ProductSort::CreatedAt => ("p.created_at".to_string(), SortValue::Timestamp),
        ProductSort::UpdatedAt => ("p.updated_at".to_string(), SortValue::Timestamp),
        ProductSort::BestSelling => ("p.total_sales".to_string(), SortValue::BigInt),
        ProductSort::Vendor => ("p.vendor".to_string(), SortValue::Text),
        ProductSort::ProductType => ("p.product_type".to_string(), SortValue::Text),
        ProductSort::Manual => ("cp.position".to_string(), SortValue::Int),
        ProductSort::Relevance => match relevance {
            Some(placeholder) => (
                format!("similarity(p.title, {placeholder})::float8"),
                SortValue::Float,
            ),
            None => ("p.total_sales".to_string(), SortValue::BigInt),
        },
        ProductSort::Id => ("p.id".to_string(), SortValue::None),
    };
    SortSpec { expr, kind }
}

/// The statement for one page of products: the catalog or one collection, filtered and
/// sorted. Built before any connection is taken, so bad input costs no database work.
pub fn product_listing_sql(
    listing: &ProductListing,
    shop_currency: &str,
) -> Result<DynSql, CatalogError> {
    let mut words = Vec::new();
    if let Some(filter) = &listing.filter {
        free_text(filter, &mut words);
    }
    let mut q = DynSql::new("SELECT p.*, ");
    let relevance = if listing.sort == ProductSort::Relevance && !words.is_empty() {
        // Bound first so its placeholder can be repeated in ORDER BY and the cursor.
        q.push("similarity(p.title, ");
        let ph = q.bind(Bind::Text(words.join(" ")));
        q.push(")::float8 AS sort_score, ");
        Some(ph)
    } else {
        q.push("NULL::float8 AS sort_score, ");
        None
    };
    match listing.collection {
        CollectionScope::Parent => {
            q.push("cp.position AS sort_position FROM products p JOIN collection_products cp ON cp.product_id = p.id AND cp.collection_id = parent.cid");
        }
        CollectionScope::Collection(collection_id) => {
            q.push("cp.position AS sort_position FROM products p JOIN collection_products cp ON cp.product_id = p.id AND cp.collection_id = ");
            q.bind(Bind::BigInt(collection_id));
        }
        CollectionScope::Catalog => {
            q.push("NULL::int4 AS sort_position FROM products p");
        }
    }
    q.push(" WHERE ");
    q.push(PUBLISHED);
    if let Some(filter) = &listing.filter {
        q.push(" AND ");
        condition(&mut q, filter, &mut |q, t| {
            product_term(q, t, shop_currency)
        })?;
        q.uncached();
    }
    let sort = if listing.sort == ProductSort::Manual && !listing.collection.is_collection() {
        ProductSort::Id
    } else {
        listing.sort
    };
    let spec = product_sort_spec(sort, relevance.as_deref());
    let descending = sort.descending_by_default() ^ listing.reverse ^ listing.page.backward;
    keyset(&mut q, "p", &spec, descending, &listing.page)?;
    Ok(q)
}

/// One statement for the same page of several collections: the listing runs once per
/// collection id inside `LATERAL`; rows carry `parent_id` and keep their order.
pub fn collections_listing_sql(
    collection_ids: &[i64],
    listing: &ProductListing,
    shop_currency: &str,
) -> Result<DynSql, CatalogError> {
    let inner = product_listing_sql(
        &ProductListing {
            collection: CollectionScope::Parent,
            ..listing.clone()
        },
        shop_currency,
    )?;
    // The inner statement's placeholders are numbered from $1; the ids go last.
    let mut q = inner.wrap(
        "SELECT l.*, parent.cid AS parent_id FROM unnest(",
        "::int8[]) WITH ORDINALITY AS parent(cid, ord) CROSS JOIN LATERAL (SELECT x.*, row_number() OVER () AS rn FROM (",
        ") x) l ORDER BY parent.ord, l.rn",
        Bind::BigIntArray(collection_ids.to_vec()),
    );
    if listing.filter.is_some() {
        q.uncached();
    }
    Ok(q)
}

/// The cursor of a listed product under `sort`.
pub fn product_cursor(row: &ListedProduct, sort: ProductSort, collection: bool) -> Cursor {
    use serde_json::json;
    let p = &row.product;
    let sort = if sort == ProductSort::Manual && !collection {
        ProductSort::Id
    } else {
        sort
    };
    let value = match sort {
        ProductSort::Title => json!(p.title),
        ProductSort::Price => json!(p.min_price_minor),
        ProductSort::CreatedAt => json!(p.created_at.timestamp_micros()),
        ProductSort::UpdatedAt => json!(p.updated_at.timestamp_micros()),
        ProductSort::BestSelling => json!(p.total_sales),
        ProductSort::Vendor => json!(p.vendor),
        ProductSort::ProductType => json!(p.product_type),
        ProductSort::Manual => json!(row.sort_position.unwrap_or_default()),
        ProductSort::Relevance => match row.sort_score {
            Some(score) => json!(score),
            None => json!(p.total_sales),
        },
        ProductSort::Id => serde_json::Value::Null,
    };
    Cursor::new(listing_sort_name(sort, collection), value, p.id)
}

/// The sort name cursors carry (MANUAL outside a collection lists by id).
pub fn listing_sort_name(sort: ProductSort, collection: bool) -> &'static str {
    if sort == ProductSort::Manual && !collection {
        ProductSort::Id.name()
    } else {
        sort.name()
    }
}

/// One term of a collection or page search over `alias`.
fn simple_term(q: &mut DynSql, term: &Term, alias: &str) -> Result<(), CatalogError> {
    match term.field.as_deref() {
        None | Some("title") => {
            q.push(&format!("{alias}.title ILIKE "));
            q.bind(Bind::Text(like_pattern(&term.value)));
        }
        Some("handle") => {
            q.push(&format!("{alias}.handle = "));
            q.bind(Bind::Text(term.value.clone()));
        }
        Some(other) => {
            return Err(CatalogError::BadInput(format!(
                "unknown search field {other:?}; use title or handle"
            )));
        }
    }
    Ok(())
}

fn simple_sort_spec(sort: SimpleSort, alias: &str) -> SortSpec {
    match sort {
        SimpleSort::Title => SortSpec {
            expr: format!("{alias}.title"),
            kind: SortValue::Text,
        },
        SimpleSort::UpdatedAt => SortSpec {
            expr: format!("{alias}.updated_at"),
            kind: SortValue::Timestamp,
        },
        SimpleSort::Id => SortSpec {
            expr: format!("{alias}.id"),
            kind: SortValue::None,
        },
    }
}

/// The statement for one page of published rows of a small table (`collections`, `pages`).
///
/// `of_parent_product` keeps only collections that hold the product `parent.pid` (see
/// [`collections_of_products_sql`]).
pub fn simple_listing_sql(
    table: &'static str,
    filter: Option<&Expr>,
    sort: SimpleSort,
    reverse: bool,
    page: &Page,
    of_parent_product: bool,
) -> Result<DynSql, CatalogError> {
    let mut q = DynSql::new(&format!("SELECT t.* FROM {table} t WHERE t.published"));
    if of_parent_product {
        q.push(" AND t.id IN (SELECT cp.collection_id FROM collection_products cp WHERE cp.product_id = parent.pid)");
    }
    if let Some(filter) = filter {
        q.push(" AND ");
        condition(&mut q, filter, &mut |q, t| simple_term(q, t, "t"))?;
        q.uncached();
    }
    let spec = simple_sort_spec(sort, "t");
    keyset(&mut q, "t", &spec, reverse ^ page.backward, page)?;
    Ok(q)
}

/// One statement for the same page of the collections of several products.
pub fn collections_of_products_sql(
    product_ids: &[i64],
    sort: SimpleSort,
    reverse: bool,
    page: &Page,
) -> Result<DynSql, CatalogError> {
    let inner = simple_listing_sql("collections", None, sort, reverse, page, true)?;
    Ok(inner.wrap(
        "SELECT l.*, parent.pid AS parent_id FROM unnest(",
        "::int8[]) WITH ORDINALITY AS parent(pid, ord) CROSS JOIN LATERAL (SELECT x.*, row_number() OVER () AS rn FROM (",
        ") x) l ORDER BY parent.ord, l.rn",
        Bind::BigIntArray(product_ids.to_vec()),
    ))
}

/// The cursor of a row listed by [`simple_listing_sql`].
pub fn simple_cursor(
    sort: SimpleSort,
    id: i64,
    title: &str,
    updated_at: chrono::DateTime<chrono::Utc>,
) -> Cursor {
    let value = match sort {
        SimpleSort::Title => serde_json::json!(title),
        SimpleSort::UpdatedAt => serde_json::json!(updated_at.timestamp_micros()),
        SimpleSort::Id => serde_json::Value::Null,
    };
    Cursor::new(sort.name(), value, id)
}

#[cfg(test)]
mod tests {
    use super::limit_step;

    #[test]
    fn limit_steps_cover_the_page_and_stay_few() {
        let mut steps = std::collections::BTreeSet::new();
        for n in 1..=1001 {
            let step = limit_step(n);
            assert!(step >= n, "{n} -> {step}");
            steps.insert(step);
        }
        assert_eq!(limit_step(25), 25);
        assert_eq!(limit_step(12), 13);
        assert_eq!(limit_step(251), 300);
        // Sizes up to 1,001: 11 exact, 10 steps, then one per 50.
        assert!(steps.len() <= 11 + 10 + 17, "{} steps", steps.len());
    }
}
