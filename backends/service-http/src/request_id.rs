//! Request ids: the incoming `x-request-id` is kept when usable (1–128
//! visible ASCII characters), otherwise a UUID v4 is generated. tower-http's
//! `SetRequestIdLayer` puts it on the request, `PropagateRequestIdLayer`
//! echoes it on the response; [`RequestId`] hands it to handlers.

use std::fmt;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use tower_http::request_id::MakeRequestId;

/// Header carrying the request id, in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest incoming request id that is kept as is; longer or non-printable
/// ids are replaced by a generated one.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether an incoming id is kept: 1–128 visible ASCII characters.
pub fn is_usable_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn usable_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| is_usable_request_id(s))
}

/// The id of the request being served (from `x-request-id` or generated).
///
/// Extract it in a handler with `RequestId` as an argument; it never
/// rejects (outside the shared layers it generates a fresh id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(pub String);

impl RequestId {
    /// Keeps a usable incoming id (1–128 visible ASCII characters), or
    /// generates a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        usable_header(headers)
            .map(|s| Self(s.to_owned()))
            .unwrap_or_else(Self::generate)
    }

    /// A fresh random id in UUID v4 text form.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// The [`MakeRequestId`] of the shared layers: a usable incoming id is
/// kept, anything else becomes a fresh UUID v4.
///
/// `SetRequestIdLayer` consults it only when the header is absent, so the
/// layers first drop an unusable incoming header ([`drop_unusable_request_id`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepUsableOrGenerate;

impl MakeRequestId for KeepUsableOrGenerate {
    fn make_request_id<B>(
        &mut self,
        request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = RequestId::from_headers(request.headers());
        HeaderValue::from_str(id.as_str())
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// Removes an `x-request-id` that is not usable, so that a fresh one is
/// generated in its place.
pub(crate) async fn drop_unusable_request_id(mut req: Request) -> Request {
    if req.headers().contains_key(REQUEST_ID_HEADER) && usable_header(req.headers()).is_none() {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    req
}
