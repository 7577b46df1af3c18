//! Validation filter core (SPEC §4).
//!
//! * `GET /api/v1/rates/{ticker}`: the ticker rule of `pricing::Ticker`.
//! * `POST /api/v1/calculate-locate`: `application/json` (else 415), at most
//!   8 KiB (else 413, as soon as the size is known from `content-length` or
//!   from the bytes buffered so far), then `pricing::parse_locate_request`,
//!   the same code the calculation service runs, reporting every violated
//!   field (400).
//!
//! Rejections are SPEC §6 envelopes with `request_id` = the request's
//! `x-request-id`, echoed as the `x-request-id` response header, plus one
//! `Validation error` logfmt line. Host access goes through
//! [`Host`]; the cdylib glue only hands it over.

use pricing::{ErrorCode, ErrorEnvelope, FieldError, Ticker, MAX_BODY_BYTES};
use serde::{Deserialize, Serialize};

use crate::endpoint::{one_segment_after, Endpoint};
use crate::host::{Host, LogLevel};
use crate::logfmt::{quote, trace_id_field};

/// What the glue tells the host after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the request (or this body chunk) go on.
    Continue,
    /// Hold the request: buffer the body, or a reply has been sent.
    Pause,
}

/// Plugin configuration of the validation filter (JSON).
///
/// ```json
/// {"max_body_bytes": 8192}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Largest accepted `calculate-locate` body in bytes (413 above it).
    /// 1 … 8192; default 8192 (SPEC §4).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_body_bytes() -> usize {
    MAX_BODY_BYTES
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

impl ValidationConfig {
    /// Parses the plugin configuration; empty means the defaults. The error
    /// names the offending field.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        crate::plugin_config::parse_or_default(raw, "validation", |config: &Self| {
            if (1..=MAX_BODY_BYTES).contains(&config.max_body_bytes) {
                Ok(())
            } else {
                Err(format!(
                    "max_body_bytes must be between 1 and {MAX_BODY_BYTES}"
                ))
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing (more) to check for this request.
    Done,
    /// A `calculate-locate` body is being buffered.
    Buffering,
    /// A reply has been sent; the request is held until it ends.
    Rejected,
}

/// Per-request validation state.
#[derive(Debug)]
pub struct RequestValidation {
    config: ValidationConfig,
    state: State,
    buffered: usize,
    /// Captured in the header phase for a reply sent from the body phase.
    identity: Identity,
}

#[derive(Debug, Default)]
struct Identity {
    request_id: String,
    client_id: String,
    /// ` trace_id="…"` or empty ([`trace_id_field`]).
    trace_id: String,
}

impl Identity {
    fn read(host: &impl Host) -> Self {
        Self {
            request_id: host.request_header("x-request-id").unwrap_or_default(),
            client_id: host.request_header("x-client-id").unwrap_or_default(),
            trace_id: trace_id_field(host.request_header("traceparent").as_deref()),
        }
    }
}

impl RequestValidation {
    pub fn new(config: ValidationConfig) -> Self {
        Self {
            config,
            state: State::Done,
            buffered: 0,
            identity: Identity::default(),
        }
    }

    /// Request headers arrived; `end_of_stream` means there is no body.
    pub fn on_request_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Flow {
        let path = host.request_header(":path").unwrap_or_default();
        let endpoint = Endpoint::from_path(&path);
        // Nothing to check on other routes.
        if !matches!(endpoint, Endpoint::Rates | Endpoint::CalculateLocate) {
            return Flow::Continue;
        }
        let method = host.request_header(":method").unwrap_or_default();
        match endpoint {
            Endpoint::Rates if method == "GET" || method == "HEAD" => {
                let raw = one_segment_after(&path, Endpoint::Rates.prefix()).unwrap_or_default();
                match Ticker::parse(raw) {
                    Ok(_) => Flow::Continue,
                    Err(e) => {
                        self.identity = Identity::read(host);
                        self.reject_fields(host, Endpoint::Rates, vec![e])
                    }
                }
            }
            Endpoint::CalculateLocate if method == "POST" => {
                self.identity = Identity::read(host);
                self.locate_headers(host, end_of_stream)
            }
            _ => Flow::Continue,
        }
    }

    fn locate_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Flow {
        let endpoint = Endpoint::CalculateLocate;
        let content_type = host.request_header("content-type");
        if !is_json_content_type(content_type.as_deref()) {
            return self.reject(
                host,
                endpoint,
                ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
                vec![FieldError::new("content-type", "must be application/json")],
            );
        }
        if let Some(length) = host.request_header("content-length") {
            match length.trim().parse::<u64>() {
                Ok(n) if n > self.config.max_body_bytes as u64 => {
                    return self.too_large(host);
                }
                Ok(_) => {}
                Err(_) => {
                    return self.reject_fields(
                        host,
                        endpoint,
                        vec![FieldError::new("content-length", "must be a byte count")],
                    );
                }
            }
        }
        if end_of_stream {
            return self.check_body(host, &[]);
        }
        // Headers go on: a wasm filter that holds them never sees the body
        // (the host turns a paused header phase into "stop everything").
        // The gateway keeps them from reaching the upstream with Envoy's
        // buffer filter placed after this one; the body itself is held
        // here until it has been validated.
        self.state = State::Buffering;
        self.buffered = 0;
        Flow::Continue
    }

    /// A body chunk arrived; `body_size` is everything buffered so far.
    pub fn on_request_body(
        &mut self,
        host: &impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        match self.state {
            State::Done => Flow::Continue,
            State::Rejected => Flow::Pause,
            State::Buffering => {
                self.buffered = body_size;
                if body_size > self.config.max_body_bytes {
                    return self.too_large(host);
                }
                if !end_of_stream {
                    return Flow::Pause;
                }
                self.finish_body(host)
            }
        }
    }

    /// Request trailers arrived: the body is complete.
    pub fn on_request_trailers(&mut self, host: &impl Host) -> Flow {
        match self.state {
            State::Done => Flow::Continue,
            State::Rejected => Flow::Pause,
            State::Buffering => self.finish_body(host),
        }
    }

    fn finish_body(&mut self, host: &impl Host) -> Flow {
        let body = if self.buffered == 0 {
            Vec::new()
        } else {
            host.request_body(self.buffered).unwrap_or_default()
        };
        self.check_body(host, &body)
    }

    fn check_body(&mut self, host: &impl Host, body: &[u8]) -> Flow {
        match validate_locate_body(body, self.config.max_body_bytes) {
            BodyVerdict::Valid => {
                self.state = State::Done;
                Flow::Continue
            }
            BodyVerdict::TooLarge => self.too_large(host),
            BodyVerdict::Invalid(details) => {
                self.reject_fields(host, Endpoint::CalculateLocate, details)
            }
        }
    }

    fn too_large(&mut self, host: &impl Host) -> Flow {
        let message = format!(
            "Request body must be at most {} bytes",
            self.config.max_body_bytes
        );
        self.reject(
            host,
            Endpoint::CalculateLocate,
            ErrorCode::PayloadTooLarge,
            &message,
            vec![FieldError::new(
                "body",
                format!("must be at most {} bytes", self.config.max_body_bytes),
            )],
        )
    }

    fn reject_fields(
        &mut self,
        host: &impl Host,
        endpoint: Endpoint,
        details: Vec<FieldError>,
    ) -> Flow {
        self.reject(
            host,
            endpoint,
            ErrorCode::ValidationError,
            "Request validation failed",
            details,
        )
    }

    fn reject(
        &mut self,
        host: &impl Host,
        endpoint: Endpoint,
        code: ErrorCode,
        message: &str,
        details: Vec<FieldError>,
    ) -> Flow {
        self.state = State::Rejected;
        let Identity {
            request_id,
            client_id,
            trace_id,
        } = &self.identity;
        let fields = details
            .iter()
            .map(|d| d.field.as_str())
            .collect::<Vec<_>>()
            .join(",");
        host.log(LogLevel::Warn, &format!(
            "level=WARN msg=\"Validation error\" code={} fields={} client_id={} endpoint={} request_id={}{trace_id}",
            code.as_str(),
            quote(&fields),
            quote(client_id),
            quote(endpoint.template()),
            quote(request_id),
        ));
        let body = ErrorEnvelope::new(code, message, request_id.as_str())
            .with_details(details)
            .to_json();
        host.send_reply(
            code.http_status(),
            &[
                ("content-type", "application/json"),
                ("x-request-id", request_id),
            ],
            &body,
        );
        Flow::Pause
    }
}

/// Outcome of checking a complete `calculate-locate` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyVerdict {
    Valid,
    TooLarge,
    Invalid(Vec<FieldError>),
}

/// Checks a complete body with the calculation service's own parser. An
/// absent body is read as `{}`, so every required field is listed.
pub fn validate_locate_body(body: &[u8], max_body_bytes: usize) -> BodyVerdict {
    if body.len() > max_body_bytes {
        return BodyVerdict::TooLarge;
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    match pricing::parse_locate_request(body) {
        Ok(_) => BodyVerdict::Valid,
        Err(details) => BodyVerdict::Invalid(details),
    }
}

/// `application/json`, case-insensitive, optionally with parameters
/// (`application/json; charset=utf-8`).
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::host::RecordingHost;

    fn request_host(method: &str, path: &str, extra: &[(&str, &str)]) -> RecordingHost {
        let mut headers = vec![
            (":method", method),
            (":path", path),
            ("x-request-id", "rid-42"),
            ("x-client-id", "test123"),
        ];
        headers.extend_from_slice(extra);
        RecordingHost::with_headers(&headers)
    }

    fn locate_host(content_type: &str) -> RecordingHost {
        request_host(
            "POST",
            "/api/v1/calculate-locate",
            &[("content-type", content_type)],
        )
    }

    /// A JSON locate request whose headers have passed (default limits),
    /// its body still to come.
    fn awaiting_json_body() -> (RecordingHost, RequestValidation) {
        let host = locate_host("application/json");
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, false), Flow::Continue);
        (host, v)
    }

    /// A JSON locate request that declares its body's length.
    fn declared_length_host(content_length: &str) -> RecordingHost {
        request_host(
            "POST",
            "/api/v1/calculate-locate",
            &[
                ("content-type", "application/json"),
                ("content-length", content_length),
            ],
        )
    }

    /// The one reply sent, as JSON.
    fn reply(host: &RecordingHost) -> serde_json::Value {
        let replies = host.replies.borrow();
        assert_eq!(replies.len(), 1, "exactly one reply");
        serde_json::from_str(&replies[0].2).unwrap()
    }

    fn status(host: &RecordingHost) -> u16 {
        host.replies.borrow()[0].0
    }

    /// A body callback, with request headers out of reach as in Envoy.
    fn body_cb(v: &mut RequestValidation, host: &RecordingHost, size: usize, end: bool) -> Flow {
        headers_out_of_reach(host, || v.on_request_body(host, size, end))
    }

    /// A trailers callback, with request headers out of reach as in Envoy.
    fn trailers_cb(v: &mut RequestValidation, host: &RecordingHost) -> Flow {
        headers_out_of_reach(host, || v.on_request_trailers(host))
    }

    /// Runs `callback` with the request headers hidden, and checks that it
    /// did not try to read them.
    fn headers_out_of_reach(host: &RecordingHost, callback: impl FnOnce() -> Flow) -> Flow {
        host.headers_hidden.set(true);
        let flow = callback();
        host.headers_hidden.set(false);
        assert_eq!(
            host.hidden_header_reads.get(),
            0,
            "request headers are not readable from a body or trailers callback"
        );
        flow
    }

    const VALID: &[u8] =
        br#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;

    /// Feeds `body` in chunks of `chunk` bytes, as Envoy does when the
    /// filter keeps buffering.
    fn send_body(
        host: &RecordingHost,
        v: &mut RequestValidation,
        body: &[u8],
        chunk: usize,
    ) -> Flow {
        let mut flow = Flow::Continue;
        let mut sent = 0;
        while sent < body.len() {
            sent = (sent + chunk).min(body.len());
            *host.body.borrow_mut() = body[..sent].to_vec();
            flow = body_cb(v, host, sent, sent == body.len());
            if !host.replies.borrow().is_empty() {
                break;
            }
        }
        flow
    }

    fn fields(host: &RecordingHost) -> Vec<String> {
        reply(host)["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_valid_ticker_passes_without_a_reply() {
        let host = request_host("GET", "/api/v1/rates/BRK.B", &[]);
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, true), Flow::Continue);
        assert!(host.replies.borrow().is_empty());
    }

    #[test]
    fn an_invalid_ticker_is_a_400_envelope_with_the_request_id() {
        let host = request_host("GET", "/api/v1/rates/TOOLONG1?x=1", &[]);
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, true), Flow::Pause);
        assert_eq!(status(&host), 400);
        let reply = reply(&host);
        assert_eq!(reply["status"], "error");
        assert_eq!(reply["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(reply["error"]["request_id"], "rid-42");
        assert_eq!(reply["error"]["details"][0]["field"], "ticker");
        let headers = host.replies.borrow()[0].1.clone();
        assert!(headers.contains(&("x-request-id".into(), "rid-42".into())));
        assert!(headers.contains(&("content-type".into(), "application/json".into())));
        assert_eq!(
            host.logs.borrow()[0],
            "level=WARN msg=\"Validation error\" code=VALIDATION_ERROR fields=\"ticker\" client_id=\"test123\" endpoint=\"/api/v1/rates/{ticker}\" request_id=\"rid-42\""
        );
    }

    #[test]
    fn other_routes_and_methods_are_left_alone() {
        for (method, path) in [
            ("POST", "/api/v1/rates/$$$"),
            ("GET", "/api/v1/calculate-locate"),
            ("POST", "/api/v1/auth/token"),
            ("GET", "/health"),
        ] {
            let host = request_host(method, path, &[]);
            let mut v = RequestValidation::new(ValidationConfig::default());
            assert_eq!(v.on_request_headers(&host, false), Flow::Continue);
            assert_eq!(body_cb(&mut v, &host, 3, true), Flow::Continue);
            assert!(host.replies.borrow().is_empty(), "{method} {path}");
        }
    }

    #[test]
    fn a_valid_body_passes_after_buffering() {
        let host = locate_host("application/json; charset=utf-8");
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, false), Flow::Continue);
        // Chunks are held until the whole body has been checked.
        *host.body.borrow_mut() = VALID[..10].to_vec();
        assert_eq!(body_cb(&mut v, &host, 10, false), Flow::Pause);
        assert_eq!(send_body(&host, &mut v, VALID, 1_000), Flow::Continue);
        assert!(host.replies.borrow().is_empty());
    }

    #[test]
    fn a_body_in_one_byte_chunks_is_validated_whole() {
        let (host, mut v) = awaiting_json_body();
        assert_eq!(send_body(&host, &mut v, VALID, 1), Flow::Continue);
        assert!(host.replies.borrow().is_empty());
    }

    #[test]
    fn every_violated_field_is_listed() {
        let (host, mut v) = awaiting_json_body();
        let body = br#"{"ticker":"1","position_value":0,"loan_days":366,"client_id":"a b"}"#;
        assert_eq!(send_body(&host, &mut v, body, 7), Flow::Pause);
        assert_eq!(status(&host), 400);
        assert_eq!(
            fields(&host),
            ["ticker", "position_value", "loan_days", "client_id"]
        );
        assert!(
            host.logs.borrow()[0].contains("fields=\"ticker,position_value,loan_days,client_id\"")
        );
    }

    #[test]
    fn no_body_lists_every_required_field() {
        let host = locate_host("application/json");
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, true), Flow::Pause);
        assert_eq!(status(&host), 400);
        assert_eq!(
            fields(&host),
            ["ticker", "position_value", "loan_days", "client_id"]
        );
    }

    #[test]
    fn an_empty_chunked_body_lists_every_required_field() {
        let (host, mut v) = awaiting_json_body();
        assert_eq!(body_cb(&mut v, &host, 0, true), Flow::Pause);
        assert_eq!(fields(&host).len(), 4);
    }

    #[test]
    fn a_wrong_content_type_is_415() {
        for ct in [
            None,
            Some("text/plain"),
            Some("application/jsonx"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let host = request_host("POST", "/api/v1/calculate-locate", &[]);
            if let Some(ct) = ct {
                host.headers
                    .borrow_mut()
                    .push(("content-type".into(), ct.into()));
            }
            let mut v = RequestValidation::new(ValidationConfig::default());
            assert_eq!(v.on_request_headers(&host, false), Flow::Pause);
            assert_eq!(status(&host), 415, "{ct:?}");
            assert_eq!(reply(&host)["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
            // Later body callbacks stay held and send nothing more.
            assert_eq!(body_cb(&mut v, &host, 10, true), Flow::Pause);
            assert_eq!(host.replies.borrow().len(), 1);
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some("Application/JSON")));
        assert!(is_json_content_type(Some("application/json;charset=UTF-8")));
        assert!(is_json_content_type(Some(
            " application/json ; charset=utf-8"
        )));
        assert!(!is_json_content_type(Some("application/json-patch+json")));
        assert!(!is_json_content_type(Some("")));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_413_before_any_body() {
        let host = declared_length_host("8193");
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, false), Flow::Pause);
        assert_eq!(status(&host), 413);
        assert_eq!(reply(&host)["error"]["code"], "PAYLOAD_TOO_LARGE");
    }

    #[test]
    fn exactly_the_limit_is_not_too_large() {
        let host = declared_length_host("8192");
        let mut v = RequestValidation::new(ValidationConfig::default());
        assert_eq!(v.on_request_headers(&host, false), Flow::Continue);
        assert!(host.replies.borrow().is_empty());
    }

    #[test]
    fn an_accumulated_body_over_the_limit_is_413_before_its_end() {
        let (host, mut v) = awaiting_json_body();
        assert_eq!(body_cb(&mut v, &host, 8_000, false), Flow::Pause);
        assert!(host.replies.borrow().is_empty());
        assert_eq!(body_cb(&mut v, &host, 8_193, false), Flow::Pause);
        assert_eq!(status(&host), 413);
    }

    #[test]
    fn trailers_complete_a_buffered_body() {
        let (host, mut v) = awaiting_json_body();
        *host.body.borrow_mut() = b"{".to_vec();
        assert_eq!(body_cb(&mut v, &host, 1, false), Flow::Pause);
        assert_eq!(trailers_cb(&mut v, &host), Flow::Pause);
        assert_eq!(fields(&host), ["body"]);
    }

    #[test]
    fn malformed_json_and_invalid_utf8_are_400_on_the_body() {
        for body in [&b"{\"ticker\":"[..], b"{\"ticker\":\"A\xffB\"}", b"[]"] {
            let (host, mut v) = awaiting_json_body();
            send_body(&host, &mut v, body, 64);
            assert_eq!(status(&host), 400);
            assert_eq!(fields(&host), ["body"]);
        }
    }

    #[test]
    fn config_defaults_and_rejects_bad_fields_by_name() {
        assert_eq!(ValidationConfig::parse(b"").unwrap().max_body_bytes, 8192);
        assert_eq!(
            ValidationConfig::parse(br#"{"max_body_bytes":100}"#)
                .unwrap()
                .max_body_bytes,
            100
        );
        crate::plugin_config::assert_rejected_naming(
            ValidationConfig::parse,
            &[
                (r#"{"max_body_bytes":9000}"#, "max_body_bytes"),
                (r#"{"max_body_bytes":-1}"#, "max_body_bytes"),
                (r#"{"max_bytes":1}"#, "max_bytes"),
            ],
        );
    }

    #[test]
    fn a_smaller_configured_limit_is_enforced() {
        let host = locate_host("application/json");
        let mut v = RequestValidation::new(ValidationConfig { max_body_bytes: 10 });
        v.on_request_headers(&host, false);
        send_body(&host, &mut v, VALID, 100);
        assert_eq!(status(&host), 413);
        assert!(reply(&host)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10 bytes"));
    }
}
