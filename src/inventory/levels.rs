//! Stock writes of the admin API: set or adjust on-hand quantities per variant and
//! location, up to [`MAX_BULK`] at once, in one statement. Rows are locked in
//! (variant, location) order, the order checkouts lock them in, so a partner sync and a
//! checkout rush never deadlock. Reserved units are never touched: an adjustment that
//! would take on-hand below what unpaid orders hold is refused.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Int8, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::partners::{Actor, AdminError, MAX_BULK, UserError, audit, too_many, webhooks};

#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub variant_id: i64,
    pub location_id: i64,
    /// The new on-hand quantity (set) or the difference (adjust).
    pub quantity: i64,
}

/// A level after the change.
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
pub struct Level {
    #[diesel(sql_type = Int8)]
    pub variant_id: i64,
    #[diesel(sql_type = Int8)]
    pub location_id: i64,
    #[diesel(sql_type = Int4)]
    pub on_hand: i32,
    #[diesel(sql_type = Int4)]
    pub reserved: i32,
}

/// Sets (`adjust = false`) or adjusts on-hand quantities; all or none.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    changes: &[Change],
    adjust: bool,
    reason: &str,
    low_threshold: i64,
    actor: &Actor,
) -> Result<Vec<Level>, AdminError> {
    let field = if adjust { "changes" } else { "quantities" };
    if changes.len() > MAX_BULK {
        return Err(AdminError::Input(vec![too_many(field, changes.len())]));
    }
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in changes.iter().enumerate() {
        let at = i.to_string();
        if !seen.insert((c.variant_id, c.location_id)) {
            errors.push(UserError::new(
                &[field, &at],
                "DUPLICATE",
                "The same variant and location appear twice.",
            ));
        }
        let limit = i32::MAX as i64;
        if (!adjust && !(0..=limit).contains(&c.quantity))
            || (adjust && c.quantity.unsigned_abs() > limit as u64)
        {
            errors.push(UserError::new(
                &[field, &at, if adjust { "delta" } else { "quantity" }],
                "INVALID",
                if adjust {
                    "The change is out of range."
                } else {
                    "The quantity must be between 0 and 2147483647."
                },
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AdminError::Input(errors));
    }
    let mut sorted = changes.to_vec();
    sorted.sort_by_key(|c| (c.variant_id, c.location_id));
    let variants: Vec<i64> = sorted.iter().map(|c| c.variant_id).collect();
    let locations: Vec<i64> = sorted.iter().map(|c| c.location_id).collect();
    let quantities: Vec<i64> = sorted.iter().map(|c| c.quantity).collect();
    conn.transaction::<_, AdminError, _>(async |conn| {
        // Unknown variants or locations are named, not left to a foreign-key error.
        #[derive(QueryableByName)]
        struct Missing {
            #[diesel(sql_type = Int8)]
            variant_id: i64,
            #[diesel(sql_type = Int8)]
            location_id: i64,
            #[diesel(sql_type = Text)]
            what: String,
        }
        let missing: Vec<Missing> = diesel::sql_query(
            "SELECT x.v AS variant_id, x.l AS location_id, \
                    CASE WHEN v.id IS NULL THEN 'variant' ELSE 'location' END AS what \
             FROM unnest($1::int8[], $2::int8[]) AS x (v, l) \
             LEFT JOIN product_variants v ON v.id = x.v LEFT JOIN locations l ON l.id = x.l \
             WHERE v.id IS NULL OR l.id IS NULL",
        )
        .bind::<Array<BigInt>, _>(&variants)
        .bind::<Array<BigInt>, _>(&locations)
        .load(conn)
        .await?;
        if !missing.is_empty() {
            return Err(AdminError::Input(
                missing
                    .iter()
                    .map(|m| {
                        let i = changes
                            .iter()
                            .position(|c| c.variant_id == m.variant_id && c.location_id == m.location_id)
                            .unwrap_or(0);
                        UserError::new(&[field, &i.to_string()], "NOT_FOUND", format!("No such {}.", m.what))
                    })
                    .collect(),
            ));
        }
        // Stock rows first, in (variant, location) order — the order checkouts lock them
        // in — and only then anything of the variant rows (the stock triggers update
        // those), so a partner sync and a checkout rush never deadlock.
        diesel::sql_query(
            "SELECT 1 FROM inventory_levels l JOIN unnest($1::int8[], $2::int8[]) AS x (v, loc) \
             ON l.variant_id = x.v AND l.location_id = x.loc ORDER BY l.variant_id, l.location_id FOR UPDATE OF l",
        )
        .bind::<Array<BigInt>, _>(&variants)
        .bind::<Array<BigInt>, _>(&locations)
        .execute(conn)
        .await?;
        // Stock before, for the low-stock webhook.
        #[derive(QueryableByName)]
        struct Available {
            #[diesel(sql_type = Int8)]
            id: i64,
            #[diesel(sql_type = Int8)]
            available: i64,
        }
        let mut unique = variants.clone();
        unique.dedup();
        let before: Vec<Available> =
            diesel::sql_query("SELECT id, available FROM product_variants WHERE id = ANY($1)")
                .bind::<Array<BigInt>, _>(&unique)
                .load(conn)
                .await?;
        let sql = if adjust {
            "INSERT INTO inventory_levels AS l (variant_id, location_id, on_hand) \
             SELECT v, loc, q::int4 FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS x (v, loc, q) ORDER BY v, loc \
             ON CONFLICT (variant_id, location_id) DO UPDATE SET on_hand = l.on_hand + EXCLUDED.on_hand, updated_at = now() \
             RETURNING variant_id, location_id, on_hand, reserved"
        } else {
            "INSERT INTO inventory_levels AS l (variant_id, location_id, on_hand) \
             SELECT v, loc, q::int4 FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS x (v, loc, q) ORDER BY v, loc \
             ON CONFLICT (variant_id, location_id) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now() \
             RETURNING variant_id, location_id, on_hand, reserved"
        };
        let levels: Vec<Level> = diesel::sql_query(sql)
            .bind::<Array<BigInt>, _>(&variants)
            .bind::<Array<BigInt>, _>(&locations)
            .bind::<Array<BigInt>, _>(&quantities)
            .load(conn)
            .await
            .map_err(|e| match &e {
                diesel::result::Error::DatabaseError(_, info) if info.message().contains("out of range") => {
                    AdminError::input(&[field], "INVALID", "A quantity would leave the integer range.")
                }
                _ => crate::partners::constraint(e, &[field]),
            })?;
        let below: Vec<UserError> = levels
            .iter()
            .filter(|l| l.on_hand < 0 || l.on_hand < l.reserved)
            .map(|l| {
                let i = changes
                    .iter()
                    .position(|c| c.variant_id == l.variant_id && c.location_id == l.location_id)
                    .unwrap_or(0);
                UserError::new(
                    &[field, &i.to_string()],
                    "INVALID",
                    format!(
                        "On hand would be {} with {} reserved by unpaid orders.",
                        l.on_hand, l.reserved
                    ),
                )
            })
            .collect();
        if !below.is_empty() {
            return Err(AdminError::Input(below));
        }
        // One audit row for the batch: what each level was set or moved to.
        audit::record(
            conn,
            actor,
            if adjust { "inventoryAdjustQuantities" } else { "inventorySetQuantities" },
            "InventoryLevel",
            None,
            json!({
                "reason": reason,
                "changes": sorted.iter().zip(&levels).map(|(c, l)| json!({
                    "variantId": c.variant_id, "locationId": c.location_id,
                    if adjust { "delta" } else { "quantity" }: c.quantity, "onHand": l.on_hand,
                })).collect::<Vec<_>>(),
            }),
        )
        .await?;
        let crossed: Vec<(i64, i64)> = {
            #[derive(QueryableByName)]
            struct After {
                #[diesel(sql_type = Int8)]
                id: i64,
                #[diesel(sql_type = Int8)]
                available: i64,
            }
            let after: Vec<After> = diesel::sql_query("SELECT id, available FROM product_variants WHERE id = ANY($1)")
                .bind::<Array<BigInt>, _>(&unique)
                .load(conn)
                .await?;
            after
                .iter()
                .filter(|a| {
                    a.available < low_threshold
                        && before.iter().any(|b| b.id == a.id && b.available >= low_threshold)
                })
                .map(|a| (a.id, a.available))
                .collect()
        };
        webhooks::inventory_low(conn, &crossed, low_threshold).await?;
        Ok(levels)
    })
    .await
}

#[derive(QueryableByName, Debug, Clone)]
pub struct LevelRow {
    #[diesel(sql_type = Int8)]
    pub variant_id: i64,
    #[diesel(sql_type = Int8)]
    pub location_id: i64,
    #[diesel(sql_type = Text)]
    pub location_name: String,
    #[diesel(sql_type = Int4)]
    pub on_hand: i32,
    #[diesel(sql_type = Int4)]
    pub reserved: i32,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The levels of the given variants (all locations).
pub async fn levels_of(
    conn: &mut AsyncPgConnection,
    variant_ids: &[i64],
) -> QueryResult<Vec<LevelRow>> {
    diesel::sql_query(
        "SELECT l.variant_id, l.location_id, loc.name AS location_name, l.on_hand, l.reserved, l.updated_at \
         FROM inventory_levels l JOIN locations loc ON loc.id = l.location_id \
         WHERE l.variant_id = ANY($1) ORDER BY l.variant_id, l.location_id",
    )
    .bind::<Array<BigInt>, _>(variant_ids)
    .load(conn)
    .await
}

#[derive(QueryableByName, Debug, Clone)]
pub struct Location {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
}

pub async fn locations(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Location>> {
    diesel::sql_query("SELECT id, name FROM locations ORDER BY id")
        .load(conn)
        .await
}

/// Creates a location (or returns the one of that name).
pub async fn add_location(
    conn: &mut AsyncPgConnection,
    name: &str,
    actor: &Actor,
) -> Result<Location, AdminError> {
    if name.trim().is_empty() || name.len() > 255 {
        return Err(AdminError::input(
            &["name"],
            "INVALID",
            "The name must be 1 to 255 characters.",
        ));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        let loc: Location = diesel::sql_query(
            "INSERT INTO locations (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id, name",
        )
        .bind::<Text, _>(name.trim())
        .get_result(conn)
        .await?;
        audit::record(conn, actor, "locationAdd", "Location", Some(loc.id.to_string()), json!({ "name": loc.name })).await?;
        Ok(loc)
    })
    .await
}
