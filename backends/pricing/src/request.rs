//! SPEC §4 request validation, shared by the validation filter and the
//! calculation service.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::FieldError;
use crate::types::{ClientId, LoanDays, PositionValue, Ticker};

/// Largest accepted `calculate-locate` body (SPEC §4: else 413).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// A fully validated `POST /api/v1/calculate-locate` body.
///
/// At most 8 KiB of `application/json`, no unknown or repeated fields;
/// every violated field is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({"ticker": "AAPL", "position_value": 100000, "loan_days": 30, "client_id": "test123"}))
)]
pub struct LocateRequest {
    pub ticker: Ticker,
    pub position_value: PositionValue,
    pub loan_days: LoanDays,
    pub client_id: ClientId,
}

const FIELDS: [&str; 4] = ["ticker", "position_value", "loan_days", "client_id"];

/// The top-level members of a JSON object in order, values kept raw so that
/// numbers keep their exact digits and duplicate keys stay visible.
struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    if members.len() >= 64 {
                        return Err(serde::de::Error::custom("too many members"));
                    }
                    members.push(entry);
                }
                Ok(RawObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Validates a `calculate-locate` body, reporting every violated field.
///
/// The body must be one JSON object with exactly the four SPEC §4 fields,
/// each once. Numbers are read exactly from their JSON text;
/// `position_value` may also be a decimal string.
pub fn parse_locate_request(body: &[u8]) -> Result<LocateRequest, Vec<FieldError>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(vec![FieldError::new(
            "body",
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        )]);
    }
    let object = match serde_json::from_slice::<RawObject>(body) {
        Ok(o) => o,
        Err(e) if e.is_data() => {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        }
        Err(e) => {
            return Err(vec![FieldError::new(
                "body",
                format!("is not valid JSON ({})", json_error_kind(&e)),
            )]);
        }
    };

    let mut errors = Vec::new();
    let mut seen: [Option<&RawValue>; 4] = [None; 4];
    for (key, value) in &object.0 {
        match FIELDS.iter().position(|f| f == key) {
            Some(i) if seen[i].is_some() => {
                push_once(
                    &mut errors,
                    FieldError::new(key.clone(), "must appear only once"),
                );
            }
            Some(i) => seen[i] = Some(value),
            None => push_once(
                &mut errors,
                FieldError::new(truncate(key), "is not a known field"),
            ),
        }
    }

    let [ticker, position_value, loan_days, client_id] = seen;
    let ticker = required(&mut errors, "ticker", ticker, |raw| {
        Ticker::parse(
            &json_string(raw).ok_or_else(|| FieldError::new("ticker", "must be a string"))?,
        )
    });
    let position_value = required(&mut errors, "position_value", position_value, |raw| {
        let text = raw.get();
        if text.starts_with('"') {
            let s = json_string(raw)
                .ok_or_else(|| FieldError::new("position_value", PositionValue::RULE))?;
            PositionValue::parse(&s)
        } else {
            PositionValue::parse(text)
        }
    });
    let loan_days = required(&mut errors, "loan_days", loan_days, |raw| {
        LoanDays::parse(raw.get())
    });
    let client_id = required(&mut errors, "client_id", client_id, |raw| {
        ClientId::parse(
            &json_string(raw).ok_or_else(|| FieldError::new("client_id", "must be a string"))?,
        )
    });

    match (ticker, position_value, loan_days, client_id) {
        (Some(ticker), Some(position_value), Some(loan_days), Some(client_id))
            if errors.is_empty() =>
        {
            Ok(LocateRequest {
                ticker,
                position_value,
                loan_days,
                client_id,
            })
        }
        _ => Err(errors),
    }
}

fn required<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    raw: Option<&RawValue>,
    parse: impl FnOnce(&RawValue) -> Result<T, FieldError>,
) -> Option<T> {
    let Some(raw) = raw else {
        errors.push(FieldError::new(field, "is required"));
        return None;
    };
    match parse(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn json_string(raw: &RawValue) -> Option<String> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<String>(raw.get()).ok()
}

fn push_once(errors: &mut Vec<FieldError>, e: FieldError) {
    if !errors.contains(&e) {
        errors.push(e);
    }
}

/// Field names echoed back are bounded so an error cannot be inflated.
fn truncate(key: &str) -> String {
    key.chars().take(64).collect()
}

fn json_error_kind(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
        _ => format!("line {} column {}", e.line(), e.column()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(body: &str) -> Vec<(String, String)> {
        parse_locate_request(body.as_bytes())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.issue))
            .collect()
    }

    fn fields(body: &str) -> Vec<String> {
        errs(body).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_valid_body_parses() {
        let r = parse_locate_request(
            br#"{"ticker":"aapl","position_value":100000,"loan_days":30,"client_id":"test123"}"#,
        )
        .unwrap();
        assert_eq!(r.ticker.as_str(), "AAPL");
        assert_eq!(r.position_value.value().to_string(), "100000");
        assert_eq!(r.loan_days.get(), 30);
        assert_eq!(r.client_id.as_str(), "test123");
    }

    #[test]
    fn position_value_may_be_a_decimal_string() {
        let r = parse_locate_request(
            br#"{"ticker":"KO","position_value":"1234.50","loan_days":1,"client_id":"c"}"#,
        )
        .unwrap();
        assert_eq!(r.position_value.value().to_string(), "1234.5");
    }

    #[test]
    fn every_violated_field_is_reported() {
        let f =
            fields(r#"{"ticker":"TOOLONG","position_value":0,"loan_days":400,"client_id":"a b"}"#);
        assert_eq!(f, ["ticker", "position_value", "loan_days", "client_id"]);
    }

    #[test]
    fn missing_fields_are_each_required() {
        let e = errs("{}");
        assert_eq!(e.len(), 4);
        assert!(e.iter().all(|(_, issue)| issue == "is required"));
    }

    #[test]
    fn unknown_and_duplicate_fields_are_rejected() {
        let f = fields(
            r#"{"ticker":"AAPL","ticker":"MSFT","position_value":1,"loan_days":1,"client_id":"c","extra":1}"#,
        );
        assert_eq!(f, ["ticker", "extra"]);
    }

    #[test]
    fn wrong_types_are_reported() {
        let f = fields(r#"{"ticker":1,"position_value":true,"loan_days":"30","client_id":null}"#);
        assert_eq!(f, ["ticker", "position_value", "loan_days", "client_id"]);
    }

    #[test]
    fn malformed_and_non_object_bodies_are_rejected() {
        for body in [
            "",
            "{",
            "[1]",
            "\"x\"",
            "null",
            "{\"ticker\":}",
            "{} {}",
            "NaN",
        ] {
            assert_eq!(fields(body), ["body"], "{body:?}");
        }
        assert_eq!(
            parse_locate_request(&[0xff, 0xfe]).unwrap_err()[0].field,
            "body"
        );
        assert_eq!(
            parse_locate_request(b"{\"ticker\":\"A\xffB\"}").unwrap_err()[0].field,
            "body"
        );
    }

    #[test]
    fn special_numbers_are_rejected() {
        let f =
            fields(r#"{"ticker":"AAPL","position_value":"NaN","loan_days":1e400,"client_id":"c"}"#);
        assert_eq!(f, ["position_value", "loan_days"]);
        let f = fields(r#"{"ticker":"AAPL","position_value":-0,"loan_days":1,"client_id":"c"}"#);
        assert_eq!(f, ["position_value"]);
        let f = fields(r#"{"ticker":"AAPL","position_value":1e400,"loan_days":1,"client_id":"c"}"#);
        assert_eq!(f, ["position_value"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"ticker":{}1{},"position_value":1,"loan_days":1,"client_id":"c"}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse_locate_request(deep.as_bytes()).is_err());
    }

    #[test]
    fn oversized_bodies_are_rejected() {
        let body = format!(r#"{{"ticker":"{}"}}"#, "A".repeat(MAX_BODY_BYTES));
        assert_eq!(fields(&body), ["body"]);
    }
}
