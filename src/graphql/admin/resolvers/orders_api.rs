//! Orders in the admin API: listing (`orders::list`) and the changes partners make
//! (`orders::transitions`: fulfil, cancel, refund).

use super::*;

#[derive(Default)]
pub struct OrdersQuery;

#[Object]
impl OrdersQuery {
    /// Orders by id (the order they were placed in; `reverse`: newest first).
    #[allow(clippy::too_many_arguments)]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        status: Option<String>,
        created_at_min: Option<DateTime<Utc>>,
        created_at_max: Option<DateTime<Utc>>,
        email: Option<String>,
        updated_at_min: Option<DateTime<Utc>>,
        #[graphql(default = false)] reverse: bool,
    ) -> Result<OrderConnection> {
        let first = check_first(first)?;
        if let Some(s) = &status
            && !orders::STATUSES.contains(&s.as_str())
        {
            return Err(bad_input(format!(
                "status must be one of {}.",
                orders::STATUSES.join(", ")
            )));
        }
        let after = after_id(after.as_deref())?;
        let filter = orders::Filter {
            status,
            created_min: created_at_min,
            created_max: created_at_max,
            email,
            updated_min: updated_at_min,
        };
        let mut conn = primary(ctx).await?;
        let rows = orders::list(&mut conn, &filter, after, first, reverse)
            .await
            .map_err(db)?;
        let (rows, more) = page(rows, first as usize);
        Ok(OrderConnection::new(
            rows.into_iter()
                .map(|o| (cursor(o.id), Order(Arc::new(o))))
                .collect(),
            more,
            after.is_some(),
        ))
    }

    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let id = id_of("Order", &id)?;
        let mut conn = primary(ctx).await?;
        Ok(crate::orders::by_id(&mut conn, id)
            .await
            .map_err(db)?
            .map(|o| Order(Arc::new(o))))
    }
}

#[derive(Default)]
pub struct OrdersMutation;

#[Object]
impl OrdersMutation {
    async fn order_fulfill(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tracking_number: Option<String>,
        tracking_url: Option<String>,
    ) -> Result<OrderPayload> {
        let id = id_of("Order", &id)?;
        let mut conn = primary(ctx).await?;
        let r = transitions::fulfill(
            &mut conn,
            id,
            tracking_number.as_deref(),
            tracking_url.as_deref(),
            &actor(ctx),
        )
        .await;
        order_payload(r)
    }

    /// Cancels an order: unpaid, its stock is released; paid, it is refunded in full and
    /// restocked.
    async fn order_cancel(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<OrderPayload> {
        let id = id_of("Order", &id)?;
        let app = app(ctx);
        let mut conn = primary(ctx).await?;
        let r = transitions::cancel(
            &mut conn,
            id,
            &reason,
            &app.payments,
            &app.config.orders.hooks,
            &actor(ctx),
        )
        .await;
        order_payload(r)
    }

    /// Refunds part (`amount`, in the order's currency) or all of a paid order.
    async fn order_refund(
        &self,
        ctx: &Context<'_>,
        id: ID,
        amount: Option<String>,
    ) -> Result<OrderPayload> {
        let id = id_of("Order", &id)?;
        let app = app(ctx);
        let mut conn = primary(ctx).await?;
        let currency = crate::orders::by_id(&mut conn, id)
            .await
            .map_err(db)?
            .map(|o| o.currency);
        let Some(currency) = currency else {
            return Ok(OrderPayload {
                order: None,
                user_errors: vec![user_error("id", "NOT_FOUND", "No such order.")],
            });
        };
        let amount = match amount
            .as_deref()
            .map(|a| money(&["amount"], a, &currency))
            .transpose()
        {
            Ok(a) => a,
            Err(e) => return order_payload(Err(e)),
        };
        let r = transitions::refund(&mut conn, id, amount, &app.payments, &actor(ctx)).await;
        order_payload(r)
    }
}

#[derive(SimpleObject)]
pub struct OrderPayload {
    pub order: Option<Order>,
    pub user_errors: Vec<UserError>,
}

fn order_payload(r: Result<crate::orders::Order, AdminError>) -> Result<OrderPayload> {
    let (order, user_errors) = split(r)?;
    Ok(OrderPayload {
        order: order.map(|o| Order(Arc::new(o))),
        user_errors,
    })
}
