//! The rules a cart change must follow, without the database: quantities in range, at
//! most `MAX_CART_LINES` lines once new lines merge with existing ones, merchandise that
//! is for sale, and the warnings a priced cart carries when stock runs short. Every
//! mutation in [`super::changes`] checks these before it writes anything.

use std::collections::{HashMap, HashSet};

use rand::Rng;

use super::{
    CartErrorCode, CartLine, CartOutcome, CartRules, CartUserError, CartWarning, CartWarningCode,
    LineInput, PricedCart,
};
use crate::catalog::store::CartVariant;

pub(super) fn error(
    code: CartErrorCode,
    field: &[&str],
    message: impl Into<String>,
) -> CartUserError {
    CartUserError {
        code,
        field: field.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
    }
}

pub(super) fn new_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(super) fn check_quantity(
    q: i32,
    rules: &CartRules<'_>,
    field: &[&str],
    errors: &mut Vec<CartUserError>,
    min: i32,
) {
    if q < min {
        errors.push(error(
            CartErrorCode::LessThan,
            field,
            format!("The quantity must be at least {min}."),
        ));
    } else if q > rules.max_quantity {
        errors.push(error(
            CartErrorCode::GreaterThan,
            field,
            format!("The quantity must be at most {}.", rules.max_quantity),
        ));
    }
}

pub(super) fn missing_cart() -> CartOutcome {
    CartOutcome::rejected(
        None,
        vec![error(
            CartErrorCode::Invalid,
            &["cartId"],
            "The specified cart does not exist.",
        )],
    )
}

pub(super) fn completed_cart() -> CartOutcome {
    CartOutcome::rejected(
        None,
        vec![error(
            CartErrorCode::Invalid,
            &["cartId"],
            "The cart has been completed and can no longer change.",
        )],
    )
}

pub(super) fn stock_warnings(priced: &PricedCart) -> Vec<CartWarning> {
    priced
        .lines
        .iter()
        .filter_map(|line| {
            let v = priced.variants.get(&line.variant_id)?;
            if v.inventory_policy == "CONTINUE" || v.quantity_available >= line.quantity as i64 {
                return None;
            }
            let target = crate::ids::encode("ProductVariant", v.id);
            Some(if v.quantity_available <= 0 {
                CartWarning {
                    code: CartWarningCode::MerchandiseOutOfStock,
                    target,
                    message: format!("{} is out of stock.", v.title),
                }
            } else {
                CartWarning {
                    code: CartWarningCode::MerchandiseNotEnoughStock,
                    target,
                    message: format!(
                        "Only {} of {} are available.",
                        v.quantity_available, v.title
                    ),
                }
            })
        })
        .collect()
}

/// The payload of a change: the cart priced, the user errors, and stock warnings when the
/// change went through.
pub(super) fn outcome_of(priced: PricedCart, user_errors: Vec<CartUserError>) -> CartOutcome {
    let warnings = if user_errors.is_empty() {
        stock_warnings(&priced)
    } else {
        vec![]
    };
    CartOutcome {
        cart: Some(priced),
        user_errors,
        warnings,
    }
}

pub(super) fn too_many_lines(lines: &[LineInput], rules: &CartRules<'_>) -> Option<CartUserError> {
    (lines.len() > rules.max_lines).then(|| {
        error(
            CartErrorCode::TooManyLines,
            &["lines"],
            format!("A cart can hold at most {} lines.", rules.max_lines),
        )
    })
}

/// The ids of `variants` that may be put in a cart.
pub(super) fn sellable(variants: &[CartVariant]) -> HashSet<i64> {
    variants
        .iter()
        .filter(|v| v.sellable)
        .map(|v| v.variant.id)
        .collect()
}

/// Errors of new lines: merchandise that does not exist or is not for sale, quantities
/// out of range.
pub(super) fn line_errors(
    lines: &[LineInput],
    rules: &CartRules<'_>,
    variants: &[CartVariant],
) -> Vec<CartUserError> {
    let sellable = sellable(variants);
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let index = i.to_string();
        match line.merchandise_id {
            Some(id) if sellable.contains(&id) => {}
            _ => errors.push(error(
                CartErrorCode::MerchandiseNotFound,
                &["lines", &index, "merchandiseId"],
                "The merchandise does not exist or is not for sale.",
            )),
        }
        check_quantity(
            line.quantity,
            rules,
            &["lines", &index, "quantity"],
            &mut errors,
            1,
        );
    }
    errors
}

/// New lines merged by merchandise, in the order of first mention, with their summed
/// quantities.
pub(super) fn merged(lines: &[LineInput]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for line in lines {
        let Some(v) = line.merchandise_id else {
            continue;
        };
        match out.iter_mut().find(|(id, _)| *id == v) {
            Some((_, q)) => *q += line.quantity as i64,
            None => out.push((v, line.quantity as i64)),
        }
    }
    out
}

pub(super) fn merged_too_large(rules: &CartRules<'_>) -> CartUserError {
    error(
        CartErrorCode::GreaterThan,
        &["lines"],
        format!("A line's quantity must be at most {}.", rules.max_quantity),
    )
}

/// After merging, no line may exceed the quantity limit and the cart the line limit.
pub(super) fn check_merged(
    existing: &[CartLine],
    lines: &[LineInput],
    rules: &CartRules<'_>,
) -> Vec<CartUserError> {
    let mut totals: HashMap<i64, i64> = existing
        .iter()
        .map(|l| (l.variant_id, l.quantity as i64))
        .collect();
    for (v, q) in merged(lines) {
        *totals.entry(v).or_default() += q;
    }
    let mut errors = Vec::new();
    if totals.len() > rules.max_lines {
        errors.push(error(
            CartErrorCode::TooManyLines,
            &["lines"],
            format!("A cart can hold at most {} lines.", rules.max_lines),
        ));
    }
    if totals.values().any(|q| *q > rules.max_quantity as i64) {
        errors.push(merged_too_large(rules));
    }
    errors
}

/// The merged lines as the `int8[]` and `int4[]` the writes take. The quantities were
/// checked against `MAX_LINE_QUANTITY`, so they fit.
pub(super) fn line_columns(merged: &[(i64, i64)]) -> (Vec<i64>, Vec<i32>) {
    merged
        .iter()
        .map(|(v, q)| (*v, (*q).min(i32::MAX as i64) as i32))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::models::Variant;
    use chrono::Utc;

    const RULES: CartRules<'static> = CartRules {
        max_lines: 3,
        max_quantity: 10,
        shop_currency: "USD",
    };

    fn line(merchandise: i64, quantity: i32) -> LineInput {
        LineInput {
            merchandise_id: Some(merchandise),
            quantity,
        }
    }

    fn existing(variant_id: i64, quantity: i32) -> CartLine {
        CartLine {
            id: variant_id * 100,
            cart_id: 1,
            variant_id,
            quantity,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn variant(id: i64, policy: &str, available: i64) -> Variant {
        Variant {
            id,
            product_id: 1,
            title: format!("Variant {id}"),
            sku: None,
            barcode: None,
            position: 1,
            option1: None,
            option2: None,
            option3: None,
            grams: 0,
            weight_unit: "g".into(),
            requires_shipping: true,
            taxable: true,
            inventory_policy: policy.into(),
            image_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            price_minor: 500,
            compare_at_minor: None,
            currency: "USD".into(),
            priced: true,
            quantity_available: available,
            option_names: vec![],
        }
    }

    fn codes(errors: &[CartUserError]) -> Vec<CartErrorCode> {
        errors.iter().map(|e| e.code).collect()
    }

    #[test]
    fn quantities_must_be_between_the_minimum_and_max_line_quantity() {
        let mut errors = Vec::new();
        check_quantity(0, &RULES, &["q"], &mut errors, 1);
        check_quantity(1, &RULES, &["q"], &mut errors, 1);
        check_quantity(10, &RULES, &["q"], &mut errors, 1);
        check_quantity(11, &RULES, &["q"], &mut errors, 1);
        // An update may set 0 (it removes the line).
        check_quantity(0, &RULES, &["q"], &mut errors, 0);
        assert_eq!(
            codes(&errors),
            [CartErrorCode::LessThan, CartErrorCode::GreaterThan]
        );
        assert_eq!(errors[1].message, "The quantity must be at most 10.");
    }

    #[test]
    fn new_lines_merge_by_merchandise_in_order_of_first_mention() {
        let lines = [
            line(7, 2),
            line(3, 1),
            line(7, 4),
            LineInput {
                merchandise_id: None,
                quantity: 5,
            },
        ];
        assert_eq!(merged(&lines), [(7, 6), (3, 1)]);
        assert_eq!(line_columns(&merged(&lines)), (vec![7, 3], vec![6, 1]));
    }

    #[test]
    fn merged_lines_count_with_the_existing_ones() {
        // 2 existing + 2 new distinct = 4 lines > 3.
        let errors = check_merged(
            &[existing(1, 1), existing(2, 1)],
            &[line(3, 1), line(4, 1)],
            &RULES,
        );
        assert_eq!(codes(&errors), [CartErrorCode::TooManyLines]);
        // Adding to an existing line is no new line, but its merged quantity counts.
        let errors = check_merged(&[existing(1, 6)], &[line(1, 3), line(1, 2)], &RULES);
        assert_eq!(codes(&errors), [CartErrorCode::GreaterThan]);
        assert!(check_merged(&[existing(1, 6)], &[line(1, 4), line(2, 10)], &RULES).is_empty());
    }

    #[test]
    fn too_many_lines_in_one_call_is_refused_before_anything_is_read() {
        assert!(too_many_lines(&[line(1, 1), line(2, 1), line(3, 1)], &RULES).is_none());
        let e = too_many_lines(&[line(1, 1), line(2, 1), line(3, 1), line(4, 1)], &RULES).unwrap();
        assert_eq!(e.code, CartErrorCode::TooManyLines);
        assert_eq!(e.field, ["lines"]);
    }

    #[test]
    fn only_sellable_merchandise_may_be_added_and_each_bad_line_is_named() {
        let variants = vec![
            CartVariant {
                variant: variant(1, "DENY", 5),
                product_title: "A".into(),
                sellable: true,
            },
            CartVariant {
                variant: variant(2, "DENY", 5),
                product_title: "B".into(),
                sellable: false,
            },
        ];
        let errors = line_errors(&[line(1, 1), line(2, 1), line(9, 0)], &RULES, &variants);
        let fields: Vec<String> = errors.iter().map(|e| e.field.join(".")).collect();
        assert_eq!(
            fields,
            [
                "lines.1.merchandiseId",
                "lines.2.merchandiseId",
                "lines.2.quantity"
            ]
        );
        assert_eq!(
            codes(&errors),
            [
                CartErrorCode::MerchandiseNotFound,
                CartErrorCode::MerchandiseNotFound,
                CartErrorCode::LessThan
            ]
        );
    }

    #[test]
    fn short_stock_is_a_warning_unless_the_variant_sells_on_backorder() {
        let cart = crate::cart::Cart {
            id: 1,
            token: "t".into(),
            currency: "USD".into(),
            country: None,
            note: None,
            completed_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let priced = PricedCart {
            cart,
            lines: vec![
                existing(1, 3),
                existing(2, 3),
                existing(3, 3),
                existing(4, 2),
            ],
            variants: HashMap::from([
                (1, variant(1, "DENY", 0)),
                (2, variant(2, "DENY", 2)),
                (3, variant(3, "CONTINUE", 0)),
                (4, variant(4, "DENY", 2)),
            ]),
            currency: "USD".into(),
            sellable: HashSet::from([1, 2, 3, 4]),
            product_titles: HashMap::new(),
        };
        let warnings = stock_warnings(&priced);
        let got: Vec<(CartWarningCode, &str)> = warnings
            .iter()
            .map(|w| (w.code, w.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    CartWarningCode::MerchandiseOutOfStock,
                    "Variant 1 is out of stock."
                ),
                (
                    CartWarningCode::MerchandiseNotEnoughStock,
                    "Only 2 of Variant 2 are available."
                ),
            ]
        );
        // A change with user errors carries no warnings.
        let outcome = outcome_of(priced, vec![error(CartErrorCode::LessThan, &["q"], "x")]);
        assert!(outcome.warnings.is_empty());
    }

    #[test]
    fn cart_tokens_are_32_letters_and_digits_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
