//! OpenAPI schemas of the validated input types and the error envelope
//! (feature `openapi`, native builds only).
//!
//! Each schema is written from the type's own rule: the pattern, range and
//! example constants below sit next to the `parse` they describe, and tests
//! check that the patterns accept exactly what `parse` accepts. Structs
//! (`LocateRequest`, `ErrorEnvelope`) derive their schemas, so a field added
//! to them appears in the contract without anyone editing it.

use std::borrow::Cow;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ErrorCode;
use crate::rate::{BorrowRate, BorrowStatus};
use crate::types::{ClientId, LoanDays, Money, PositionValue, Ticker};

/// The `ticker` pattern (SPEC §4), as [`Ticker::parse`] applies it.
pub const TICKER_PATTERN: &str = r"^[A-Za-z]{1,5}(\.[A-Za-z]{1,2})?$";
/// A ticker as answered (normalised to upper case).
pub const NORMALISED_TICKER_PATTERN: &str = r"^[A-Z]{1,5}(\.[A-Z]{1,2})?$";
/// The `client_id` pattern (SPEC §4), as [`ClientId::parse`] applies it.
pub const CLIENT_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// The decimal-string form of `position_value` that
/// [`PositionValue::parse`] accepts: > 0, ≤ 10^12, at most two decimals.
pub const POSITION_STRING_PATTERN: &str =
    r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,11}(\.[0-9]{1,2})?|1000000000000(\.0{1,2})?)$";

fn string(pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
}

fn number() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::Number))
}

macro_rules! named_schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

named_schema!(
    Ticker,
    "Ticker",
    string(TICKER_PATTERN)
        .description(Some(
            "1-5 letters, optionally `.` and a 1-2 letter class; normalised to upper case."
        ))
        .examples(["AAPL"])
);

named_schema!(
    ClientId,
    "ClientId",
    string(CLIENT_ID_PATTERN)
        .description(Some(
            "1-64 letters, digits, `_` or `-`. In `calculate-locate` it must be the caller's \
             own client id unless the caller has the `admin` scope."
        ))
        .examples(["test123"])
);

named_schema!(
    LoanDays,
    "LoanDays",
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .minimum(Some(1))
        .maximum(Some(365))
        .description(Some("Length of the loan in days."))
        .examples([30])
);

named_schema!(
    PositionValue,
    "PositionValue",
    OneOfBuilder::new()
        .item(
            number()
                .exclusive_minimum(Some(0))
                .maximum(Some(1_000_000_000_000u64))
                .multiple_of(Some(0.01)),
        )
        .item(string(POSITION_STRING_PATTERN))
        .description(Some(
            "Greater than 0, at most 1 000 000 000 000, at most 2 decimal places; read \
             exactly, never through binary floating point. A JSON number or a decimal string."
        ))
        .examples([100000])
);

named_schema!(
    Money,
    "Money",
    number()
        .description(Some(
            "An amount rounded to cents (half to even), always written with two decimals."
        ))
        .examples([58.75])
);

named_schema!(
    BorrowRate,
    "Rate",
    number()
        .description(Some(
            "Annualised borrow rate as a fraction, with its exact digits."
        ))
        .examples([0.0039105])
);

named_schema!(
    BorrowStatus,
    "BorrowStatus",
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(
            [BorrowStatus::Easy, BorrowStatus::Medium, BorrowStatus::Hard]
                .map(BorrowStatus::as_str)
        ))
        .description(Some(
            "`EASY` below 1 %, `MEDIUM` from 1 % to below 10 %, `HARD` from 10 %."
        ))
);

named_schema!(
    ErrorCode,
    "ErrorCode",
    ErrorCode::schema_of(&ErrorCode::ALL)
);

impl ErrorCode {
    /// A string schema allowing exactly `codes`.
    pub fn schema_of(codes: &[ErrorCode]) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(codes.iter().map(|c| c.as_str())))
    }
}

/// A string schema with exactly one allowed value (`"success"`, `"error"`);
/// it lives next to the envelope whose `status` it first described.
pub use crate::error::constant;

// ---------------------------------------------------------------------------
// Response headers and the reusable error responses
// ---------------------------------------------------------------------------

/// Response headers every route documents, as `components.headers`
/// entries: `(component name, header name, description, required)`.
pub const HEADERS: [(&str, &str, &str, bool); 7] = [
    (
        "RequestId",
        "x-request-id",
        "Request id; equals `request_id` in an error body.",
        true,
    ),
    (
        "RetryAfter",
        "Retry-After",
        "Seconds until a request may succeed.",
        true,
    ),
    (
        "RateLimitLimit",
        "X-RateLimit-Limit",
        "Requests allowed per window.",
        false,
    ),
    (
        "RateLimitRemaining",
        "X-RateLimit-Remaining",
        "Requests left in the current window.",
        false,
    ),
    (
        "RateLimitReset",
        "X-RateLimit-Reset",
        "Seconds until the window resets.",
        false,
    ),
    (
        "RateLimitPolicy",
        "RateLimit-Policy",
        "IETF draft-ietf-httpapi-ratelimit-headers: every limit that applied, e.g. \
         `\"client\";q=60;w=60, \"route-calculate-locate\";q=20;w=60`.",
        false,
    ),
    (
        "RateLimit",
        "RateLimit",
        "IETF draft-ietf-httpapi-ratelimit-headers: the most restrictive limit's \
         remaining quota and seconds to reset, e.g. `\"client\";r=59;t=42`.",
        false,
    ),
];

/// The `components.headers` objects of [`HEADERS`].
pub fn header_components() -> Vec<(String, Header)> {
    HEADERS
        .iter()
        .map(|(component, _, description, _)| {
            let schema = if matches!(*component, "RequestId" | "RateLimitPolicy" | "RateLimit") {
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::String))
            } else {
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Integer))
                    .minimum(Some(0))
            };
            let header = HeaderBuilder::new()
                .schema(Some(schema))
                .description(Some(*description))
                .build();
            ((*component).to_owned(), header)
        })
        .collect()
}

/// A `$ref` to a `components.headers` entry.
pub fn header_ref(component: &str) -> Ref {
    Ref::new(format!("#/components/headers/{component}"))
}

/// Adds the `x-request-id` header (and, for a rate-limited answer, the
/// `X-RateLimit-*` ones) to a response.
pub fn with_headers(
    mut response: ResponseBuilder,
    rate_limited: bool,
    retry: bool,
) -> ResponseBuilder {
    for (component, name, _, _) in HEADERS {
        let wanted = match component {
            "RequestId" => true,
            "RetryAfter" => retry,
            _ => rate_limited,
        };
        if wanted {
            response = response.header_ref(name, header_ref(component));
        }
    }
    response
}

/// One reusable error response of the gateway: its component name, the
/// sentence describing it and the envelope codes it can carry.
#[derive(Debug, Clone, Copy)]
pub struct ErrorResponse {
    pub name: &'static str,
    pub description: &'static str,
    pub codes: &'static [ErrorCode],
}

impl ErrorResponse {
    /// The response object: the envelope, narrowed to [`Self::codes`],
    /// with `x-request-id` (and `Retry-After` plus `X-RateLimit-*` on 429).
    pub fn response(&self) -> Response {
        let narrowed = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .property(
                "error",
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Object))
                    .property("code", ErrorCode::schema_of(self.codes)),
            );
        let schema = AllOfBuilder::new()
            .item(Ref::from_schema_name(crate::ErrorEnvelope::name()))
            .item(narrowed);
        let rate_limited = self.codes == [ErrorCode::RateLimited];
        with_headers(
            ResponseBuilder::new()
                .description(self.description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                ),
            rate_limited,
            rate_limited,
        )
        .build()
    }

    /// A `$ref` to this response in `components.responses`.
    pub fn reference(&self) -> RefOr<Response> {
        RefOr::Ref(Ref::from_response_name(self.name))
    }
}

macro_rules! error_responses {
    ($( $ident:ident = $desc:literal [$($code:ident),+] ),+ $(,)?) => {
        /// The reusable error responses, each also a type usable as
        /// `response = …` in a `#[utoipa::path]`.
        pub mod responses {
            use super::*;
            $(
                #[doc = $desc]
                pub struct $ident;
                impl $ident {
                    pub const SPEC: ErrorResponse = ErrorResponse {
                        name: stringify!($ident),
                        description: $desc,
                        codes: &[$(ErrorCode::$code),+],
                    };
                }
                impl<'r> utoipa::ToResponse<'r> for $ident {
                    fn response() -> (&'r str, RefOr<Response>) {
                        (Self::SPEC.name, Self::SPEC.response().into())
                    }
                }
            )+
            /// Every error response, in the order of the document.
            pub const ALL: &[ErrorResponse] = &[$($ident::SPEC),+];
        }
    };
}

error_responses! {
    MalformedRequest = "Malformed request rejected by the gateway before routing (for example a header name with an underscore, an escaped slash in the path, or an oversized header)." [ValidationError],
    BadRequest = "The request violates a validation rule; every violated field is listed in `details`." [ValidationError],
    Unauthorized = "Missing, invalid, expired or revoked credentials." [Unauthorized],
    Forbidden = "Authenticated but not allowed (another client's `client_id` without the `admin` scope, or an operator endpoint without it)." [Forbidden],
    NotFound = "No such resource." [NotFound],
    TickerNotFound = "Unknown ticker, or no route for the path." [TickerNotFound, NotFound],
    LocateNotFound = "Unknown ticker or unknown client." [TickerNotFound, ClientNotFound],
    DependencyNotFound = "Unknown dependency name." [NotFound],
    MethodNotAllowed = "Known path, method not supported." [MethodNotAllowed],
    PayloadTooLarge = "Body larger than 8 KiB." [PayloadTooLarge],
    UnsupportedMediaType = "Body is not `application/json`." [UnsupportedMediaType],
    RateLimited = "Rate limit exceeded; retry after `Retry-After` seconds." [RateLimited],
    InternalError = "Unexpected failure." [InternalError],
    BackendError = "The backend failed or answered something invalid." [BackendError],
    ServiceUnavailable = "No healthy backend, circuit breaker open, or a dependency is unavailable." [ServiceUnavailable],
    BackendTimeout = "The backend did not answer in time." [BackendTimeout],
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny matcher for the three shapes of pattern used here, so the
    /// test needs no regex engine: each documented pattern is compared with
    /// what `parse` accepts over a set of samples.
    fn ticker_like(s: &str, upper_only: bool) -> bool {
        let letters = |t: &str, max: usize| {
            !t.is_empty()
                && t.len() <= max
                && t.bytes().all(|b| {
                    if upper_only {
                        b.is_ascii_uppercase()
                    } else {
                        b.is_ascii_alphabetic()
                    }
                })
        };
        match s.split_once('.') {
            Some((root, class)) => letters(root, 5) && letters(class, 2),
            None => letters(s, 5),
        }
    }

    #[test]
    fn the_ticker_pattern_accepts_what_the_parser_accepts() {
        assert_eq!(TICKER_PATTERN, r"^[A-Za-z]{1,5}(\.[A-Za-z]{1,2})?$");
        for s in [
            "AAPL", "aapl", "BRK.B", "A", "ABCDE.FG", "", "ABCDEF", "A1", "BRK.", "A.B.C",
            "BRK.BCD",
        ] {
            assert_eq!(ticker_like(s, false), Ticker::parse(s).is_ok(), "{s:?}");
            if let Ok(t) = Ticker::parse(s) {
                assert!(ticker_like(t.as_str(), true), "{s:?} normalised");
            }
        }
    }

    #[test]
    fn the_client_id_pattern_accepts_what_the_parser_accepts() {
        assert_eq!(CLIENT_ID_PATTERN, "^[A-Za-z0-9_-]{1,64}$");
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        for s in [
            "test123",
            "big_fund",
            "a-b",
            long.as_str(),
            "",
            too_long.as_str(),
            "a b",
            "é",
            "a.b",
        ] {
            let documented = !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            assert_eq!(documented, ClientId::parse(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn the_error_code_schema_lists_every_code() {
        let json = serde_json::to_value(ErrorCode::schema()).unwrap();
        let listed: Vec<&str> = json["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
    }

    #[test]
    fn every_error_response_is_the_envelope_narrowed_to_codes_of_its_status() {
        for r in responses::ALL {
            let json = serde_json::to_value(r.response()).unwrap();
            let schema = &json["content"]["application/json"]["schema"]["allOf"];
            assert_eq!(
                schema[0]["$ref"], "#/components/schemas/ErrorEnvelope",
                "{}",
                r.name
            );
            let status = r.codes[0].http_status();
            assert!(
                r.codes.iter().all(|c| c.http_status() == status),
                "{}",
                r.name
            );
            assert!(json["headers"]["x-request-id"].is_object(), "{}", r.name);
        }
        let limited = serde_json::to_value(responses::RateLimited::SPEC.response()).unwrap();
        for h in [
            "Retry-After",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "RateLimit-Policy",
            "RateLimit",
        ] {
            assert!(limited["headers"][h].is_object(), "{h}");
        }
    }

    #[test]
    fn loan_days_are_documented_with_the_parsers_range() {
        let json = serde_json::to_value(LoanDays::schema()).unwrap();
        let (min, max) = (
            json["minimum"].as_i64().unwrap(),
            json["maximum"].as_i64().unwrap(),
        );
        assert!(LoanDays::new(min.into()).is_some() && LoanDays::new((min - 1).into()).is_none());
        assert!(LoanDays::new(max.into()).is_some() && LoanDays::new((max + 1).into()).is_none());
    }
}
