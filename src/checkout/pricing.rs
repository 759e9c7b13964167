//! What a checkout charges: subtotal, shipping, tax and total, computed from a priced cart.

use super::outcome::{CheckoutErrorCode, CheckoutUserError, user_error};
use super::{CheckoutInput, Settings, ShippingMethod};
use crate::cart;

/// Tax on `taxable_minor` at `bps` basis points, rounded half up.
pub fn tax(taxable_minor: i64, bps: u32) -> i64 {
    (taxable_minor * bps as i64 + 5_000) / 10_000
}

/// The money a checkout charges, computed from a priced cart.
pub(super) struct Totals {
    pub(super) currency: String,
    pub(super) subtotal: i64,
    pub(super) shipping_minor: i64,
    pub(super) tax_minor: i64,
    pub(super) total: i64,
    /// The shipping method's handle.
    pub(super) method: String,
}

pub(super) fn totals(
    priced: &cart::PricedCart,
    input: &CheckoutInput,
    settings: &Settings,
) -> Result<Totals, CheckoutUserError> {
    let currency = priced.currency.clone();
    let method = match &input.shipping_method {
        Some(h) => settings.shipping_methods.iter().find(|m| &m.handle == h),
        None => <[ShippingMethod]>::first(&settings.shipping_methods),
    }
    .ok_or_else(|| {
        user_error(
            CheckoutErrorCode::InvalidShippingMethod,
            &["input", "shippingMethod"],
            "Unknown shipping method.",
        )
    })?;
    let needs_shipping = priced.lines.iter().any(|l| {
        priced
            .variants
            .get(&l.variant_id)
            .is_some_and(|v| v.requires_shipping)
    });
    let shipping_minor = if needs_shipping {
        crate::money::parse_minor(&method.price, &currency).ok_or_else(|| {
            user_error(
                CheckoutErrorCode::InvalidShippingMethod,
                &["input", "shippingMethod"],
                "This shipping method cannot be priced in the cart's currency.",
            )
        })?
    } else {
        0
    };
    let subtotal = priced.subtotal();
    let taxable: i64 = priced
        .lines
        .iter()
        .filter(|l| {
            priced
                .variants
                .get(&l.variant_id)
                .is_some_and(|v| v.taxable)
        })
        .map(|l| priced.line_total(l))
        .sum();
    let tax_minor = tax(taxable, settings.tax_rate_bps);
    Ok(Totals {
        total: subtotal + shipping_minor + tax_minor,
        currency,
        subtotal,
        shipping_minor,
        tax_minor,
        method: method.handle.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_up() {
        assert_eq!(tax(1000, 825), 83);
        assert_eq!(tax(1000, 0), 0);
        assert_eq!(tax(199, 2000), 40);
    }
}
