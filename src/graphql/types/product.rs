//! `Product`, `ProductVariant`, `ProductOption` and their connections.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::collection::{CollectionConnection, CollectionNode};
use super::common::{Html, Image, MoneyV2, SelectedOption, SelectedOptionInput, Seo, Url};
use super::connection::connection;
use crate::catalog::models::{Product, ProductOption, Variant};
use crate::catalog::{NestedPage, SimpleSort};
use crate::graphql::errors::{from_catalog, from_db, from_page};
use crate::graphql::loaders::*;
use crate::graphql::{app_from, loader_from, scope_from};
use crate::ids;
use crate::pagination::{Cursor, PageArgs, PageOf};

#[derive(Clone)]
pub struct ProductNode(pub Arc<Product>);

#[derive(Clone)]
pub struct VariantNode(pub Arc<Variant>);

connection!(ProductConnection, ProductEdge, ProductNode, "Products");
connection!(
    ProductVariantConnection,
    ProductVariantEdge,
    VariantNode,
    "ProductVariants"
);
connection!(ImageConnection, ImageEdge, Image, "Images");

/// The price range of a product's variants.
#[derive(SimpleObject, Clone)]
pub struct ProductPriceRange {
    pub max_variant_price: MoneyV2,
    pub min_variant_price: MoneyV2,
}

pub struct ProductOptionNode(ProductOption);

/// A category of the store's product taxonomy.
#[derive(SimpleObject)]
pub struct TaxonomyCategory {
    pub id: ID,
    /// The category's name.
    pub name: String,
    /// The categories above this one, nearest first.
    pub ancestors: Vec<TaxonomyAncestor>,
}

/// A category above another in the taxonomy.
#[derive(SimpleObject)]
#[graphql(name = "TaxonomyCategoryAncestor")]
pub struct TaxonomyAncestor {
    pub id: ID,
    pub name: String,
}

#[Object(name = "ProductOption")]
impl ProductOptionNode {
    async fn id(&self) -> ID {
        ID(ids::encode("ProductOption", self.0.id))
    }

    /// The product option's name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The corresponding value to the product option name.
    async fn values(&self) -> &[String] {
        &self.0.values
    }

    /// The product option's values, as objects.
    async fn option_values(&self) -> Vec<ProductOptionValue> {
        self.0
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| ProductOptionValue {
                id: ID(ids::encode(
                    "ProductOptionValue",
                    format!("{}-{i}", self.0.id),
                )),
                name: v.clone(),
            })
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct ProductOptionValue {
    pub id: ID,
    pub name: String,
}

/// Reads `first/after/last/before` of a nested connection ordered by position.
pub(crate) fn nested_page(
    ctx: &Context<'_>,
    args: PageArgs,
    reverse: bool,
) -> Result<(crate::pagination::Page, NestedPage)> {
    let max = app_from(ctx).config.limits.max_page_size;
    let page = args.validate(NestedPage::SORT, max).map_err(from_page)?;
    let nested = NestedPage::new(&page, reverse).map_err(from_page)?;
    Ok((page, nested))
}

impl ProductNode {
    async fn summary(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Arc<crate::catalog::models::ProductSummary>>> {
        let currency = scope_from(ctx).currency(app_from(ctx)).to_string();
        loader_from(ctx)
            .load_one(SummaryOf {
                product_id: self.0.id,
                currency,
            })
            .await
            .map_err(|e| from_db(&e))
    }

    async fn first_variants(&self, ctx: &Context<'_>, n: i32) -> Result<Arc<Vec<Arc<Variant>>>> {
        let (_, nested) = nested_page(
            ctx,
            PageArgs {
                first: Some(n),
                ..Default::default()
            },
            false,
        )?;
        let currency = scope_from(ctx).currency(app_from(ctx)).to_string();
        Ok(loader_from(ctx)
            .load_one(VariantsOf {
                product_id: self.0.id,
                page: nested,
                currency,
            })
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default())
    }
}

#[Object(name = "Product")]
impl ProductNode {
    /// A globally-unique ID.
    pub async fn id(&self) -> ID {
        ID(ids::encode("Product", self.0.id))
    }

    /// A unique, human-readable string of the product's title.
    async fn handle(&self) -> &str {
        &self.0.handle
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Stripped description of the product, single line with HTML tags removed.
    async fn description(&self, truncate_at: Option<i32>) -> String {
        match truncate_at {
            Some(n) if n >= 0 && self.0.description.chars().count() > n as usize => {
                let mut s: String = self.0.description.chars().take(n as usize).collect();
                s.push('…');
                s
            }
            _ => self.0.description.clone(),
        }
    }

    /// The description of the product, with HTML formatting.
    async fn description_html(&self) -> Html {
        Html(self.0.description_html.clone())
    }

    async fn vendor(&self) -> &str {
        &self.0.vendor
    }

    async fn product_type(&self) -> &str {
        &self.0.product_type
    }

    /// The product's category in the store's taxonomy.
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<TaxonomyCategory>> {
        let Some(id) = self.0.category_id else {
            return Ok(None);
        };
        let path = loader_from(ctx)
            .load_one(CategoryId(id))
            .await
            .map_err(|e| from_db(&e))?;
        Ok(path.map(|p| TaxonomyCategory {
            id: ID(ids::encode("TaxonomyCategory", p.id)),
            name: p.name.clone(),
            ancestors: p
                .ancestors
                .iter()
                .rev()
                .map(|(id, name)| TaxonomyAncestor {
                    id: ID(ids::encode("TaxonomyCategory", *id)),
                    name: name.clone(),
                })
                .collect(),
        }))
    }

    async fn tags(&self) -> &[String] {
        &self.0.tags
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn published_at(&self) -> DateTime<Utc> {
        self.0.published_at.unwrap_or(self.0.created_at)
    }

    /// The product's URL on the online store.
    async fn online_store_url(&self, ctx: &Context<'_>) -> Url {
        Url(format!(
            "{}/products/{}",
            app_from(ctx).config.shop.url,
            self.0.handle
        ))
    }

    /// Whether any of the product's variants can be bought.
    async fn available_for_sale(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self
            .summary(ctx)
            .await?
            .is_some_and(|s| s.available_for_sale))
    }

    /// The total quantity of inventory in stock across variants.
    async fn total_inventory(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self
            .summary(ctx)
            .await?
            .map(|s| s.total_inventory.min(i32::MAX as i64) as i32))
    }

    async fn is_gift_card(&self) -> bool {
        false
    }

    async fn requires_selling_plan(&self) -> bool {
        false
    }

    /// The price range of the product's variants.
    async fn price_range(&self, ctx: &Context<'_>) -> Result<ProductPriceRange> {
        let app = app_from(ctx);
        let currency = scope_from(ctx).currency(app).to_string();
        // In the shop currency the bounds are columns of the product row itself (kept by
        // the database's triggers): no statement needed.
        if currency == app.config.shop.currency {
            return Ok(ProductPriceRange {
                min_variant_price: MoneyV2::new(self.0.min_price_minor, &currency),
                max_variant_price: MoneyV2::new(self.0.max_price_minor, &currency),
            });
        }
        Ok(match self.summary(ctx).await? {
            Some(s) => ProductPriceRange {
                min_variant_price: MoneyV2::new(s.min_price_minor, &s.currency),
                max_variant_price: MoneyV2::new(s.max_price_minor, &s.currency),
            },
            None => ProductPriceRange {
                min_variant_price: MoneyV2::new(0, &currency),
                max_variant_price: MoneyV2::new(0, &currency),
            },
        })
    }

    /// The range of compare-at prices of the product's variants (zero when none is set).
    async fn compare_at_price_range(&self, ctx: &Context<'_>) -> Result<ProductPriceRange> {
        let currency = scope_from(ctx).currency(app_from(ctx)).to_string();
        let s = self.summary(ctx).await?;
        let cur = s.as_ref().map(|s| s.currency.clone()).unwrap_or(currency);
        Ok(ProductPriceRange {
            min_variant_price: MoneyV2::new(
                s.as_ref().and_then(|s| s.min_compare_at_minor).unwrap_or(0),
                &cur,
            ),
            max_variant_price: MoneyV2::new(
                s.as_ref().and_then(|s| s.max_compare_at_minor).unwrap_or(0),
                &cur,
            ),
        })
    }

    /// List of product options.
    async fn options(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> Result<Vec<ProductOptionNode>> {
        let options = loader_from(ctx)
            .load_one(OptionsOf(self.0.id))
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        let take = first.map(|n| n.max(0) as usize).unwrap_or(usize::MAX);
        Ok(options
            .iter()
            .take(take)
            .cloned()
            .map(ProductOptionNode)
            .collect())
    }

    /// The product's variants, in the merchant's order.
    async fn variants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
    ) -> Result<ProductVariantConnection> {
        let reverse = reverse.unwrap_or(false);
        let (page, nested) = nested_page(
            ctx,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            reverse,
        )?;
        let currency = scope_from(ctx).currency(app_from(ctx)).to_string();
        let rows = loader_from(ctx)
            .load_one(VariantsOf {
                product_id: self.0.id,
                page: nested,
                currency,
            })
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        let page = PageOf::from_probe(rows.to_vec(), &page);
        Ok(ProductVariantConnection::new(
            page.rows
                .into_iter()
                .map(|v| {
                    (
                        Cursor::new(NestedPage::SORT, json!(v.position), v.id),
                        VariantNode(v),
                    )
                })
                .collect(),
            page.has_next_page,
            page.has_previous_page,
        ))
    }

    /// The variant with exactly these option values, if any.
    async fn variant_by_selected_options(
        &self,
        ctx: &Context<'_>,
        selected_options: Vec<SelectedOptionInput>,
    ) -> Result<Option<VariantNode>> {
        let options = loader_from(ctx)
            .load_one(OptionsOf(self.0.id))
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        let max = app_from(ctx).config.limits.max_page_size as i32;
        let variants = self.first_variants(ctx, max).await?;
        Ok(variants
            .iter()
            .find(|v| {
                let values = v.option_values();
                selected_options.iter().all(|sel| {
                    options
                        .iter()
                        .find(|o| o.name.eq_ignore_ascii_case(&sel.name))
                        .and_then(|o| values.get((o.position - 1) as usize).copied().flatten())
                        == Some(sel.value.as_str())
                })
            })
            .cloned()
            .map(VariantNode))
    }

    /// The product's images, in the merchant's order.
    async fn images(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
    ) -> Result<ImageConnection> {
        let reverse = reverse.unwrap_or(false);
        let (page, nested) = nested_page(
            ctx,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            reverse,
        )?;
        let rows = loader_from(ctx)
            .load_one(ImagesOf {
                product_id: self.0.id,
                page: nested,
            })
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        let page = PageOf::from_probe(rows.iter().collect(), &page);
        Ok(ImageConnection::new(
            page.rows
                .iter()
                .map(|i| {
                    (
                        Cursor::new(NestedPage::SORT, json!(i.position), i.id),
                        Image::from(*i),
                    )
                })
                .collect(),
            page.has_next_page,
            page.has_previous_page,
        ))
    }

    /// The first image in the product's order.
    async fn featured_image(&self, ctx: &Context<'_>) -> Result<Option<Image>> {
        let (_, nested) = nested_page(
            ctx,
            PageArgs {
                first: Some(1),
                ..Default::default()
            },
            false,
        )?;
        let rows = loader_from(ctx)
            .load_one(ImagesOf {
                product_id: self.0.id,
                page: nested,
            })
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        Ok(rows.first().map(Image::from))
    }

    async fn seo(&self) -> Seo {
        Seo {
            title: self.0.seo_title.clone(),
            description: self.0.seo_description.clone(),
        }
    }

    /// The collections the product is in, by title (one statement for all products).
    async fn collections(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
    ) -> Result<CollectionConnection> {
        let reverse = reverse.unwrap_or(false);
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page = args
            .validate(
                SimpleSort::Title.name(),
                app_from(ctx).config.limits.max_page_size,
            )
            .map_err(from_page)?;
        let rows = loader_from(ctx)
            .load_one(ProductCollections {
                product_id: self.0.id,
                reverse,
                args: (args.first, args.after, args.last, args.before),
            })
            .await
            .map_err(|e| from_db(&e))?
            .unwrap_or_default();
        let page = PageOf::from_probe(rows.to_vec(), &page);
        Ok(CollectionConnection::new(
            page.rows
                .into_iter()
                .map(|c| {
                    let cursor = crate::catalog::listing::simple_cursor(
                        SimpleSort::Title,
                        c.id,
                        &c.title,
                        c.updated_at,
                    );
                    (cursor, CollectionNode(Arc::new(c)))
                })
                .collect(),
            page.has_next_page,
            page.has_previous_page,
        ))
    }
}

#[Object(name = "ProductVariant")]
impl VariantNode {
    pub async fn id(&self) -> ID {
        ID(ids::encode("ProductVariant", self.0.id))
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

    /// Whether the variant can be bought (in stock, or sold beyond stock).
    async fn available_for_sale(&self) -> bool {
        self.0.available_for_sale()
    }

    /// Stock available to sell (on hand minus reserved).
    async fn quantity_available(&self) -> i32 {
        self.0
            .quantity_available
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }

    /// Sold beyond stock: out of stock, but still for sale.
    async fn currently_not_in_stock(&self) -> bool {
        self.0.quantity_available <= 0 && self.0.inventory_policy == "CONTINUE"
    }

    async fn requires_shipping(&self) -> bool {
        self.0.requires_shipping
    }

    /// The variant's weight in `weightUnit`.
    async fn weight(&self) -> f64 {
        let grams = self.0.grams as f64;
        match self.0.weight_unit.as_str() {
            "GRAMS" => grams,
            "POUNDS" => grams / 453.592_37,
            "OUNCES" => grams / 28.349_523_125,
            _ => grams / 1000.0,
        }
    }

    async fn weight_unit(&self) -> WeightUnit {
        match self.0.weight_unit.as_str() {
            "GRAMS" => WeightUnit::Grams,
            "POUNDS" => WeightUnit::Pounds,
            "OUNCES" => WeightUnit::Ounces,
            _ => WeightUnit::Kilograms,
        }
    }

    async fn price(&self) -> MoneyV2 {
        MoneyV2::new(self.0.price_minor, &self.0.currency)
    }

    async fn compare_at_price(&self) -> Option<MoneyV2> {
        self.0
            .compare_at_minor
            .map(|m| MoneyV2::new(m, &self.0.currency))
    }

    /// The option values that make up this variant.
    async fn selected_options(&self) -> Vec<SelectedOption> {
        self.0
            .option_names
            .iter()
            .zip(self.0.option_values())
            .filter_map(|(name, value)| {
                Some(SelectedOption {
                    name: name.clone(),
                    value: value?.to_string(),
                })
            })
            .collect()
    }

    async fn image(&self, ctx: &Context<'_>) -> Result<Option<Image>> {
        let Some(image_id) = self.0.image_id else {
            return Ok(None);
        };
        Ok(loader_from(ctx)
            .load_one(ImageId(image_id))
            .await
            .map_err(|e| from_db(&e))?
            .as_deref()
            .map(Image::from))
    }

    /// The product this variant belongs to.
    async fn product(&self, ctx: &Context<'_>) -> Result<ProductNode> {
        loader_from(ctx)
            .load_one(ProductId(self.0.product_id))
            .await
            .map_err(|e| from_db(&e))?
            .map(ProductNode)
            .ok_or_else(|| {
                crate::graphql::errors::not_found("The variant's product no longer exists.")
            })
    }
}

#[derive(async_graphql::Enum, Copy, Clone, PartialEq, Eq)]
pub enum WeightUnit {
    Grams,
    Kilograms,
    Ounces,
    Pounds,
}

/// Runs a product listing (the catalog or a collection) and shapes it as a connection.
pub(crate) async fn product_connection(
    ctx: &Context<'_>,
    collection_id: Option<i64>,
    args: PageArgs,
    sort: crate::catalog::ProductSort,
    reverse: bool,
    query: Option<String>,
) -> Result<ProductConnection> {
    use crate::cache::tags;
    use crate::catalog::{CollectionScope, ProductListing, ProductSort, listing, search_syntax};

    let app = app_from(ctx);
    let scope = scope_from(ctx);
    // A listing changes with any product (membership, order): the coarse tag.
    scope.tags.add(tags::PRODUCTS);
    if matches!(sort, ProductSort::BestSelling | ProductSort::Relevance) {
        scope.tags.add(tags::SALES);
    }
    if let Some(id) = collection_id {
        scope.tags.add(tags::collection(id));
    }
    let sort_name = listing::listing_sort_name(sort, collection_id.is_some());
    let page = args
        .validate(sort_name, app.config.limits.max_page_size)
        .map_err(from_page)?;
    let filter = match query.as_deref() {
        Some(q) => search_syntax::parse(q).map_err(|e| from_catalog(e.into()))?,
        None => None,
    };
    let listing = ProductListing {
        collection: collection_id.map_or(CollectionScope::Catalog, CollectionScope::Collection),
        filter,
        sort,
        reverse,
        page: page.clone(),
    };
    // Built here even for collections, so bad input is reported before any batching.
    let sql =
        listing::product_listing_sql(&listing, &app.config.shop.currency).map_err(from_catalog)?;
    let rows: Vec<crate::catalog::models::ListedProduct> = match collection_id {
        // The pages of many collections (`collections { products }`) share a statement.
        Some(collection_id) => {
            let spec = ListingSpec {
                sort,
                reverse,
                args: (
                    args.first,
                    args.after.clone(),
                    args.last,
                    args.before.clone(),
                ),
                query,
            };
            loader_from(ctx)
                .load_one(CollectionPage {
                    collection_id,
                    spec,
                })
                .await
                .map_err(|e| from_db(&e))?
                .map(|rows| rows.to_vec())
                .unwrap_or_default()
        }
        None => app
            .db
            .read_rows(scope.route(), &scope.statements, sql)
            .await
            .map_err(|e| from_db(&e))?,
    };
    let page = PageOf::from_probe(rows, &page);
    Ok(ProductConnection::new(
        page.rows
            .into_iter()
            .map(|row| {
                let cursor = listing::product_cursor(&row, sort, collection_id.is_some());
                (cursor, ProductNode(Arc::new(row.product)))
            })
            .collect(),
        page.has_next_page,
        page.has_previous_page,
    ))
}
