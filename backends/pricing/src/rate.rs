//! Borrow rate (SPEC §5).

use std::fmt;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::json::{exact_digits, serialize_raw_number};

/// The risk inputs of one stock, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRisk {
    /// Annualised base borrow rate, as a fraction (0.0030 = 0.30 %).
    pub base_rate: Decimal,
    /// Volatility index; each point adds 1 % to the base rate.
    pub volatility_index: Decimal,
    /// Event-risk factor; each point adds 5 % to the rate.
    pub event_risk_factor: Decimal,
    /// Floor below which the rate never goes.
    pub min_rate: Decimal,
}

/// Why a rate could not be computed (only absurd stored values overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateOverflow;

impl StockRisk {
    /// `max(base × (1 + vol × 0.01) × (1 + event × 0.05), min_rate)`, exact.
    pub fn borrow_rate(&self) -> Result<BorrowRate, RateOverflow> {
        let vol = Decimal::new(1, 2); // 0.01
        let event = Decimal::new(5, 2); // 0.05
        let vol_factor = self
            .volatility_index
            .checked_mul(vol)
            .and_then(|v| v.checked_add(Decimal::ONE));
        let event_factor = self
            .event_risk_factor
            .checked_mul(event)
            .and_then(|v| v.checked_add(Decimal::ONE));
        let adjusted = vol_factor
            .zip(event_factor)
            .and_then(|(v, e)| self.base_rate.checked_mul(v)?.checked_mul(e))
            .ok_or(RateOverflow)?;
        Ok(BorrowRate(adjusted.max(self.min_rate).normalize()))
    }
}

/// An annualised borrow rate as a fraction, with its exact digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BorrowRate(Decimal);

impl BorrowRate {
    pub fn new(value: Decimal) -> Self {
        Self(value.normalize())
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// `EASY` below 1 %, `MEDIUM` below 10 %, `HARD` otherwise.
    pub fn status(self) -> BorrowStatus {
        if self.0 < Decimal::new(1, 2) {
            BorrowStatus::Easy
        } else if self.0 < Decimal::new(10, 2) {
            BorrowStatus::Medium
        } else {
            BorrowStatus::Hard
        }
    }
}

impl fmt::Display for BorrowRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&exact_digits(self.0))
    }
}

impl Serialize for BorrowRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_raw_number(exact_digits(self.0), s)
    }
}

/// How hard a stock is to borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BorrowStatus {
    Easy,
    Medium,
    Hard,
}

impl BorrowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Easy => "EASY",
            Self::Medium => "MEDIUM",
            Self::Hard => "HARD",
        }
    }
}

/// The SPEC §5 seed stocks: (ticker, base_rate, volatility_index,
/// event_risk_factor, min_rate), loaded on first start.
pub const SEED_STOCKS: [(&str, &str, &str, &str, &str); 8] = [
    ("AAPL", "0.0030", "18.5", "2", "0.0010"),
    ("MSFT", "0.0025", "16.0", "1", "0.0010"),
    ("NVDA", "0.0040", "42.0", "3", "0.0010"),
    ("TSLA", "0.0150", "55.0", "4", "0.0050"),
    ("AMC", "0.1800", "80.0", "7", "0.0500"),
    ("GME", "0.2500", "85.0", "8", "0.0500"),
    ("BRK.B", "0.0020", "12.0", "0", "0.0010"),
    ("KO", "0.0005", "10.0", "0", "0.0025"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn risk(base: &str, vol: &str, event: &str, min: &str) -> StockRisk {
        StockRisk {
            base_rate: d(base),
            volatility_index: d(vol),
            event_risk_factor: d(event),
            min_rate: d(min),
        }
    }

    #[test]
    fn spec_worked_rates() {
        let aapl = risk("0.0030", "18.5", "2", "0.0010").borrow_rate().unwrap();
        assert_eq!(aapl.to_string(), "0.0039105");
        assert_eq!(aapl.status(), BorrowStatus::Easy);
        let gme = risk("0.2500", "85.0", "8", "0.0500").borrow_rate().unwrap();
        assert_eq!(gme.to_string(), "0.6475");
        assert_eq!(gme.status(), BorrowStatus::Hard);
        assert_eq!(serde_json::to_string(&gme).unwrap(), "0.6475");
    }

    #[test]
    fn floor_rate_applies_when_adjusted_is_lower() {
        let ko = risk("0.0005", "10.0", "0", "0.0025").borrow_rate().unwrap();
        assert_eq!(ko.to_string(), "0.0025");
    }

    #[test]
    fn status_thresholds_at_their_boundaries() {
        assert_eq!(BorrowRate::new(d("0.0099999")).status(), BorrowStatus::Easy);
        assert_eq!(BorrowRate::new(d("0.01")).status(), BorrowStatus::Medium);
        assert_eq!(
            BorrowRate::new(d("0.0999999")).status(),
            BorrowStatus::Medium
        );
        assert_eq!(BorrowRate::new(d("0.10")).status(), BorrowStatus::Hard);
    }

    #[test]
    fn every_seed_stock_has_a_rate() {
        for (t, b, v, e, m) in SEED_STOCKS {
            let r = risk(b, v, e, m).borrow_rate().unwrap();
            assert!(r.value() >= d(m), "{t}");
        }
    }

    #[test]
    fn absurd_inputs_overflow_instead_of_panicking() {
        let max = Decimal::MAX.to_string();
        assert_eq!(risk(&max, &max, &max, "0").borrow_rate(), Err(RateOverflow));
    }
}
