//! Products in the admin API: products, their variants and images, and CSV export and
//! import. Each resolver parses its arguments, calls one function of
//! `catalog::edit` (writes, each with its audit entry) or `catalog::records` (reads), and
//! maps the result.

use super::*;

#[derive(Default)]
pub struct ProductsQuery;

#[Object]
impl ProductsQuery {
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
        let filter = records::ProductFilter {
            status,
            updated_at_min,
            query,
        };
        let mut conn = primary(ctx).await?;
        let rows = records::product_page(&mut conn, &filter, after, reverse, first + 1)
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
        Ok(records::product_by_handle(&mut conn, &handle)
            .await
            .map_err(db)?
            .map(|r| Product(Arc::new(r))))
    }

    async fn product_variant(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductVariant>> {
        let id = id_of("ProductVariant", &id)?;
        let mut conn = primary(ctx).await?;
        let product = records::products_of_variants(&mut conn, &[id])
            .await
            .map_err(db)?;
        drop(conn);
        let Some(product_id) = product.first().map(|(_, p)| *p) else {
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
        if skus.len() > partners::MAX_BULK {
            return Err(crate::graphql::errors::coded(
                "TOO_MANY_ITEMS",
                "At most 250 SKUs per request.",
            ));
        }
        let mut conn = primary(ctx).await?;
        let rows = records::products_of_skus(&mut conn, &skus)
            .await
            .map_err(db)?;
        drop(conn);
        let loader = ctx.data_unchecked::<AdminDataLoader>();
        let products = loader
            .load_many(rows.iter().map(|(_, product)| VariantsOf(*product)))
            .await
            .map_err(|e| from_db(&e))?;
        let all: Vec<ProductVariant> = products.into_values().flatten().collect();
        Ok(skus
            .iter()
            .filter_map(|s| all.iter().find(|v| v.0.sku.as_deref() == Some(s)).cloned())
            .collect())
    }

    async fn product_export(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductExport>> {
        let id = id_of("ProductExport", &id)?;
        let mut conn = primary(ctx).await?;
        let shop = &app(ctx).config.shop.url;
        Ok(crate::catalog::export::get(&mut conn, id)
            .await
            .map_err(db)?
            .map(|e| ProductExport::of(e, shop)))
    }

    async fn product_import(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductImport>> {
        let id = id_of("ProductImport", &id)?;
        let mut conn = primary(ctx).await?;
        let status = crate::catalog::import_jobs::status(&mut conn, id)
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
}

#[derive(Default)]
pub struct ProductsMutation;

#[Object]
impl ProductsMutation {
    async fn product_create(
        &self,
        ctx: &Context<'_>,
        input: ProductCreateInput,
    ) -> Result<ProductPayload> {
        let currency = &app(ctx).config.shop.currency;
        let (id, user_errors) = split(match draft_of(&input, "input", currency) {
            Ok(draft) => {
                let mut conn = primary(ctx).await?;
                edit::create_product(&mut conn, &draft, currency, &actor(ctx)).await
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
        if products.len() > partners::MAX_BULK {
            return Ok(ProductsBulkPayload {
                products: vec![],
                user_errors: vec![partners::too_many("products", products.len()).into()],
            });
        }
        let currency = &app(ctx).config.shop.currency;
        let drafts: Result<Vec<ProductDraft>, AdminError> = products
            .iter()
            .enumerate()
            .map(|(i, p)| draft_of(p, &format!("products.{i}"), currency))
            .collect();
        let mut conn = primary(ctx).await?;
        let (ids, user_errors) = split(match drafts {
            Ok(drafts) => edit::upsert_products(&mut conn, &drafts, currency, &actor(ctx)).await,
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
        let patch = edit::ProductPatch {
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
            edit::update_product(&mut conn, id, &patch, &actor(ctx)).await,
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
            edit::delete_product(&mut conn, db_id, &actor(ctx)).await,
            "product",
        )
    }

    /// Updates up to 250 variants (prices, SKUs, policies), all or none.
    async fn product_variants_bulk_update(
        &self,
        ctx: &Context<'_>,
        variants: Vec<VariantUpdateInput>,
    ) -> Result<VariantsPayload> {
        if variants.len() > partners::MAX_BULK {
            return Ok(VariantsPayload {
                product_variants: vec![],
                user_errors: vec![partners::too_many("variants", variants.len()).into()],
            });
        }
        let shop = app(ctx).config.shop.currency.clone();
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
                errors.push(partners::UserError::new(
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
                    patches.push(edit::VariantPatch {
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
                (Err(_), _, _) => errors.push(partners::UserError::new(
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
            split(edit::update_variants(&mut conn, &patches, &shop, &actor(ctx)).await)?;
        drop(conn);
        let mut product_variants = Vec::new();
        if let Some(ids) = ids {
            let mut conn = primary(ctx).await?;
            let rows = records::products_of_variants(&mut conn, &ids)
                .await
                .map_err(db)?;
            drop(conn);
            let loaded = ctx
                .data_unchecked::<AdminDataLoader>()
                .load_many(rows.iter().map(|(_, product)| VariantsOf(*product)))
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
            split(edit::delete_variants(&mut conn, product, &ids, &actor(ctx)).await)?;
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
            edit::add_image(&mut conn, product, &url, alt_text.as_deref(), &actor(ctx)).await,
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
            edit::update_image(&mut conn, db_id, alt_text.as_deref(), position, &actor(ctx)).await,
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
            edit::delete_image(&mut conn, db_id, &actor(ctx)).await,
            "image",
        )
    }

    /// Starts a CSV export of the catalog (Shopify's product format), as a job.
    async fn product_export_create(&self, ctx: &Context<'_>) -> Result<ProductExportPayload> {
        let mut conn = primary(ctx).await?;
        let export = crate::catalog::export::create(&mut conn, &actor(ctx))
            .await
            .map_err(db)?;
        Ok(ProductExportPayload {
            export: Some(ProductExport::of(export, &app(ctx).config.shop.url)),
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
        let id = crate::catalog::import_jobs::enqueue_audited(&mut conn, &name, &csv, &actor(ctx))
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
}

async fn product_rows(conn: &mut PgConn, ids: &[i64]) -> Result<Vec<Product>> {
    Ok(records::products_by_ids(conn, ids)
        .await
        .map_err(db)?
        .into_iter()
        .map(|r| Product(Arc::new(r)))
        .collect())
}

async fn product_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<Product>> {
    let mut conn = primary(ctx).await?;
    Ok(product_rows(&mut conn, &[id]).await?.into_iter().next())
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
pub struct ProductExportPayload {
    pub export: Option<ProductExport>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ProductImportPayload {
    pub import: Option<ProductImport>,
    pub user_errors: Vec<UserError>,
}

fn draft_of(
    input: &ProductCreateInput,
    at: &str,
    currency: &str,
) -> Result<ProductDraft, AdminError> {
    let handle = input
        .handle
        .clone()
        .unwrap_or_else(|| edit::slug(&input.title));
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
