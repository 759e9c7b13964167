//! Rows of the catalog as the storefront reads them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Int4, Nullable, Text};

use crate::db::schema::*;

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub status: String,
    pub published_at: Option<DateTime<Utc>>,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    pub category_id: Option<i64>,
    pub total_sales: i64,
    pub min_price_minor: i64,
    pub max_price_minor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// Visible on the storefront: active and published (now or earlier).
    pub fn is_published(&self) -> bool {
        self.status == "ACTIVE" && self.published_at.is_some_and(|at| at <= Utc::now())
    }
}

/// A product row from a listing, with the sort value that is not a product column.
#[derive(QueryableByName, Clone, Debug)]
pub struct ListedProduct {
    #[diesel(embed)]
    pub product: Product,
    /// Manual position in the collection being listed.
    #[diesel(sql_type = Nullable<Int4>)]
    pub sort_position: Option<i32>,
    /// Text-search relevance, for the RELEVANCE sort key.
    #[diesel(sql_type = Nullable<Double>)]
    pub sort_score: Option<f64>,
}

/// A listed product of one of several collections listed together.
#[derive(QueryableByName, Clone, Debug)]
pub struct CollectionMember {
    #[diesel(embed)]
    pub product: Product,
    #[diesel(sql_type = Nullable<Int4>)]
    pub sort_position: Option<i32>,
    #[diesel(sql_type = Nullable<Double>)]
    pub sort_score: Option<f64>,
    #[diesel(sql_type = BigInt)]
    pub parent_id: i64,
}

impl CollectionMember {
    pub fn into_listed(self) -> ListedProduct {
        ListedProduct {
            product: self.product,
            sort_position: self.sort_position,
            sort_score: self.sort_score,
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = product_options)]
pub struct ProductOption {
    pub id: i64,
    pub product_id: i64,
    pub name: String,
    pub position: i32,
    pub values: Vec<String>,
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = product_images)]
pub struct Image {
    pub id: i64,
    pub product_id: i64,
    pub url: String,
    pub alt_text: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub position: i32,
}

/// A variant with its price in the requested currency (or the shop currency where the
/// catalog has no price in it) and the stock available to sell.
#[derive(QueryableByName, Clone, Debug)]
pub struct Variant {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub product_id: i64,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub sku: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub barcode: Option<String>,
    #[diesel(sql_type = Int4)]
    pub position: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub option1: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub option2: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub option3: Option<String>,
    #[diesel(sql_type = Int4)]
    pub grams: i32,
    #[diesel(sql_type = Text)]
    pub weight_unit: String,
    #[diesel(sql_type = Bool)]
    pub requires_shipping: bool,
    #[diesel(sql_type = Bool)]
    pub taxable: bool,
    #[diesel(sql_type = Text)]
    pub inventory_policy: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub image_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub updated_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub price_minor: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub compare_at_minor: Option<i64>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// False when the catalog has no price for it (neither currency): not for sale.
    #[diesel(sql_type = Bool)]
    pub priced: bool,
    #[diesel(sql_type = BigInt)]
    pub quantity_available: i64,
    /// The product's option names in position order, so `selectedOptions` needs no
    /// second lookup. Empty when the request does not ask for `selectedOptions`.
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    pub option_names: Vec<String>,
}

impl Variant {
    pub fn available_for_sale(&self) -> bool {
        self.priced && (self.inventory_policy == "CONTINUE" || self.quantity_available > 0)
    }

    pub fn option_values(&self) -> [Option<&str>; 3] {
        [
            self.option1.as_deref(),
            self.option2.as_deref(),
            self.option3.as_deref(),
        ]
    }
}

/// Per-product aggregates over all variants, in one currency.
#[derive(QueryableByName, Clone, Debug)]
pub struct ProductSummary {
    #[diesel(sql_type = BigInt)]
    pub product_id: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub min_price_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub max_price_minor: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub min_compare_at_minor: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub max_compare_at_minor: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub available_for_sale: bool,
    #[diesel(sql_type = BigInt)]
    pub total_inventory: i64,
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = collections)]
pub struct Collection {
    pub id: i64,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub description_html: String,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    pub image_url: Option<String>,
    pub image_alt: Option<String>,
    pub image_width: Option<i32>,
    pub image_height: Option<i32>,
    pub published: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A collection listed for one of several products listed together.
#[derive(QueryableByName, Clone, Debug)]
pub struct CollectionOfProduct {
    #[diesel(embed)]
    pub collection: Collection,
    #[diesel(sql_type = BigInt)]
    pub parent_id: i64,
}
