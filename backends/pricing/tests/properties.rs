//! Property tests of the domain: the fee breakdown always adds up, and no
//! input makes validation or pricing panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pricing::{
    parse_locate_request, BorrowRate, ClientTerms, Decimal, FeeType, LoanDays, LocateFee,
    PositionValue, StockRisk,
};
use proptest::prelude::*;

fn position() -> impl Strategy<Value = PositionValue> {
    // 0.01 … 1 000 000 000 000.00 in cents.
    (1i64..=100_000_000_000_000)
        .prop_map(|cents| PositionValue::from_decimal(Decimal::new(cents, 2)).expect("in range"))
}

fn rate() -> impl Strategy<Value = BorrowRate> {
    // 0 … 10 (1000 %), up to 7 decimals.
    (0i64..=100_000_000).prop_map(|n| BorrowRate::new(Decimal::new(n, 7)))
}

fn days() -> impl Strategy<Value = LoanDays> {
    (1i128..=365).prop_map(|d| LoanDays::new(d).expect("in range"))
}

fn terms() -> impl Strategy<Value = ClientTerms> {
    (0i64..=10_000, any::<bool>(), 0i64..=100_000).prop_map(|(markup, flat, amount)| ClientTerms {
        markup_percentage: Decimal::new(markup, 2),
        fee_type: if flat {
            FeeType::Flat
        } else {
            FeeType::Percentage
        },
        fee_amount: Decimal::new(amount, 2),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn total_fee_always_equals_the_sum_of_the_breakdown(
        pv in position(), r in rate(), d in days(), t in terms()
    ) {
        let fee = LocateFee::compute(pv, r, d, &t).unwrap();
        let sum = fee.borrow_cost.value() + fee.markup.value() + fee.transaction_fees.value();
        prop_assert_eq!(fee.total_fee.value(), sum);
        for part in [fee.borrow_cost, fee.markup, fee.transaction_fees, fee.total_fee] {
            prop_assert_eq!(part.value().scale(), 2);
            prop_assert!(part.value() >= Decimal::ZERO);
        }
        prop_assert_eq!(fee.borrow_rate_used, r);
    }

    #[test]
    fn borrow_cost_is_within_half_a_cent_of_the_exact_value(
        pv in position(), r in rate(), d in days()
    ) {
        let t = ClientTerms { markup_percentage: Decimal::ZERO, fee_type: FeeType::Flat, fee_amount: Decimal::ZERO };
        let fee = LocateFee::compute(pv, r, d, &t).unwrap();
        let exact = pv.value() * r.value() * Decimal::from(d.get()) / Decimal::from(365);
        prop_assert!((fee.borrow_cost.value() - exact).abs() <= Decimal::new(5, 3));
    }

    #[test]
    fn any_stored_risk_inputs_give_a_rate_or_an_error_never_a_panic(
        base in any::<i64>(), vol in any::<i64>(), event in any::<i64>(), min in any::<i64>(),
        scales in (0u32..=28, 0u32..=28, 0u32..=28, 0u32..=28)
    ) {
        let risk = StockRisk {
            base_rate: Decimal::new(base, scales.0),
            volatility_index: Decimal::new(vol, scales.1),
            event_risk_factor: Decimal::new(event, scales.2),
            min_rate: Decimal::new(min, scales.3),
        };
        if let Ok(rate) = risk.borrow_rate() {
            prop_assert!(rate.value() >= risk.min_rate.normalize());
            let _ = rate.status();
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_validator(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Err(errors) = parse_locate_request(&body) {
            prop_assert!(!errors.is_empty());
        }
    }

    #[test]
    fn arbitrary_json_like_bodies_never_panic_and_errors_name_fields(
        ticker in prop_oneof![Just("\"AAPL\"".to_owned()), "\"[a-zA-Z.]{0,9}\"", "-?[0-9]{1,30}(\\.[0-9]{0,30})?", Just("null".to_owned())],
        pv in prop_oneof!["-?[0-9]{1,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,5})?", "\"[0-9.eE+-]{0,20}\"", Just("true".to_owned())],
        days in prop_oneof!["-?[0-9]{1,25}(\\.[0-9]{0,5})?([eE][-+]?[0-9]{1,4})?", Just("\"30\"".to_owned())],
        client in prop_oneof![Just("\"test123\"".to_owned()), "\"[ -~]{0,70}\"", Just("[]".to_owned())],
    ) {
        let body = format!(
            r#"{{"ticker":{ticker},"position_value":{pv},"loan_days":{days},"client_id":{client}}}"#
        );
        match parse_locate_request(body.as_bytes()) {
            Ok(req) => {
                prop_assert!(req.position_value.value() > Decimal::ZERO);
                prop_assert!((1..=365).contains(&req.loan_days.get()));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors {
                    prop_assert!(
                        ["ticker", "position_value", "loan_days", "client_id", "body"].contains(&e.field.as_str()),
                        "unexpected field {}", e.field
                    );
                }
            }
        }
    }

    #[test]
    fn valid_bodies_always_parse_back_to_their_values(
        cents in 1i64..=100_000_000_000_000, d in 1u16..=365,
        ticker in "[A-Z]{1,5}(\\.[A-Z]{1,2})?", client in "[A-Za-z0-9_-]{1,64}"
    ) {
        let pv = Decimal::new(cents, 2);
        let body = format!(
            r#"{{"ticker":"{}","position_value":{pv},"loan_days":{d},"client_id":"{client}"}}"#,
            ticker.to_lowercase()
        );
        let req = parse_locate_request(body.as_bytes()).unwrap();
        prop_assert_eq!(req.ticker.as_str(), ticker.as_str());
        prop_assert_eq!(req.position_value.value(), pv.normalize());
        prop_assert_eq!(req.loan_days.get(), d);
        prop_assert_eq!(req.client_id.as_str(), client.as_str());
    }
}
