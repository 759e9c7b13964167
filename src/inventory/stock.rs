//! Stock rows written outside a sale: the lock that every writer of variants takes first,
//! the on-hand quantity an import or a new variant sets, the default location, and the
//! demo catalog's bulk stock. (Sales are in the parent module; partners' set and adjust
//! in [`super::levels`].)

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Locks the stock rows of `variant_ids` in (variant, location) order — checkout's order
/// — before a write that touches the variants (or cascades to their stock), so it cannot
/// deadlock with a checkout whose stock triggers update the same variants.
pub async fn lock_stock_of(conn: &mut AsyncPgConnection, variant_ids: &[i64]) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT 1 FROM inventory_levels WHERE variant_id = ANY($1) \
         ORDER BY variant_id, location_id FOR UPDATE",
    )
    .bind::<Array<BigInt>, _>(variant_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the on-hand quantity of a variant at a location (creating the row), as an import
/// or a new variant does. The caller holds the variant's stock lock when the row exists.
pub async fn set_on_hand(
    conn: &mut AsyncPgConnection,
    variant_id: i64,
    location_id: i64,
    quantity: i32,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO inventory_levels (variant_id, location_id, on_hand) VALUES ($1, $2, $3) \
         ON CONFLICT (variant_id, location_id) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now()",
    )
    .bind::<BigInt, _>(variant_id)
    .bind::<BigInt, _>(location_id)
    .bind::<Int4, _>(quantity)
    .execute(conn)
    .await?;
    Ok(())
}

/// The location stock is written to when none is named (the importer's and the admin
/// API's). Read first: an upsert would lock the row for the rest of the caller's
/// transaction and serialize every writer.
pub async fn default_location(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    let found: Option<Id> =
        diesel::sql_query("SELECT id FROM locations WHERE name = 'Main warehouse'")
            .get_result(conn)
            .await
            .optional()?;
    if let Some(row) = found {
        return Ok(row.id);
    }
    let row: Id = diesel::sql_query(
        "INSERT INTO locations (name) VALUES ('Main warehouse') \
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .get_result(conn)
    .await?;
    Ok(row.id)
}

/// The locations named, created when missing; their ids in the order given.
pub async fn add_locations(conn: &mut AsyncPgConnection, names: &[&str]) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "INSERT INTO locations (name) SELECT n FROM unnest($1::text[]) AS t (n) \
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id, name",
    )
    .bind::<Array<Text>, _>(names)
    .load(conn)
    .await?;
    // RETURNING's order is not promised: map the ids back by name.
    Ok(names
        .iter()
        .filter_map(|n| rows.iter().find(|r| r.name == *n).map(|r| r.id))
        .collect())
}

/// New stock rows in bulk (the demo catalog): one row per (variant, location, on hand).
pub async fn insert_levels(
    conn: &mut AsyncPgConnection,
    variant_ids: &[i64],
    location_ids: &[i64],
    on_hand: &[i32],
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO inventory_levels (variant_id, location_id, on_hand) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int4[])",
    )
    .bind::<Array<BigInt>, _>(variant_ids)
    .bind::<Array<BigInt>, _>(location_ids)
    .bind::<Array<Int4>, _>(on_hand)
    .execute(conn)
    .await?;
    Ok(())
}
