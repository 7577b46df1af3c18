//! The SPEC §6 error envelope, shared by the filters and the backends.

use serde::Serialize;

/// Every error code the gateway answers with, and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    NotFound,
    TickerNotFound,
    ClientNotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
    RateLimited,
    BackendError,
    ServiceUnavailable,
    BackendTimeout,
    InternalError,
}

impl ErrorCode {
    /// The machine-readable code in the envelope.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::TickerNotFound => "TICKER_NOT_FOUND",
            Self::ClientNotFound => "CLIENT_NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::RateLimited => "RATE_LIMITED",
            Self::BackendError => "BACKEND_ERROR",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::BackendTimeout => "BACKEND_TIMEOUT",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::TickerNotFound | Self::ClientNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationError => 400,
            Self::RateLimited => 429,
            Self::BackendError => 502,
            Self::ServiceUnavailable => 503,
            Self::BackendTimeout => 504,
            Self::InternalError => 500,
        }
    }

    /// All codes, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 14] = [
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::TickerNotFound,
        Self::ClientNotFound,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ValidationError,
        Self::RateLimited,
        Self::BackendError,
        Self::ServiceUnavailable,
        Self::BackendTimeout,
        Self::InternalError,
    ];
}

/// One violated rule of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    /// The field name as the client sent it (`loan_days`, `ticker`, ...).
    pub field: String,
    /// What is wrong, as a human sentence fragment.
    pub issue: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, issue: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            issue: issue.into(),
        }
    }
}

/// `{"status":"error","error":{...}}`: the one error shape of every
/// failure. `request_id` equals the `x-request-id` response header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({"status": "error", "error": {"code": "VALIDATION_ERROR",
        "message": "Invalid request",
        "details": [{"field": "loan_days", "issue": "must be an integer between 1 and 365"}],
        "request_id": "0b6f3c1e-7f2a-4c55-9d1e-2a8f0c7d9b11"}}))
)]
pub struct ErrorEnvelope {
    #[cfg_attr(feature = "openapi", schema(schema_with = error_status))]
    status: &'static str,
    #[cfg_attr(feature = "openapi", schema(inline))]
    error: ErrorBody,
}

#[cfg(feature = "openapi")]
fn error_status() -> utoipa::openapi::schema::Schema {
    constant("error")
}

/// A string schema with exactly one allowed value (`"success"`, `"error"`),
/// re-exported as `openapi::constant`.
#[cfg(feature = "openapi")]
pub fn constant(value: &str) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some([value]))
        .into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCode))]
    code: &'static str,
    /// A human sentence.
    message: String,
    /// Every violated field (validation errors only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<FieldError>,
    request_id: String,
}

impl ErrorEnvelope {
    pub fn new(code: ErrorCode, message: impl Into<String>, request_id: impl Into<String>) -> Self {
        Self {
            status: "error",
            error: ErrorBody {
                code: code.as_str(),
                message: message.into(),
                details: Vec::new(),
                request_id: request_id.into(),
            },
        }
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.error.details = details;
        self
    }

    pub fn code(&self) -> &'static str {
        self.error.code
    }

    pub fn details(&self) -> &[FieldError] {
        &self.error.details
    }

    /// The JSON body. Serialising these plain strings cannot fail; the
    /// fallback keeps the function total anyway.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"status":"error","error":{{"code":"{}","message":"error","request_id":""}}}}"#,
                self.error.code
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_spec_shape() {
        let body = ErrorEnvelope::new(ErrorCode::ValidationError, "Invalid request", "rid-1")
            .with_details(vec![FieldError::new(
                "loan_days",
                "must be an integer between 1 and 365",
            )])
            .to_json();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(v["error"]["message"], "Invalid request");
        assert_eq!(v["error"]["request_id"], "rid-1");
        assert_eq!(v["error"]["details"][0]["field"], "loan_days");
    }

    #[test]
    fn envelope_without_details_omits_them() {
        let body = ErrorEnvelope::new(ErrorCode::NotFound, "No such route", "r").to_json();
        assert!(!body.contains("details"));
    }

    #[test]
    fn every_code_maps_to_its_status() {
        let pairs: Vec<(&str, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.http_status()))
            .collect();
        assert!(pairs.contains(&("RATE_LIMITED", 429)));
        assert!(pairs.contains(&("BACKEND_TIMEOUT", 504)));
        assert!(pairs.contains(&("UNSUPPORTED_MEDIA_TYPE", 415)));
        assert!(pairs.contains(&("TICKER_NOT_FOUND", 404)));
        assert_eq!(pairs.len(), 14);
    }
}
