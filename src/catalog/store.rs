//! The catalog's read statements. Each batched function takes every key of one dataloader
//! batch and answers them with one statement, so the number of statements a request sends
//! does not grow with the page size.
//!
//! "First N per parent" reads are raw SQL: `LATERAL ... LIMIT` walks the
//! `(product_id, position, id)` index once per parent, which the query builder cannot say.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::NestedPage;
use super::models::*;
use crate::db::schema::*;
use crate::db::sql::{Bind, DynSql};

/// Storefront visibility of a product row aliased `p`.
pub(crate) const PUBLISHED: &str =
    "p.status = 'ACTIVE' AND p.published_at IS NOT NULL AND p.published_at <= now()";

/// The columns and joins that read a [`Variant`] from `product_variants v`: its price in
/// currency `cur` (falling back to the shop currency `shop` where the catalog has none in
/// `cur`; `None` when they are the same, which saves a join), and its stock.
/// `option_names` is the expression for the product's option names, or `None` when the
/// request does not need them (an empty array then; a grid of prices skips the look-up).
fn variant_select(cur: &str, shop: Option<&str>, option_names: Option<&str>) -> (String, String) {
    let (price, joins) = match shop {
        None => (
            format!(
                "COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, {cur}::text AS currency, \
                 pc.amount_minor IS NOT NULL AS priced"
            ),
            format!(" LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = {cur}"),
        ),
        Some(shop) => (
            format!(
                "COALESCE(pc.amount_minor, ps.amount_minor, 0) AS price_minor, \
                 CASE WHEN pc.amount_minor IS NOT NULL THEN pc.compare_at_minor ELSE ps.compare_at_minor END AS compare_at_minor, \
                 CASE WHEN pc.amount_minor IS NOT NULL THEN {cur}::text ELSE {shop}::text END AS currency, \
                 COALESCE(pc.amount_minor, ps.amount_minor) IS NOT NULL AS priced"
            ),
            format!(
                " LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = {cur} \
                  LEFT JOIN variant_prices ps ON ps.variant_id = v.id AND ps.currency = {shop}"
            ),
        ),
    };
    let columns = format!(
        "v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, \
         v.grams, v.weight_unit, v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, \
         v.created_at, v.updated_at, {price}, \
         v.available AS quantity_available, {} AS option_names",
        option_names.unwrap_or("'{}'::text[]")
    );
    (columns, joins)
}

/// The option names of product `product_id` (an SQL expression), in position order.
fn option_names_of(product_id: &str) -> String {
    format!(
        "ARRAY(SELECT o.name FROM product_options o WHERE o.product_id = {product_id} ORDER BY o.position)"
    )
}

/// Binds the currency and, when it differs, the shop currency; returns their placeholders.
fn bind_currencies(
    q: &mut DynSql,
    currency: &str,
    shop_currency: &str,
) -> (String, Option<String>) {
    let cur = q.add(Bind::Text(currency.to_string()));
    let shop = (currency != shop_currency).then(|| q.add(Bind::Text(shop_currency.to_string())));
    (cur, shop)
}

/// A category with its ancestors (root first).
#[derive(Debug, Clone)]
pub struct CategoryPath {
    pub id: i64,
    pub name: String,
    pub ancestors: Vec<(i64, String)>,
}

#[derive(diesel::QueryableByName)]
struct CategoryRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    leaf: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    depth: i32,
}

/// The categories `ids` with their ancestors, in one statement.
pub async fn categories_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<CategoryPath>> {
    let rows: Vec<CategoryRow> = diesel::sql_query(
        "WITH RECURSIVE up (leaf, id, parent_id, name, depth) AS ( \
             SELECT c.id, c.id, c.parent_id, c.name, 0 FROM categories c WHERE c.id = ANY($1) \
             UNION ALL \
             SELECT up.leaf, c.id, c.parent_id, c.name, up.depth + 1 \
             FROM up JOIN categories c ON c.id = up.parent_id WHERE up.depth < 32) \
         SELECT leaf, id, name, depth FROM up ORDER BY leaf, depth DESC",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids)
    .load(conn)
    .await?;
    let mut out: Vec<CategoryPath> = Vec::new();
    let mut chain: Vec<(i64, String)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        chain.push((row.id, row.name.clone()));
        let last_of_leaf = rows.get(i + 1).is_none_or(|next| next.leaf != row.leaf);
        if last_of_leaf {
            let (id, name) = chain.pop().unwrap_or_default();
            debug_assert_eq!(row.depth, 0);
            out.push(CategoryPath {
                id,
                name,
                ancestors: std::mem::take(&mut chain),
            });
        }
    }
    Ok(out)
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

/// The first `page.fetch` variants of each product, in position order; with their
/// product's option names when `option_names`.
pub async fn variants_for(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
    page: &NestedPage,
    currency: &str,
    shop_currency: &str,
    option_names: bool,
) -> QueryResult<Vec<Variant>> {
    let mut q = DynSql::new("SELECT v.* FROM unnest(");
    q.bind(Bind::BigIntArray(product_ids.to_vec()));
    if option_names {
        // Option names once per product, not once per variant.
        q.push(&format!(
            "::int8[]) AS parent(pid) CROSS JOIN LATERAL (SELECT {} AS names) AS o CROSS JOIN LATERAL (SELECT ",
            option_names_of("parent.pid")
        ));
    } else {
        q.push("::int8[]) AS parent(pid) CROSS JOIN LATERAL (SELECT ");
    }
    let (cur, shop) = bind_currencies(&mut q, currency, shop_currency);
    let (columns, joins) = variant_select(&cur, shop.as_deref(), option_names.then_some("o.names"));
    q.push(&columns);
    q.push(" FROM product_variants v");
    q.push(&joins);
    q.push(" WHERE v.product_id = parent.pid");
    nested_keyset(&mut q, "v", page);
    q.push(") AS v ORDER BY v.product_id, ");
    q.push(&nested_order("v", page));
    q.load(conn).await
}

/// Variants by id (`node`, the variant dataloader), priced in `currency`.
pub async fn variants_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
    currency: &str,
    shop_currency: &str,
) -> QueryResult<Vec<Variant>> {
    by_ids(ids, currency, shop_currency, false).load(conn).await
}

/// The statement of [`variants_by_ids`]; `for_cart` adds the product's title and
/// sellability ([`CartVariant`]).
fn by_ids(ids: &[i64], currency: &str, shop_currency: &str, for_cart: bool) -> DynSql {
    let mut q = DynSql::new("SELECT ");
    let ids = q.add(Bind::BigIntArray(ids.to_vec()));
    let (cur, shop) = bind_currencies(&mut q, currency, shop_currency);
    let names = option_names_of("v.product_id");
    let (columns, joins) = variant_select(&cur, shop.as_deref(), Some(&names));
    q.push(&columns);
    if for_cart {
        // The join that holds the shop currency's price.
        let shop_price = if shop.is_some() { "ps" } else { "pc" };
        q.push(&format!(
            ", p.title AS product_title, \
             COALESCE({PUBLISHED} AND {shop_price}.amount_minor IS NOT NULL, false) AS sellable \
             FROM product_variants v JOIN products p ON p.id = v.product_id"
        ));
    } else {
        q.push(" FROM product_variants v");
    }
    q.push(&joins);
    q.push(&format!(" WHERE v.id = ANY({ids})"));
    q
}

/// A variant as a cart holds it: priced like [`variants_by_ids`], with its product's
/// title and whether it may be sold now.
#[derive(diesel::QueryableByName, Clone, Debug)]
pub struct CartVariant {
    #[diesel(embed)]
    pub variant: Variant,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub product_title: String,
    /// The product is published and active, and the variant has a price in the shop
    /// currency.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub sellable: bool,
}

/// Variants by id as carts and checkout need them, in one statement: prices in
/// `currency` (with the shop currency as fallback), product titles and sellability.
pub async fn cart_variants(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
    currency: &str,
    shop_currency: &str,
) -> QueryResult<Vec<CartVariant>> {
    by_ids(ids, currency, shop_currency, true).load(conn).await
}

/// The order within each parent. The outer query must repeat it: sorting by parent alone
/// does not keep the order the lateral subquery produced.
fn nested_order(alias: &str, page: &NestedPage) -> String {
    let dir = if page.descending { "DESC" } else { "ASC" };
    format!("{alias}.position {dir}, {alias}.id {dir}")
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
    q.push(") AS i ORDER BY i.product_id, ");
    q.push(&nested_order("i", page));
    q.load(conn).await
}

pub async fn images_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<Image>> {
    product_images::table
        .filter(product_images::id.eq_any(ids))
        .select(Image::as_select())
        .load(conn)
        .await
}

/// Price ranges, availability and stock of each product, in `currency` when every
/// variant has a price in it, else all in the shop currency (a range never mixes two).
pub async fn summaries_for(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
    currency: &str,
    shop_currency: &str,
) -> QueryResult<Vec<ProductSummary>> {
    let mut q = DynSql::new("");
    let ids = q.add(Bind::BigIntArray(product_ids.to_vec()));
    let cur = q.add(Bind::Text(currency.to_string()));
    let shop = q.add(Bind::Text(shop_currency.to_string()));
    q.push(&format!(
        "SELECT product_id, \
                CASE WHEN in_cur THEN {cur} ELSE {shop} END AS currency, \
                COALESCE(CASE WHEN in_cur THEN cur_lo ELSE shop_lo END, 0)::int8 AS min_price_minor, \
                COALESCE(CASE WHEN in_cur THEN cur_hi ELSE shop_hi END, 0)::int8 AS max_price_minor, \
                (CASE WHEN in_cur THEN cur_cmp_lo ELSE shop_cmp_lo END)::int8 AS min_compare_at_minor, \
                (CASE WHEN in_cur THEN cur_cmp_hi ELSE shop_cmp_hi END)::int8 AS max_compare_at_minor, \
                available_for_sale, total_inventory \
         FROM (SELECT v.product_id, bool_and(pc.amount_minor IS NOT NULL) AS in_cur, \
                      min(pc.amount_minor) AS cur_lo, max(pc.amount_minor) AS cur_hi, \
                      min(pc.compare_at_minor) AS cur_cmp_lo, max(pc.compare_at_minor) AS cur_cmp_hi, \
                      min(ps.amount_minor) AS shop_lo, max(ps.amount_minor) AS shop_hi, \
                      min(ps.compare_at_minor) AS shop_cmp_lo, max(ps.compare_at_minor) AS shop_cmp_hi, \
                      bool_or(ps.amount_minor IS NOT NULL AND (v.inventory_policy = 'CONTINUE' OR v.available > 0)) AS available_for_sale, \
                      sum(GREATEST(v.available, 0))::int8 AS total_inventory \
               FROM product_variants v \
               LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = {cur} \
               LEFT JOIN variant_prices ps ON ps.variant_id = v.id AND ps.currency = {shop} \
               WHERE v.product_id = ANY({ids}) \
               GROUP BY v.product_id) agg"
    ));
    q.load(conn).await
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
    let mut q = DynSql::new(&sql);
    q.add(Bind::BigInt(product_id));
    q.add(Bind::BigInt(limit));
    q.load(conn).await
}
