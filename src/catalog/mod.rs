//! The catalog domain: products, variants, images, options, collections, and how a
//! storefront lists and filters them. The GraphQL layer translates arguments into the
//! types here; the statements live in [`store`] (batched relation reads) and [`listing`]
//! (pages of products, collections and pages).

pub mod edit;
pub mod export;
pub mod import;
pub mod import_jobs;
pub mod listing;
pub mod models;
pub mod records;
pub mod search_syntax;
pub mod seed;
pub mod store;
pub mod writer;

use crate::db::DbError;
use crate::pagination::{Page, PageError};
use search_syntax::{Expr, SearchSyntaxError};

/// What can go wrong serving a catalog read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Search(#[from] SearchSyntaxError),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CatalogError {
    fn from(e: diesel::result::Error) -> Self {
        CatalogError::Db(e.into())
    }
}

/// Sort keys of product listings (Shopify's `ProductSortKeys` and
/// `ProductCollectionSortKeys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductSort {
    Title,
    Price,
    CreatedAt,
    UpdatedAt,
    BestSelling,
    Relevance,
    Id,
    Vendor,
    ProductType,
    /// The merchant's order within a collection.
    Manual,
}

impl ProductSort {
    /// The name stored in cursors.
    pub fn name(self) -> &'static str {
        match self {
            ProductSort::Title => "TITLE",
            ProductSort::Price => "PRICE",
            ProductSort::CreatedAt => "CREATED_AT",
            ProductSort::UpdatedAt => "UPDATED_AT",
            ProductSort::BestSelling => "BEST_SELLING",
            ProductSort::Relevance => "RELEVANCE",
            ProductSort::Id => "ID",
            ProductSort::Vendor => "VENDOR",
            ProductSort::ProductType => "PRODUCT_TYPE",
            ProductSort::Manual => "MANUAL",
        }
    }

    /// Best sellers and best matches come first unless reversed, as on Shopify.
    pub fn descending_by_default(self) -> bool {
        matches!(self, ProductSort::BestSelling | ProductSort::Relevance)
    }
}

/// A request for one page of products.
#[derive(Debug, Clone)]
pub struct ProductListing {
    /// List the members of a collection instead of the whole catalog.
    pub collection: CollectionScope,
    pub filter: Option<Expr>,
    pub sort: ProductSort,
    pub reverse: bool,
    pub page: Page,
}

/// Which products a listing draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionScope {
    /// The whole catalog.
    Catalog,
    /// The members of one collection.
    Collection(i64),
    /// The members of `parent.cid`, for a listing run once per collection inside
    /// `LATERAL` (one statement for the pages of many collections).
    Parent,
}

impl CollectionScope {
    pub fn is_collection(self) -> bool {
        self != CollectionScope::Catalog
    }
}

/// Sort keys of collection and page listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimpleSort {
    Title,
    UpdatedAt,
    Id,
}

impl SimpleSort {
    pub fn name(self) -> &'static str {
        match self {
            SimpleSort::Title => "TITLE",
            SimpleSort::UpdatedAt => "UPDATED_AT",
            SimpleSort::Id => "ID",
        }
    }
}

/// A nested page (`variants(first:)` inside each product), ordered by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NestedPage {
    /// Rows per parent, including the probe row.
    pub fetch: i64,
    /// Continue after this `(position, id)`.
    pub after: Option<(i32, i64)>,
    pub descending: bool,
}

impl NestedPage {
    pub const SORT: &'static str = "POSITION";

    pub fn new(page: &Page, reverse: bool) -> Result<Self, PageError> {
        let after = match &page.cursor {
            None => None,
            Some(c) => Some((
                c.value
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or(PageError::InvalidCursor)?,
                c.id,
            )),
        };
        Ok(Self {
            fetch: page.limit as i64 + 1,
            after,
            descending: reverse ^ page.backward,
        })
    }
}
