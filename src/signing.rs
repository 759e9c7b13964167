//! Signatures of webhook bodies, in and out: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{raw body}"` (the scheme Stripe popularised). The timestamp inside the MAC makes
//! an old body with a fresh timestamp fail, and a stale timestamp fails after the
//! tolerance. Comparison is in constant time.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// The signature header for `body` at time `t` (what a provider sends).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Checks `header` against `body` at time `now` (unix seconds); the comparison is in
/// constant time.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    for candidate in signatures {
        if m.clone().verify_slice(&candidate).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_tampering_and_staleness() {
        let tol = Duration::from_secs(300);
        let header = sign("s3cret", 1_000, b"{\"a\":1}");
        assert_eq!(verify("s3cret", &header, b"{\"a\":1}", 1_100, tol), Ok(()));
        assert_eq!(
            verify("s3cret", &header, b"{\"a\":2}", 1_100, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", &header, b"{\"a\":1}", 1_100, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &header, b"{\"a\":1}", 1_400, tol),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", "v1=zz", b"", 1_000, tol),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("s3cret", "t=1000", b"", 1_000, tol),
            Err(SignatureError::Malformed)
        );
        // Extreme timestamps are stale, not an overflow.
        let far = sign("s3cret", i64::MIN, b"x");
        assert_eq!(
            verify("s3cret", &far, b"x", i64::MAX, tol),
            Err(SignatureError::Stale)
        );
    }
}
