//! Validated input newtypes (SPEC §4). Each `parse` is the only way in, so
//! a value of these types is always valid.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::error::FieldError;
use crate::json::{fixed_digits, parse_json_number};

/// A stock symbol: 1–5 letters, optionally `.` and a 1–2 letter class,
/// stored upper case (`BRK.B`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Ticker(String);

impl Ticker {
    pub const RULE: &'static str =
        "must be 1-5 letters, optionally followed by '.' and 1-2 letters (e.g. AAPL, BRK.B)";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let (root, class) = match raw.split_once('.') {
            Some((root, class)) => (root, Some(class)),
            None => (raw, None),
        };
        let letters = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphabetic())
        };
        let ok = letters(root, 5) && class.is_none_or(|c| letters(c, 2));
        if ok {
            Ok(Self(raw.to_ascii_uppercase()))
        } else {
            Err(FieldError::new("ticker", Self::RULE))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The notional being shorted: > 0, ≤ 1 000 000 000 000, at most 2 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PositionValue(Decimal);

impl PositionValue {
    pub const MAX: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0); // 1e12
    pub const RULE: &'static str =
        "must be a number greater than 0 and at most 1000000000000 with at most 2 decimal places";

    /// From a JSON number token or the text of a decimal string.
    pub fn parse(token: &str) -> Result<Self, FieldError> {
        let err = || FieldError::new("position_value", Self::RULE);
        let value = parse_json_number(token).map_err(|_| err())?;
        Self::from_decimal(value).ok_or_else(err)
    }

    pub fn from_decimal(value: Decimal) -> Option<Self> {
        let value = value.normalize();
        (value > Decimal::ZERO && value <= Self::MAX && value.scale() <= 2).then_some(Self(value))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

/// Length of the loan in days: an integer from 1 to 365.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoanDays(u16);

impl LoanDays {
    pub const RULE: &'static str = "must be an integer between 1 and 365";

    /// From a JSON number token. `30` and `30.0` are the integer 30;
    /// `30.5` is not an integer.
    pub fn parse(token: &str) -> Result<Self, FieldError> {
        let err = || FieldError::new("loan_days", Self::RULE);
        let value = parse_json_number(token).map_err(|_| err())?;
        if value.fract() != Decimal::ZERO {
            return Err(err());
        }
        let days = value.trunc().mantissa() / 10i128.pow(value.trunc().scale());
        Self::new(days).ok_or_else(err)
    }

    pub fn new(days: i128) -> Option<Self> {
        u16::try_from(days)
            .ok()
            .filter(|d| (1..=365).contains(d))
            .map(Self)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// The pricing client a fee is computed for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    pub const RULE: &'static str = "must be 1-64 characters of letters, digits, '_' or '-'";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if Self::is_valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new("client_id", Self::RULE))
        }
    }

    /// Whether `raw` follows the rule, without building a `ClientId` (the
    /// gateway's filters check ids this way on their per-request paths).
    pub fn is_valid(raw: &str) -> bool {
        !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount of money in cents precision, serialised as a JSON number with
/// exactly two decimals (`25.00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(Decimal);

impl Money {
    /// Rounds to cents, half to even.
    pub fn round_from(value: Decimal) -> Self {
        let mut v =
            value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
        v.rescale(2);
        Self(v)
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money::round_from)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fixed_digits(self.0, 2))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::json::serialize_raw_number(fixed_digits(self.0, 2), s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn tickers_follow_the_spec_rule_and_are_upper_cased() {
        for ok in ["AAPL", "aapl", "A", "GOOGL", "BRK.B", "brk.b", "ABC.DE"] {
            let t = Ticker::parse(ok).unwrap();
            assert_eq!(t.as_str(), ok.to_ascii_uppercase());
        }
        for bad in [
            "", "TOOLONG", "A1", "BRK.", ".B", "BRK.BCD", "BRK..B", "A.B.C", "AAPL ", "ÄPPL", "A-B",
        ] {
            assert!(Ticker::parse(bad).is_err(), "{bad:?} accepted");
        }
        let t = Ticker::parse("brk.b").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""BRK.B""#);
    }

    #[test]
    fn position_value_bounds() {
        assert!(PositionValue::parse("0.01").is_ok());
        assert!(PositionValue::parse("1000000000000").is_ok());
        assert!(PositionValue::parse("1e12").is_ok());
        assert!(PositionValue::parse("1000000000000.01").is_err());
        assert!(PositionValue::parse("0").is_err());
        assert!(PositionValue::parse("-0").is_err());
        assert!(PositionValue::parse("-5").is_err());
        assert!(PositionValue::parse("0.001").is_err());
        assert!(PositionValue::parse("10.005").is_err());
        assert!(PositionValue::parse("10.500").is_ok());
        assert!(PositionValue::parse("1e400").is_err());
        assert_eq!(
            PositionValue::MAX,
            Decimal::from_str("1000000000000").unwrap()
        );
    }

    #[test]
    fn loan_days_bounds() {
        assert_eq!(LoanDays::parse("1").unwrap().get(), 1);
        assert_eq!(LoanDays::parse("365").unwrap().get(), 365);
        assert_eq!(LoanDays::parse("30.0").unwrap().get(), 30);
        assert!(LoanDays::parse("0").is_err());
        assert!(LoanDays::parse("366").is_err());
        assert!(LoanDays::parse("30.5").is_err());
        assert!(LoanDays::parse("-1").is_err());
        assert!(LoanDays::parse("1e400").is_err());
        assert!(LoanDays::parse("99999999999999999999").is_err());
    }

    #[test]
    fn client_ids_follow_the_spec_rule() {
        assert!(ClientId::parse("test123").is_ok());
        assert!(ClientId::parse("big_fund-2").is_ok());
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        assert!(ClientId::parse(&"a".repeat(65)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("a;drop").is_err());
        let c = ClientId::parse("big_fund-2").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""big_fund-2""#);
    }

    #[test]
    fn money_serialises_with_two_decimals() {
        let m = Money::round_from(Decimal::from(25));
        assert_eq!(serde_json::to_string(&m).unwrap(), "25.00");
        let m = Money::round_from(Decimal::from_str("3104.452054").unwrap());
        assert_eq!(serde_json::to_string(&m).unwrap(), "3104.45");
    }
}
