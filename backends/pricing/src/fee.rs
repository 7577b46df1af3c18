//! Locate fee (SPEC §5).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::rate::BorrowRate;
use crate::types::{LoanDays, Money, PositionValue};

/// How a client's transaction fee is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FeeType {
    /// `fee_amount` in currency per locate.
    Flat,
    /// `fee_amount` percent of the position value.
    Percentage,
}

impl FeeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flat => "FLAT",
            Self::Percentage => "PERCENTAGE",
        }
    }
}

impl FromStr for FeeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "FLAT" => Ok(Self::Flat),
            "PERCENTAGE" => Ok(Self::Percentage),
            other => Err(format!("unknown fee type {other:?} (FLAT or PERCENTAGE)")),
        }
    }
}

/// A client's commercial terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTerms {
    /// Percent added on top of the borrow cost.
    pub markup_percentage: Decimal,
    pub fee_type: FeeType,
    /// Flat amount, or percent of the position value.
    pub fee_amount: Decimal,
}

/// The SPEC §5 seed clients: (client_id, markup_percentage, fee_type, fee_amount).
pub const SEED_CLIENTS: [(&str, &str, &str, &str); 4] = [
    ("test123", "5.00", "FLAT", "25.00"),
    ("client123", "7.50", "PERCENTAGE", "0.05"),
    ("big_fund", "2.50", "PERCENTAGE", "0.01"),
    ("retail_broker", "10.00", "FLAT", "40.00"),
];

/// A computed locate fee with its breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocateFee {
    pub borrow_cost: Money,
    pub markup: Money,
    pub transaction_fees: Money,
    /// Sum of the three rounded components.
    pub total_fee: Money,
    pub borrow_rate_used: BorrowRate,
}

/// The calculation left the range of 96-bit decimals (only possible with
/// absurd stored terms; validated requests alone cannot cause it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricingError;

impl std::fmt::Display for PricingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("calculation out of decimal range")
    }
}

impl LocateFee {
    /// Multiply first, divide last; round each component to cents with
    /// banker's rounding; total = sum of the rounded components.
    pub fn compute(
        position: PositionValue,
        rate: BorrowRate,
        days: LoanDays,
        terms: &ClientTerms,
    ) -> Result<Self, PricingError> {
        let hundred = Decimal::ONE_HUNDRED;
        let pv = position.value();
        let borrow_cost = pv
            .checked_mul(rate.value())
            .and_then(|v| v.checked_mul(Decimal::from(days.get())))
            .and_then(|v| v.checked_div(Decimal::from(365)))
            .ok_or(PricingError)?;
        let markup = borrow_cost
            .checked_mul(terms.markup_percentage)
            .and_then(|v| v.checked_div(hundred))
            .ok_or(PricingError)?;
        let transaction_fees = match terms.fee_type {
            FeeType::Flat => terms.fee_amount,
            FeeType::Percentage => pv
                .checked_mul(terms.fee_amount)
                .and_then(|v| v.checked_div(hundred))
                .ok_or(PricingError)?,
        };
        let borrow_cost = Money::round_from(borrow_cost);
        let markup = Money::round_from(markup);
        let transaction_fees = Money::round_from(transaction_fees);
        let total_fee = borrow_cost
            .checked_add(markup)
            .and_then(|v| v.checked_add(transaction_fees))
            .ok_or(PricingError)?;
        Ok(Self {
            borrow_cost,
            markup,
            transaction_fees,
            total_fee,
            borrow_rate_used: rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::StockRisk;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn terms(markup: &str, fee_type: FeeType, amount: &str) -> ClientTerms {
        ClientTerms {
            markup_percentage: d(markup),
            fee_type,
            fee_amount: d(amount),
        }
    }

    fn fee(pv: &str, rate: &str, days: u16, t: &ClientTerms) -> LocateFee {
        LocateFee::compute(
            PositionValue::parse(pv).unwrap(),
            BorrowRate::new(d(rate)),
            LoanDays::new(days.into()).unwrap(),
            t,
        )
        .unwrap()
    }

    #[test]
    fn aapl_worked_example() {
        let aapl = StockRisk {
            base_rate: d("0.0030"),
            volatility_index: d("18.5"),
            event_risk_factor: d("2"),
            min_rate: d("0.0010"),
        }
        .borrow_rate()
        .unwrap();
        let f = LocateFee::compute(
            PositionValue::parse("100000").unwrap(),
            aapl,
            LoanDays::new(30).unwrap(),
            &terms("5.00", FeeType::Flat, "25.00"),
        )
        .unwrap();
        assert_eq!(f.borrow_cost.to_string(), "32.14");
        assert_eq!(f.markup.to_string(), "1.61");
        assert_eq!(f.transaction_fees.to_string(), "25.00");
        assert_eq!(f.total_fee.to_string(), "58.75");
        assert_eq!(f.borrow_rate_used.to_string(), "0.0039105");
    }

    #[test]
    fn gme_worked_example() {
        let f = fee(
            "250000",
            "0.6475",
            7,
            &terms("7.50", FeeType::Percentage, "0.05"),
        );
        assert_eq!(f.borrow_cost.to_string(), "3104.45");
        assert_eq!(f.markup.to_string(), "232.83");
        assert_eq!(f.transaction_fees.to_string(), "125.00");
        assert_eq!(f.total_fee.to_string(), "3462.28");
    }

    #[test]
    fn borrow_cost_ties_round_half_to_even() {
        // 365 × 0.01 × 1 / 365 × pv: pick pv so the cost is exactly x.xx5.
        // pv 0.25, rate 1, 365 days → 0.25 → no tie; use rate 0.1: 0.025 → 0.02.
        let t = terms("0", FeeType::Flat, "0");
        assert_eq!(fee("0.25", "0.1", 365, &t).borrow_cost.to_string(), "0.02");
        assert_eq!(fee("0.35", "0.1", 365, &t).borrow_cost.to_string(), "0.04");
    }

    #[test]
    fn markup_ties_round_half_to_even() {
        // borrow cost 0.50 exactly, markup 5 % → 0.025 → 0.02; 7 % of 0.50 = 0.035 → 0.04.
        let five = terms("5", FeeType::Flat, "0");
        assert_eq!(fee("0.50", "1", 365, &five).markup.to_string(), "0.02");
        let seven = terms("7", FeeType::Flat, "0");
        assert_eq!(fee("0.50", "1", 365, &seven).markup.to_string(), "0.04");
    }

    #[test]
    fn percentage_fee_ties_round_half_to_even() {
        // 0.5 % of 0.50 = 0.0025 → 0.00; 1.5 % of 1.00 = 0.015 → 0.02.
        let half = terms("0", FeeType::Percentage, "0.5");
        assert_eq!(
            fee("0.50", "0", 1, &half).transaction_fees.to_string(),
            "0.00"
        );
        let one_half = terms("0", FeeType::Percentage, "1.5");
        assert_eq!(
            fee("1.00", "0", 1, &one_half).transaction_fees.to_string(),
            "0.02"
        );
        let flat_tie = terms("0", FeeType::Flat, "0.125");
        assert_eq!(
            fee("1", "0", 1, &flat_tie).transaction_fees.to_string(),
            "0.12"
        );
    }

    #[test]
    fn total_is_the_sum_of_rounded_parts_not_the_rounded_sum() {
        // borrow 0.005 → 0.00 (even), markup 100 % → 0.005 → 0.00; unrounded sum 0.01.
        let t = terms("100", FeeType::Flat, "0");
        let f = fee("0.05", "0.1", 365, &t);
        assert_eq!(f.borrow_cost.to_string(), "0.00");
        assert_eq!(f.markup.to_string(), "0.00");
        assert_eq!(f.total_fee.to_string(), "0.00");
    }

    #[test]
    fn extreme_but_valid_inputs_compute() {
        let t = terms("10.00", FeeType::Percentage, "100");
        let f = fee("1000000000000", "0.6475", 365, &t);
        assert_eq!(f.borrow_cost.to_string(), "647500000000.00");
        let f = fee("0.01", "0.001", 1, &t);
        assert_eq!(f.borrow_cost.to_string(), "0.00");
        assert_eq!(f.transaction_fees.to_string(), "0.01");
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let t = terms(
            &Decimal::MAX.to_string(),
            FeeType::Percentage,
            &Decimal::MAX.to_string(),
        );
        let r = LocateFee::compute(
            PositionValue::parse("1000000000000").unwrap(),
            BorrowRate::new(Decimal::MAX),
            LoanDays::new(365).unwrap(),
            &t,
        );
        assert_eq!(r, Err(PricingError));
    }
}
