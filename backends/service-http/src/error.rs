//! [`AppError`]: the one error type handlers return, rendered as the
//! SPEC §6 envelope ([`pricing::ErrorEnvelope`]); the envelopes for bare
//! statuses (the framework's 404/405, the layers' 413 and 504); the
//! `/health` shapes.

use std::fmt;

use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pricing::{ErrorCode, ErrorEnvelope, FieldError};

use crate::request_id::{RequestId, REQUEST_ID_HEADER};

/// Every failure a backend handler can answer with. Each renders as the
/// SPEC §6 envelope with the matching status code.
#[derive(Debug)]
pub enum AppError {
    /// 400 `VALIDATION_ERROR` listing every violated field.
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    /// 401 `UNAUTHORIZED`.
    Unauthorized(String),
    /// 403 `FORBIDDEN`.
    Forbidden(String),
    /// 404 `NOT_FOUND` (unknown route or resource).
    NotFound(String),
    /// 404 `TICKER_NOT_FOUND`; carries the (normalised) ticker.
    TickerNotFound(String),
    /// 404 `CLIENT_NOT_FOUND`; carries the client id.
    ClientNotFound(String),
    /// 405 `METHOD_NOT_ALLOWED`.
    MethodNotAllowed,
    /// 413 `PAYLOAD_TOO_LARGE`; carries the limit in bytes.
    PayloadTooLarge(usize),
    /// 415 `UNSUPPORTED_MEDIA_TYPE`.
    UnsupportedMediaType,
    /// 503 `SERVICE_UNAVAILABLE`: a dependency (the database) is down. The
    /// string is logged, not sent.
    Unavailable(String),
    /// 500 `INTERNAL_ERROR`. The string is logged, not sent.
    Internal(String),
    /// Any other code with its own message (e.g. `RATE_LIMITED`).
    Other { code: ErrorCode, message: String },
}

impl AppError {
    /// A 400 with one field error.
    pub fn invalid_field(field: &str, issue: impl Into<String>) -> Self {
        Self::Validation {
            message: "Invalid request".to_owned(),
            details: vec![FieldError::new(field, issue)],
        }
    }

    /// A 400 listing the given field errors.
    pub fn validation(details: Vec<FieldError>) -> Self {
        Self::Validation {
            message: "Invalid request".to_owned(),
            details,
        }
    }

    /// The envelope code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation { .. } => ErrorCode::ValidationError,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::TickerNotFound(_) => ErrorCode::TickerNotFound,
            Self::ClientNotFound(_) => ErrorCode::ClientNotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
            Self::Other { code, .. } => *code,
        }
    }

    /// The human sentence sent to the client (never internal details).
    pub fn message(&self) -> String {
        match self {
            Self::Validation { message, .. } => message.clone(),
            Self::Unauthorized(m) | Self::Forbidden(m) | Self::NotFound(m) => m.clone(),
            Self::TickerNotFound(t) => format!("Ticker {t} not found"),
            Self::ClientNotFound(c) => format!("Client {c} not found"),
            Self::MethodNotAllowed => "Method not allowed on this path".to_owned(),
            Self::PayloadTooLarge(limit) => {
                format!("Request body must be at most {limit} bytes")
            }
            Self::UnsupportedMediaType => "Content-Type must be application/json".to_owned(),
            Self::Unavailable(_) => "Service temporarily unavailable".to_owned(),
            Self::Internal(_) => "Internal server error".to_owned(),
            Self::Other { message, .. } => message.clone(),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code().as_str(), self.message())
    }
}

impl std::error::Error for AppError {}

/// An error body waiting for its request id; the shared layers render it
/// (outside them it is rendered with a generated id).
#[derive(Debug, Clone)]
pub(crate) struct PendingEnvelope {
    code: ErrorCode,
    message: String,
    details: Vec<FieldError>,
}

impl PendingEnvelope {
    pub(crate) fn render(&self, request_id: &str) -> Response {
        envelope_response(
            ErrorEnvelope::new(self.code, self.message.clone(), request_id)
                .with_details(self.details.clone()),
            request_id,
        )
    }
}

/// Builds the HTTP response for an envelope (status from its code,
/// `Content-Type: application/json`, `x-request-id`).
pub fn envelope_response(envelope: ErrorEnvelope, request_id: &str) -> Response {
    let status = ErrorCode::ALL
        .iter()
        .find(|c| c.as_str() == envelope.code())
        .map(|c| c.http_status())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, envelope.to_json()).into_response();
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    resp
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(why) => tracing::warn!(reason = %why, "Service unavailable"),
            Self::Internal(why) => tracing::error!(reason = %why, "Internal error"),
            _ => {}
        }
        let pending = PendingEnvelope::from(self);
        let rid = RequestId::generate();
        let mut resp = pending.render(rid.as_str());
        resp.extensions_mut().insert(pending);
        resp
    }
}

impl From<AppError> for PendingEnvelope {
    fn from(e: AppError) -> Self {
        Self {
            code: e.code(),
            message: e.message(),
            details: match e {
                AppError::Validation { details, .. } => details,
                _ => Vec::new(),
            },
        }
    }
}

#[cfg(feature = "store")]
impl From<store::StoreError> for AppError {
    fn from(e: store::StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// The envelope standing in for a bare error status (no JSON body) from
/// the framework or a layer; `body_limit` is named in a 413.
pub(crate) fn bare_status_envelope(status: StatusCode, body_limit: usize) -> PendingEnvelope {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body-limit layer's refusal reads like the extractors' own.
        return AppError::PayloadTooLarge(body_limit).into();
    }
    let (code, message) = match status.as_u16() {
        400 => (ErrorCode::ValidationError, "Invalid request"),
        401 => (ErrorCode::Unauthorized, "Authentication required"),
        403 => (ErrorCode::Forbidden, "Forbidden"),
        404 => (ErrorCode::NotFound, "No such resource"),
        405 => (
            ErrorCode::MethodNotAllowed,
            "Method not allowed on this path",
        ),
        415 => (
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json",
        ),
        429 => (ErrorCode::RateLimited, "Too many requests"),
        502 => (ErrorCode::BackendError, "Bad gateway"),
        503 => (
            ErrorCode::ServiceUnavailable,
            "Service temporarily unavailable",
        ),
        504 => (ErrorCode::BackendTimeout, "Upstream timed out"),
        s if s < 500 => (ErrorCode::ValidationError, "Invalid request"),
        _ => (ErrorCode::InternalError, "Internal server error"),
    };
    PendingEnvelope {
        code,
        message: message.to_owned(),
        details: Vec::new(),
    }
}

/// `200 {"status":"healthy","version":"<version>"}`.
pub fn health_ok(version: &str) -> Response {
    Json(serde_json::json!({"status": "healthy", "version": version})).into_response()
}

/// `503` envelope (`SERVICE_UNAVAILABLE`) naming the failed dependency.
pub fn health_unavailable(dependency: &str) -> AppError {
    AppError::Other {
        code: ErrorCode::ServiceUnavailable,
        message: format!("Unhealthy: {dependency} unreachable"),
    }
}
