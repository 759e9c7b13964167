//! Collections and categories in the admin API: each resolver parses its arguments, calls
//! one function of `catalog::edit` (writes, each with its audit entry) or
//! `catalog::records` (reads), and maps the result.

use super::*;

#[derive(Default)]
pub struct CollectionsQuery;

#[Object]
impl CollectionsQuery {
    async fn collections(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<CollectionConnection> {
        let first = check_first(first)?;
        let after = after_id(after.as_deref())?;
        let mut conn = primary(ctx).await?;
        let rows = records::collection_page(&mut conn, after, first + 1)
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
        Ok(records::categories(&mut conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(Default)]
pub struct CollectionsMutation;

#[Object]
impl CollectionsMutation {
    async fn collection_create(
        &self,
        ctx: &Context<'_>,
        input: CollectionInput,
    ) -> Result<CollectionPayload> {
        let mut conn = primary(ctx).await?;
        let (id, user_errors) = split(
            edit::create_collection(&mut conn, &collection_input(&input), &actor(ctx)).await,
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
            edit::update_collection(&mut conn, id, &collection_input(&input), &actor(ctx)).await,
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
            edit::delete_collection(&mut conn, db_id, &actor(ctx)).await,
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
            split(edit::create_category(&mut conn, &domain, &actor(ctx)).await)?;
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
            edit::update_category(&mut conn, id, &domain, &actor(ctx)).await,
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
            edit::delete_category(&mut conn, db_id, &actor(ctx)).await,
            "category",
        )
    }
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

async fn collection_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<Collection>> {
    let mut conn = primary(ctx).await?;
    Ok(records::collection_by_id(&mut conn, id)
        .await
        .map_err(db)?
        .map(|r| Collection(Arc::new(r))))
}

fn collection_input(input: &CollectionInput) -> edit::CollectionInput {
    edit::CollectionInput {
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

fn category_input(input: &CategoryInput) -> Result<edit::CategoryInput> {
    Ok(edit::CategoryInput {
        handle: input.handle.clone(),
        name: input.name.clone(),
        parent_id: clearable("Category", &input.parent_id)?,
    })
}

async fn category_by_id(conn: &mut PgConn, id: i64) -> Result<Option<Category>> {
    Ok(records::category_by_id(conn, id)
        .await
        .map_err(db)?
        .map(Into::into))
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
        split(edit::collection_products(&mut conn, id, &products, add, &actor(ctx)).await)?;
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
