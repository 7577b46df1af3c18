//! The SPEC §6 error envelope for the ops service's own errors, and the
//! request id every response carries.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pricing::{ErrorCode, ErrorEnvelope};
use rand::Rng;

/// The `x-request-id` header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request: the gateway's `x-request-id`, or
/// one generated here when the service is called directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(
            parts
                .headers
                .get(&X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_default(),
        ))
    }
}

/// Accepts a well-formed incoming request id, else makes a new one.
fn usable_request_id(value: Option<&HeaderValue>) -> Option<HeaderValue> {
    let v = value?;
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.clone())
}

fn new_request_id() -> HeaderValue {
    let mut rng = rand::rng();
    let bytes: [u8; 16] = rng.random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&hex).unwrap_or_else(|_| HeaderValue::from_static("ops"))
}

/// Makes sure the request has an `x-request-id` and echoes it on the response.
pub async fn request_id_layer(mut req: Request, next: Next) -> Response {
    let id = usable_request_id(req.headers().get(&X_REQUEST_ID)).unwrap_or_else(new_request_id);
    req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
    let mut response = next.run(req).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

/// Every error the ops service answers with.
#[derive(Debug)]
pub enum AppError {
    /// Unknown path or unknown dependency name.
    NotFound(RequestId, String),
    /// Known path, wrong method.
    MethodNotAllowed(RequestId),
    /// No authenticated identity on an admin endpoint.
    Unauthorized(RequestId),
    /// Authenticated, but without the `admin` scope.
    Forbidden(RequestId),
    /// A source the answer depends on (Envoy admin) is unreachable.
    ServiceUnavailable(RequestId, String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (code, rid, message) = match self {
            AppError::NotFound(rid, m) => (ErrorCode::NotFound, rid, m),
            AppError::MethodNotAllowed(rid) => (
                ErrorCode::MethodNotAllowed,
                rid,
                "Method not allowed on this endpoint".to_owned(),
            ),
            AppError::Unauthorized(rid) => (
                ErrorCode::Unauthorized,
                rid,
                "Authentication required".to_owned(),
            ),
            AppError::Forbidden(rid) => (
                ErrorCode::Forbidden,
                rid,
                "This endpoint requires the admin scope".to_owned(),
            ),
            AppError::ServiceUnavailable(rid, m) => (ErrorCode::ServiceUnavailable, rid, m),
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope::new(code, message, rid.0).to_json();
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if code == ErrorCode::MethodNotAllowed {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        response
    }
}
