//! `Collection` and collection listings.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::common::{Html, Image, Seo, Url};
use super::connection::connection;
use super::product::{ProductConnection, product_connection};
use crate::catalog::models::Collection;
use crate::catalog::{CatalogError, ProductSort, SimpleSort, listing, search_syntax};
use crate::graphql::{app_from, scope_from};
use crate::ids;
use crate::pagination::{Cursor, PageArgs, PageOf};

#[derive(Clone)]
pub struct CollectionNode(pub Arc<Collection>);

connection!(
    CollectionConnection,
    CollectionEdge,
    CollectionNode,
    "Collections"
);

/// Sort keys of `Collection.products` (Shopify's `ProductCollectionSortKeys`).
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum ProductCollectionSortKeys {
    BestSelling,
    CollectionDefault,
    Created,
    Id,
    Manual,
    Price,
    Relevance,
    Title,
}

impl From<ProductCollectionSortKeys> for ProductSort {
    fn from(k: ProductCollectionSortKeys) -> Self {
        match k {
            ProductCollectionSortKeys::BestSelling => ProductSort::BestSelling,
            ProductCollectionSortKeys::CollectionDefault | ProductCollectionSortKeys::Manual => {
                ProductSort::Manual
            }
            ProductCollectionSortKeys::Created => ProductSort::CreatedAt,
            ProductCollectionSortKeys::Id => ProductSort::Id,
            ProductCollectionSortKeys::Price => ProductSort::Price,
            ProductCollectionSortKeys::Relevance => ProductSort::Relevance,
            ProductCollectionSortKeys::Title => ProductSort::Title,
        }
    }
}

/// Sort keys of `collections` (Shopify's `CollectionSortKeys`).
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum CollectionSortKeys {
    Id,
    Relevance,
    Title,
    UpdatedAt,
}

impl From<CollectionSortKeys> for SimpleSort {
    fn from(k: CollectionSortKeys) -> Self {
        match k {
            CollectionSortKeys::Id | CollectionSortKeys::Relevance => SimpleSort::Id,
            CollectionSortKeys::Title => SimpleSort::Title,
            CollectionSortKeys::UpdatedAt => SimpleSort::UpdatedAt,
        }
    }
}

/// One page of published collections.
pub(crate) async fn list_collections(
    ctx: &Context<'_>,
    args: PageArgs,
    sort: SimpleSort,
    reverse: bool,
    query: Option<String>,
) -> Result<(Vec<(Cursor, CollectionNode)>, bool, bool), CatalogError> {
    let app = app_from(ctx);
    let scope = scope_from(ctx);
    scope.tags.add(crate::cache::tags::COLLECTIONS);
    let page = args.validate(sort.name(), app.config.limits.max_page_size)?;
    let filter = match query.as_deref() {
        Some(q) => search_syntax::parse(q)?,
        None => None,
    };
    let sql =
        listing::simple_listing_sql("collections", filter.as_ref(), sort, reverse, &page, false)?;
    let rows: Vec<Collection> = app
        .db
        .read_rows(scope.route(), &scope.statements, sql)
        .await?;
    let page = PageOf::from_probe(rows, &page);
    Ok((
        page.rows
            .into_iter()
            .map(|c| {
                (
                    listing::simple_cursor(sort, c.id, &c.title, c.updated_at),
                    CollectionNode(Arc::new(c)),
                )
            })
            .collect(),
        page.has_next_page,
        page.has_previous_page,
    ))
}

#[Object(name = "Collection")]
impl CollectionNode {
    pub async fn id(&self) -> ID {
        ID(ids::encode("Collection", self.0.id))
    }

    async fn handle(&self) -> &str {
        &self.0.handle
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn description(&self, truncate_at: Option<i32>) -> String {
        match truncate_at {
            Some(n) if n >= 0 && self.0.description.chars().count() > n as usize => {
                self.0
                    .description
                    .chars()
                    .take(n as usize)
                    .collect::<String>()
                    + "…"
            }
            _ => self.0.description.clone(),
        }
    }

    async fn description_html(&self) -> Html {
        Html(self.0.description_html.clone())
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn online_store_url(&self, ctx: &Context<'_>) -> Url {
        Url(format!(
            "{}/collections/{}",
            app_from(ctx).config.shop.url,
            self.0.handle
        ))
    }

    async fn image(&self) -> Option<Image> {
        self.0.image_url.as_ref().map(|url| Image {
            id: Some(ids::encode("CollectionImage", self.0.id)),
            url: url.clone(),
            alt_text: self.0.image_alt.clone(),
            width: self.0.image_width,
            height: self.0.image_height,
        })
    }

    async fn seo(&self) -> Seo {
        Seo {
            title: self
                .0
                .seo_title
                .clone()
                .or_else(|| Some(self.0.title.clone())),
            description: self
                .0
                .seo_description
                .clone()
                .or_else(|| Some(self.0.description.clone())),
        }
    }

    /// The collection's products, in the merchant's order unless another sort is asked.
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(ProductCollectionSortKeys::CollectionDefault)")]
        sort_key: Option<ProductCollectionSortKeys>,
        query: Option<String>,
    ) -> Result<ProductConnection> {
        let sort_key = sort_key.unwrap_or(ProductCollectionSortKeys::CollectionDefault);
        let reverse = reverse.unwrap_or(false);
        product_connection(
            ctx,
            Some(self.0.id),
            PageArgs {
                first,
                after,
                last,
                before,
            },
            sort_key.into(),
            reverse,
            query,
        )
        .await
    }
}
