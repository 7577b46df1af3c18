//! Exact decimal numbers in JSON, in both directions, without `f64`.

use rust_decimal::Decimal;
use serde::Serializer;
use serde_json::value::RawValue;

/// Largest exponent magnitude accepted in a JSON number. Anything beyond is
/// far outside every domain bound, so it is reported as out of range rather
/// than computed.
const MAX_EXPONENT: i64 = 40;

/// Why a JSON number token could not be read as an exact decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Not the JSON number grammar (`NaN`, `1.`, `+1`, `0x10`, ...).
    NotANumber,
    /// Well formed but too large (or too precise) for a 96-bit decimal.
    OutOfRange,
}

/// Parses a JSON number token (`-12.50`, `1e5`, `2.5E-1`) exactly.
///
/// The grammar is RFC 8259's; the value is built digit by digit in
/// `Decimal`, never through binary floating point.
pub fn parse_json_number(token: &str) -> Result<Decimal, NumberError> {
    let bytes = token.as_bytes();
    let mut i = 0;
    let negative = bytes.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &token[int_start..i];
    if int_digits.is_empty() || (int_digits.len() > 1 && int_digits.starts_with('0')) {
        return Err(NumberError::NotANumber);
    }
    let mut frac_digits = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &token[start..i];
        if frac_digits.is_empty() {
            return Err(NumberError::NotANumber);
        }
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        let mut exp_negative = false;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            exp_negative = bytes[i] == b'-';
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            // Saturate: a huge exponent is out of range either way.
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(i64::from(bytes[i] - b'0'));
            i += 1;
        }
        if i == start {
            return Err(NumberError::NotANumber);
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != bytes.len() {
        return Err(NumberError::NotANumber);
    }

    // Strip insignificant zeros so that `100.000` and `1e2` fit like `100`.
    let int_trimmed = int_digits.trim_start_matches('0');
    let frac_trimmed = frac_digits.trim_end_matches('0');
    let mut digits = String::with_capacity(int_trimmed.len() + frac_trimmed.len());
    digits.push_str(int_trimmed);
    digits.push_str(frac_trimmed);
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(Decimal::ZERO);
    }
    // value = digits × 10^(exponent − frac_trimmed.len())
    let scale_shift = exponent - frac_trimmed.len() as i64;
    if !(-MAX_EXPONENT..=MAX_EXPONENT).contains(&scale_shift) || digits.len() > 28 {
        return Err(NumberError::OutOfRange);
    }
    let mantissa: i128 = digits.parse().map_err(|_| NumberError::OutOfRange)?;
    let mantissa = if negative { -mantissa } else { mantissa };
    let value = if scale_shift <= 0 {
        Decimal::try_from_i128_with_scale(mantissa, (-scale_shift) as u32)
            .map_err(|_| NumberError::OutOfRange)?
    } else {
        let base =
            Decimal::try_from_i128_with_scale(mantissa, 0).map_err(|_| NumberError::OutOfRange)?;
        let mut factor = Decimal::ONE;
        for _ in 0..scale_shift {
            factor = factor
                .checked_mul(Decimal::TEN)
                .ok_or(NumberError::OutOfRange)?;
        }
        base.checked_mul(factor).ok_or(NumberError::OutOfRange)?
    };
    Ok(value)
}

/// Writes `text` (already a valid JSON number) as a raw JSON number.
pub fn serialize_raw_number<S: Serializer>(text: String, serializer: S) -> Result<S::Ok, S::Error> {
    let raw = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&raw, serializer)
}

/// A decimal with its exact digits and no trailing zeros (`0.0039105`).
pub fn exact_digits(value: Decimal) -> String {
    value.normalize().to_string()
}

/// A decimal with exactly `dp` decimals (`25.00`), banker's rounding.
pub fn fixed_digits(value: Decimal, dp: u32) -> String {
    let mut v =
        value.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointNearestEven);
    v.rescale(dp);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn json_numbers_parse_exactly() {
        assert_eq!(parse_json_number("100000"), Ok(d("100000")));
        assert_eq!(parse_json_number("0.1"), Ok(d("0.1")));
        assert_eq!(parse_json_number("-12.50"), Ok(d("-12.5")));
        assert_eq!(parse_json_number("1e5"), Ok(d("100000")));
        assert_eq!(parse_json_number("1.5E+2"), Ok(d("150")));
        assert_eq!(parse_json_number("25e-2"), Ok(d("0.25")));
        assert_eq!(parse_json_number("-0"), Ok(Decimal::ZERO));
        assert_eq!(parse_json_number("0.000"), Ok(Decimal::ZERO));
        assert_eq!(parse_json_number("100.000"), Ok(d("100")));
    }

    #[test]
    fn non_json_number_grammar_is_rejected() {
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "Infinity", "0x10", "1 ", " 1",
            "1,5",
        ] {
            assert_eq!(
                parse_json_number(bad),
                Err(NumberError::NotANumber),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn huge_numbers_are_out_of_range_not_panics() {
        assert_eq!(parse_json_number("1e400"), Err(NumberError::OutOfRange));
        assert_eq!(parse_json_number("1e-400"), Err(NumberError::OutOfRange));
        assert_eq!(
            parse_json_number("1e99999999999999999999999"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(
            parse_json_number("123456789012345678901234567890123"),
            Err(NumberError::OutOfRange)
        );
    }

    #[test]
    fn digits_are_rendered_exactly() {
        assert_eq!(exact_digits(d("0.00391050000")), "0.0039105");
        assert_eq!(fixed_digits(d("25"), 2), "25.00");
        assert_eq!(fixed_digits(d("0.125"), 2), "0.12");
        assert_eq!(fixed_digits(d("0.135"), 2), "0.14");
    }
}
