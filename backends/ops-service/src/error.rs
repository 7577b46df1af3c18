//! The ops service's own errors, rendered as the shared SPEC §6 envelope
//! ([`service_http::AppError`]); the request id every response carries
//! comes from the shared layers ([`service_http::Layers`]).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use pricing::ErrorCode;

pub use service_http::RequestId;

/// Every error the ops service answers with. The request id a variant
/// carries is the one the shared layers put into the envelope.
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

impl From<AppError> for service_http::AppError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(_, message) => Self::NotFound(message),
            AppError::MethodNotAllowed(_) => Self::Other {
                code: ErrorCode::MethodNotAllowed,
                message: "Method not allowed on this endpoint".to_owned(),
            },
            AppError::Unauthorized(_) => Self::Unauthorized("Authentication required".to_owned()),
            AppError::Forbidden(_) => {
                Self::Forbidden("This endpoint requires the admin scope".to_owned())
            }
            AppError::ServiceUnavailable(_, message) => Self::Other {
                code: ErrorCode::ServiceUnavailable,
                message,
            },
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let method_not_allowed = matches!(self, Self::MethodNotAllowed(_));
        let mut response = service_http::AppError::from(self).into_response();
        if method_not_allowed {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        response
    }
}
