//! The borrow-rate and locate-fee domain.
//!
//! * [`request`] turns untrusted input (a ticker from a path, a JSON body)
//!   into the validated newtypes of this crate, reporting **every** violated
//!   field (SPEC §4). The validation filter and the calculation service both
//!   call it, so the rules cannot drift.
//! * [`rate`] and [`fee`] are the SPEC §5 formulas in exact decimal
//!   arithmetic: multiply first, divide last, banker's rounding per
//!   component, total = sum of the rounded components.
//! * [`error`] is the one error envelope of SPEC §6.
//!
//! No I/O, no async, no panics on any input: the crate compiles for
//! `wasm32-wasip1` and runs inside Envoy.

pub mod error;
pub mod fee;
pub mod json;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod rate;
pub mod request;
pub mod types;

pub use error::{ErrorCode, ErrorEnvelope, FieldError};
pub use fee::{ClientTerms, FeeType, LocateFee, PricingError};
pub use rate::{BorrowRate, BorrowStatus, StockRisk};
pub use request::{parse_locate_request, LocateRequest, MAX_BODY_BYTES};
pub use types::{ClientId, LoanDays, Money, PositionValue, Ticker};

/// Re-exported so callers use the same decimal type as the formulas.
pub use rust_decimal::Decimal;
