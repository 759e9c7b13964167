//! Payment webhooks become order transitions: a verified event is stored and its
//! processing queued in one transaction ([`receive`]); the `payment_event` job then applies
//! it to its order ([`process`]), exactly once however often it runs.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::events;
use super::transitions::{self, Transition};
use crate::db::schema::orders as ot;
use crate::db::schema::payment_events;
use crate::jobs::{self, Kind, NewJob};
use crate::payments::PaymentEvent;

/// Whether a payment webhook was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReceipt {
    Accepted,
    Duplicate,
}

/// Stores a verified payment event and queues its processing, in one transaction; an
/// event id seen before changes nothing.
pub async fn receive(
    conn: &mut AsyncPgConnection,
    provider: &str,
    event: &PaymentEvent,
    raw: &serde_json::Value,
) -> QueryResult<EventReceipt> {
    conn.transaction(async |conn| {
        let inserted = diesel::insert_into(payment_events::table)
            .values((
                payment_events::provider.eq(provider),
                payment_events::event_id.eq(&event.id),
                payment_events::event_type.eq(&event.kind),
                payment_events::reference.eq(&event.data.reference),
                payment_events::payload.eq(raw),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Ok(EventReceipt::Duplicate);
        }
        jobs::enqueue(
            conn,
            &[NewJob::new(
                Kind::PaymentEvent,
                serde_json::json!({ "provider": provider, "event_id": event.id }),
            )],
        )
        .await?;
        Ok(EventReceipt::Accepted)
    })
    .await
}

/// What processing a payment event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Recorded as processed, with this description.
    Done(String),
    /// No order has the event's payment reference yet (the provider can be faster than
    /// the checkout's commit): nothing recorded, try again later.
    OrderNotYetKnown,
}

/// Applies a stored payment event to its order (the `payment_event` job), in one
/// transaction with recording it as processed; an event already processed is skipped, so
/// the job can run any number of times.
pub async fn process(
    conn: &mut AsyncPgConnection,
    provider: &str,
    event_id: &str,
    hooks: &events::Hooks,
) -> QueryResult<EventOutcome> {
    // Counted once the transaction committed (a rolled-back attempt is retried).
    let applied = std::sync::Mutex::new(None::<&'static str>);
    let result = conn
        .transaction(async |conn| {
            let Some((kind, reference, processed)) = payment_events::table
                .find((provider, event_id))
                .select((
                    payment_events::event_type,
                    payment_events::reference,
                    payment_events::processed_at.is_not_null(),
                ))
                .for_update()
                .first::<(String, String, bool)>(conn)
                .await
                .optional()?
            else {
                return Ok(EventOutcome::Done("unknown event".into()));
            };
            if processed {
                return Ok(EventOutcome::Done("already processed".into()));
            }
            let order: Option<(i64, String)> = ot::table
                .filter(ot::payment_provider.eq(provider))
                .filter(ot::payment_reference.eq(&reference))
                .select((ot::id, ot::status))
                .first(conn)
                .await
                .optional()?;
            let Some((id, status)) = order else {
                return Ok(EventOutcome::OrderNotYetKnown);
            };
            let transition = match kind.as_str() {
                "payment.succeeded" => transitions::mark_paid(conn, id, hooks).await?,
                "payment.failed" => {
                    transitions::cancel_pending(conn, id, "PAYMENT_FAILED", hooks).await?
                }
                "payment.expired" => {
                    transitions::cancel_pending(conn, id, "PAYMENT_EXPIRED", hooks).await?
                }
                _ => Transition::AlreadySettled,
            };
            let outcome = match transition {
                Transition::Applied => {
                    let outcome = match kind.as_str() {
                        "payment.succeeded" => "paid",
                        "payment.failed" => "failed",
                        _ => "expired",
                    };
                    *applied.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                    format!("{kind} applied to order {id}")
                }
                Transition::AlreadySettled => {
                    if kind == "payment.succeeded" && status == "CANCELLED" {
                        tracing::warn!(
                            order = id,
                            "payment succeeded for an order that was cancelled; it needs a refund"
                        );
                    }
                    format!("order {id} was already {status}")
                }
            };
            diesel::update(payment_events::table.find((provider, event_id)))
                .set((
                    payment_events::processed_at.eq(diesel::dsl::now),
                    payment_events::outcome.eq(&outcome),
                ))
                .execute(conn)
                .await?;
            Ok(EventOutcome::Done(outcome))
        })
        .await;
    if result.is_ok()
        && let Some(outcome) = applied.into_inner().unwrap_or_else(|e| e.into_inner())
    {
        metrics::counter!("gateway_payments_total", "provider" => provider.to_string(), "outcome" => outcome)
            .increment(1);
    }
    result
}
