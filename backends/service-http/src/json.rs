//! JSON body extractors whose rejections are envelopes: 415 wrong content
//! type, 413 too large, 400 malformed.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::layers::BodyLimit;

/// The raw bytes of a JSON request body, after the SPEC §4 transport
/// checks: `Content-Type` must be `application/json` (else 415) and the
/// body at most the service's body limit (else 413; by default
/// [`pricing::MAX_BODY_BYTES`], see [`crate::Layers`]). The content is not
/// parsed (use [`ApiJson`] for that).
#[derive(Debug, Clone)]
pub struct JsonBody(pub Bytes);

/// Whether a `Content-Type` value is JSON (`application/json`, with or
/// without parameters, or an `application/*+json` type).
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a body of at most `limit` bytes, or answers 413.
pub async fn read_body_limited(body: Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // Besides the length limit, only a broken connection fails here;
        // axum reports the limit as "length limit exceeded".
        if e.to_string().contains("length limit") {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::invalid_field("body", "could not be read")
        }
    })
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        // A declared length over the limit was refused by the body-limit
        // layer already; this catches a longer streamed body.
        let limit = BodyLimit::of(&req);
        let bytes = read_body_limited(req.into_body(), limit).await?;
        Ok(Self(bytes))
    }
}

/// A JSON body deserialised into `T`, with the transport checks of
/// [`JsonBody`]; a body that is not valid JSON for `T` is a 400
/// `VALIDATION_ERROR` (field `body`, or the offending field when serde
/// names it).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(bytes) = JsonBody::from_request(req, state).await?;
        serde_json::from_slice::<T>(&bytes)
            .map(ApiJson)
            .map_err(|e| json_rejection(&e))
    }
}

fn json_rejection(e: &serde_json::Error) -> AppError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            // serde's messages name the field: "missing field `x`",
            // "unknown field `x`", "invalid type: ... ".
            let text = e.to_string();
            let field = text
                .split('`')
                .nth(1)
                .filter(|f| f.len() <= 64 && !f.contains(' '))
                .unwrap_or("body")
                .to_owned();
            let issue = text.split(" at line").next().unwrap_or("is invalid");
            AppError::invalid_field(&field, issue.to_owned())
        }
        Category::Eof => AppError::invalid_field("body", "is not valid JSON (unexpected end)"),
        _ => AppError::invalid_field(
            "body",
            format!(
                "is not valid JSON (line {} column {})",
                e.line(),
                e.column()
            ),
        ),
    }
}
