//! `keys create|list|revoke`: the admin API's keys, from the shell.

use clap::Subcommand;
use commerce_gateway::config::Config;

#[derive(Subcommand)]
pub enum KeysAction {
    /// Create a key and print its secret (shown once, never stored).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read_products, write_products, read_inventory, write_inventory,
        /// read_orders, write_orders, read_webhooks, write_webhooks, admin.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A plan of ADMIN_PLANS.
        #[arg(long, default_value = "standard")]
        plan: String,
        /// Expiry (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id or prefix; it stops working at once on every gateway.
    Revoke { key: String },
}

pub async fn run(action: KeysAction) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut conn = super::migrated_connection(&config).await?;
    let actor = commerce_gateway::partners::Actor::cli();
    use commerce_gateway::partners::keys;
    match action {
        KeysAction::Create {
            name,
            scopes,
            plan,
            expires_at,
        } => {
            let plans: Vec<String> = config
                .rate_limits
                .plans
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            let scopes: Vec<String> = scopes
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let new = keys::NewKey {
                name: &name,
                scopes: &scopes,
                plan: &plan,
                expires_at,
            };
            match keys::create(&mut conn, &new, &plans, &actor).await {
                Ok((key, secret)) => {
                    eprintln!(
                        "created key {} ({}), scopes {}, plan {}; the secret is shown only now:",
                        key.id,
                        key.prefix,
                        key.scopes.join(","),
                        key.plan
                    );
                    println!("{secret}");
                }
                Err(commerce_gateway::partners::AdminError::Input(errors)) => {
                    for e in errors {
                        eprintln!("{}: {}", e.field.join("."), e.message);
                    }
                    anyhow::bail!("the key was not created");
                }
                Err(e) => return Err(e.into()),
            }
        }
        KeysAction::List => {
            println!(
                "{:<6} {:<14} {:<20} {:<10} {:<8} {:<25} {:<25} scopes",
                "id", "prefix", "name", "plan", "state", "expires", "last used"
            );
            let now = chrono::Utc::now();
            for k in keys::list(&mut conn).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if !k.is_active(now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<6} {:<14} {:<20} {:<10} {:<8} {:<25} {:<25} {}",
                    k.id,
                    k.prefix,
                    k.name,
                    k.plan,
                    state,
                    k.expires_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into()),
                    k.last_used_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".into()),
                    k.scopes.join(",")
                );
            }
        }
        KeysAction::Revoke { key } => {
            let Some(found) = keys::find(&mut conn, &key).await? else {
                anyhow::bail!("no key {key:?}");
            };
            keys::revoke(&mut conn, found.id, &actor).await?;
            println!("revoked key {} ({})", found.id, found.prefix);
        }
    }
    Ok(())
}
