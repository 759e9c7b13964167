//! Products in the admin API's writes: one or many (upserted by handle), their variants
//! and prices, their images. Each call is one transaction with its audit entry; stock
//! rows are locked first, in the order checkouts lock them (`inventory::lock_stock_of`).

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Int4, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::{Id, delete_row};
use crate::catalog::writer::{self, ProductDraft, UpsertCounts};
use crate::inventory;
use crate::partners::{Actor, AdminError, MAX_BULK, UserError, audit, constraint, too_many};

/// Checks a draft before it is written.
pub fn validate_draft(draft: &ProductDraft, field: &str) -> Vec<UserError> {
    let mut errors = Vec::new();
    let f = |name: &str| vec![field.to_string(), name.to_string()];
    let push = |errors: &mut Vec<UserError>, name: &str, code: &'static str, msg: String| {
        errors.push(UserError {
            field: f(name),
            message: msg,
            code,
        })
    };
    if draft.title.trim().is_empty() || draft.title.len() > 255 {
        push(
            &mut errors,
            "title",
            "INVALID",
            "The title must be 1 to 255 characters.".into(),
        );
    }
    if !writer::valid_handle(&draft.handle) {
        push(
            &mut errors,
            "handle",
            "INVALID",
            "The handle must be 1 to 255 lowercase letters, digits, - or _.".into(),
        );
    }
    if !writer::PRODUCT_STATUSES.contains(&draft.status.as_str()) {
        push(
            &mut errors,
            "status",
            "INVALID",
            "The status must be ACTIVE, DRAFT or ARCHIVED.".into(),
        );
    }
    if draft.option_names.len() > 3 {
        push(
            &mut errors,
            "options",
            "INVALID",
            "A product has at most three options.".into(),
        );
    }
    if draft.variants.len() > 100 {
        push(
            &mut errors,
            "variants",
            "TOO_MANY_ITEMS",
            "A product has at most 100 variants.".into(),
        );
    }
    let mut skus = std::collections::HashSet::new();
    for (i, v) in draft.variants.iter().enumerate() {
        if v.price_minor < 0 || v.compare_at_minor.is_some_and(|c| c < 0) {
            push(
                &mut errors,
                &format!("variants.{i}.price"),
                "INVALID",
                "Prices may not be negative.".into(),
            );
        }
        if let Some(sku) = &v.sku
            && !skus.insert(sku.clone())
        {
            push(
                &mut errors,
                &format!("variants.{i}.sku"),
                "TAKEN",
                format!("SKU {sku:?} appears twice."),
            );
        }
        if v.inventory.is_some_and(|q| q < 0) {
            push(
                &mut errors,
                &format!("variants.{i}.inventoryQuantity"),
                "INVALID",
                "Stock may not be negative.".into(),
            );
        }
    }
    errors
}

/// Creates a product (its handle must be free) with its variants, prices and images.
pub async fn create_product(
    conn: &mut AsyncPgConnection,
    draft: &ProductDraft,
    shop_currency: &str,
    actor: &Actor,
) -> Result<i64, AdminError> {
    let errors = validate_draft(draft, "input");
    if !errors.is_empty() {
        return Err(AdminError::Input(errors));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        // Two creates of one handle: the second waits and then sees the first.
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('product-handle:' || $1))")
            .bind::<Text, _>(&draft.handle)
            .execute(conn)
            .await?;
        let taken: Option<Id> = diesel::sql_query("SELECT id FROM products WHERE handle = $1")
            .bind::<Text, _>(&draft.handle)
            .get_result(conn)
            .await
            .optional()?;
        if taken.is_some() {
            return Err(AdminError::input(
                &["input", "handle"],
                "TAKEN",
                format!("The handle {:?} is already in use.", draft.handle),
            ));
        }
        let id = upsert(conn, draft, shop_currency).await?.0;
        audit::record(
            conn,
            actor,
            "productCreate",
            "Product",
            Some(id.to_string()),
            draft_json(draft),
        )
        .await?;
        Ok(id)
    })
    .await
}

async fn upsert(
    conn: &mut AsyncPgConnection,
    draft: &ProductDraft,
    shop_currency: &str,
) -> Result<(i64, UpsertCounts), AdminError> {
    let location = inventory::default_location(conn).await?;
    let mut draft = draft.clone();
    draft.ensure_default_variant();
    let counts = writer::upsert_product(conn, &draft, shop_currency, location)
        .await
        .map_err(|e| match e.downcast::<diesel::result::Error>() {
            Ok(db) => constraint(db, &["input"]),
            Err(other) => AdminError::input(&["input"], "INVALID", other.to_string()),
        })?;
    let row: Id = diesel::sql_query("SELECT id FROM products WHERE handle = $1")
        .bind::<Text, _>(&draft.handle)
        .get_result(conn)
        .await?;
    Ok((row.id, counts))
}

fn draft_json(d: &ProductDraft) -> serde_json::Value {
    json!({
        "handle": d.handle, "title": d.title, "vendor": d.vendor, "productType": d.product_type,
        "tags": d.tags, "status": d.status, "published": d.published,
        "variants": d.variants.iter().map(|v| json!({
            "sku": v.sku, "options": v.options, "priceMinor": v.price_minor,
            "compareAtMinor": v.compare_at_minor, "inventory": v.inventory,
        })).collect::<Vec<_>>(),
        "images": d.images.iter().map(|i| json!({ "url": i.url, "alt": i.alt })).collect::<Vec<_>>(),
    })
}

/// Creates or updates up to [`MAX_BULK`] products by handle, all or none.
pub async fn upsert_products(
    conn: &mut AsyncPgConnection,
    drafts: &[ProductDraft],
    shop_currency: &str,
    actor: &Actor,
) -> Result<Vec<i64>, AdminError> {
    if drafts.len() > MAX_BULK {
        return Err(AdminError::Input(vec![too_many("products", drafts.len())]));
    }
    let mut errors = Vec::new();
    let mut handles = std::collections::HashSet::new();
    for (i, d) in drafts.iter().enumerate() {
        errors.extend(validate_draft(d, &format!("products.{i}")));
        if !handles.insert(d.handle.clone()) {
            errors.push(UserError::new(
                &["products", &i.to_string(), "handle"],
                "TAKEN",
                "The handle appears twice.",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AdminError::Input(errors));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        let mut ids = Vec::with_capacity(drafts.len());
        // Handles in order: two bulk calls overlapping in products cannot deadlock.
        let mut order: Vec<usize> = (0..drafts.len()).collect();
        order.sort_by(|a, b| drafts[*a].handle.cmp(&drafts[*b].handle));
        let mut by_index = vec![0i64; drafts.len()];
        for i in order {
            let (id, counts) = upsert(conn, &drafts[i], shop_currency).await?;
            by_index[i] = id;
            let action = if counts.products_created > 0 {
                "productCreate"
            } else {
                "productUpdate"
            };
            audit::record(
                conn,
                actor,
                action,
                "Product",
                Some(id.to_string()),
                draft_json(&drafts[i]),
            )
            .await?;
        }
        ids.extend(by_index);
        Ok(ids)
    })
    .await
}

/// A partial update of a product's own fields (`None`: unchanged).
#[derive(Debug, Default, Clone)]
pub struct ProductPatch {
    pub handle: Option<String>,
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub status: Option<String>,
    pub published: Option<bool>,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    /// `Some(None)` clears the category.
    pub category_id: Option<Option<i64>>,
}

pub async fn update_product(
    conn: &mut AsyncPgConnection,
    id: i64,
    patch: &ProductPatch,
    actor: &Actor,
) -> Result<bool, AdminError> {
    if let Some(status) = &patch.status
        && !writer::PRODUCT_STATUSES.contains(&status.as_str())
    {
        return Err(AdminError::input(
            &["input", "status"],
            "INVALID",
            "The status must be ACTIVE, DRAFT or ARCHIVED.",
        ));
    }
    if patch.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(AdminError::input(
            &["input", "title"],
            "INVALID",
            "The title may not be empty.",
        ));
    }
    if let Some(h) = &patch.handle
        && !writer::valid_handle(h)
    {
        return Err(AdminError::input(
            &["input", "handle"],
            "INVALID",
            "The handle must be 1 to 255 lowercase letters, digits, - or _.",
        ));
    }
    let description = patch.description_html.as_deref().map(writer::strip_html);
    conn.transaction::<_, AdminError, _>(async |conn| {
        let updated = diesel::sql_query(
            "UPDATE products SET handle = COALESCE($2, handle), title = COALESCE($3, title), \
               description_html = COALESCE($4, description_html), description = COALESCE($5, description), \
               vendor = COALESCE($6, vendor), product_type = COALESCE($7, product_type), tags = COALESCE($8, tags), \
               status = COALESCE($9, status), \
               published_at = CASE WHEN $10 IS NULL THEN published_at WHEN $10 THEN COALESCE(published_at, now()) END, \
               seo_title = COALESCE($11, seo_title), seo_description = COALESCE($12, seo_description), \
               category_id = CASE WHEN $13 THEN $14 ELSE category_id END, updated_at = now() \
             WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .bind::<Nullable<Text>, _>(&patch.handle)
        .bind::<Nullable<Text>, _>(&patch.title)
        .bind::<Nullable<Text>, _>(&patch.description_html)
        .bind::<Nullable<Text>, _>(&description)
        .bind::<Nullable<Text>, _>(&patch.vendor)
        .bind::<Nullable<Text>, _>(&patch.product_type)
        .bind::<Nullable<Array<Text>>, _>(&patch.tags)
        .bind::<Nullable<Text>, _>(&patch.status)
        .bind::<Nullable<Bool>, _>(patch.published)
        .bind::<Nullable<Text>, _>(&patch.seo_title)
        .bind::<Nullable<Text>, _>(&patch.seo_description)
        .bind::<Bool, _>(patch.category_id.is_some())
        .bind::<Nullable<BigInt>, _>(patch.category_id.flatten())
        .execute(conn)
        .await
        .map_err(|e| constraint(e, &["input"]))?;
        if updated == 0 {
            return Ok(false);
        }
        audit::record(
            conn,
            actor,
            "productUpdate",
            "Product",
            Some(id.to_string()),
            json!({ "handle": patch.handle, "title": patch.title, "descriptionHtml": patch.description_html,
                    "vendor": patch.vendor, "productType": patch.product_type, "tags": patch.tags,
                    "status": patch.status, "published": patch.published, "seoTitle": patch.seo_title,
                    "seoDescription": patch.seo_description, "categoryId": patch.category_id }),
        )
        .await?;
        Ok(true)
    })
    .await
}

pub async fn delete_product(
    conn: &mut AsyncPgConnection,
    id: i64,
    actor: &Actor,
) -> Result<bool, AdminError> {
    conn.transaction::<_, AdminError, _>(async |conn| {
        #[derive(QueryableByName)]
        struct V {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let variants: Vec<V> =
            diesel::sql_query("SELECT id FROM product_variants WHERE product_id = $1")
                .bind::<BigInt, _>(id)
                .load(conn)
                .await?;
        let ids: Vec<i64> = variants.iter().map(|v| v.id).collect();
        // The delete cascades to the variants' stock rows.
        inventory::lock_stock_of(conn, &ids).await?;
        delete_row(conn, "products", "Product", "productDelete", id, actor).await
    })
    .await
}

/// A partial update of one variant; prices are in `currency` (the shop's by default).
#[derive(Debug, Default, Clone)]
pub struct VariantPatch {
    pub id: i64,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price_minor: Option<i64>,
    /// `Some(None)` removes the compare-at price.
    pub compare_at_minor: Option<Option<i64>>,
    pub currency: Option<String>,
    pub inventory_policy: Option<String>,
    pub taxable: Option<bool>,
    pub requires_shipping: Option<bool>,
    pub grams: Option<i32>,
}

/// Updates up to [`MAX_BULK`] variants, all or none, in id order (no deadlocks).
pub async fn update_variants(
    conn: &mut AsyncPgConnection,
    patches: &[VariantPatch],
    shop_currency: &str,
    actor: &Actor,
) -> Result<Vec<i64>, AdminError> {
    if patches.len() > MAX_BULK {
        return Err(AdminError::Input(vec![too_many("variants", patches.len())]));
    }
    let mut errors = Vec::new();
    for (i, p) in patches.iter().enumerate() {
        let at = i.to_string();
        if p.inventory_policy
            .as_deref()
            .is_some_and(|v| v != "DENY" && v != "CONTINUE")
        {
            errors.push(UserError::new(
                &["variants", &at, "inventoryPolicy"],
                "INVALID",
                "DENY or CONTINUE.",
            ));
        }
        if p.price_minor.is_some_and(|m| m < 0)
            || p.compare_at_minor.flatten().is_some_and(|m| m < 0)
        {
            errors.push(UserError::new(
                &["variants", &at, "price"],
                "INVALID",
                "Prices may not be negative.",
            ));
        }
        if p.grams.is_some_and(|g| g < 0) {
            errors.push(UserError::new(
                &["variants", &at, "weightGrams"],
                "INVALID",
                "The weight may not be negative.",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AdminError::Input(errors));
    }
    let mut sorted: Vec<&VariantPatch> = patches.iter().collect();
    sorted.sort_by_key(|p| p.id);
    let ids: Vec<i64> = sorted.iter().map(|p| p.id).collect();
    conn.transaction::<_, AdminError, _>(async |conn| {
        inventory::lock_stock_of(conn, &ids).await?;
        let mut missing = Vec::new();
        for (i, p) in sorted.iter().enumerate() {
            let n = diesel::sql_query(
                "UPDATE product_variants SET sku = COALESCE($2, sku), barcode = COALESCE($3, barcode), \
                   inventory_policy = COALESCE($4, inventory_policy), taxable = COALESCE($5, taxable), \
                   requires_shipping = COALESCE($6, requires_shipping), grams = COALESCE($7, grams), \
                   updated_at = now() WHERE id = $1",
            )
            .bind::<BigInt, _>(p.id)
            .bind::<Nullable<Text>, _>(&p.sku)
            .bind::<Nullable<Text>, _>(&p.barcode)
            .bind::<Nullable<Text>, _>(&p.inventory_policy)
            .bind::<Nullable<Bool>, _>(p.taxable)
            .bind::<Nullable<Bool>, _>(p.requires_shipping)
            .bind::<Nullable<Int4>, _>(p.grams)
            .execute(conn)
            .await
            .map_err(|e| constraint(e, &["variants", &i.to_string()]))?;
            if n == 0 {
                missing.push(UserError::new(&["variants", &i.to_string(), "id"], "NOT_FOUND", format!("No variant {}.", p.id)));
                continue;
            }
            let currency = p.currency.clone().unwrap_or_else(|| shop_currency.to_string());
            if let Some(price) = p.price_minor {
                diesel::sql_query(
                    "INSERT INTO variant_prices (variant_id, currency, amount_minor, compare_at_minor) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (variant_id, currency) DO UPDATE SET \
                     amount_minor = EXCLUDED.amount_minor, \
                     compare_at_minor = CASE WHEN $5 THEN EXCLUDED.compare_at_minor ELSE variant_prices.compare_at_minor END",
                )
                .bind::<BigInt, _>(p.id)
                .bind::<Text, _>(&currency)
                .bind::<BigInt, _>(price)
                .bind::<Nullable<BigInt>, _>(p.compare_at_minor.flatten())
                .bind::<Bool, _>(p.compare_at_minor.is_some())
                .execute(conn)
                .await
                .map_err(|e| constraint(e, &["variants", &i.to_string(), "price"]))?;
            } else if let Some(compare) = p.compare_at_minor {
                diesel::sql_query(
                    "UPDATE variant_prices SET compare_at_minor = $3 WHERE variant_id = $1 AND currency = $2",
                )
                .bind::<BigInt, _>(p.id)
                .bind::<Text, _>(&currency)
                .bind::<Nullable<BigInt>, _>(compare)
                .execute(conn)
                .await?;
            }
            audit::record(
                conn,
                actor,
                "productVariantsBulkUpdate",
                "ProductVariant",
                Some(p.id.to_string()),
                json!({ "sku": p.sku, "barcode": p.barcode, "priceMinor": p.price_minor,
                        "compareAtMinor": p.compare_at_minor, "currency": currency,
                        "inventoryPolicy": p.inventory_policy, "taxable": p.taxable,
                        "requiresShipping": p.requires_shipping, "grams": p.grams }),
            )
            .await?;
        }
        if !missing.is_empty() {
            return Err(AdminError::Input(missing));
        }
        Ok(patches.iter().map(|p| p.id).collect())
    })
    .await
}

/// Deletes up to [`MAX_BULK`] variants of a product (a product keeps at least one).
pub async fn delete_variants(
    conn: &mut AsyncPgConnection,
    product_id: i64,
    ids: &[i64],
    actor: &Actor,
) -> Result<usize, AdminError> {
    if ids.len() > MAX_BULK {
        return Err(AdminError::Input(vec![too_many("variantsIds", ids.len())]));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        inventory::lock_stock_of(conn, ids).await?;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let left: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT id FROM product_variants WHERE product_id = $1 \
             ORDER BY id FOR UPDATE) v WHERE NOT (id = ANY($2))",
        )
        .bind::<BigInt, _>(product_id)
        .bind::<Array<BigInt>, _>(ids)
        .get_result(conn)
        .await?;
        if left.n == 0 {
            return Err(AdminError::input(
                &["variantsIds"],
                "INVALID",
                "A product keeps at least one variant.",
            ));
        }
        let n = diesel::sql_query(
            "DELETE FROM product_variants WHERE product_id = $1 AND id = ANY($2)",
        )
        .bind::<BigInt, _>(product_id)
        .bind::<Array<BigInt>, _>(ids)
        .execute(conn)
        .await
        .map_err(|e| constraint(e, &["variantsIds"]))?;
        audit::record(
            conn,
            actor,
            "productVariantsBulkDelete",
            "Product",
            Some(product_id.to_string()),
            json!({ "variantIds": ids }),
        )
        .await?;
        Ok(n)
    })
    .await
}

/// Adds an image to a product (by URL; the same URL twice is one image).
pub async fn add_image(
    conn: &mut AsyncPgConnection,
    product_id: i64,
    url: &str,
    alt: Option<&str>,
    actor: &Actor,
) -> Result<i64, AdminError> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    if parsed.is_none() {
        return Err(AdminError::input(
            &["url"],
            "INVALID",
            "The image URL must be an http(s) URL.",
        ));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        let row: Id = diesel::sql_query(
            "INSERT INTO product_images (product_id, url, alt_text, position) \
             SELECT $1, $2, $3, COALESCE(max(position), 0) + 1 FROM product_images WHERE product_id = $1 \
             ON CONFLICT (product_id, url) DO UPDATE SET alt_text = EXCLUDED.alt_text RETURNING id",
        )
        .bind::<BigInt, _>(product_id)
        .bind::<Text, _>(url)
        .bind::<Nullable<Text>, _>(alt)
        .get_result(conn)
        .await
        .map_err(|e| constraint(e, &["productId"]))?;
        audit::record(conn, actor, "productImageCreate", "ProductImage", Some(row.id.to_string()), json!({ "productId": product_id, "url": url, "alt": alt })).await?;
        Ok(row.id)
    })
    .await
}

pub async fn update_image(
    conn: &mut AsyncPgConnection,
    id: i64,
    alt: Option<&str>,
    position: Option<i32>,
    actor: &Actor,
) -> Result<bool, AdminError> {
    conn.transaction::<_, AdminError, _>(async |conn| {
        let n = diesel::sql_query(
            "UPDATE product_images SET alt_text = COALESCE($2, alt_text), position = COALESCE($3, position) WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .bind::<Nullable<Text>, _>(alt)
        .bind::<Nullable<Int4>, _>(position)
        .execute(conn)
        .await?;
        if n > 0 {
            audit::record(conn, actor, "productImageUpdate", "ProductImage", Some(id.to_string()), json!({ "alt": alt, "position": position })).await?;
        }
        Ok(n > 0)
    })
    .await
}

pub async fn delete_image(
    conn: &mut AsyncPgConnection,
    id: i64,
    actor: &Actor,
) -> Result<bool, AdminError> {
    delete_row(
        conn,
        "product_images",
        "ProductImage",
        "productImageDelete",
        id,
        actor,
    )
    .await
}
