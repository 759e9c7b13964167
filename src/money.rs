//! Exact money: integer minor units plus an ISO 4217 code, never floating point.

use std::fmt::Write;

/// Decimal places of a currency's minor unit, for the currencies the gateway prices in.
pub fn exponent(currency: &str) -> Option<u32> {
    Some(match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "HUF" | "TWD" | "UGX" | "XAF" | "XOF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
        "USD" | "EUR" | "GBP" | "CAD" | "AUD" | "NZD" | "CHF" | "SEK" | "NOK" | "DKK" | "PLN"
        | "CZK" | "MXN" | "BRL" | "INR" | "SGD" | "HKD" | "ZAR" | "CNY" | "AED" | "SAR" | "ILS"
        | "TRY" | "THB" | "MYR" | "PHP" | "IDR" | "RON" | "BGN" => 2,
        _ => return None,
    })
}

/// Formats minor units as a decimal string (`1999` USD → `"19.99"`), Shopify's `Decimal`.
pub fn format_minor(amount_minor: i64, currency: &str) -> String {
    let exp = exponent(currency).unwrap_or(2);
    if exp == 0 {
        return amount_minor.to_string();
    }
    let scale = 10i64.pow(exp);
    let mut out = String::new();
    if amount_minor < 0 {
        out.push('-');
    }
    let abs = amount_minor.unsigned_abs();
    let _ = write!(
        out,
        "{}.{:0width$}",
        abs / scale as u64,
        abs % scale as u64,
        width = exp as usize
    );
    out
}

/// Parses a decimal string into minor units, rejecting more precision than the currency has.
pub fn parse_minor(text: &str, currency: &str) -> Option<i64> {
    let exp = exponent(currency).unwrap_or(2) as usize;
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > exp {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<exp$}").parse().ok()?
    };
    let value = whole
        .checked_mul(10i64.pow(exp as u32))?
        .checked_add(frac_value)?;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_minor_units_per_currency_exponent() {
        assert_eq!(format_minor(1999, "USD"), "19.99");
        assert_eq!(format_minor(5, "EUR"), "0.05");
        assert_eq!(format_minor(1200, "JPY"), "1200");
        assert_eq!(format_minor(-150, "USD"), "-1.50");
        assert_eq!(format_minor(1234, "KWD"), "1.234");
    }

    #[test]
    fn parses_decimals_exactly_and_rejects_excess_precision() {
        assert_eq!(parse_minor("19.99", "USD"), Some(1999));
        assert_eq!(parse_minor("19.9", "USD"), Some(1990));
        assert_eq!(parse_minor("20", "USD"), Some(2000));
        assert_eq!(parse_minor("19.990", "USD"), Some(1999));
        assert_eq!(parse_minor("19.999", "USD"), None);
        assert_eq!(parse_minor("abc", "USD"), None);
        assert_eq!(parse_minor("1200", "JPY"), Some(1200));
        assert_eq!(parse_minor("", "USD"), None);
    }
}
