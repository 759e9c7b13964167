//! The admin schema's roots: thin resolvers over [`crate::admin`]. Which scope each
//! field needs is in [`super::scopes::REQUIRED`]; the check runs before execution.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::types::*;
use crate::admin::{self, AdminError, catalog, inventory, keys, orders, webhooks};
use crate::app::App;
use crate::catalog::writer::{ImageDraft, ProductDraft, VariantDraft};
use crate::db::PgConn;
use crate::graphql::errors::{bad_input, from_db};
use crate::ids;
use crate::pagination::Cursor;

fn app<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    ctx.data_unchecked::<Arc<App>>()
}

fn request<'a>(ctx: &Context<'a>) -> &'a AdminRequest {
    ctx.data_unchecked::<AdminRequest>()
}

fn actor(ctx: &Context<'_>) -> admin::Actor {
    request(ctx).key.actor()
}

/// Whose webhook subscriptions a key sees and deletes: its own, or all with `admin`.
fn owner(ctx: &Context<'_>) -> Option<i64> {
    let key = &request(ctx).key;
    (!keys::grants(&key.scopes, "admin")).then_some(key.id)
}

async fn primary(ctx: &Context<'_>) -> Result<PgConn> {
    app(ctx)
        .db
        .primary(&request(ctx).counter)
        .await
        .map_err(|e| from_db(&e))
}

fn db(e: diesel::result::Error) -> async_graphql::Error {
    from_db(&e.into())
}

/// A global ID of `kind` (or a bare number) as a database id.
fn id_of(kind: &str, id: &ID) -> Result<i64> {
    ids::parse_any(kind, id.as_str())
        .ok_or_else(|| bad_input(format!("{:?} is not a {kind} ID.", id.as_str())))
}

fn ids_of(kind: &str, list: &[ID]) -> Result<Vec<i64>> {
    list.iter().map(|i| id_of(kind, i)).collect()
}

fn after_id(after: Option<&str>) -> Result<Option<i64>> {
    after
        .map(|a| Cursor::decode(a).map(|c| c.id))
        .transpose()
        .map_err(crate::graphql::errors::from_page)
}

fn check_first(first: i32) -> Result<i64> {
    if !(0..=250).contains(&first) {
        return Err(crate::graphql::errors::coded(
            "MAX_PAGE_SIZE_EXCEEDED",
            "first must be between 0 and 250.",
        ));
    }
    Ok(first as i64)
}

fn cursor(id: i64) -> Cursor {
    Cursor::new("ID", serde_json::Value::Null, id)
}

/// Splits a domain result into the payload's value and `userErrors` (database errors
/// become GraphQL errors).
fn split<T>(r: Result<T, AdminError>) -> Result<(Option<T>, Vec<UserError>)> {
    match r {
        Ok(v) => Ok((Some(v), vec![])),
        Err(AdminError::Input(errors)) => Ok((None, errors.into_iter().map(Into::into).collect())),
        Err(AdminError::Db(e)) => Err(db(e)),
    }
}

fn user_error(field: &str, code: &str, message: impl Into<String>) -> UserError {
    UserError {
        field: Some(vec![field.to_string()]),
        message: message.into(),
        code: code.to_string(),
    }
}

async fn product_rows(conn: &mut PgConn, ids: &[i64]) -> Result<Vec<Product>> {
    let rows: Vec<ProductRow> = diesel::sql_query(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY($1) ORDER BY id"
    ))
    .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
    .load(conn)
    .await
    .map_err(db)?;
    // In the order asked.
    let mut by_id: std::collections::HashMap<i64, ProductRow> =
        rows.into_iter().map(|r| (r.id, r)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|r| Product(Arc::new(r)))
        .collect())
}

async fn product_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<Product>> {
    let mut conn = primary(ctx).await?;
    Ok(product_rows(&mut conn, &[id]).await?.into_iter().next())
}

async fn collection_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<Collection>> {
    let mut conn = primary(ctx).await?;
    let row: Option<CollectionRow> = diesel::sql_query(format!(
        "SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.id = $1"
    ))
    .bind::<BigInt, _>(id)
    .get_result(&mut conn)
    .await
    .map(Some)
    .or_else(|e| {
        if e == diesel::result::Error::NotFound {
            Ok(None)
        } else {
            Err(e)
        }
    })
    .map_err(db)?;
    Ok(row.map(|r| Collection(Arc::new(r))))
}

pub struct AdminQuery;

#[Object(name = "QueryRoot")]
impl AdminQuery {
    /// Products by id, newest last (`reverse`: newest first). `query` matches title,
    /// handle, vendor or SKU (case-insensitive substring).
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        query: Option<String>,
        status: Option<String>,
        updated_at_min: Option<DateTime<Utc>>,
        #[graphql(default = false)] reverse: bool,
    ) -> Result<ProductConnection> {
        let first = check_first(first)?;
        let after = after_id(after.as_deref())?;
        let pattern = query.filter(|q| !q.trim().is_empty()).map(|q| {
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
        let mut conn = primary(ctx).await?;
        let rows: Vec<ProductRow> = diesel::sql_query(sql)
            .bind::<Nullable<BigInt>, _>(after)
            .bind::<Nullable<Text>, _>(status)
            .bind::<Nullable<Timestamptz>, _>(updated_at_min)
            .bind::<Nullable<Text>, _>(pattern)
            .bind::<BigInt, _>(first + 1)
            .load(&mut conn)
            .await
            .map_err(db)?;
        let (rows, more) = page(rows, first as usize);
        Ok(ProductConnection::new(
            rows.into_iter()
                .map(|r| (cursor(r.id), Product(Arc::new(r))))
                .collect(),
            more,
            after.is_some(),
        ))
    }

    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        product_by_id(ctx, id_of("Product", &id)?).await
    }

    async fn product_by_handle(
        &self,
        ctx: &Context<'_>,
        handle: String,
    ) -> Result<Option<Product>> {
        let mut conn = primary(ctx).await?;
        let row: Vec<ProductRow> = diesel::sql_query(format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE handle = $1"
        ))
        .bind::<Text, _>(handle)
        .load(&mut conn)
        .await
        .map_err(db)?;
        Ok(row.into_iter().next().map(|r| Product(Arc::new(r))))
    }

    async fn product_variant(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductVariant>> {
        let id = id_of("ProductVariant", &id)?;
        let mut conn = primary(ctx).await?;
        let product: Vec<IdRow> =
            diesel::sql_query("SELECT product_id AS id FROM product_variants WHERE id = $1")
                .bind::<BigInt, _>(id)
                .load::<IdRow>(&mut conn)
                .await
                .map_err(db)?;
        drop(conn);
        let Some(product_id) = <[IdRow]>::first(&product).map(|r| r.id) else {
            return Ok(None);
        };
        let variants = ctx
            .data_unchecked::<AdminDataLoader>()
            .load_one(VariantsOf(product_id))
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        Ok(variants.into_iter().find(|v| v.0.id == id))
    }

    /// Variants by SKU (at most 250), in the order asked; unknown SKUs are left out.
    async fn product_variants_by_sku(
        &self,
        ctx: &Context<'_>,
        skus: Vec<String>,
    ) -> Result<Vec<ProductVariant>> {
        if skus.len() > admin::MAX_BULK {
            return Err(crate::graphql::errors::coded(
                "TOO_MANY_ITEMS",
                "At most 250 SKUs per request.",
            ));
        }
        let mut conn = primary(ctx).await?;
        let rows: Vec<IdPair> =
            diesel::sql_query("SELECT id, product_id FROM product_variants WHERE sku = ANY($1)")
                .bind::<diesel::sql_types::Array<Text>, _>(&skus)
                .load(&mut conn)
                .await
                .map_err(db)?;
        drop(conn);
        let loader = ctx.data_unchecked::<AdminDataLoader>();
        let products = loader
            .load_many(rows.iter().map(|r| VariantsOf(r.product_id)))
            .await
            .map_err(|e| from_db(&e))?;
        let all: Vec<ProductVariant> = products.into_values().flatten().collect();
        Ok(skus
            .iter()
            .filter_map(|s| all.iter().find(|v| v.0.sku.as_deref() == Some(s)).cloned())
            .collect())
    }

    async fn collections(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<CollectionConnection> {
        let first = check_first(first)?;
        let after = after_id(after.as_deref())?;
        let mut conn = primary(ctx).await?;
        let rows: Vec<CollectionRow> = diesel::sql_query(format!(
            "SELECT {COLLECTION_COLUMNS} FROM collections c WHERE ($1::int8 IS NULL OR c.id > $1) ORDER BY c.id LIMIT $2"
        ))
        .bind::<Nullable<BigInt>, _>(after)
        .bind::<BigInt, _>(first + 1)
        .load(&mut conn)
        .await
        .map_err(db)?;
        let (rows, more) = page(rows, first as usize);
        Ok(CollectionConnection::new(
            rows.into_iter()
                .map(|r| (cursor(r.id), Collection(Arc::new(r))))
                .collect(),
            more,
            after.is_some(),
        ))
    }

    async fn collection(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Collection>> {
        collection_by_id(ctx, id_of("Collection", &id)?).await
    }

    /// The whole category tree, parents before children.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let mut conn = primary(ctx).await?;
        diesel::sql_query(
            "SELECT id AS db_id, parent_id AS parent_db_id, handle, name FROM categories ORDER BY parent_id NULLS FIRST, id",
        )
        .load(&mut conn)
        .await
        .map_err(db)
    }

    async fn locations(&self, ctx: &Context<'_>) -> Result<Vec<Location>> {
        let mut conn = primary(ctx).await?;
        Ok(inventory::locations(&mut conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Stock per location of up to 250 variants.
    async fn inventory_levels(
        &self,
        ctx: &Context<'_>,
        variant_ids: Vec<ID>,
    ) -> Result<Vec<InventoryLevel>> {
        if variant_ids.len() > admin::MAX_BULK {
            return Err(crate::graphql::errors::coded(
                "TOO_MANY_ITEMS",
                "At most 250 variants per request.",
            ));
        }
        let ids = ids_of("ProductVariant", &variant_ids)?;
        let mut conn = primary(ctx).await?;
        Ok(inventory::levels_of(&mut conn, &ids)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Orders by id (the order they were placed in; `reverse`: newest first).
    #[allow(clippy::too_many_arguments)]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        status: Option<String>,
        created_at_min: Option<DateTime<Utc>>,
        created_at_max: Option<DateTime<Utc>>,
        email: Option<String>,
        updated_at_min: Option<DateTime<Utc>>,
        #[graphql(default = false)] reverse: bool,
    ) -> Result<OrderConnection> {
        let first = check_first(first)?;
        if let Some(s) = &status
            && !orders::STATUSES.contains(&s.as_str())
        {
            return Err(bad_input(format!(
                "status must be one of {}.",
                orders::STATUSES.join(", ")
            )));
        }
        let after = after_id(after.as_deref())?;
        let filter = orders::Filter {
            status,
            created_min: created_at_min,
            created_max: created_at_max,
            email,
            updated_min: updated_at_min,
        };
        let mut conn = primary(ctx).await?;
        let rows = orders::list(&mut conn, &filter, after, first, reverse)
            .await
            .map_err(db)?;
        let (rows, more) = page(rows, first as usize);
        Ok(OrderConnection::new(
            rows.into_iter()
                .map(|o| (cursor(o.id), Order(Arc::new(o))))
                .collect(),
            more,
            after.is_some(),
        ))
    }

    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let id = id_of("Order", &id)?;
        let mut conn = primary(ctx).await?;
        Ok(crate::checkout::orders::by_id(&mut conn, id)
            .await
            .map_err(db)?
            .map(|o| Order(Arc::new(o))))
    }

    async fn webhook_subscriptions(
        &self,
        ctx: &Context<'_>,
        topic: Option<String>,
    ) -> Result<Vec<WebhookSubscription>> {
        let mut conn = primary(ctx).await?;
        Ok(webhooks::list(&mut conn, topic.as_deref(), owner(ctx))
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn product_export(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductExport>> {
        let id = id_of("ProductExport", &id)?;
        let mut conn = primary(ctx).await?;
        let shop = &app(ctx).config.shop_url;
        Ok(admin::export::get(&mut conn, id)
            .await
            .map_err(db)?
            .map(|e| ProductExport::of(e, shop)))
    }

    async fn product_import(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductImport>> {
        let id = id_of("ProductImport", &id)?;
        let mut conn = primary(ctx).await?;
        let status = crate::jobs::imports::status(&mut conn, id)
            .await
            .map_err(db)?;
        Ok(status.map(|s| ProductImport {
            id: ids::encode("ProductImport", s.id).into(),
            status: s.status,
            rows_done: s.rows_done,
            rows_total: s.rows_total,
            report: s.report.map(async_graphql::Json),
        }))
    }

    /// The key making this request.
    async fn current_api_key(&self, ctx: &Context<'_>) -> ApiKey {
        request(ctx).key.clone().into()
    }

    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let mut conn = primary(ctx).await?;
        Ok(keys::list(&mut conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Every admin change: which key, when, what.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        api_key_id: Option<ID>,
        resource_id: Option<String>,
        #[graphql(default = false)] reverse: bool,
    ) -> Result<AuditLogEntryConnection> {
        let first = check_first(first)?;
        let after = after_id(after.as_deref())?;
        let key = api_key_id.map(|k| id_of("ApiKey", &k)).transpose()?;
        let mut conn = primary(ctx).await?;
        let rows = admin::audit::list(
            &mut conn,
            after,
            first,
            reverse,
            key,
            resource_id.as_deref(),
        )
        .await
        .map_err(db)?;
        let (rows, more) = page(rows, first as usize);
        Ok(AuditLogEntryConnection::new(
            rows.into_iter()
                .map(|e| (cursor(e.id), AuditLogEntry::from(e)))
                .collect(),
            more,
            after.is_some(),
        ))
    }
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(diesel::QueryableByName)]
struct IdPair {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    product_id: i64,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct SeoInput {
    pub title: Option<String>,
    pub description: Option<String>,
}

#[derive(InputObject, Clone, Debug)]
pub struct ImageInput {
    pub url: String,
    pub alt_text: Option<String>,
}

#[derive(InputObject, Clone, Debug)]
pub struct VariantCreateInput {
    pub sku: Option<String>,
    /// Values of the product's options, in order.
    #[graphql(default)]
    pub options: Vec<String>,
    /// In the shop's currency.
    pub price: String,
    pub compare_at_price: Option<String>,
    pub barcode: Option<String>,
    #[graphql(default)]
    pub weight_grams: i32,
    #[graphql(default = true)]
    pub requires_shipping: bool,
    #[graphql(default = true)]
    pub taxable: bool,
    /// DENY (default) or CONTINUE.
    pub inventory_policy: Option<String>,
    /// Stock at the main location.
    pub inventory_quantity: Option<i32>,
    /// URL of one of the product's images.
    pub image_url: Option<String>,
}

#[derive(InputObject, Clone, Debug)]
pub struct ProductCreateInput {
    /// Derived from the title when left out.
    pub handle: Option<String>,
    pub title: String,
    #[graphql(default)]
    pub description_html: String,
    #[graphql(default)]
    pub vendor: String,
    #[graphql(default)]
    pub product_type: String,
    #[graphql(default)]
    pub tags: Vec<String>,
    /// ACTIVE (default), DRAFT or ARCHIVED.
    pub status: Option<String>,
    #[graphql(default = true)]
    pub published: bool,
    pub seo: Option<SeoInput>,
    /// Option names (at most three), e.g. ["Size", "Color"].
    #[graphql(default)]
    pub options: Vec<String>,
    #[graphql(default)]
    pub variants: Vec<VariantCreateInput>,
    #[graphql(default)]
    pub images: Vec<ImageInput>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct ProductUpdateInput {
    pub handle: Option<String>,
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub status: Option<String>,
    pub published: Option<bool>,
    pub seo: Option<SeoInput>,
    /// A category ID; an empty string clears it.
    pub category_id: Option<String>,
}

#[derive(InputObject, Clone, Debug)]
pub struct VariantUpdateInput {
    pub id: ID,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: Option<String>,
    /// An empty string removes the compare-at price.
    pub compare_at_price: Option<String>,
    /// The currency of `price` (the shop's when left out).
    pub currency_code: Option<String>,
    pub inventory_policy: Option<String>,
    pub taxable: Option<bool>,
    pub requires_shipping: Option<bool>,
    pub weight_grams: Option<i32>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct CollectionInput {
    pub handle: Option<String>,
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub seo: Option<SeoInput>,
    pub image_url: Option<String>,
    pub image_alt_text: Option<String>,
    pub published: Option<bool>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct CategoryInput {
    pub handle: Option<String>,
    pub name: Option<String>,
    /// A category ID; an empty string makes it top-level.
    pub parent_id: Option<String>,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventoryQuantityInput {
    pub variant_id: ID,
    pub location_id: ID,
    pub quantity: i64,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventorySetQuantitiesInput {
    /// Why (recorded in the audit log), e.g. "correction", "received".
    pub reason: String,
    pub quantities: Vec<InventoryQuantityInput>,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventoryChangeInput {
    pub variant_id: ID,
    pub location_id: ID,
    pub delta: i64,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventoryAdjustQuantitiesInput {
    pub reason: String,
    pub changes: Vec<InventoryChangeInput>,
}

#[derive(SimpleObject)]
pub struct ProductPayload {
    pub product: Option<Product>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ProductsBulkPayload {
    pub products: Vec<Product>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct DeletePayload {
    pub deleted_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct VariantsPayload {
    pub product_variants: Vec<ProductVariant>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct VariantsDeletePayload {
    pub deleted_count: i32,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ImagePayload {
    pub image_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct CollectionPayload {
    pub collection: Option<Collection>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct CategoryPayload {
    pub category: Option<Category>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct LocationPayload {
    pub location: Option<Location>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct InventoryPayload {
    /// The levels changed, with their new quantities.
    pub inventory_levels: Vec<InventoryLevel>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct OrderPayload {
    pub order: Option<Order>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ProductExportPayload {
    pub export: Option<ProductExport>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ProductImportPayload {
    pub import: Option<ProductImport>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct WebhookSubscriptionPayload {
    pub webhook_subscription: Option<WebhookSubscription>,
    /// Signs every delivery (HMAC-SHA256); shown only here.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ApiKeyPayload {
    pub api_key: Option<ApiKey>,
    /// The key itself: shown once, never stored.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

fn money(field: &[&str], text: &str, currency: &str) -> Result<i64, AdminError> {
    crate::money::parse_minor(text.trim(), currency)
        .filter(|m| *m >= 0)
        .ok_or_else(|| {
            AdminError::input(
                field,
                "INVALID",
                format!("{text:?} is not an amount in {currency}."),
            )
        })
}

fn draft_of(
    input: &ProductCreateInput,
    at: &str,
    currency: &str,
) -> Result<ProductDraft, AdminError> {
    let handle = input
        .handle
        .clone()
        .unwrap_or_else(|| catalog::slug(&input.title));
    let mut variants = Vec::with_capacity(input.variants.len());
    for (i, v) in input.variants.iter().enumerate() {
        let idx = i.to_string();
        let price = money(&[at, "variants", &idx, "price"], &v.price, currency)?;
        let compare = v
            .compare_at_price
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| money(&[at, "variants", &idx, "compareAtPrice"], c, currency))
            .transpose()?;
        if v.options.len() > 3 {
            return Err(AdminError::input(
                &[at, "variants", &idx, "options"],
                "INVALID",
                "At most three option values.",
            ));
        }
        let policy = v.inventory_policy.clone().unwrap_or_else(|| "DENY".into());
        if policy != "DENY" && policy != "CONTINUE" {
            return Err(AdminError::input(
                &[at, "variants", &idx, "inventoryPolicy"],
                "INVALID",
                "DENY or CONTINUE.",
            ));
        }
        let mut options: [Option<String>; 3] = [None, None, None];
        for (k, o) in v.options.iter().enumerate() {
            options[k] = Some(o.clone());
        }
        if options[0].is_none() {
            options[0] = Some("Default Title".into());
        }
        variants.push(VariantDraft {
            sku: v.sku.clone().filter(|s| !s.trim().is_empty()),
            options,
            grams: v.weight_grams,
            weight_unit: "KILOGRAMS".into(),
            requires_shipping: v.requires_shipping,
            taxable: v.taxable,
            inventory_policy: policy,
            barcode: v.barcode.clone(),
            price_minor: price,
            compare_at_minor: compare,
            inventory: v.inventory_quantity,
            image_url: v.image_url.clone(),
        });
    }
    let mut option_names = input.options.clone();
    if option_names.is_empty() {
        option_names.push("Title".into());
    }
    Ok(ProductDraft {
        handle,
        title: input.title.clone(),
        description_html: input.description_html.clone(),
        vendor: input.vendor.clone(),
        product_type: input.product_type.clone(),
        tags: input.tags.clone(),
        published: input.published,
        status: input.status.clone().unwrap_or_else(|| "ACTIVE".into()),
        seo_title: input.seo.as_ref().and_then(|s| s.title.clone()),
        seo_description: input.seo.as_ref().and_then(|s| s.description.clone()),
        option_names,
        variants,
        images: input
            .images
            .iter()
            .enumerate()
            .map(|(i, img)| ImageDraft {
                url: img.url.clone(),
                alt: img.alt_text.clone(),
                position: i as i32 + 1,
            })
            .collect(),
    })
}

/// An optional ID where an empty string means "none": `Some(None)` clears.
fn clearable(kind: &str, text: &Option<String>) -> Result<Option<Option<i64>>> {
    match text.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(t) => Ok(Some(Some(id_of(kind, &ID::from(t))?))),
    }
}

pub struct AdminMutation;

#[Object(name = "Mutation")]
impl AdminMutation {
    async fn product_create(
        &self,
        ctx: &Context<'_>,
        input: ProductCreateInput,
    ) -> Result<ProductPayload> {
        let currency = &app(ctx).config.shop_currency;
        let (id, user_errors) = split(match draft_of(&input, "input", currency) {
            Ok(draft) => {
                let mut conn = primary(ctx).await?;
                catalog::create_product(&mut conn, &draft, currency, &actor(ctx)).await
            }
            Err(e) => Err(e),
        })?;
        let product = match id {
            Some(id) => product_by_id(ctx, id).await?,
            None => None,
        };
        Ok(ProductPayload {
            product,
            user_errors,
        })
    }

    /// Creates or updates up to 250 products by handle, all or none.
    async fn products_bulk_upsert(
        &self,
        ctx: &Context<'_>,
        products: Vec<ProductCreateInput>,
    ) -> Result<ProductsBulkPayload> {
        if products.len() > admin::MAX_BULK {
            return Ok(ProductsBulkPayload {
                products: vec![],
                user_errors: vec![admin::too_many("products", products.len()).into()],
            });
        }
        let currency = &app(ctx).config.shop_currency;
        let drafts: Result<Vec<ProductDraft>, AdminError> = products
            .iter()
            .enumerate()
            .map(|(i, p)| draft_of(p, &format!("products.{i}"), currency))
            .collect();
        let mut conn = primary(ctx).await?;
        let (ids, user_errors) = split(match drafts {
            Ok(drafts) => catalog::upsert_products(&mut conn, &drafts, currency, &actor(ctx)).await,
            Err(e) => Err(e),
        })?;
        let products = match ids {
            Some(ids) => product_rows(&mut conn, &ids).await?,
            None => vec![],
        };
        Ok(ProductsBulkPayload {
            products,
            user_errors,
        })
    }

    async fn product_update(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ProductUpdateInput,
    ) -> Result<ProductPayload> {
        let id = id_of("Product", &id)?;
        let patch = catalog::ProductPatch {
            handle: input.handle,
            title: input.title,
            description_html: input.description_html,
            vendor: input.vendor,
            product_type: input.product_type,
            tags: input.tags,
            status: input.status,
            published: input.published,
            seo_title: input.seo.as_ref().and_then(|s| s.title.clone()),
            seo_description: input.seo.as_ref().and_then(|s| s.description.clone()),
            category_id: clearable("Category", &input.category_id)?,
        };
        let mut conn = primary(ctx).await?;
        let (found, user_errors) = updated(
            catalog::update_product(&mut conn, id, &patch, &actor(ctx)).await,
            "product",
        )?;
        drop(conn);
        let product = if found {
            product_by_id(ctx, id).await?
        } else {
            None
        };
        Ok(ProductPayload {
            product,
            user_errors,
        })
    }

    async fn product_delete(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePayload> {
        let db_id = id_of("Product", &id)?;
        let mut conn = primary(ctx).await?;
        deleted(
            id,
            catalog::delete_product(&mut conn, db_id, &actor(ctx)).await,
            "product",
        )
    }

    /// Updates up to 250 variants (prices, SKUs, policies), all or none.
    async fn product_variants_bulk_update(
        &self,
        ctx: &Context<'_>,
        variants: Vec<VariantUpdateInput>,
    ) -> Result<VariantsPayload> {
        if variants.len() > admin::MAX_BULK {
            return Ok(VariantsPayload {
                product_variants: vec![],
                user_errors: vec![admin::too_many("variants", variants.len()).into()],
            });
        }
        let shop = app(ctx).config.shop_currency.clone();
        let mut patches = Vec::with_capacity(variants.len());
        let mut errors = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            let idx = i.to_string();
            let currency = v
                .currency_code
                .clone()
                .unwrap_or_else(|| shop.clone())
                .to_uppercase();
            if crate::money::exponent(&currency).is_none() {
                errors.push(admin::UserError::new(
                    &["variants", &idx, "currencyCode"],
                    "INVALID",
                    "Unknown currency.",
                ));
                continue;
            }
            let price = v
                .price
                .as_deref()
                .map(|p| money(&["variants", &idx, "price"], p, &currency))
                .transpose();
            let compare = match v.compare_at_price.as_deref() {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(c) => money(&["variants", &idx, "compareAtPrice"], c, &currency)
                    .map(|m| Some(Some(m))),
            };
            match (id_of("ProductVariant", &v.id), price, compare) {
                (Ok(id), Ok(price_minor), Ok(compare_at_minor)) => {
                    patches.push(catalog::VariantPatch {
                        id,
                        sku: v.sku.clone(),
                        barcode: v.barcode.clone(),
                        price_minor,
                        compare_at_minor,
                        currency: Some(currency),
                        inventory_policy: v.inventory_policy.clone(),
                        taxable: v.taxable,
                        requires_shipping: v.requires_shipping,
                        grams: v.weight_grams,
                    })
                }
                (Err(_), _, _) => errors.push(admin::UserError::new(
                    &["variants", &idx, "id"],
                    "INVALID",
                    "Not a ProductVariant ID.",
                )),
                (_, Err(AdminError::Input(e)), _) | (_, _, Err(AdminError::Input(e))) => {
                    errors.extend(e)
                }
                (_, Err(AdminError::Db(e)), _) | (_, _, Err(AdminError::Db(e))) => {
                    return Err(db(e));
                }
            }
        }
        if !errors.is_empty() {
            return Ok(VariantsPayload {
                product_variants: vec![],
                user_errors: errors.into_iter().map(Into::into).collect(),
            });
        }
        let mut conn = primary(ctx).await?;
        let (ids, user_errors) =
            split(catalog::update_variants(&mut conn, &patches, &shop, &actor(ctx)).await)?;
        drop(conn);
        let mut product_variants = Vec::new();
        if let Some(ids) = ids {
            let mut conn = primary(ctx).await?;
            let rows: Vec<IdPair> =
                diesel::sql_query("SELECT id, product_id FROM product_variants WHERE id = ANY($1)")
                    .bind::<diesel::sql_types::Array<BigInt>, _>(&ids)
                    .load(&mut conn)
                    .await
                    .map_err(db)?;
            drop(conn);
            let loaded = ctx
                .data_unchecked::<AdminDataLoader>()
                .load_many(rows.iter().map(|r| VariantsOf(r.product_id)))
                .await
                .map_err(|e| from_db(&e))?;
            let all: Vec<ProductVariant> = loaded.into_values().flatten().collect();
            product_variants = ids
                .iter()
                .filter_map(|id| all.iter().find(|v| v.0.id == *id).cloned())
                .collect();
        }
        Ok(VariantsPayload {
            product_variants,
            user_errors,
        })
    }

    async fn product_variants_bulk_delete(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        variants_ids: Vec<ID>,
    ) -> Result<VariantsDeletePayload> {
        let product = id_of("Product", &product_id)?;
        let ids = ids_of("ProductVariant", &variants_ids)?;
        let mut conn = primary(ctx).await?;
        let (n, user_errors) =
            split(catalog::delete_variants(&mut conn, product, &ids, &actor(ctx)).await)?;
        Ok(VariantsDeletePayload {
            deleted_count: n.unwrap_or(0) as i32,
            user_errors,
        })
    }

    async fn product_image_create(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        url: String,
        alt_text: Option<String>,
    ) -> Result<ImagePayload> {
        let product = id_of("Product", &product_id)?;
        let mut conn = primary(ctx).await?;
        let (id, user_errors) = split(
            catalog::add_image(&mut conn, product, &url, alt_text.as_deref(), &actor(ctx)).await,
        )?;
        Ok(ImagePayload {
            image_id: id.map(|i| ids::encode("ProductImage", i).into()),
            user_errors,
        })
    }

    async fn product_image_update(
        &self,
        ctx: &Context<'_>,
        id: ID,
        alt_text: Option<String>,
        position: Option<i32>,
    ) -> Result<ImagePayload> {
        let db_id = id_of("ProductImage", &id)?;
        let mut conn = primary(ctx).await?;
        let (found, user_errors) = updated(
            catalog::update_image(&mut conn, db_id, alt_text.as_deref(), position, &actor(ctx))
                .await,
            "image",
        )?;
        Ok(ImagePayload {
            image_id: found.then_some(id),
            user_errors,
        })
    }

    async fn product_image_delete(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePayload> {
        let db_id = id_of("ProductImage", &id)?;
        let mut conn = primary(ctx).await?;
        deleted(
            id,
            catalog::delete_image(&mut conn, db_id, &actor(ctx)).await,
            "image",
        )
    }

    async fn collection_create(
        &self,
        ctx: &Context<'_>,
        input: CollectionInput,
    ) -> Result<CollectionPayload> {
        let mut conn = primary(ctx).await?;
        let (id, user_errors) = split(
            catalog::create_collection(&mut conn, &collection_input(&input), &actor(ctx)).await,
        )?;
        drop(conn);
        let collection = match id {
            Some(id) => collection_by_id(ctx, id).await?,
            None => None,
        };
        Ok(CollectionPayload {
            collection,
            user_errors,
        })
    }

    async fn collection_update(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CollectionInput,
    ) -> Result<CollectionPayload> {
        let id = id_of("Collection", &id)?;
        let mut conn = primary(ctx).await?;
        let (found, user_errors) = updated(
            catalog::update_collection(&mut conn, id, &collection_input(&input), &actor(ctx)).await,
            "collection",
        )?;
        drop(conn);
        let collection = if found {
            collection_by_id(ctx, id).await?
        } else {
            None
        };
        Ok(CollectionPayload {
            collection,
            user_errors,
        })
    }

    async fn collection_delete(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePayload> {
        let db_id = id_of("Collection", &id)?;
        let mut conn = primary(ctx).await?;
        deleted(
            id,
            catalog::delete_collection(&mut conn, db_id, &actor(ctx)).await,
            "collection",
        )
    }

    /// Appends up to 250 products to a collection's manual order.
    async fn collection_add_products(
        &self,
        ctx: &Context<'_>,
        id: ID,
        product_ids: Vec<ID>,
    ) -> Result<CollectionPayload> {
        collection_members(ctx, id, product_ids, true).await
    }

    async fn collection_remove_products(
        &self,
        ctx: &Context<'_>,
        id: ID,
        product_ids: Vec<ID>,
    ) -> Result<CollectionPayload> {
        collection_members(ctx, id, product_ids, false).await
    }

    async fn category_create(
        &self,
        ctx: &Context<'_>,
        input: CategoryInput,
    ) -> Result<CategoryPayload> {
        let domain = category_input(&input)?;
        let mut conn = primary(ctx).await?;
        let (id, user_errors) =
            split(catalog::create_category(&mut conn, &domain, &actor(ctx)).await)?;
        let category = match id {
            Some(id) => category_by_id(&mut conn, id).await?,
            None => None,
        };
        Ok(CategoryPayload {
            category,
            user_errors,
        })
    }

    async fn category_update(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CategoryInput,
    ) -> Result<CategoryPayload> {
        let id = id_of("Category", &id)?;
        let domain = category_input(&input)?;
        let mut conn = primary(ctx).await?;
        let (found, user_errors) = updated(
            catalog::update_category(&mut conn, id, &domain, &actor(ctx)).await,
            "category",
        )?;
        let category = if found {
            category_by_id(&mut conn, id).await?
        } else {
            None
        };
        Ok(CategoryPayload {
            category,
            user_errors,
        })
    }

    async fn category_delete(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePayload> {
        let db_id = id_of("Category", &id)?;
        let mut conn = primary(ctx).await?;
        deleted(
            id,
            catalog::delete_category(&mut conn, db_id, &actor(ctx)).await,
            "category",
        )
    }

    async fn location_add(&self, ctx: &Context<'_>, name: String) -> Result<LocationPayload> {
        let mut conn = primary(ctx).await?;
        let (loc, user_errors) =
            split(inventory::add_location(&mut conn, &name, &actor(ctx)).await)?;
        Ok(LocationPayload {
            location: loc.map(Into::into),
            user_errors,
        })
    }

    /// Sets on-hand quantities (a stock count), up to 250 at once, all or none.
    async fn inventory_set_quantities(
        &self,
        ctx: &Context<'_>,
        input: InventorySetQuantitiesInput,
    ) -> Result<InventoryPayload> {
        let changes = input
            .quantities
            .iter()
            .map(|q| {
                Ok(inventory::Change {
                    variant_id: id_of("ProductVariant", &q.variant_id)?,
                    location_id: id_of("Location", &q.location_id)?,
                    quantity: q.quantity,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        inventory_change(ctx, &changes, false, &input.reason).await
    }

    /// Adds to or takes from on-hand quantities, up to 250 at once, all or none.
    async fn inventory_adjust_quantities(
        &self,
        ctx: &Context<'_>,
        input: InventoryAdjustQuantitiesInput,
    ) -> Result<InventoryPayload> {
        let changes = input
            .changes
            .iter()
            .map(|q| {
                Ok(inventory::Change {
                    variant_id: id_of("ProductVariant", &q.variant_id)?,
                    location_id: id_of("Location", &q.location_id)?,
                    quantity: q.delta,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        inventory_change(ctx, &changes, true, &input.reason).await
    }

    async fn order_fulfill(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tracking_number: Option<String>,
        tracking_url: Option<String>,
    ) -> Result<OrderPayload> {
        let id = id_of("Order", &id)?;
        let mut conn = primary(ctx).await?;
        let r = orders::fulfill(
            &mut conn,
            id,
            tracking_number.as_deref(),
            tracking_url.as_deref(),
            &actor(ctx),
        )
        .await;
        order_payload(r)
    }

    /// Cancels an order: unpaid, its stock is released; paid, it is refunded in full and
    /// restocked.
    async fn order_cancel(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<OrderPayload> {
        let id = id_of("Order", &id)?;
        let app = app(ctx);
        let mut conn = primary(ctx).await?;
        let r = orders::cancel(
            &mut conn,
            id,
            &reason,
            &app.payments,
            &app.config.checkout.hooks,
            &actor(ctx),
        )
        .await;
        order_payload(r)
    }

    /// Refunds part (`amount`, in the order's currency) or all of a paid order.
    async fn order_refund(
        &self,
        ctx: &Context<'_>,
        id: ID,
        amount: Option<String>,
    ) -> Result<OrderPayload> {
        let id = id_of("Order", &id)?;
        let app = app(ctx);
        let mut conn = primary(ctx).await?;
        let currency = crate::checkout::orders::by_id(&mut conn, id)
            .await
            .map_err(db)?
            .map(|o| o.currency);
        let Some(currency) = currency else {
            return Ok(OrderPayload {
                order: None,
                user_errors: vec![user_error("id", "NOT_FOUND", "No such order.")],
            });
        };
        let amount = match amount
            .as_deref()
            .map(|a| money(&["amount"], a, &currency))
            .transpose()
        {
            Ok(a) => a,
            Err(e) => return order_payload(Err(e)),
        };
        let r = orders::refund(&mut conn, id, amount, &app.payments, &actor(ctx)).await;
        order_payload(r)
    }

    /// Starts a CSV export of the catalog (Shopify's product format), as a job.
    async fn product_export_create(&self, ctx: &Context<'_>) -> Result<ProductExportPayload> {
        let mut conn = primary(ctx).await?;
        let export = admin::export::create(&mut conn, &actor(ctx))
            .await
            .map_err(db)?;
        Ok(ProductExportPayload {
            export: Some(ProductExport::of(export, &app(ctx).config.shop_url)),
            user_errors: vec![],
        })
    }

    /// Imports a Shopify product CSV, as a job (`productImport` reports progress).
    async fn product_import_create(
        &self,
        ctx: &Context<'_>,
        csv: String,
        filename: Option<String>,
    ) -> Result<ProductImportPayload> {
        if !csv.lines().next().is_some_and(|h| h.contains("Handle")) {
            return Ok(ProductImportPayload {
                import: None,
                user_errors: vec![user_error(
                    "csv",
                    "INVALID",
                    "Not a Shopify product CSV: there is no Handle column.",
                )],
            });
        }
        let mut conn = primary(ctx).await?;
        let name = filename.unwrap_or_else(|| "admin-api.csv".into());
        let id = diesel_async::AsyncConnection::transaction::<_, diesel::result::Error, _>(
            &mut *conn,
            async |conn| {
                let id = crate::jobs::imports::enqueue(conn, &name, &csv).await?;
                admin::audit::record(
                    conn,
                    &actor(ctx),
                    "productImportCreate",
                    "ProductImport",
                    Some(id.to_string()),
                    serde_json::json!({ "filename": name, "bytes": csv.len() }),
                )
                .await?;
                Ok(id)
            },
        )
        .await
        .map_err(db)?;
        Ok(ProductImportPayload {
            import: Some(ProductImport {
                id: ids::encode("ProductImport", id).into(),
                status: "QUEUED".into(),
                rows_done: 0,
                rows_total: None,
                report: None,
            }),
            user_errors: vec![],
        })
    }

    async fn webhook_subscription_create(
        &self,
        ctx: &Context<'_>,
        topic: String,
        callback_url: String,
    ) -> Result<WebhookSubscriptionPayload> {
        let mut conn = primary(ctx).await?;
        let allow_private = app(ctx).config.webhook_allow_private_targets;
        let (created, user_errors) = split(
            webhooks::create(&mut conn, &topic, &callback_url, allow_private, &actor(ctx)).await,
        )?;
        app(ctx).config.checkout.hooks.topics.forget();
        let (sub, secret) = match created {
            Some((s, secret)) => (Some(s.into()), Some(secret)),
            None => (None, None),
        };
        Ok(WebhookSubscriptionPayload {
            webhook_subscription: sub,
            secret,
            user_errors,
        })
    }

    async fn webhook_subscription_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<DeletePayload> {
        let db_id = id_of("WebhookSubscription", &id)?;
        let mut conn = primary(ctx).await?;
        let r = webhooks::delete(&mut conn, db_id, owner(ctx), &actor(ctx)).await;
        app(ctx).config.checkout.hooks.topics.forget();
        deleted(id, r, "webhook subscription")
    }

    async fn api_key_create(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Vec<String>,
        plan: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiKeyPayload> {
        let plans: Vec<String> = app(ctx)
            .config
            .rate_limits
            .plans
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let mut conn = primary(ctx).await?;
        let new = keys::NewKey {
            name: &name,
            scopes: &scopes,
            plan: &plan,
            expires_at,
        };
        let (created, user_errors) =
            split(keys::create(&mut conn, &new, &plans, &actor(ctx)).await)?;
        let (key, secret) = match created {
            Some((k, s)) => (Some(k.into()), Some(s)),
            None => (None, None),
        };
        Ok(ApiKeyPayload {
            api_key: key,
            secret,
            user_errors,
        })
    }

    /// Revokes a key; it stops working at once on every gateway.
    async fn api_key_revoke(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKeyPayload> {
        let db_id = id_of("ApiKey", &id)?;
        let mut conn = primary(ctx).await?;
        let key = keys::revoke(&mut conn, db_id, &actor(ctx))
            .await
            .map_err(db)?;
        let user_errors = if key.is_none() {
            vec![user_error("id", "NOT_FOUND", "No such key.")]
        } else {
            vec![]
        };
        Ok(ApiKeyPayload {
            api_key: key.map(Into::into),
            secret: None,
            user_errors,
        })
    }
}

/// The outcome of an update that may match no row: whether it did, and the user errors
/// (`NOT_FOUND` naming `what` when it did not).
fn updated(r: Result<bool, AdminError>, what: &str) -> Result<(bool, Vec<UserError>)> {
    let (found, mut user_errors) = split(r)?;
    if found == Some(false) {
        user_errors.push(user_error("id", "NOT_FOUND", format!("No such {what}.")));
    }
    Ok((found == Some(true), user_errors))
}

fn deleted(id: ID, r: Result<bool, AdminError>, what: &str) -> Result<DeletePayload> {
    let (found, user_errors) = updated(r, what)?;
    Ok(DeletePayload {
        deleted_id: found.then_some(id),
        user_errors,
    })
}

fn order_payload(r: Result<crate::checkout::orders::Order, AdminError>) -> Result<OrderPayload> {
    let (order, user_errors) = split(r)?;
    Ok(OrderPayload {
        order: order.map(|o| Order(Arc::new(o))),
        user_errors,
    })
}

fn collection_input(input: &CollectionInput) -> catalog::CollectionInput {
    catalog::CollectionInput {
        handle: input.handle.clone(),
        title: input.title.clone(),
        description_html: input.description_html.clone(),
        seo_title: input.seo.as_ref().and_then(|s| s.title.clone()),
        seo_description: input.seo.as_ref().and_then(|s| s.description.clone()),
        image_url: input.image_url.clone(),
        image_alt: input.image_alt_text.clone(),
        published: input.published,
    }
}

fn category_input(input: &CategoryInput) -> Result<catalog::CategoryInput> {
    Ok(catalog::CategoryInput {
        handle: input.handle.clone(),
        name: input.name.clone(),
        parent_id: clearable("Category", &input.parent_id)?,
    })
}

async fn category_by_id(conn: &mut PgConn, id: i64) -> Result<Option<Category>> {
    let rows: Vec<Category> = diesel::sql_query(
        "SELECT id AS db_id, parent_id AS parent_db_id, handle, name FROM categories WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .load(conn)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().next())
}

async fn collection_members(
    ctx: &Context<'_>,
    id: ID,
    product_ids: Vec<ID>,
    add: bool,
) -> Result<CollectionPayload> {
    let id = id_of("Collection", &id)?;
    let products = ids_of("Product", &product_ids)?;
    let mut conn = primary(ctx).await?;
    let (done, user_errors) =
        split(catalog::collection_products(&mut conn, id, &products, add, &actor(ctx)).await)?;
    drop(conn);
    let collection = if done.is_some() {
        collection_by_id(ctx, id).await?
    } else {
        None
    };
    Ok(CollectionPayload {
        collection,
        user_errors,
    })
}

async fn inventory_change(
    ctx: &Context<'_>,
    changes: &[inventory::Change],
    adjust: bool,
    reason: &str,
) -> Result<InventoryPayload> {
    let threshold = app(ctx).config.checkout.inventory_low_threshold;
    let mut conn = primary(ctx).await?;
    let (levels, user_errors) =
        split(inventory::apply(&mut conn, changes, adjust, reason, threshold, &actor(ctx)).await)?;
    let inventory_levels = match levels {
        Some(levels) => {
            let ids: Vec<i64> = levels.iter().map(|l| l.variant_id).collect();
            let all = inventory::levels_of(&mut conn, &ids).await.map_err(db)?;
            all.into_iter()
                .filter(|r| {
                    levels
                        .iter()
                        .any(|l| l.variant_id == r.variant_id && l.location_id == r.location_id)
                })
                .map(Into::into)
                .collect()
        }
        None => vec![],
    };
    Ok(InventoryPayload {
        inventory_levels,
        user_errors,
    })
}
