//! Rate-limit settings (`RATE_LIMIT_*`, `ADMIN_PLANS`, `STOREFRONT_*_LIMIT`,
//! `AUTH_FAILURE_LIMIT`, `TRUSTED_PROXIES`, `STOREFRONT_PRIVATE_TOKENS`). [`crate::config`]
//! reads them from the environment; the defaults here are the documented ones.

use std::time::Duration;

use anyhow::{Context, bail};

/// A token bucket: `capacity` tokens, refilled at `rate` tokens per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketSpec {
    pub capacity: u64,
    pub rate: f64,
}

impl BucketSpec {
    /// Parses `capacity:rate` (tokens, tokens per second).
    pub fn parse(name: &str, text: &str) -> anyhow::Result<Self> {
        let (c, r) = text
            .split_once(':')
            .with_context(|| format!("{name}: {text:?} is not capacity:rate"))?;
        let capacity: u64 = c
            .trim()
            .parse()
            .with_context(|| format!("{name}: bad capacity in {text:?}"))?;
        let rate: f64 = r
            .trim()
            .parse()
            .with_context(|| format!("{name}: bad rate in {text:?}"))?;
        if capacity == 0 || !(rate.is_finite() && rate > 0.0) {
            bail!("{name}: capacity and rate must be positive in {text:?}");
        }
        Ok(Self { capacity, rate })
    }
}

/// Rate limits: partner plans (cost buckets) and storefront buckets (requests).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `RATE_LIMIT_ENABLED`: storefront limits (partner plans always apply).
    pub storefront_enabled: bool,
    /// `RATE_LIMIT_REDIS_URL` (default `REDIS_URL`): where the shared budgets live.
    pub redis_url: String,
    /// `RATE_LIMIT_REDIS_TIMEOUT_MS`: a decision waits this long for Redis, then falls back.
    pub redis_timeout: Duration,
    /// `RATE_LIMIT_KEY_PREFIX`: namespace of the budgets in Redis.
    pub key_prefix: String,
    /// `RATE_LIMIT_INSTANCES`: gateways sharing the budgets when Redis is down
    /// (0: counted through Redis while it is up).
    pub instances: u64,
    /// `ADMIN_PLANS`: `name=capacity:rate,…` (points, points per second).
    pub plans: Vec<(String, BucketSpec)>,
    /// `STOREFRONT_IP_LIMIT`: requests per buyer IP address.
    pub storefront_ip: BucketSpec,
    /// `STOREFRONT_TOKEN_LIMIT`: requests per storefront access token.
    pub storefront_token: BucketSpec,
    /// `AUTH_FAILURE_LIMIT`: failed admin authentications per IP address.
    pub auth_failures: BucketSpec,
    /// `TRUSTED_PROXIES`: peers (CIDR) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `STOREFRONT_PRIVATE_TOKENS`: server tokens that may name the buyer's IP address
    /// (`Shopify-Storefront-Buyer-IP`).
    pub private_tokens: Vec<String>,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("{text:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| format!("{text:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Settings {
    pub fn plan(&self, name: &str) -> Option<BucketSpec> {
        self.plans.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
    }
}

impl Default for Settings {
    fn default() -> Self {
        let bucket = |capacity, rate| BucketSpec { capacity, rate };
        Self {
            storefront_enabled: true,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_timeout: Duration::from_millis(50),
            key_prefix: "cg:rl".into(),
            instances: 0,
            plans: vec![
                ("standard".into(), bucket(1_000, 50.0)),
                ("plus".into(), bucket(2_000, 100.0)),
                ("enterprise".into(), bucket(10_000, 500.0)),
            ],
            storefront_ip: bucket(1_000, 50.0),
            storefront_token: bucket(20_000, 2_000.0),
            auth_failures: bucket(20, 0.5),
            trusted_proxies: vec![],
            private_tokens: vec![],
        }
    }
}
