//! Admin API helpers: keys made through the library, and requests with them.

use serde_json::{Value, json};

use super::TestDb;

/// Creates a key on `db` and returns its secret.
pub async fn key(db: &TestDb, name: &str, scopes: &[&str], plan: &str) -> String {
    key_expiring(db, name, scopes, plan, None).await
}

pub async fn key_expiring(
    db: &TestDb,
    name: &str,
    scopes: &[&str],
    plan: &str,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    use commerce_gateway::partners::{Actor, keys};
    let mut conn = db.conn().await;
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let new = keys::NewKey {
        name,
        scopes: &scopes,
        plan,
        expires_at,
    };
    let plans = vec![plan.to_string()];
    let (_, secret) = keys::create(&mut conn, &new, &plans, &Actor::cli())
        .await
        .expect("create key");
    secret
}

/// The answer of one admin request.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> String {
        super::error_code(&self.body)
    }

    /// `extensions.cost.throttleStatus.currentlyAvailable`.
    pub fn available(&self) -> f64 {
        self.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
            .as_f64()
            .unwrap_or_else(|| panic!("no throttle status: {}", self.body))
    }
}

/// POSTs `query` to `{base}/admin/graphql` with `key` (as a bearer token).
pub async fn admin(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> Answer {
    let response = client
        .post(format!("{base}/admin/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("admin request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = response.json().await.expect("JSON body");
    Answer {
        status,
        retry_after,
        body,
    }
}
