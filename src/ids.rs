//! Global object IDs in Shopify's form, `gid://shopify/Product/42`, so that clients that
//! parse them (Hydrogen's `parseGid`, analytics) keep working. Clients should treat them as
//! opaque. The base64 form older Storefront API versions returned is accepted on input.
//! Carts carry a random token instead of a sequence number: knowing one cart's ID tells
//! nothing about another's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "gid://shopify/";

pub fn encode(kind: &str, id: impl std::fmt::Display) -> String {
    format!("{PREFIX}{kind}/{id}")
}

/// Splits a global ID into `(kind, key)`; `None` when it is not one of ours.
pub fn decode(text: &str) -> Option<(String, String)> {
    let owned;
    let text = if text.starts_with(PREFIX) {
        text
    } else {
        owned = String::from_utf8(STANDARD.decode(text).ok()?).ok()?;
        &owned
    };
    let rest = text.strip_prefix(PREFIX)?;
    let (kind, key) = rest.split_once('/')?;
    // Shopify cart IDs carry `?key=...`; only the part before it identifies the object.
    let key = key.split('?').next().unwrap_or_default();
    if kind.is_empty() || key.is_empty() || key.len() > 128 {
        return None;
    }
    Some((kind.to_string(), key.to_string()))
}

/// The numeric id of a global ID of `kind`.
pub fn parse(kind: &str, text: &str) -> Option<i64> {
    let (k, key) = decode(text)?;
    if k != kind {
        return None;
    }
    key.parse().ok().filter(|id: &i64| *id > 0)
}

/// Like [`parse`], but also accepts a bare number (search syntax `id:42`).
pub fn parse_any(kind: &str, text: &str) -> Option<i64> {
    text.parse()
        .ok()
        .filter(|id: &i64| *id > 0)
        .or_else(|| parse(kind, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_ids() {
        let gid = encode("Product", 42);
        assert_eq!(gid, "gid://shopify/Product/42");
        assert_eq!(parse("Product", &gid), Some(42));
        assert_eq!(parse("ProductVariant", &gid), None);
        assert_eq!(parse("Product", "gid://other/Product/42"), None);
        assert_eq!(parse("Product", "gid://shopify/Product/-3"), None);
        assert_eq!(parse("Product", "gid://shopify/Product/abc"), None);
        assert_eq!(parse("Product", &STANDARD.encode(&gid)), Some(42));
        assert_eq!(parse_any("Product", "7"), Some(7));
        assert_eq!(
            decode("gid://shopify/Cart/abc?key=1"),
            Some(("Cart".into(), "abc".into()))
        );
    }
}
