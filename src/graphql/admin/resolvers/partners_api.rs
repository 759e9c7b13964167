//! Partners in the admin API: their API keys, the audit log, and webhook subscriptions
//! (`partners::keys`, `partners::audit`, `partners::webhooks`).

use super::*;

#[derive(Default)]
pub struct PartnersQuery;

#[Object]
impl PartnersQuery {
    async fn webhook_subscriptions(
        &self,
        ctx: &Context<'_>,
        topic: Option<String>,
    ) -> Result<Vec<WebhookSubscription>> {
        let mut conn = primary(ctx).await?;
        Ok(webhooks::list(&mut conn, topic.as_deref(), owner(ctx))
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The key making this request.
    async fn current_api_key(&self, ctx: &Context<'_>) -> ApiKey {
        request(ctx).key.clone().into()
    }

    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let mut conn = primary(ctx).await?;
        Ok(keys::list(&mut conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Every admin change: which key, when, what.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        api_key_id: Option<ID>,
        resource_id: Option<String>,
        #[graphql(default = false)] reverse: bool,
    ) -> Result<AuditLogEntryConnection> {
        let first = check_first(first)?;
        let after = after_id(after.as_deref())?;
        let key = api_key_id.map(|k| id_of("ApiKey", &k)).transpose()?;
        let mut conn = primary(ctx).await?;
        let rows = partners::audit::list(
            &mut conn,
            after,
            first,
            reverse,
            key,
            resource_id.as_deref(),
        )
        .await
        .map_err(db)?;
        let (rows, more) = page(rows, first as usize);
        Ok(AuditLogEntryConnection::new(
            rows.into_iter()
                .map(|e| (cursor(e.id), AuditLogEntry::from(e)))
                .collect(),
            more,
            after.is_some(),
        ))
    }
}

#[derive(Default)]
pub struct PartnersMutation;

#[Object]
impl PartnersMutation {
    async fn webhook_subscription_create(
        &self,
        ctx: &Context<'_>,
        topic: String,
        callback_url: String,
    ) -> Result<WebhookSubscriptionPayload> {
        let mut conn = primary(ctx).await?;
        let allow_private = app(ctx).config.partners.allow_private_targets;
        let (created, user_errors) = split(
            webhooks::create(&mut conn, &topic, &callback_url, allow_private, &actor(ctx)).await,
        )?;
        app(ctx).config.orders.hooks.topics.forget();
        let (sub, secret) = match created {
            Some((s, secret)) => (Some(s.into()), Some(secret)),
            None => (None, None),
        };
        Ok(WebhookSubscriptionPayload {
            webhook_subscription: sub,
            secret,
            user_errors,
        })
    }

    async fn webhook_subscription_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<DeletePayload> {
        let db_id = id_of("WebhookSubscription", &id)?;
        let mut conn = primary(ctx).await?;
        let r = webhooks::delete(&mut conn, db_id, owner(ctx), &actor(ctx)).await;
        app(ctx).config.orders.hooks.topics.forget();
        deleted(id, r, "webhook subscription")
    }

    async fn api_key_create(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Vec<String>,
        plan: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiKeyPayload> {
        let plans: Vec<String> = app(ctx)
            .config
            .rate_limits
            .plans
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let mut conn = primary(ctx).await?;
        let new = keys::NewKey {
            name: &name,
            scopes: &scopes,
            plan: &plan,
            expires_at,
        };
        let (created, user_errors) =
            split(keys::create(&mut conn, &new, &plans, &actor(ctx)).await)?;
        let (key, secret) = match created {
            Some((k, s)) => (Some(k.into()), Some(s)),
            None => (None, None),
        };
        Ok(ApiKeyPayload {
            api_key: key,
            secret,
            user_errors,
        })
    }

    /// Revokes a key; it stops working at once on every gateway.
    async fn api_key_revoke(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKeyPayload> {
        let db_id = id_of("ApiKey", &id)?;
        let mut conn = primary(ctx).await?;
        let key = keys::revoke(&mut conn, db_id, &actor(ctx))
            .await
            .map_err(db)?;
        let user_errors = if key.is_none() {
            vec![user_error("id", "NOT_FOUND", "No such key.")]
        } else {
            vec![]
        };
        Ok(ApiKeyPayload {
            api_key: key.map(Into::into),
            secret: None,
            user_errors,
        })
    }
}

#[derive(SimpleObject)]
pub struct WebhookSubscriptionPayload {
    pub webhook_subscription: Option<WebhookSubscription>,
    /// Signs every delivery (HMAC-SHA256); shown only here.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ApiKeyPayload {
    pub api_key: Option<ApiKey>,
    /// The key itself: shown once, never stored.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}
