//! The catalog as partners see it: whole rows (drafts and archived products included),
//! read from the primary for the admin API, so a partner reads back what it just wrote.
//!
//! Raw SQL here because the rows are the admin API's own shapes: a product without its
//! storefront projections, a collection with its product count (a correlated subquery),
//! a variant with its prices aggregated as JSON in the same statement. Every look-up of
//! many rows takes its keys as one array (`= ANY($1)`), for the admin dataloaders. The
//! plain look-ups of a variant's product go through diesel's DSL.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Int4, Int8, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::product_variants as pv;

#[derive(QueryableByName, Clone, Debug)]
pub struct ProductRow {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub handle: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Text)]
    pub description_html: String,
    #[diesel(sql_type = Text)]
    pub vendor: String,
    #[diesel(sql_type = Text)]
    pub product_type: String,
    #[diesel(sql_type = Array<Text>)]
    pub tags: Vec<String>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub published_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub seo_title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub seo_description: Option<String>,
    #[diesel(sql_type = Nullable<Int8>)]
    pub category_id: Option<i64>,
    #[diesel(sql_type = Int8)]
    pub total_sales: i64,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

const PRODUCT_COLUMNS: &str = "id, handle, title, description_html, vendor, product_type, tags, status, \
     published_at, seo_title, seo_description, category_id, total_sales, created_at, updated_at";

#[derive(QueryableByName, Clone, Debug)]
pub struct VariantRow {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Int8)]
    pub product_id: i64,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub sku: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub barcode: Option<String>,
    #[diesel(sql_type = Int4)]
    pub position: i32,
    #[diesel(sql_type = Array<Nullable<Text>>)]
    pub options: Vec<Option<String>>,
    #[diesel(sql_type = Int4)]
    pub grams: i32,
    #[diesel(sql_type = Bool)]
    pub requires_shipping: bool,
    #[diesel(sql_type = Bool)]
    pub taxable: bool,
    #[diesel(sql_type = Text)]
    pub inventory_policy: String,
    #[diesel(sql_type = Int8)]
    pub available: i64,
    /// `[[currency, amount minor, compare-at minor or null]]` as JSON.
    #[diesel(sql_type = Jsonb)]
    pub prices: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

#[derive(QueryableByName, Clone, Debug)]
pub struct CollectionRow {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub handle: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Text)]
    pub description_html: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub seo_title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub seo_description: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub image_url: Option<String>,
    #[diesel(sql_type = Bool)]
    pub published: bool,
    #[diesel(sql_type = Int8)]
    pub products_count: i64,
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

const COLLECTION_COLUMNS: &str = "c.id, c.handle, c.title, c.description_html, c.seo_title, c.seo_description, \
     c.image_url, c.published, (SELECT count(*) FROM collection_products cp WHERE cp.collection_id = c.id) AS products_count, c.updated_at";

#[derive(QueryableByName, Clone, Debug)]
pub struct CategoryRow {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Int8>)]
    pub parent_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub handle: String,
    #[diesel(sql_type = Text)]
    pub name: String,
}

#[derive(QueryableByName, Clone, Debug)]
pub struct ImageRow {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Int8)]
    pub product_id: i64,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub alt_text: Option<String>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub width: Option<i32>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub height: Option<i32>,
    #[diesel(sql_type = Int4)]
    pub position: i32,
}

#[derive(QueryableByName, Clone, Debug)]
pub struct OptionRow {
    #[diesel(sql_type = Int8)]
    pub product_id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Array<Text>)]
    pub values: Vec<String>,
}

/// Products by id, in the order asked (unknown ids left out).
pub async fn products_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<ProductRow>> {
    let rows: Vec<ProductRow> = diesel::sql_query(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY($1) ORDER BY id"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    let mut by_id: std::collections::HashMap<i64, ProductRow> =
        rows.into_iter().map(|r| (r.id, r)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

pub async fn product_by_handle(
    conn: &mut AsyncPgConnection,
    handle: &str,
) -> QueryResult<Option<ProductRow>> {
    let rows: Vec<ProductRow> = diesel::sql_query(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE handle = $1"
    ))
    .bind::<Text, _>(handle)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Which products a partner lists: all of them, or those matching every filter given.
#[derive(Debug, Default, Clone)]
pub struct ProductFilter {
    pub status: Option<String>,
    pub updated_at_min: Option<DateTime<Utc>>,
    /// Matches title, handle, vendor or a variant's SKU, case-insensitively, as a substring.
    pub query: Option<String>,
}

/// A keyset page of products by id after `after` (descending when `reverse`), `limit`
/// rows.
pub async fn product_page(
    conn: &mut AsyncPgConnection,
    filter: &ProductFilter,
    after: Option<i64>,
    reverse: bool,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    let pattern = filter
        .query
        .as_deref()
        .filter(|q| !q.trim().is_empty())
        .map(|q| {
            format!(
                "%{}%",
                q.trim()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE ($1::int8 IS NULL OR id {cmp} $1) \
           AND ($2::text IS NULL OR status = $2) AND ($3::timestamptz IS NULL OR updated_at >= $3) \
           AND ($4::text IS NULL OR title ILIKE $4 OR handle ILIKE $4 OR vendor ILIKE $4 \
                OR EXISTS (SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND v.sku ILIKE $4)) \
         ORDER BY id {dir} LIMIT $5",
        cmp = if reverse { "<" } else { ">" },
        dir = if reverse { "DESC" } else { "ASC" },
    );
    diesel::sql_query(sql)
        .bind::<Nullable<BigInt>, _>(after)
        .bind::<Nullable<Text>, _>(filter.status.as_deref())
        .bind::<Nullable<Timestamptz>, _>(filter.updated_at_min)
        .bind::<Nullable<Text>, _>(pattern)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await
}

/// `(variant id, product id)` of the variants `ids` (unknown ids left out).
pub async fn products_of_variants(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<(i64, i64)>> {
    pv::table
        .filter(pv::id.eq_any(ids))
        .select((pv::id, pv::product_id))
        .load(conn)
        .await
}

/// `(variant id, product id)` of the variants with these SKUs.
pub async fn products_of_skus(
    conn: &mut AsyncPgConnection,
    skus: &[String],
) -> QueryResult<Vec<(i64, i64)>> {
    pv::table
        .filter(pv::sku.eq_any(skus))
        .select((pv::id, pv::product_id))
        .load(conn)
        .await
}

pub async fn collection_by_id(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> QueryResult<Option<CollectionRow>> {
    let rows: Vec<CollectionRow> = diesel::sql_query(format!(
        "SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.id = $1"
    ))
    .bind::<BigInt, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// A keyset page of collections by id after `after`, `limit` rows.
pub async fn collection_page(
    conn: &mut AsyncPgConnection,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<CollectionRow>> {
    diesel::sql_query(format!(
        "SELECT {COLLECTION_COLUMNS} FROM collections c WHERE ($1::int8 IS NULL OR c.id > $1) ORDER BY c.id LIMIT $2"
    ))
    .bind::<Nullable<BigInt>, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// The whole category tree, parents before children.
pub async fn categories(conn: &mut AsyncPgConnection) -> QueryResult<Vec<CategoryRow>> {
    diesel::sql_query(
        "SELECT id, parent_id, handle, name FROM categories ORDER BY parent_id NULLS FIRST, id",
    )
    .load(conn)
    .await
}

pub async fn category_by_id(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> QueryResult<Option<CategoryRow>> {
    let rows: Vec<CategoryRow> =
        diesel::sql_query("SELECT id, parent_id, handle, name FROM categories WHERE id = $1")
            .bind::<BigInt, _>(id)
            .load(conn)
            .await?;
    Ok(rows.into_iter().next())
}

/// The variants of these products, with their prices, by product then id.
pub async fn variants_of(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
) -> QueryResult<Vec<VariantRow>> {
    diesel::sql_query(
        "SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, \
           ARRAY[v.option1, v.option2, v.option3] AS options, v.grams, v.requires_shipping, v.taxable, \
           v.inventory_policy, v.available, v.updated_at, \
           COALESCE((SELECT jsonb_agg(jsonb_build_array(p.currency, p.amount_minor, p.compare_at_minor) ORDER BY p.currency) \
                     FROM variant_prices p WHERE p.variant_id = v.id), '[]') AS prices \
         FROM product_variants v WHERE v.product_id = ANY($1) ORDER BY v.product_id, v.id",
    )
    .bind::<Array<BigInt>, _>(product_ids)
    .load(conn)
    .await
}

/// The images of these products, by product then id.
pub async fn images_of(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
) -> QueryResult<Vec<ImageRow>> {
    diesel::sql_query(
        "SELECT id, product_id, url, alt_text, width, height, position FROM product_images \
         WHERE product_id = ANY($1) ORDER BY product_id, id",
    )
    .bind::<Array<BigInt>, _>(product_ids)
    .load(conn)
    .await
}

/// The options of these products, by product then position.
pub async fn options_of(
    conn: &mut AsyncPgConnection,
    product_ids: &[i64],
) -> QueryResult<Vec<OptionRow>> {
    diesel::sql_query(
        "SELECT product_id, name, values FROM product_options WHERE product_id = ANY($1) \
         ORDER BY product_id, position",
    )
    .bind::<Array<BigInt>, _>(product_ids)
    .load(conn)
    .await
}
