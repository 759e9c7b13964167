//! Output types of the admin schema (Shopify Admin API names where one exists). Their
//! relations (variants, images, options, inventory levels, order lines) are batched by
//! [`AdminLoader`], one statement per relation per request.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, ID, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::app::App;
use crate::catalog::records::{self, CategoryRow, CollectionRow, ProductRow, VariantRow};
use crate::db::StatementCounter;
use crate::graphql::errors::from_db;
use crate::graphql::types::common::Seo;
use crate::ids;
use crate::money::format_minor;
use crate::pagination::Cursor;

/// A field of an input that was not accepted, and why.
#[derive(SimpleObject, Clone, Debug)]
pub struct UserError {
    /// The path to the input field that caused the error.
    pub field: Option<Vec<String>>,
    pub message: String,
    /// A code to switch on: `INVALID`, `BLANK`, `TAKEN`, `NOT_FOUND`, `TOO_MANY_ITEMS`,
    /// `DUPLICATE`, `INVALID_STATE`, `PAYMENT_FAILED`.
    pub code: String,
}

impl From<crate::partners::UserError> for UserError {
    fn from(e: crate::partners::UserError) -> Self {
        Self {
            field: (!e.field.is_empty()).then_some(e.field),
            message: e.message,
            code: e.code.to_string(),
        }
    }
}

/// An amount in a currency.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "MoneyV2")]
pub struct Money {
    /// Decimal money amount.
    pub amount: String,
    pub currency_code: String,
}

impl Money {
    pub fn of(minor: i64, currency: &str) -> Self {
        Self {
            amount: format_minor(minor, currency),
            currency_code: currency.to_string(),
        }
    }
}

/// A product, as partners manage it.
#[derive(Clone, Debug)]
pub struct Product(pub Arc<ProductRow>);

#[async_graphql::Object(name = "Product")]
impl Product {
    async fn id(&self) -> ID {
        ids::encode("Product", self.0.id).into()
    }
    async fn handle(&self) -> &str {
        &self.0.handle
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description_html(&self) -> &str {
        &self.0.description_html
    }
    async fn vendor(&self) -> &str {
        &self.0.vendor
    }
    async fn product_type(&self) -> &str {
        &self.0.product_type
    }
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }
    /// ACTIVE, DRAFT or ARCHIVED.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }
    async fn seo(&self) -> Seo {
        Seo {
            title: self.0.seo_title.clone(),
            description: self.0.seo_description.clone(),
        }
    }
    async fn category_id(&self) -> Option<ID> {
        self.0
            .category_id
            .map(|id| ids::encode("Category", id).into())
    }
    /// Units sold (paid orders).
    async fn total_sales(&self) -> i64 {
        self.0.total_sales
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn options(&self, ctx: &Context<'_>) -> Result<Vec<ProductOption>> {
        Ok(load(ctx, OptionsOf(self.0.id)).await?.unwrap_or_default())
    }
    async fn variants(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<ProductVariantConnection> {
        let all = load(ctx, VariantsOf(self.0.id)).await?.unwrap_or_default();
        let (rows, more) = slice(all, first, after.as_deref(), |v| v.0.id)?;
        Ok(ProductVariantConnection::new(rows, more, false))
    }
    async fn images(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<ImageConnection> {
        let all = load(ctx, ImagesOf(self.0.id)).await?.unwrap_or_default();
        let (rows, more) = slice(all, first, after.as_deref(), |i| i.db_id)?;
        Ok(ImageConnection::new(rows, more, false))
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ProductVariant(pub Arc<VariantRow>);

#[async_graphql::Object(name = "ProductVariant")]
impl ProductVariant {
    async fn id(&self) -> ID {
        ids::encode("ProductVariant", self.0.id).into()
    }
    async fn product_id(&self) -> ID {
        ids::encode("Product", self.0.product_id).into()
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn sku(&self) -> Option<&str> {
        self.0.sku.as_deref()
    }
    async fn barcode(&self) -> Option<&str> {
        self.0.barcode.as_deref()
    }
    async fn position(&self) -> i32 {
        self.0.position
    }
    async fn selected_options(&self, ctx: &Context<'_>) -> Result<Vec<SelectedOption>> {
        let names = load(ctx, OptionsOf(self.0.product_id))
            .await?
            .unwrap_or_default();
        Ok(names
            .iter()
            .zip(&self.0.options)
            .filter_map(|(o, v)| {
                v.as_ref().map(|v| SelectedOption {
                    name: o.name.clone(),
                    value: v.clone(),
                })
            })
            .collect())
    }
    async fn weight_grams(&self) -> i32 {
        self.0.grams
    }
    async fn requires_shipping(&self) -> bool {
        self.0.requires_shipping
    }
    async fn taxable(&self) -> bool {
        self.0.taxable
    }
    /// DENY or CONTINUE.
    async fn inventory_policy(&self) -> &str {
        &self.0.inventory_policy
    }
    /// On hand minus reserved, over all locations.
    async fn available_quantity(&self) -> i64 {
        self.0.available
    }
    /// The price in each currency the variant is priced in.
    async fn prices(&self) -> Vec<VariantPrice> {
        self.0
            .prices
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|p| {
                        let currency = p.get(0)?.as_str()?;
                        let amount = p.get(1)?.as_i64()?;
                        Some(VariantPrice {
                            price: Money::of(amount, currency),
                            compare_at_price: p
                                .get(2)
                                .and_then(|c| c.as_i64())
                                .map(|c| Money::of(c, currency)),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Stock per location (needs `read_inventory`).
    async fn inventory_levels(&self, ctx: &Context<'_>) -> Result<Vec<InventoryLevel>> {
        Ok(load(ctx, LevelsOf(self.0.id)).await?.unwrap_or_default())
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct SelectedOption {
    pub name: String,
    pub value: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct VariantPrice {
    pub price: Money,
    pub compare_at_price: Option<Money>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Image {
    pub id: ID,
    #[graphql(skip)]
    pub db_id: i64,
    pub url: String,
    pub alt_text: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub position: i32,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct InventoryLevel {
    pub variant_id: ID,
    pub location: Location,
    pub on_hand: i32,
    /// Held by unpaid orders.
    pub reserved: i32,
    pub available: i32,
    pub updated_at: DateTime<Utc>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Location {
    pub id: ID,
    pub name: String,
}

impl From<crate::inventory::levels::Location> for Location {
    fn from(l: crate::inventory::levels::Location) -> Self {
        Self {
            id: ids::encode("Location", l.id).into(),
            name: l.name,
        }
    }
}

impl From<crate::inventory::levels::LevelRow> for InventoryLevel {
    fn from(l: crate::inventory::levels::LevelRow) -> Self {
        Self {
            variant_id: ids::encode("ProductVariant", l.variant_id).into(),
            location: Location {
                id: ids::encode("Location", l.location_id).into(),
                name: l.location_name,
            },
            on_hand: l.on_hand,
            reserved: l.reserved,
            available: l.on_hand - l.reserved,
            updated_at: l.updated_at,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Collection(pub Arc<CollectionRow>);

#[async_graphql::Object(name = "Collection")]
impl Collection {
    async fn id(&self) -> ID {
        ids::encode("Collection", self.0.id).into()
    }
    async fn handle(&self) -> &str {
        &self.0.handle
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description_html(&self) -> &str {
        &self.0.description_html
    }
    async fn seo(&self) -> Seo {
        Seo {
            title: self.0.seo_title.clone(),
            description: self.0.seo_description.clone(),
        }
    }
    async fn image_url(&self) -> Option<&str> {
        self.0.image_url.as_deref()
    }
    async fn published(&self) -> bool {
        self.0.published
    }
    async fn products_count(&self) -> i64 {
        self.0.products_count
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Category {
    #[graphql(skip)]
    pub db_id: i64,
    #[graphql(skip)]
    pub parent_db_id: Option<i64>,
    pub handle: String,
    pub name: String,
}

impl From<CategoryRow> for Category {
    fn from(r: CategoryRow) -> Self {
        Self {
            db_id: r.id,
            parent_db_id: r.parent_id,
            handle: r.handle,
            name: r.name,
        }
    }
}

#[async_graphql::ComplexObject]
impl Category {
    async fn id(&self) -> ID {
        ids::encode("Category", self.db_id).into()
    }
    async fn parent_id(&self) -> Option<ID> {
        self.parent_db_id.map(|p| ids::encode("Category", p).into())
    }
}

/// An order, as partners see it.
#[derive(Clone, Debug)]
pub struct Order(pub Arc<crate::orders::Order>);

#[async_graphql::Object(name = "Order")]
impl Order {
    async fn id(&self) -> ID {
        ids::encode("Order", self.0.id).into()
    }
    /// The order number shown to the buyer.
    async fn number(&self) -> i64 {
        self.0.number
    }
    /// PENDING_PAYMENT, PAID, FULFILLED, CANCELLED or REFUNDED.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn currency_code(&self) -> &str {
        &self.0.currency
    }
    async fn subtotal(&self) -> Money {
        Money::of(self.0.subtotal_minor, &self.0.currency)
    }
    async fn shipping(&self) -> Money {
        Money::of(self.0.shipping_minor, &self.0.currency)
    }
    async fn tax(&self) -> Money {
        Money::of(self.0.tax_minor, &self.0.currency)
    }
    async fn total(&self) -> Money {
        Money::of(self.0.total_minor, &self.0.currency)
    }
    async fn refunded(&self) -> Money {
        Money::of(self.0.refunded_minor, &self.0.currency)
    }
    async fn shipping_method(&self) -> &str {
        &self.0.shipping_method
    }
    async fn shipping_address(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.shipping_address.clone())
    }
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    async fn tracking_number(&self) -> Option<&str> {
        self.0.tracking_number.as_deref()
    }
    async fn tracking_url(&self) -> Option<&str> {
        self.0.tracking_url.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    async fn fulfilled_at(&self) -> Option<DateTime<Utc>> {
        self.0.fulfilled_at
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
    async fn line_items(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<LineItemConnection> {
        let all = load(ctx, LinesOf(self.0.id)).await?.unwrap_or_default();
        let (rows, more) = slice(all, first, after.as_deref(), |l| l.db_id)?;
        Ok(LineItemConnection::new(rows, more, false))
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct LineItem {
    pub id: ID,
    #[graphql(skip)]
    pub db_id: i64,
    pub variant_id: Option<ID>,
    pub sku: Option<String>,
    pub title: String,
    pub variant_title: String,
    pub quantity: i32,
    pub unit_price: Money,
    pub total: Money,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    /// The public part of the key (`cg_<prefix>_…`).
    pub prefix: String,
    pub scopes: Vec<String>,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<crate::partners::keys::ApiKey> for ApiKey {
    fn from(k: crate::partners::keys::ApiKey) -> Self {
        Self {
            id: ids::encode("ApiKey", k.id).into(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            plan: k.plan,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuditLogEntry {
    pub id: ID,
    #[graphql(skip)]
    pub db_id: i64,
    /// The key that made the change (`null`: the command line).
    pub api_key_id: Option<ID>,
    pub actor: String,
    /// The mutation (`productUpdate`, `inventorySetQuantities`, …).
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    /// What changed, as the input gave it.
    pub changes: async_graphql::Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<crate::partners::audit::Entry> for AuditLogEntry {
    fn from(e: crate::partners::audit::Entry) -> Self {
        Self {
            id: ids::encode("AuditLogEntry", e.id).into(),
            db_id: e.id,
            api_key_id: e.api_key_id.map(|k| ids::encode("ApiKey", k).into()),
            actor: e.actor,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            changes: async_graphql::Json(e.changes),
            created_at: e.created_at,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct WebhookSubscription {
    pub id: ID,
    /// ORDERS_CREATE, ORDERS_PAID, ORDERS_CANCELLED or INVENTORY_LOW.
    pub topic: String,
    pub callback_url: String,
    pub created_at: DateTime<Utc>,
}

impl From<crate::partners::webhooks::Subscription> for WebhookSubscription {
    fn from(s: crate::partners::webhooks::Subscription) -> Self {
        Self {
            id: ids::encode("WebhookSubscription", s.id).into(),
            topic: s.topic,
            callback_url: s.url,
            created_at: s.created_at,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ProductExport {
    pub id: ID,
    /// QUEUED, RUNNING, DONE or FAILED.
    pub status: String,
    /// Products written so far.
    pub products_written: i64,
    pub error: Option<String>,
    /// Where to download the file once DONE (send the API key).
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ProductExport {
    pub fn of(e: crate::catalog::export::Export, shop_url: &str) -> Self {
        Self {
            id: ids::encode("ProductExport", e.id).into(),
            url: (e.status == "DONE").then(|| format!("{shop_url}/admin/exports/{}.csv", e.id)),
            status: e.status,
            products_written: e.rows_done,
            error: e.error,
            created_at: e.created_at,
            finished_at: e.finished_at,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ProductImport {
    pub id: ID,
    /// QUEUED, RUNNING, DONE or FAILED.
    pub status: String,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    /// The importer's report (counts and rejected rows) once done.
    pub report: Option<async_graphql::Json<serde_json::Value>>,
}

crate::graphql::types::connection::connection!(ProductConnection, ProductEdge, Product, "Products");
crate::graphql::types::connection::connection!(
    ProductVariantConnection,
    ProductVariantEdge,
    ProductVariant,
    "ProductVariants"
);
crate::graphql::types::connection::connection!(ImageConnection, ImageEdge, Image, "Images");
crate::graphql::types::connection::connection!(
    CollectionConnection,
    CollectionEdge,
    Collection,
    "Collections"
);
crate::graphql::types::connection::connection!(OrderConnection, OrderEdge, Order, "Orders");
crate::graphql::types::connection::connection!(
    LineItemConnection,
    LineItemEdge,
    LineItem,
    "LineItems"
);
crate::graphql::types::connection::connection!(
    AuditLogEntryConnection,
    AuditLogEntryEdge,
    AuditLogEntry,
    "AuditLogEntries"
);

/// A page of an in-memory list (a product's variants, an order's lines), by id cursor.
pub fn slice<T>(
    all: Vec<T>,
    first: i32,
    after: Option<&str>,
    id: impl Fn(&T) -> i64,
) -> Result<(Vec<(Cursor, T)>, bool)> {
    if !(0..=250).contains(&first) {
        return Err(crate::graphql::errors::coded(
            "MAX_PAGE_SIZE_EXCEEDED",
            "first must be between 0 and 250.",
        ));
    }
    let after = after
        .map(|a| Cursor::decode(a).map(|c| c.id))
        .transpose()
        .map_err(crate::graphql::errors::from_page)?;
    let mut rows: Vec<(Cursor, T)> = all
        .into_iter()
        .filter(|t| after.is_none_or(|a| id(t) > a))
        .map(|t| (Cursor::new("ID", serde_json::Value::Null, id(&t)), t))
        .collect();
    let more = rows.len() > first as usize;
    rows.truncate(first as usize);
    Ok((rows, more))
}

/// Per-request state of the admin API.
pub struct AdminRequest {
    pub key: crate::partners::keys::ApiKey,
    pub counter: StatementCounter,
}

pub type AdminDataLoader = DataLoader<AdminLoader, HashMapCache>;

/// Batches the relations of admin types (reads on the primary: a partner reads its own
/// writes).
pub struct AdminLoader {
    pub app: Arc<App>,
    pub counter: StatementCounter,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct VariantsOf(pub i64);
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ImagesOf(pub i64);
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct OptionsOf(pub i64);
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct LevelsOf(pub i64);
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct LinesOf(pub i64);

pub type LoadError = Arc<crate::db::DbError>;

async fn load<K>(ctx: &Context<'_>, key: K) -> Result<Option<<AdminLoader as Loader<K>>::Value>>
where
    K: Send + Sync + Clone + Eq + std::hash::Hash + 'static,
    AdminLoader: Loader<K, Error = LoadError>,
{
    ctx.data_unchecked::<AdminDataLoader>()
        .load_one(key)
        .await
        .map_err(|e| from_db(&e))
}

impl AdminLoader {
    async fn connection(&self) -> Result<crate::db::PgConn, LoadError> {
        self.app.db.primary(&self.counter).await.map_err(Arc::new)
    }
}

fn db_error(e: diesel::result::Error) -> LoadError {
    Arc::new(e.into())
}

fn group<K: std::hash::Hash + Eq, T>(
    items: impl IntoIterator<Item = (K, T)>,
) -> HashMap<K, Vec<T>> {
    let mut map: HashMap<K, Vec<T>> = HashMap::new();
    for (k, t) in items {
        map.entry(k).or_default().push(t);
    }
    map
}

impl Loader<VariantsOf> for AdminLoader {
    type Value = Vec<ProductVariant>;
    type Error = LoadError;
    async fn load(
        &self,
        keys: &[VariantsOf],
    ) -> Result<HashMap<VariantsOf, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = records::variants_of(&mut *self.connection().await?, &ids)
            .await
            .map_err(db_error)?;
        Ok(group(rows.into_iter().map(|r| {
            (VariantsOf(r.product_id), ProductVariant(Arc::new(r)))
        })))
    }
}

impl Loader<ImagesOf> for AdminLoader {
    type Value = Vec<Image>;
    type Error = LoadError;
    async fn load(&self, keys: &[ImagesOf]) -> Result<HashMap<ImagesOf, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = records::images_of(&mut *self.connection().await?, &ids)
            .await
            .map_err(db_error)?;
        Ok(group(rows.into_iter().map(|r| {
            (
                ImagesOf(r.product_id),
                Image {
                    id: ids::encode("ProductImage", r.id).into(),
                    db_id: r.id,
                    url: r.url,
                    alt_text: r.alt_text,
                    width: r.width,
                    height: r.height,
                    position: r.position,
                },
            )
        })))
    }
}

impl Loader<OptionsOf> for AdminLoader {
    type Value = Vec<ProductOption>;
    type Error = LoadError;
    async fn load(&self, keys: &[OptionsOf]) -> Result<HashMap<OptionsOf, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = records::options_of(&mut *self.connection().await?, &ids)
            .await
            .map_err(db_error)?;
        Ok(group(rows.into_iter().map(|r| {
            (
                OptionsOf(r.product_id),
                ProductOption {
                    name: r.name,
                    values: r.values,
                },
            )
        })))
    }
}

impl Loader<LevelsOf> for AdminLoader {
    type Value = Vec<InventoryLevel>;
    type Error = LoadError;
    async fn load(&self, keys: &[LevelsOf]) -> Result<HashMap<LevelsOf, Self::Value>, LoadError> {
        let mut conn = self.connection().await?;
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = crate::inventory::levels::levels_of(&mut conn, &ids)
            .await
            .map_err(|e| Arc::new(e.into()))?;
        Ok(group(rows.into_iter().map(|r| {
            (LevelsOf(r.variant_id), InventoryLevel::from(r))
        })))
    }
}

impl Loader<LinesOf> for AdminLoader {
    type Value = Vec<LineItem>;
    type Error = LoadError;
    async fn load(&self, keys: &[LinesOf]) -> Result<HashMap<LinesOf, Self::Value>, LoadError> {
        let mut conn = self.connection().await?;
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let lines = crate::orders::lines_with_currency(&mut conn, &ids)
            .await
            .map_err(db_error)?;
        Ok(group(lines.into_iter().map(|(line, currency)| {
            let currency = currency.as_str();
            (
                LinesOf(line.order_id),
                LineItem {
                    id: ids::encode("LineItem", line.id).into(),
                    db_id: line.id,
                    variant_id: line
                        .variant_id
                        .map(|v| ids::encode("ProductVariant", v).into()),
                    sku: line.sku.clone(),
                    title: line.product_title.clone(),
                    variant_title: line.variant_title.clone(),
                    quantity: line.quantity,
                    unit_price: Money::of(line.unit_price_minor, currency),
                    total: Money::of(line.total_minor, currency),
                },
            )
        })))
    }
}

/// The page info of a keyset page read with one row more than asked.
pub fn page<T>(mut rows: Vec<T>, first: usize) -> (Vec<T>, bool) {
    let more = rows.len() > first;
    rows.truncate(first);
    (rows, more)
}
