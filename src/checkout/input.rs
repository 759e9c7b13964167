//! What the buyer sends to complete a checkout, and its validation: everything that can
//! be refused without reading the database.

use serde::{Deserialize, Serialize};

use super::Settings;
use super::outcome::{CheckoutErrorCode, CheckoutUserError, user_error};

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub zip: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

/// What the buyer sends to complete a checkout.
#[derive(Debug, Clone, Default)]
pub struct CheckoutInput {
    pub email: String,
    pub shipping_address: Address,
    /// A handle of `SHIPPING_METHODS`; the first method when `None`.
    pub shipping_method: Option<String>,
    pub payment_token: String,
    pub idempotency_key: String,
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
}

fn present(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.trim().is_empty())
}

/// Validates the input without touching the database.
pub fn validate(input: &CheckoutInput, settings: &Settings) -> Vec<CheckoutUserError> {
    use CheckoutErrorCode::*;
    let mut errors = Vec::new();
    if !valid_email(input.email.trim()) {
        errors.push(user_error(
            InvalidEmail,
            &["input", "email"],
            "Enter a valid email address.",
        ));
    }
    let a = &input.shipping_address;
    for (value, name, label) in [
        (&a.last_name, "lastName", "last name"),
        (&a.address1, "address1", "street address"),
        (&a.city, "city", "city"),
        (&a.zip, "zip", "postal code"),
    ] {
        if !present(value) {
            errors.push(user_error(
                InvalidAddress,
                &["input", "shippingAddress", name],
                format!("The shipping address needs a {label}."),
            ));
        }
    }
    let country_ok = a.country_code.as_deref().is_some_and(|c| {
        c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()) && crate::countries::is_known(c)
    });
    if !country_ok {
        errors.push(user_error(
            InvalidAddress,
            &["input", "shippingAddress", "countryCode"],
            "The shipping address needs a valid ISO 3166-1 country code.",
        ));
    }
    let fields = [
        &a.first_name,
        &a.last_name,
        &a.company,
        &a.address1,
        &a.address2,
        &a.city,
        &a.province,
        &a.zip,
        &a.phone,
    ];
    if fields.iter().any(|f| {
        f.as_deref()
            .is_some_and(|v| v.len() > 255 || v.contains('\0'))
    }) {
        errors.push(user_error(
            InvalidAddress,
            &["input", "shippingAddress"],
            "Address fields must be at most 255 characters.",
        ));
    }
    if let Some(handle) = &input.shipping_method
        && !settings
            .shipping_methods
            .iter()
            .any(|m| &m.handle == handle)
    {
        errors.push(user_error(
            InvalidShippingMethod,
            &["input", "shippingMethod"],
            format!(
                "Unknown shipping method; choose one of: {}.",
                settings
                    .shipping_methods
                    .iter()
                    .map(|m| m.handle.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let key = &input.idempotency_key;
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        errors.push(user_error(
            InvalidIdempotencyKey,
            &["input", "idempotencyKey"],
            "The idempotency key must be 1 to 255 visible ASCII characters.",
        ));
    }
    if input.payment_token.trim().is_empty() || input.payment_token.len() > 255 {
        errors.push(user_error(
            InvalidPaymentToken,
            &["input", "paymentToken"],
            "A payment token is required.",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.co", "a@b.co.", "a@b@c.co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
