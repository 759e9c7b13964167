//! Writes products into the catalog: the importer's upsert by handle and SKU. Price
//! bounds on `products` follow from the database's triggers, whoever writes.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Int4, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::inventory;

/// A product as an import source describes it.
#[derive(Debug, Clone, Default)]
pub struct ProductDraft {
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub published: bool,
    pub status: String,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    /// Option names in position order (at most three).
    pub option_names: Vec<String>,
    pub variants: Vec<VariantDraft>,
    pub images: Vec<ImageDraft>,
}

#[derive(Debug, Clone, Default)]
pub struct VariantDraft {
    pub sku: Option<String>,
    pub options: [Option<String>; 3],
    pub grams: i32,
    pub weight_unit: String,
    pub requires_shipping: bool,
    pub taxable: bool,
    pub inventory_policy: String,
    pub barcode: Option<String>,
    pub price_minor: i64,
    pub compare_at_minor: Option<i64>,
    /// Stock at the import location; `None` leaves stock untouched.
    pub inventory: Option<i32>,
    pub image_url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImageDraft {
    pub url: String,
    pub alt: Option<String>,
    pub position: i32,
}

/// The statuses a product can have.
pub const PRODUCT_STATUSES: &[&str] = &["ACTIVE", "DRAFT", "ARCHIVED"];

/// A handle: 1 to 255 lowercase ASCII letters, digits, `-` or `_`.
pub fn valid_handle(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl ProductDraft {
    /// Shopify's own rule: a product has at least its default variant.
    pub fn ensure_default_variant(&mut self) {
        if !self.variants.is_empty() {
            return;
        }
        self.variants.push(VariantDraft {
            options: [Some("Default Title".into()), None, None],
            weight_unit: "KILOGRAMS".into(),
            requires_shipping: true,
            taxable: true,
            inventory_policy: "DENY".into(),
            ..Default::default()
        });
        if self.option_names.is_empty() {
            self.option_names.push("Title".into());
        }
    }
}

/// What one upsert created and updated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpsertCounts {
    pub products_created: usize,
    pub products_updated: usize,
    pub variants_created: usize,
    pub variants_updated: usize,
    pub images_created: usize,
    pub images_updated: usize,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: Self) {
        self.products_created += o.products_created;
        self.products_updated += o.products_updated;
        self.variants_created += o.variants_created;
        self.variants_updated += o.variants_updated;
        self.images_created += o.images_created;
        self.images_updated += o.images_updated;
    }
}

#[derive(QueryableByName)]
struct Upserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

#[derive(QueryableByName)]
struct UpsertedImage {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

/// Inserts or updates one product by handle, its images by URL and its variants by SKU
/// (by option values where a variant has no SKU), in one transaction.
pub async fn upsert_product(
    conn: &mut AsyncPgConnection,
    draft: &ProductDraft,
    shop_currency: &str,
    location_id: i64,
) -> anyhow::Result<UpsertCounts> {
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let mut counts = UpsertCounts::default();
        let description = strip_html(&draft.description_html);
        let product: Upserted = diesel::sql_query(
            "INSERT INTO products (handle, title, description, description_html, vendor, product_type, tags, \
             status, published_at, seo_title, seo_description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9 THEN now() END, $10, $11) \
             ON CONFLICT (handle) DO UPDATE SET title = EXCLUDED.title, description = EXCLUDED.description, \
               description_html = EXCLUDED.description_html, vendor = EXCLUDED.vendor, \
               product_type = EXCLUDED.product_type, tags = EXCLUDED.tags, status = EXCLUDED.status, \
               published_at = CASE WHEN $9 THEN COALESCE(products.published_at, now()) END, \
               seo_title = EXCLUDED.seo_title, seo_description = EXCLUDED.seo_description, updated_at = now() \
             RETURNING id, (xmax = 0) AS inserted",
        )
        .bind::<Text, _>(&draft.handle)
        .bind::<Text, _>(&draft.title)
        .bind::<Text, _>(&description)
        .bind::<Text, _>(&draft.description_html)
        .bind::<Text, _>(&draft.vendor)
        .bind::<Text, _>(&draft.product_type)
        .bind::<Array<Text>, _>(&draft.tags)
        .bind::<Text, _>(&draft.status)
        .bind::<Bool, _>(draft.published)
        .bind::<Nullable<Text>, _>(&draft.seo_title)
        .bind::<Nullable<Text>, _>(&draft.seo_description)
        .get_result(conn)
        .await?;
        if product.inserted {
            counts.products_created += 1;
        } else {
            counts.products_updated += 1;
        }

        // Options: names from the draft, values in the order the variants use them.
        for (index, name) in draft.option_names.iter().enumerate().take(3) {
            let mut values: Vec<String> = Vec::new();
            for v in &draft.variants {
                if let Some(value) = &v.options[index]
                    && !values.contains(value)
                {
                    values.push(value.clone());
                }
            }
            diesel::sql_query(
                "INSERT INTO product_options (product_id, name, position, \"values\") VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (product_id, position) DO UPDATE SET name = EXCLUDED.name, \"values\" = EXCLUDED.\"values\"",
            )
            .bind::<BigInt, _>(product.id)
            .bind::<Text, _>(name)
            .bind::<Int4, _>(index as i32 + 1)
            .bind::<Array<Text>, _>(&values)
            .execute(conn)
            .await?;
        }
        diesel::sql_query("DELETE FROM product_options WHERE product_id = $1 AND position > $2")
            .bind::<BigInt, _>(product.id)
            .bind::<Int4, _>(draft.option_names.len().min(3) as i32)
            .execute(conn)
            .await?;

        let mut image_ids: Vec<(String, i64)> = Vec::new();
        for image in &draft.images {
            let row: UpsertedImage = diesel::sql_query(
                "INSERT INTO product_images (product_id, url, alt_text, position) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (product_id, url) DO UPDATE SET alt_text = EXCLUDED.alt_text, position = EXCLUDED.position \
                 RETURNING id, url, (xmax = 0) AS inserted",
            )
            .bind::<BigInt, _>(product.id)
            .bind::<Text, _>(&image.url)
            .bind::<Nullable<Text>, _>(&image.alt)
            .bind::<Int4, _>(image.position)
            .get_result(conn)
            .await?;
            if row.inserted {
                counts.images_created += 1;
            } else {
                counts.images_updated += 1;
            }
            image_ids.push((row.url, row.id));
        }

        for (position, v) in draft.variants.iter().enumerate() {
            let title = {
                let parts: Vec<&str> = v.options.iter().flatten().map(String::as_str).collect();
                if parts.is_empty() { "Default Title".to_string() } else { parts.join(" / ") }
            };
            let image_id = v
                .image_url
                .as_ref()
                .and_then(|url| image_ids.iter().find(|(u, _)| u == url).map(|(_, id)| *id));
            // Existing variant: by SKU when there is one, else by option values.
            #[derive(QueryableByName)]
            struct Existing {
                #[diesel(sql_type = BigInt)]
                id: i64,
            }
            let existing: Option<Existing> = match &v.sku {
                Some(sku) => {
                    #[derive(QueryableByName)]
                    struct Owner {
                        #[diesel(sql_type = BigInt)]
                        id: i64,
                        #[diesel(sql_type = BigInt)]
                        product_id: i64,
                    }
                    let owner: Option<Owner> =
                        diesel::sql_query("SELECT id, product_id FROM product_variants WHERE sku = $1")
                            .bind::<Text, _>(sku)
                            .get_result(conn)
                            .await
                            .optional()?;
                    // A SKU of another product is a conflict to report, not a variant to move.
                    if let Some(o) = &owner
                        && o.product_id != product.id
                    {
                        anyhow::bail!("Variant SKU {sku:?} belongs to another product");
                    }
                    owner.map(|o| Existing { id: o.id })
                }
                None => diesel::sql_query(
                    "SELECT id FROM product_variants WHERE product_id = $1 AND sku IS NULL \
                     AND option1 IS NOT DISTINCT FROM $2 AND option2 IS NOT DISTINCT FROM $3 AND option3 IS NOT DISTINCT FROM $4",
                )
                .bind::<BigInt, _>(product.id)
                .bind::<Nullable<Text>, _>(&v.options[0])
                .bind::<Nullable<Text>, _>(&v.options[1])
                .bind::<Nullable<Text>, _>(&v.options[2])
                .get_result(conn)
                .await
                .optional()?,
            };
            let variant_id = match existing {
                Some(Existing { id }) => {
                    // Stock rows before the variant row: the lock order checkouts use
                    // (their stock trigger updates the variant), so the two cannot deadlock.
                    inventory::lock_stock_of(conn, &[id]).await?;
                    diesel::sql_query(
                        "UPDATE product_variants SET product_id = $2, title = $3, barcode = $4, position = $5, \
                         option1 = $6, option2 = $7, option3 = $8, grams = $9, weight_unit = $10, \
                         requires_shipping = $11, taxable = $12, inventory_policy = $13, image_id = $14, updated_at = now() \
                         WHERE id = $1",
                    )
                    .bind::<BigInt, _>(id)
                    .bind::<BigInt, _>(product.id)
                    .bind::<Text, _>(&title)
                    .bind::<Nullable<Text>, _>(&v.barcode)
                    .bind::<Int4, _>(position as i32 + 1)
                    .bind::<Nullable<Text>, _>(&v.options[0])
                    .bind::<Nullable<Text>, _>(&v.options[1])
                    .bind::<Nullable<Text>, _>(&v.options[2])
                    .bind::<Int4, _>(v.grams)
                    .bind::<Text, _>(&v.weight_unit)
                    .bind::<Bool, _>(v.requires_shipping)
                    .bind::<Bool, _>(v.taxable)
                    .bind::<Text, _>(&v.inventory_policy)
                    .bind::<Nullable<BigInt>, _>(image_id)
                    .execute(conn)
                    .await?;
                    counts.variants_updated += 1;
                    id
                }
                None => {
                    let row: Existing = diesel::sql_query(
                        "INSERT INTO product_variants (product_id, title, sku, barcode, position, option1, option2, option3, \
                         grams, weight_unit, requires_shipping, taxable, inventory_policy, image_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                    )
                    .bind::<BigInt, _>(product.id)
                    .bind::<Text, _>(&title)
                    .bind::<Nullable<Text>, _>(&v.sku)
                    .bind::<Nullable<Text>, _>(&v.barcode)
                    .bind::<Int4, _>(position as i32 + 1)
                    .bind::<Nullable<Text>, _>(&v.options[0])
                    .bind::<Nullable<Text>, _>(&v.options[1])
                    .bind::<Nullable<Text>, _>(&v.options[2])
                    .bind::<Int4, _>(v.grams)
                    .bind::<Text, _>(&v.weight_unit)
                    .bind::<Bool, _>(v.requires_shipping)
                    .bind::<Bool, _>(v.taxable)
                    .bind::<Text, _>(&v.inventory_policy)
                    .bind::<Nullable<BigInt>, _>(image_id)
                    .get_result(conn)
                    .await?;
                    counts.variants_created += 1;
                    row.id
                }
            };
            diesel::sql_query(
                "INSERT INTO variant_prices (variant_id, currency, amount_minor, compare_at_minor) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (variant_id, currency) DO UPDATE SET amount_minor = EXCLUDED.amount_minor, \
                 compare_at_minor = EXCLUDED.compare_at_minor",
            )
            .bind::<BigInt, _>(variant_id)
            .bind::<Text, _>(shop_currency)
            .bind::<BigInt, _>(v.price_minor)
            .bind::<Nullable<BigInt>, _>(v.compare_at_minor)
            .execute(conn)
            .await?;
            if let Some(quantity) = v.inventory {
                inventory::set_on_hand(conn, variant_id, location_id, quantity).await?;
            }
        }
        Ok(counts)
    })
    .await
}

/// Plain text of an HTML description, for `Product.description`.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let text = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Adds a paid order's units to its products' `total_sales` (the best-selling sort).
/// The products are locked in id order first, so two payments never deadlock on them.
pub async fn count_sales(conn: &mut AsyncPgConnection, order_id: i64) -> QueryResult<()> {
    use diesel::sql_types::BigInt;
    diesel::sql_query(
        "SELECT p.id FROM products p WHERE p.id IN \
           (SELECT v.product_id FROM order_lines l JOIN product_variants v ON v.id = l.variant_id \
            WHERE l.order_id = $1) ORDER BY p.id FOR NO KEY UPDATE",
    )
    .bind::<BigInt, _>(order_id)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE products p SET total_sales = p.total_sales + s.units \
         FROM (SELECT v.product_id, sum(l.quantity)::int8 AS units FROM order_lines l \
               JOIN product_variants v ON v.id = l.variant_id WHERE l.order_id = $1 GROUP BY 1) s \
         WHERE p.id = s.product_id",
    )
    .bind::<BigInt, _>(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records `SHOP_CURRENCY` in `shop_settings`; when it changed, the price bounds the
/// triggers keep in that currency are recomputed for every product.
pub async fn sync_shop_currency(conn: &mut AsyncPgConnection, currency: &str) -> QueryResult<bool> {
    use crate::db::schema::shop_settings as s;
    // One transaction: a crash between the two statements must not leave the bounds in
    // the old currency with the setting already changed.
    let changed = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let changed = diesel::update(s::table.filter(s::currency.ne(currency)))
                .set(s::currency.eq(currency))
                .execute(conn)
                .await?;
            if changed > 0 {
                diesel::sql_query(
                    "SELECT refresh_product_price_bounds(ARRAY(SELECT id FROM products))",
                )
                .execute(conn)
                .await?;
            }
            Ok(changed > 0)
        })
        .await?;
    if changed {
        tracing::info!(%currency, "shop currency changed: price bounds recomputed");
    }
    Ok(changed)
}

/// How many products the store has (drafts included).
pub async fn product_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    crate::db::schema::products::table
        .count()
        .get_result(conn)
        .await
}
