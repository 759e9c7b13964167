//! The storefront's query root.

use super::types::order::OrderNode;
use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result};

use super::errors::{bad_input, from_catalog, from_db};
use super::loaders::*;
use super::types::cart::CartNode;
use super::types::collection::{
    CollectionConnection, CollectionNode, CollectionSortKeys, list_collections,
};
use super::types::content::{MenuNode, PageConnection, PageNode};
use super::types::node::Node;
use super::types::product::{ProductConnection, ProductNode, VariantNode, product_connection};
use super::{app_from, loader_from, scope_from};
use crate::catalog::{ProductSort, SimpleSort, listing, search_syntax, store};
use crate::ids;
use crate::pagination::{PageArgs, PageOf};

pub struct QueryRoot;

/// Sort keys of `products` (Shopify's `ProductSortKeys`).
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum ProductSortKeys {
    BestSelling,
    CreatedAt,
    Id,
    Price,
    ProductType,
    Relevance,
    Title,
    UpdatedAt,
    Vendor,
}

impl From<ProductSortKeys> for ProductSort {
    fn from(k: ProductSortKeys) -> Self {
        match k {
            ProductSortKeys::BestSelling => ProductSort::BestSelling,
            ProductSortKeys::CreatedAt => ProductSort::CreatedAt,
            ProductSortKeys::Id => ProductSort::Id,
            ProductSortKeys::Price => ProductSort::Price,
            ProductSortKeys::ProductType => ProductSort::ProductType,
            ProductSortKeys::Relevance => ProductSort::Relevance,
            ProductSortKeys::Title => ProductSort::Title,
            ProductSortKeys::UpdatedAt => ProductSort::UpdatedAt,
            ProductSortKeys::Vendor => ProductSort::Vendor,
        }
    }
}

/// Sort keys of `pages` (Shopify's `PageSortKeys`).
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum PageSortKeys {
    Id,
    Relevance,
    Title,
    UpdatedAt,
}

fn id_of(kind: &str, id: &ID) -> Result<i64> {
    ids::parse(kind, id)
        .ok_or_else(|| bad_input(format!("{:?} is not a valid {kind} ID", id.as_str())))
}

async fn product_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<ProductNode>> {
    let product = loader_from(ctx)
        .load_one(ProductId(id))
        .await
        .map_err(|e| from_db(&e))?;
    Ok(product.filter(|p| p.is_published()).map(ProductNode))
}

async fn node_by_id(ctx: &Context<'_>, id: &ID) -> Result<Option<Node>> {
    let Some((kind, key)) = ids::decode(id) else {
        return Err(bad_input(format!(
            "{:?} is not a valid global ID",
            id.as_str()
        )));
    };
    let numeric = || {
        key.parse::<i64>()
            .map_err(|_| bad_input(format!("{:?} is not a valid global ID", id.as_str())))
    };
    let loader = loader_from(ctx);
    Ok(match kind.as_str() {
        "Product" => product_by_id(ctx, numeric()?).await?.map(Node::Product),
        "ProductVariant" => {
            let currency = scope_from(ctx).currency(app_from(ctx)).to_string();
            let variant = loader
                .load_one(VariantId {
                    id: numeric()?,
                    currency,
                })
                .await
                .map_err(|e| from_db(&e))?;
            match variant {
                Some(v) if product_by_id(ctx, v.product_id).await?.is_some() => {
                    Some(Node::ProductVariant(VariantNode(v)))
                }
                _ => None,
            }
        }
        "Collection" => loader
            .load_one(CollectionId(numeric()?))
            .await
            .map_err(|e| from_db(&e))?
            .filter(|c| c.published)
            .map(|c| Node::Collection(CollectionNode(c))),
        "Page" => loader
            .load_one(PageId(numeric()?))
            .await
            .map_err(|e| from_db(&e))?
            .map(|p| Node::Page(PageNode(p))),
        "Menu" => loader
            .load_one(MenuId(numeric()?))
            .await
            .map_err(|e| from_db(&e))?
            .map(|m| Node::Menu(MenuNode(m))),
        other => {
            return Err(bad_input(format!(
                "objects of type {other} cannot be fetched by node"
            )));
        }
    })
}

#[Object]
impl QueryRoot {
    /// Fetch a product by its ID or handle.
    async fn product(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        handle: Option<String>,
    ) -> Result<Option<ProductNode>> {
        match (id, handle) {
            (Some(id), None) => product_by_id(ctx, id_of("Product", &id)?).await,
            (None, Some(handle)) => {
                let product = loader_from(ctx)
                    .load_one(ProductHandle(handle))
                    .await
                    .map_err(|e| from_db(&e))?;
                Ok(product.filter(|p| p.is_published()).map(ProductNode))
            }
            _ => Err(bad_input("provide exactly one of id or handle")),
        }
    }

    /// Fetch a product by its handle (deprecated in Shopify, kept for older clients).
    async fn product_by_handle(
        &self,
        ctx: &Context<'_>,
        handle: String,
    ) -> Result<Option<ProductNode>> {
        self.product(ctx, None, Some(handle)).await
    }

    /// A list of the shop's products.
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(ProductSortKeys::Id)")] sort_key: Option<ProductSortKeys>,
        query: Option<String>,
    ) -> Result<ProductConnection> {
        let sort_key = sort_key.unwrap_or(ProductSortKeys::Id);
        let reverse = reverse.unwrap_or(false);
        product_connection(
            ctx,
            None,
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

    /// Products related to the given one (same collections, type or tags).
    async fn product_recommendations(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
    ) -> Result<Option<Vec<ProductNode>>> {
        let id = id_of("Product", &product_id)?;
        if product_by_id(ctx, id).await?.is_none() {
            return Ok(None);
        }
        let app = app_from(ctx);
        let scope = scope_from(ctx);
        scope.tags.add(crate::cache::tags::PRODUCTS);
        scope.tags.add(crate::cache::tags::SALES);
        let rows = app
            .db
            .read(scope.route(), &scope.statements, &move |conn| {
                Box::pin(async move { store::recommendations(conn, id, 10).await })
            })
            .await
            .map_err(|e| from_db(&e))?;
        Ok(Some(
            rows.into_iter().map(|p| ProductNode(Arc::new(p))).collect(),
        ))
    }

    /// Fetch a collection by its ID or handle.
    async fn collection(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        handle: Option<String>,
    ) -> Result<Option<CollectionNode>> {
        let loader = loader_from(ctx);
        let found = match (id, handle) {
            (Some(id), None) => {
                loader
                    .load_one(CollectionId(id_of("Collection", &id)?))
                    .await
            }
            (None, Some(handle)) => loader.load_one(CollectionHandle(handle)).await,
            _ => return Err(bad_input("provide exactly one of id or handle")),
        }
        .map_err(|e| from_db(&e))?;
        Ok(found.filter(|c| c.published).map(CollectionNode))
    }

    /// Fetch a collection by its handle (deprecated in Shopify, kept for older clients).
    async fn collection_by_handle(
        &self,
        ctx: &Context<'_>,
        handle: String,
    ) -> Result<Option<CollectionNode>> {
        self.collection(ctx, None, Some(handle)).await
    }

    /// The shop's collections.
    #[allow(clippy::too_many_arguments)]
    async fn collections(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(CollectionSortKeys::Id)")] sort_key: Option<
            CollectionSortKeys,
        >,
        query: Option<String>,
    ) -> Result<CollectionConnection> {
        let sort_key = sort_key.unwrap_or(CollectionSortKeys::Id);
        let reverse = reverse.unwrap_or(false);
        let (rows, next, prev) = list_collections(
            ctx,
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
        .map_err(from_catalog)?;
        Ok(CollectionConnection::new(rows, next, prev))
    }

    /// A navigation menu by handle.
    async fn menu(&self, ctx: &Context<'_>, handle: String) -> Result<Option<MenuNode>> {
        Ok(loader_from(ctx)
            .load_one(MenuHandle(handle))
            .await
            .map_err(|e| from_db(&e))?
            .map(MenuNode))
    }

    /// Fetch a page by its ID or handle.
    async fn page(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        handle: Option<String>,
    ) -> Result<Option<PageNode>> {
        let loader = loader_from(ctx);
        let found = match (id, handle) {
            (Some(id), None) => loader.load_one(PageId(id_of("Page", &id)?)).await,
            (None, Some(handle)) => loader.load_one(PageHandle(handle)).await,
            _ => return Err(bad_input("provide exactly one of id or handle")),
        }
        .map_err(|e| from_db(&e))?;
        Ok(found.map(PageNode))
    }

    /// Fetch a page by its handle (deprecated in Shopify, kept for older clients).
    async fn page_by_handle(&self, ctx: &Context<'_>, handle: String) -> Result<Option<PageNode>> {
        self.page(ctx, None, Some(handle)).await
    }

    /// The shop's pages.
    #[allow(clippy::too_many_arguments)]
    async fn pages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(PageSortKeys::Id)")] sort_key: Option<PageSortKeys>,
        query: Option<String>,
    ) -> Result<PageConnection> {
        let sort_key = sort_key.unwrap_or(PageSortKeys::Id);
        let reverse = reverse.unwrap_or(false);
        let app = app_from(ctx);
        let scope = scope_from(ctx);
        scope.tags.add(crate::cache::tags::PAGES);
        let sort = match sort_key {
            PageSortKeys::Title => SimpleSort::Title,
            PageSortKeys::UpdatedAt => SimpleSort::UpdatedAt,
            PageSortKeys::Id | PageSortKeys::Relevance => SimpleSort::Id,
        };
        let page = PageArgs {
            first,
            after,
            last,
            before,
        }
        .validate(sort.name(), app.config.limits.max_page_size)
        .map_err(super::errors::from_page)?;
        let filter = match query.as_deref() {
            Some(q) => search_syntax::parse(q).map_err(|e| from_catalog(e.into()))?,
            None => None,
        };
        let sql =
            listing::simple_listing_sql("pages", filter.as_ref(), sort, reverse, &page, false)
                .map_err(from_catalog)?;
        let rows: Vec<crate::content::Page> = app
            .db
            .read_rows(scope.route(), &scope.statements, sql)
            .await
            .map_err(|e| from_db(&e))?;
        let page = PageOf::from_probe(rows, &page);
        Ok(PageConnection::new(
            page.rows
                .into_iter()
                .map(|p| {
                    (
                        listing::simple_cursor(sort, p.id, &p.title, p.updated_at),
                        PageNode(Arc::new(p)),
                    )
                })
                .collect(),
            page.has_next_page,
            page.has_previous_page,
        ))
    }

    /// Fetch any object by its global ID.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        node_by_id(ctx, &id).await
    }

    /// Fetch several objects by their global IDs (at most `MAX_PAGE_SIZE`).
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        let max = app_from(ctx).config.limits.max_page_size;
        if ids.len() > max {
            return Err(bad_input(format!("ids: at most {max} IDs per request")));
        }
        let lookups = ids.iter().map(|id| node_by_id(ctx, id));
        futures::future::try_join_all(lookups).await
    }

    /// Fetch a cart by its ID (always read from the primary: it sees the buyer's writes).
    async fn cart(&self, ctx: &Context<'_>, id: ID) -> Result<Option<CartNode>> {
        // One buyer's: never shared (admission already keeps `cart` queries out).
        scope_from(ctx).tags.mark_personal();
        let Some(token) = super::mutation::cart_token(&id) else {
            return Err(bad_input(format!(
                "{:?} is not a valid Cart ID",
                id.as_str()
            )));
        };
        let mut conn = super::mutation::primary(ctx).await?;
        let cart = crate::cart::load(&mut conn, &token, &super::mutation::cart_rules(ctx))
            .await
            .map_err(|e| from_db(&e))?;
        Ok(cart.map(|c| CartNode(Arc::new(c))))
    }

    /// An order, by the access token its buyer got at checkout (`Order.accessToken`).
    async fn order(&self, ctx: &Context<'_>, access_token: String) -> Result<Option<OrderNode>> {
        scope_from(ctx).tags.mark_personal();
        if access_token.len() != 40 || !access_token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let mut conn = super::mutation::primary(ctx).await?;
        let Some(order) = crate::orders::by_access_token(&mut conn, &access_token)
            .await
            .map_err(|e| from_db(&e.into()))?
        else {
            return Ok(None);
        };
        let lines = crate::orders::lines_of(&mut conn, order.id)
            .await
            .map_err(|e| from_db(&e.into()))?;
        Ok(Some(OrderNode {
            order: Arc::new(order),
            lines: Arc::new(lines),
        }))
    }
}
