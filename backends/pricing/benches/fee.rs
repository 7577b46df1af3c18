//! Cost of one locate-fee calculation (SPEC §5), and of validating one
//! request body, per call. Run: `cargo bench -p pricing --bench fee`.
//!
//! Plain `std` timing (no harness): several rounds of a fixed number of
//! calls, reporting the median and best round in nanoseconds per call.

use std::hint::black_box;
use std::time::Instant;

use pricing::{
    parse_locate_request, ClientTerms, Decimal, FeeType, LoanDays, LocateFee, PositionValue,
    StockRisk,
};

const CALLS: u32 = 200_000;
const ROUNDS: usize = 9;

fn measure(name: &str, mut f: impl FnMut(u32)) {
    for i in 0..CALLS / 10 {
        f(i);
    }
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for i in 0..CALLS {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    println!(
        "{name:<40} median {:>8.1} ns/call   best {:>8.1} ns/call   ({ROUNDS} rounds x {CALLS} calls)",
        per_call[ROUNDS / 2],
        per_call[0]
    );
}

fn main() {
    let d = |s: &str| s.parse::<Decimal>().unwrap_or_default();
    let aapl = StockRisk {
        base_rate: d("0.0030"),
        volatility_index: d("18.5"),
        event_risk_factor: d("2"),
        min_rate: d("0.0010"),
    };
    let flat = ClientTerms {
        markup_percentage: d("5.00"),
        fee_type: FeeType::Flat,
        fee_amount: d("25.00"),
    };
    let pct = ClientTerms {
        markup_percentage: d("7.50"),
        fee_type: FeeType::Percentage,
        fee_amount: d("0.05"),
    };
    let Ok(rate) = aapl.borrow_rate() else {
        eprintln!("seed rate overflowed");
        return;
    };
    let positions: Vec<PositionValue> = (1..=64)
        .filter_map(|i| PositionValue::from_decimal(Decimal::new(i * 1_234_567, 2)))
        .collect();
    let days: Vec<LoanDays> = (1..=64).filter_map(|i| LoanDays::new(i * 5)).collect();

    measure("borrow rate (SPEC §5)", |_| {
        let _ = black_box(black_box(&aapl).borrow_rate());
    });
    for (name, terms) in [
        ("locate fee, FLAT client", &flat),
        ("locate fee, PERCENTAGE client", &pct),
    ] {
        measure(name, |i| {
            let n = i as usize % 64;
            let _ = black_box(LocateFee::compute(
                black_box(positions[n]),
                black_box(rate),
                black_box(days[n]),
                black_box(terms),
            ));
        });
    }
    let body = br#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    measure("validate request body (SPEC §4)", |_| {
        let _ = black_box(parse_locate_request(black_box(body)));
    });
}
