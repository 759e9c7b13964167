//! The catalog's read statements. Each batched function takes every key of one dataloader
//! batch and answers them with one statement, so the number of statements a request sends
//! does not grow with the page size.
//!
//! Listings and "first N per parent" reads are raw SQL: keyset comparisons on row values
//! and `LATERAL ... LIMIT` (which walks the `(product_id, position, id)` index once per
//! parent) are clearer there than in the query builder.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::*;
use super::search_syntax::{Cmp, Expr, Term};
use super::{CatalogError, NestedPage, ProductListing, ProductSort, SimpleSort};
use crate::db::schema::*;
use crate::db::sql::{Bind, DynSql};
use crate::pagination::{Cursor, Page};

/// Storefront visibility of a product row aliased `p`.
const PUBLISHED: &str =
    "p.status = 'ACTIVE' AND p.published_at IS NOT NULL AND p.published_at <= now()";

/// Price, compare-at price and stock of the variant aliased `v`, in currency `$cur` with a
/// fallback to the shop currency `$shop`.
fn variant_columns(cur: &str, shop: &str) -> String {
    format!(
        "v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, \
         v.grams, v.weight_unit, v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, \
         v.created_at, v.updated_at, \
         COALESCE(pc.amount_minor, ps.amount_minor, 0) AS price_minor, \
         CASE WHEN pc.amount_minor IS NOT NULL THEN pc.compare_at_minor ELSE ps.compare_at_minor END AS compare_at_minor, \
         CASE WHEN pc.amount_minor IS NOT NULL THEN {cur}::text ELSE {shop}::text END AS currency, \
         COALESCE((SELECT sum(il.on_hand - il.reserved) FROM inventory_levels il WHERE il.variant_id = v.id), 0)::int8 AS quantity_available, \
         ARRAY(SELECT o.name FROM product_options o WHERE o.product_id = v.product_id ORDER BY o.position) AS option_names"
    )
}

fn variant_price_joins(cur: &str, shop: &str) -> String {
    format!(
        " LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = {cur} \
          LEFT JOIN variant_prices ps ON ps.variant_id = v.id AND ps.currency = {shop}"
    )
}

pub async fn products_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<Product>> {
    products::table
        .filter(products::id.eq_any(ids))
        .select(Product::as_select())
        .load(conn)
        .await
}

pub async fn products_by_handles(
    conn: &mut AsyncPgConnection,
    handles: &[String],
) -> QueryResult<Vec<Product>> {
    products::table
        .filter(products::handle.eq_any(handles))
        .select(Product::as_select())
        .load(conn)
        .await
}

pub async fn options_for(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
) -> QueryResult<Vec<ProductOption>> {
    product_options::table
        .filter(product_options::product_id.eq_any(product_ids))
        .order((product_options::product_id, product_options::position))
        .select(ProductOption::as_select())
        .load(conn)
        .await
}

/// The first `page.fetch` variants of each product, in position order.
pub async fn variants_for(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
    page: &NestedPage,
    currency: &str,
    shop_currency: &str,
) -> QueryResult<Vec<Variant>> {
    let mut q = DynSql::new("SELECT * FROM unnest(");
    q.bind(Bind::BigIntArray(product_ids.to_vec()));
    q.push("::int8[]) AS parent(pid) CROSS JOIN LATERAL (SELECT ");
    let cur = q.add(Bind::Text(currency.to_string()));
    let shop = q.add(Bind::Text(shop_currency.to_string()));
    q.push(&variant_columns(&cur, &shop));
    q.push(" FROM product_variants v");
    q.push(&variant_price_joins(&cur, &shop));
    q.push(" WHERE v.product_id = parent.pid");
    nested_keyset(&mut q, "v", page);
    q.push(") AS v ORDER BY v.product_id");
    q.into_query().load(conn).await
}

/// Variants by id (cart lines, `node`), priced in `currency`.
pub async fn variants_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
    currency: &str,
    shop_currency: &str,
) -> QueryResult<Vec<Variant>> {
    let sql = format!(
        "SELECT {} FROM product_variants v {} WHERE v.id = ANY($1)",
        variant_columns("$2", "$3"),
        variant_price_joins("$2", "$3")
    );
    diesel::sql_query(sql)
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Text, _>(currency)
        .bind::<Text, _>(shop_currency)
        .load(conn)
        .await
}

/// Adds `AND (position, id) > (..)` for a nested cursor and the LIMIT.
fn nested_keyset(q: &mut DynSql, alias: &str, page: &NestedPage) {
    let (op, dir) = if page.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((position, id)) = page.after {
        q.push(&format!(" AND ({alias}.position, {alias}.id) {op} ("));
        q.bind(Bind::Int(position));
        q.push(", ");
        q.bind(Bind::BigInt(id));
        q.push(")");
    }
    q.push(&format!(
        " ORDER BY {alias}.position {dir}, {alias}.id {dir} LIMIT "
    ));
    q.bind(Bind::BigInt(page.fetch));
}

/// The first `page.fetch` images of each product, in position order.
pub async fn images_for(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
    page: &NestedPage,
) -> QueryResult<Vec<Image>> {
    let mut q = DynSql::new("SELECT i.* FROM unnest(");
    q.bind(Bind::BigIntArray(product_ids.to_vec()));
    q.push(
        "::int8[]) AS parent(pid) CROSS JOIN LATERAL (SELECT im.* FROM product_images im \
         WHERE im.product_id = parent.pid",
    );
    nested_keyset(&mut q, "im", page);
    q.push(") AS i ORDER BY i.product_id");
    q.into_query().load(conn).await
}

pub async fn images_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<Image>> {
    product_images::table
        .filter(product_images::id.eq_any(ids))
        .select(Image::as_select())
        .load(conn)
        .await
}

/// Price ranges, availability and stock of each product, in `currency`.
pub async fn summaries_for(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
    currency: &str,
    shop_currency: &str,
) -> QueryResult<Vec<ProductSummary>> {
    let sql = format!(
        "SELECT v.product_id, \
                min(v.currency) AS currency, \
                min(v.price_minor)::int8 AS min_price_minor, max(v.price_minor)::int8 AS max_price_minor, \
                min(v.compare_at_minor)::int8 AS min_compare_at_minor, max(v.compare_at_minor)::int8 AS max_compare_at_minor, \
                bool_or(v.inventory_policy = 'CONTINUE' OR v.quantity_available > 0) AS available_for_sale, \
                sum(GREATEST(v.quantity_available, 0))::int8 AS total_inventory \
         FROM (SELECT {} FROM product_variants v {} WHERE v.product_id = ANY($1)) v \
         GROUP BY v.product_id",
        variant_columns("$2", "$3"),
        variant_price_joins("$2", "$3")
    );
    diesel::sql_query(sql)
        .bind::<Array<BigInt>, _>(product_ids)
        .bind::<Text, _>(currency)
        .bind::<Text, _>(shop_currency)
        .load(conn)
        .await
}

pub async fn collections_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<Collection>> {
    collections::table
        .filter(collections::id.eq_any(ids))
        .select(Collection::as_select())
        .load(conn)
        .await
}

pub async fn collections_by_handles(
    conn: &mut AsyncPgConnection,
    handles: &[String],
) -> QueryResult<Vec<Collection>> {
    collections::table
        .filter(collections::handle.eq_any(handles))
        .select(Collection::as_select())
        .load(conn)
        .await
}

/// Up to `limit` published products that share a collection, a type or tags with
/// `product_id`, best matches first (`productRecommendations`).
pub async fn recommendations(
    conn: &mut AsyncPgConnection,
    product_id: i64,
    limit: i64,
) -> QueryResult<Vec<Product>> {
    let sql = format!(
        "SELECT p.* FROM products p, products src \
         WHERE src.id = $1 AND p.id <> src.id AND {PUBLISHED} \
           AND (p.product_type = src.product_type OR p.tags && src.tags \
                OR p.id IN (SELECT cp2.product_id FROM collection_products cp1 \
                            JOIN collection_products cp2 ON cp2.collection_id = cp1.collection_id \
                            WHERE cp1.product_id = src.id)) \
         ORDER BY (CASE WHEN p.product_type = src.product_type THEN 2 ELSE 0 END \
                   + cardinality(ARRAY(SELECT unnest(p.tags) INTERSECT SELECT unnest(src.tags)))) DESC, \
                  p.total_sales DESC, p.id \
         LIMIT $2"
    );
    diesel::sql_query(sql)
        .bind::<BigInt, _>(product_id)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await
}

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
            q.push("('epoch'::timestamptz + ");
            q.bind(Bind::BigInt(value.as_i64().ok_or_else(bad)?));
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
    q.push(" LIMIT ");
    q.bind(Bind::BigInt(page.limit as i64 + 1));
    Ok(())
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

/// Compiles a product search into a boolean SQL condition over `p`.
fn product_condition(q: &mut DynSql, expr: &Expr, shop_currency: &str) -> Result<(), CatalogError> {
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
                product_condition(q, part, shop_currency)?;
            }
            q.push(")");
        }
        Expr::Not(inner) => {
            q.push("NOT (");
            product_condition(q, inner, shop_currency)?;
            q.push(")");
        }
        Expr::Term(term) => product_term(q, term, shop_currency)?,
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
                 (av.inventory_policy = 'CONTINUE' OR COALESCE((SELECT sum(il.on_hand - il.reserved) \
                  FROM inventory_levels il WHERE il.variant_id = av.id), 0) > 0))",
            );
        }
        Some("price" | "variants.price") => {
            let minor = crate::money::parse_minor(&value, shop_currency).ok_or_else(|| {
                CatalogError::BadInput(format!("price: {value:?} is not a decimal amount"))
            })?;
            // A product matches when some variant's price satisfies the comparison;
            // the cheapest and dearest prices bound every variant's.
            let column = match term.cmp {
                Cmp::Gt | Cmp::Ge => "p.max_price_minor",
                Cmp::Lt | Cmp::Le => "p.min_price_minor",
                Cmp::Eq => {
                    q.push("(p.min_price_minor <= ");
                    q.bind(Bind::BigInt(minor));
                    q.push(" AND p.max_price_minor >= ");
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
    match listing.collection_id {
        Some(collection_id) => {
            q.push("cp.position AS sort_position FROM products p JOIN collection_products cp ON cp.product_id = p.id AND cp.collection_id = ");
            q.bind(Bind::BigInt(collection_id));
        }
        None => {
            q.push("NULL::int4 AS sort_position FROM products p");
        }
    }
    q.push(" WHERE ");
    q.push(PUBLISHED);
    if let Some(filter) = &listing.filter {
        q.push(" AND ");
        product_condition(&mut q, filter, shop_currency)?;
    }
    let sort = if listing.sort == ProductSort::Manual && listing.collection_id.is_none() {
        ProductSort::Id
    } else {
        listing.sort
    };
    let spec = product_sort_spec(sort, relevance.as_deref());
    let descending = sort.descending_by_default() ^ listing.reverse ^ listing.page.backward;
    keyset(&mut q, "p", &spec, descending, &listing.page)?;
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

fn simple_condition(q: &mut DynSql, expr: &Expr, alias: &str) -> Result<(), CatalogError> {
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
                simple_condition(q, part, alias)?;
            }
            q.push(")");
        }
        Expr::Not(inner) => {
            q.push("NOT (");
            simple_condition(q, inner, alias)?;
            q.push(")");
        }
        Expr::Term(term) => match term.field.as_deref() {
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
        },
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
/// `containing_product` keeps only collections that hold that product.
pub fn simple_listing_sql(
    table: &'static str,
    filter: Option<&Expr>,
    sort: SimpleSort,
    reverse: bool,
    page: &Page,
    containing_product: Option<i64>,
) -> Result<DynSql, CatalogError> {
    let mut q = DynSql::new(&format!("SELECT t.* FROM {table} t WHERE t.published"));
    if let Some(product_id) = containing_product {
        q.push(" AND t.id IN (SELECT cp.collection_id FROM collection_products cp WHERE cp.product_id = ");
        q.bind(Bind::BigInt(product_id));
        q.push(")");
    }
    if let Some(filter) = filter {
        q.push(" AND ");
        simple_condition(&mut q, filter, "t")?;
    }
    let spec = simple_sort_spec(sort, "t");
    keyset(&mut q, "t", &spec, reverse ^ page.backward, page)?;
    Ok(q)
}

/// The cursor of a row listed by [`list_simple`].
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
