//! Stock: every write of `inventory_levels` and `locations` lives in this module. Here,
//! reservation, sale, release and restock for orders; in [`levels`], partners' set and
//! adjust; in [`stock`], the writes that come with catalog changes and the lock they take.
//!
//! Every writer first locks the `inventory_levels` rows it will change with one
//! `SELECT … ORDER BY variant_id, location_id FOR UPDATE`. All writers lock in that one
//! order, so two checkouts that share variants wait for each other instead of
//! deadlocking, and checkouts of unrelated variants never wait at all. The read that
//! decides an allocation happens under those locks, and the update that applies it is
//! still conditional (`on_hand − reserved ≥ quantity` for DENY variants) and must touch
//! every row it meant to: a DENY variant's available stock cannot go below zero.
//! The trigger of migration 000003 keeps `product_variants.available` in step.

pub mod levels;
pub mod stock;

/// `INVENTORY_LOW_THRESHOLD`: an `INVENTORY_LOW` webhook fires when a sale or a partner's
/// change takes a variant's available stock below this.
#[derive(Clone, Debug)]
pub struct Settings {
    pub low_threshold: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { low_threshold: 5 }
    }
}

pub use stock::{default_location, lock_stock_of, set_on_hand};

use crate::partners::webhooks;

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::sql::Prepared;

/// Units of one variant a checkout wants.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub variant_id: i64,
    pub quantity: i64,
    /// DENY policy: never sell beyond stock. CONTINUE allows backorders.
    pub deny: bool,
}

/// Units held at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub variant_id: i64,
    pub location_id: i64,
    pub quantity: i64,
}

#[derive(QueryableByName, Debug, Clone, Copy)]
struct Level {
    #[diesel(sql_type = BigInt)]
    variant_id: i64,
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = Integer)]
    on_hand: i32,
    #[diesel(sql_type = Integer)]
    reserved: i32,
}

/// Locks every level of `variant_ids` in the fixed order.
async fn lock_levels(conn: &mut AsyncPgConnection, variant_ids: &[i64]) -> QueryResult<Vec<Level>> {
    Prepared(
        diesel::sql_query(
            "SELECT variant_id, location_id, on_hand, reserved FROM inventory_levels \
             WHERE variant_id = ANY($1) ORDER BY variant_id, location_id FOR UPDATE",
        )
        .bind::<Array<BigInt>, _>(variant_ids),
    )
    .load(conn)
    .await
}

/// Decides where the wanted units come from: locations in id order, each giving what it
/// has available. A DENY want that cannot be covered is short; a CONTINUE want puts the
/// rest on its first location (a backorder). Returns the allocations, or the variants
/// that are short.
fn allocate(wants: &[Want], levels: &[Level]) -> Result<Vec<Allocation>, Vec<i64>> {
    let mut by_variant: BTreeMap<i64, Vec<&Level>> = BTreeMap::new();
    for level in levels {
        by_variant.entry(level.variant_id).or_default().push(level);
    }
    let mut allocations = Vec::new();
    let mut short = Vec::new();
    for want in wants {
        let levels = by_variant
            .get(&want.variant_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut remaining = want.quantity;
        let mut taken = Vec::new();
        for level in levels {
            if remaining == 0 {
                break;
            }
            let available = (level.on_hand as i64 - level.reserved as i64).max(0);
            let take = available.min(remaining);
            if take > 0 {
                taken.push(Allocation {
                    variant_id: want.variant_id,
                    location_id: level.location_id,
                    quantity: take,
                });
                remaining -= take;
            }
        }
        if remaining > 0 {
            if want.deny {
                short.push(want.variant_id);
                continue;
            }
            if let Some(first) = levels.first() {
                match taken
                    .iter_mut()
                    .find(|a| a.location_id == first.location_id)
                {
                    Some(a) => a.quantity += remaining,
                    None => taken.push(Allocation {
                        variant_id: want.variant_id,
                        location_id: first.location_id,
                        quantity: remaining,
                    }),
                }
            }
        }
        allocations.extend(taken);
    }
    if short.is_empty() {
        Ok(allocations)
    } else {
        Err(short)
    }
}

/// Reserves stock for `wants` inside the caller's transaction. `Ok(Err(short))` names the
/// DENY variants without enough stock; nothing was changed then.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    wants: &[Want],
) -> QueryResult<Result<Vec<Allocation>, Vec<i64>>> {
    let mut wants = wants.to_vec();
    wants.sort_by_key(|w| w.variant_id);
    let ids: Vec<i64> = wants.iter().map(|w| w.variant_id).collect();
    // A backorderable variant with no level yet gets an empty one at the first location,
    // so its reservation and later sale are recorded like any other.
    let continue_ids: Vec<i64> = wants
        .iter()
        .filter(|w| !w.deny)
        .map(|w| w.variant_id)
        .collect();
    if !continue_ids.is_empty() {
        diesel::sql_query(
            "INSERT INTO inventory_levels (variant_id, location_id, on_hand) \
             SELECT v, (SELECT min(id) FROM locations), 0 FROM unnest($1::int8[]) AS v \
             WHERE EXISTS (SELECT 1 FROM locations) \
               AND NOT EXISTS (SELECT 1 FROM inventory_levels il WHERE il.variant_id = v) \
             ORDER BY v ON CONFLICT DO NOTHING",
        )
        .bind::<Array<BigInt>, _>(&continue_ids)
        .execute(conn)
        .await?;
    }
    let levels = lock_levels(conn, &ids).await?;
    let allocations = match allocate(&wants, &levels) {
        Ok(a) => a,
        Err(short) => return Ok(Err(short)),
    };
    let deny: BTreeMap<i64, bool> = wants.iter().map(|w| (w.variant_id, w.deny)).collect();
    let (v, l, q, d) = columns(&allocations, |a| {
        deny.get(&a.variant_id).copied().unwrap_or(true)
    });
    let updated = Prepared(
        diesel::sql_query(
            "UPDATE inventory_levels il SET reserved = il.reserved + a.q, updated_at = now() \
             FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::bool[]) AS a (v, l, q, deny) \
             WHERE il.variant_id = a.v AND il.location_id = a.l \
               AND (NOT a.deny OR il.on_hand - il.reserved >= a.q)",
        )
        .bind::<Array<BigInt>, _>(&v)
        .bind::<Array<BigInt>, _>(&l)
        .bind::<Array<Integer>, _>(&q)
        .bind::<Array<Bool>, _>(&d),
    )
    .execute(conn)
    .await?;
    if updated != allocations.len() {
        // Cannot happen while every writer locks first; refuse rather than oversell.
        return Err(diesel::result::Error::RollbackTransaction);
    }
    Ok(Ok(allocations))
}

type Columns = (Vec<i64>, Vec<i64>, Vec<i32>, Vec<bool>);

fn columns(allocations: &[Allocation], deny: impl Fn(&Allocation) -> bool) -> Columns {
    let mut c: Columns = Default::default();
    for a in allocations {
        c.0.push(a.variant_id);
        c.1.push(a.location_id);
        c.2.push(a.quantity as i32);
        c.3.push(deny(a));
    }
    c
}

/// What happens to an order's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Paid: the reserved units leave stock (on hand and reserved both go down).
    Sell,
    /// Cancelled or expired: the reserved units become available again.
    Release,
}

/// Settles the reservation of order `order_id` (inside the caller's transaction, which
/// has already moved the order out of PENDING_PAYMENT, so this runs once per order).
pub async fn settle(conn: &mut AsyncPgConnection, order_id: i64, how: Settle) -> QueryResult<()> {
    use crate::db::schema::order_allocations as oa;
    let allocations: Vec<(i64, i64, i32)> = oa::table
        .filter(oa::order_id.eq(order_id))
        .select((oa::variant_id, oa::location_id, oa::quantity))
        .load(conn)
        .await?;
    if allocations.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = allocations.iter().map(|a| a.0).collect();
    ids.sort_unstable();
    ids.dedup();
    lock_levels(conn, &ids).await?;
    let v: Vec<i64> = allocations.iter().map(|a| a.0).collect();
    let l: Vec<i64> = allocations.iter().map(|a| a.1).collect();
    let q: Vec<i32> = allocations.iter().map(|a| a.2).collect();
    let sold = how == Settle::Sell;
    diesel::sql_query(
        "UPDATE inventory_levels il \
         SET reserved = GREATEST(il.reserved - a.q, 0), \
             on_hand = CASE WHEN $4 THEN il.on_hand - a.q ELSE il.on_hand END, \
             updated_at = now() \
         FROM unnest($1::int8[], $2::int8[], $3::int4[]) AS a (v, l, q) \
         WHERE il.variant_id = a.v AND il.location_id = a.l",
    )
    .bind::<Array<BigInt>, _>(&v)
    .bind::<Array<BigInt>, _>(&l)
    .bind::<Array<Integer>, _>(&q)
    .bind::<Bool, _>(sold)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts the units of a sold (paid) order back on hand: the order was cancelled after
/// payment. Rows are locked in the usual order first.
pub async fn restock(conn: &mut AsyncPgConnection, order_id: i64) -> QueryResult<()> {
    use crate::db::schema::order_allocations as oa;
    let allocations: Vec<(i64, i64, i32)> = oa::table
        .filter(oa::order_id.eq(order_id))
        .select((oa::variant_id, oa::location_id, oa::quantity))
        .load(conn)
        .await?;
    if allocations.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = allocations.iter().map(|a| a.0).collect();
    ids.sort_unstable();
    ids.dedup();
    lock_levels(conn, &ids).await?;
    let v: Vec<i64> = allocations.iter().map(|a| a.0).collect();
    let l: Vec<i64> = allocations.iter().map(|a| a.1).collect();
    let q: Vec<i32> = allocations.iter().map(|a| a.2).collect();
    diesel::sql_query(
        "UPDATE inventory_levels il SET on_hand = il.on_hand + a.q, updated_at = now() \
         FROM unnest($1::int8[], $2::int8[], $3::int4[]) AS a (v, l, q) \
         WHERE il.variant_id = a.v AND il.location_id = a.l",
    )
    .bind::<Array<BigInt>, _>(&v)
    .bind::<Array<BigInt>, _>(&l)
    .bind::<Array<Integer>, _>(&q)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records allocations of a new order.
pub async fn record(
    conn: &mut AsyncPgConnection,
    order_id: i64,
    allocations: &[Allocation],
) -> QueryResult<()> {
    if allocations.is_empty() {
        return Ok(());
    }
    let (v, l, q, _) = columns(allocations, |_| true);
    Prepared(
        diesel::sql_query(
            "INSERT INTO order_allocations (order_id, variant_id, location_id, quantity) \
             SELECT $1, v, l, q FROM unnest($2::int8[], $3::int8[], $4::int4[]) AS a (v, l, q)",
        )
        .bind::<BigInt, _>(order_id)
        .bind::<Array<BigInt>, _>(&v)
        .bind::<Array<BigInt>, _>(&l)
        .bind::<Array<Integer>, _>(&q),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// After a sale reserved `wants`: `inventory.low` for each variant it took below
/// `threshold` (one statement, and none when no one subscribes to the topic).
pub async fn notify_low_after_sale(
    topics: &webhooks::TopicCache,
    conn: &mut AsyncPgConnection,
    wants: &[Want],
    threshold: i64,
) -> QueryResult<()> {
    if !topics.has(conn, "INVENTORY_LOW").await? {
        return Ok(());
    }
    #[derive(diesel::QueryableByName)]
    struct Crossed {
        #[diesel(sql_type = diesel::sql_types::Int8)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Int8)]
        available: i64,
    }
    let ids: Vec<i64> = wants.iter().map(|w| w.variant_id).collect();
    let quantities: Vec<i64> = wants.iter().map(|w| w.quantity).collect();
    let crossed: Vec<Crossed> = diesel::sql_query(
        "SELECT v.id, v.available FROM product_variants v \
         JOIN unnest($1::int8[], $2::int8[]) AS w (id, q) ON w.id = v.id \
         WHERE v.available < $3 AND v.available + w.q >= $3",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&quantities)
    .bind::<diesel::sql_types::BigInt, _>(threshold)
    .load(conn)
    .await?;
    let crossed: Vec<(i64, i64)> = crossed.iter().map(|c| (c.id, c.available)).collect();
    webhooks::inventory_low(conn, &crossed, threshold).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(variant_id: i64, location_id: i64, on_hand: i32, reserved: i32) -> Level {
        Level {
            variant_id,
            location_id,
            on_hand,
            reserved,
        }
    }

    fn want(variant_id: i64, quantity: i64, deny: bool) -> Want {
        Want {
            variant_id,
            quantity,
            deny,
        }
    }

    #[test]
    fn takes_locations_in_order_and_reports_short_deny_variants() {
        let levels = [level(1, 1, 2, 1), level(1, 2, 5, 0), level(2, 1, 1, 0)];
        let got = allocate(&[want(1, 4, true)], &levels).unwrap();
        assert_eq!(
            got,
            vec![
                Allocation {
                    variant_id: 1,
                    location_id: 1,
                    quantity: 1
                },
                Allocation {
                    variant_id: 1,
                    location_id: 2,
                    quantity: 3
                },
            ]
        );
        assert_eq!(
            allocate(&[want(1, 7, true), want(2, 1, true)], &levels),
            Err(vec![1])
        );
        assert_eq!(allocate(&[want(3, 1, true)], &levels), Err(vec![3]));
    }

    #[test]
    fn continue_variants_backorder_on_their_first_location() {
        let levels = [level(1, 1, 1, 0), level(1, 2, 0, 0)];
        let got = allocate(&[want(1, 3, false)], &levels).unwrap();
        assert_eq!(
            got,
            vec![Allocation {
                variant_id: 1,
                location_id: 1,
                quantity: 3
            }]
        );
        // Negative availability elsewhere never counts as stock.
        let levels = [level(2, 1, 0, 4), level(2, 2, 2, 0)];
        let got = allocate(&[want(2, 2, true)], &levels).unwrap();
        assert_eq!(
            got,
            vec![Allocation {
                variant_id: 2,
                location_id: 2,
                quantity: 2
            }]
        );
    }
}
