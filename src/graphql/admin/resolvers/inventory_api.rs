//! Stock in the admin API: locations and inventory levels, set or adjusted in bulk
//! through `inventory::levels`.

use super::*;

#[derive(Default)]
pub struct InventoryQuery;

#[Object]
impl InventoryQuery {
    async fn locations(&self, ctx: &Context<'_>) -> Result<Vec<Location>> {
        let mut conn = primary(ctx).await?;
        Ok(levels::locations(&mut conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Stock per location of up to 250 variants.
    async fn inventory_levels(
        &self,
        ctx: &Context<'_>,
        variant_ids: Vec<ID>,
    ) -> Result<Vec<InventoryLevel>> {
        if variant_ids.len() > partners::MAX_BULK {
            return Err(crate::graphql::errors::coded(
                "TOO_MANY_ITEMS",
                "At most 250 variants per request.",
            ));
        }
        let ids = ids_of("ProductVariant", &variant_ids)?;
        let mut conn = primary(ctx).await?;
        Ok(levels::levels_of(&mut conn, &ids)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(Default)]
pub struct InventoryMutation;

#[Object]
impl InventoryMutation {
    async fn location_add(&self, ctx: &Context<'_>, name: String) -> Result<LocationPayload> {
        let mut conn = primary(ctx).await?;
        let (loc, user_errors) = split(levels::add_location(&mut conn, &name, &actor(ctx)).await)?;
        Ok(LocationPayload {
            location: loc.map(Into::into),
            user_errors,
        })
    }

    /// Sets on-hand quantities (a stock count), up to 250 at once, all or none.
    async fn inventory_set_quantities(
        &self,
        ctx: &Context<'_>,
        input: InventorySetQuantitiesInput,
    ) -> Result<InventoryPayload> {
        let changes = input
            .quantities
            .iter()
            .map(|q| {
                Ok(levels::Change {
                    variant_id: id_of("ProductVariant", &q.variant_id)?,
                    location_id: id_of("Location", &q.location_id)?,
                    quantity: q.quantity,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        inventory_change(ctx, &changes, false, &input.reason).await
    }

    /// Adds to or takes from on-hand quantities, up to 250 at once, all or none.
    async fn inventory_adjust_quantities(
        &self,
        ctx: &Context<'_>,
        input: InventoryAdjustQuantitiesInput,
    ) -> Result<InventoryPayload> {
        let changes = input
            .changes
            .iter()
            .map(|q| {
                Ok(levels::Change {
                    variant_id: id_of("ProductVariant", &q.variant_id)?,
                    location_id: id_of("Location", &q.location_id)?,
                    quantity: q.delta,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        inventory_change(ctx, &changes, true, &input.reason).await
    }
}

#[derive(InputObject, Clone, Debug)]
pub struct InventoryQuantityInput {
    pub variant_id: ID,
    pub location_id: ID,
    pub quantity: i64,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventorySetQuantitiesInput {
    /// Why (recorded in the audit log), e.g. "correction", "received".
    pub reason: String,
    pub quantities: Vec<InventoryQuantityInput>,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventoryChangeInput {
    pub variant_id: ID,
    pub location_id: ID,
    pub delta: i64,
}

#[derive(InputObject, Clone, Debug)]
pub struct InventoryAdjustQuantitiesInput {
    pub reason: String,
    pub changes: Vec<InventoryChangeInput>,
}

#[derive(SimpleObject)]
pub struct LocationPayload {
    pub location: Option<Location>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct InventoryPayload {
    /// The levels changed, with their new quantities.
    pub inventory_levels: Vec<InventoryLevel>,
    pub user_errors: Vec<UserError>,
}

async fn inventory_change(
    ctx: &Context<'_>,
    changes: &[levels::Change],
    adjust: bool,
    reason: &str,
) -> Result<InventoryPayload> {
    let threshold = app(ctx).config.inventory.low_threshold;
    let mut conn = primary(ctx).await?;
    let (levels, user_errors) =
        split(levels::apply(&mut conn, changes, adjust, reason, threshold, &actor(ctx)).await)?;
    let inventory_levels = match levels {
        Some(levels) => {
            let ids: Vec<i64> = levels.iter().map(|l| l.variant_id).collect();
            let all = levels::levels_of(&mut conn, &ids).await.map_err(db)?;
            all.into_iter()
                .filter(|r| {
                    levels
                        .iter()
                        .any(|l| l.variant_id == r.variant_id && l.location_id == r.location_id)
                })
                .map(Into::into)
                .collect()
        }
        None => vec![],
    };
    Ok(InventoryPayload {
        inventory_levels,
        user_errors,
    })
}
