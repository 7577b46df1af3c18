//! The layer stack every backend runs behind, outermost first:
//!
//! 1. an unusable incoming `x-request-id` is dropped, then tower-http's
//!    `SetRequestIdLayer` sets one ([`KeepUsableOrGenerate`]) and
//!    `PropagateRequestIdLayer` echoes it on the response;
//! 2. `TraceLayer`: one span per request with `method`, `route`,
//!    `request_id` and, when the request carries a W3C `traceparent`, its
//!    `trace_id` (and, with traces exported, that parent);
//! 3. the envelope: an error held by [`crate::AppError`] is rendered with the
//!    request id, and a bare error status (the framework's 404/405, the
//!    body limit's 413, the timeout's 504) becomes the SPEC §6 envelope;
//! 4. `RequestBodyLimitLayer` (declared and streamed bodies);
//! 5. `TimeoutLayer`.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::{bare_status_envelope, PendingEnvelope};
use crate::request_id::{drop_unusable_request_id, KeepUsableOrGenerate, RequestId};

/// How long a request may take before it is answered 504 by default: above
/// every route timeout of the gateway, so behind it the gateway's own
/// timeout answers first.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings of the shared layer stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// Largest request body in bytes (413 `PAYLOAD_TOO_LARGE` beyond).
    /// Default [`pricing::MAX_BODY_BYTES`].
    pub body_limit: usize,
    /// Longest a request may take (504 `BACKEND_TIMEOUT` beyond). Default
    /// [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl Default for Layers {
    fn default() -> Self {
        Self {
            body_limit: pricing::MAX_BODY_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The body limit in force, for extractors reading the body
/// ([`crate::JsonBody`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(usize);

impl BodyLimit {
    /// The limit set by the layers, else [`pricing::MAX_BODY_BYTES`].
    pub(crate) fn of(req: &Request) -> usize {
        req.extensions()
            .get::<Self>()
            .map_or(pricing::MAX_BODY_BYTES, |l| l.0)
    }
}

impl Layers {
    /// The same stack with another body limit.
    pub fn body_limit(self, bytes: usize) -> Self {
        Self {
            body_limit: bytes,
            ..self
        }
    }

    /// The same stack with another timeout.
    pub fn timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Wraps every route and the fallbacks of `router` in the stack.
    /// [`crate::serve`] does it; call it yourself only when serving another
    /// way.
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(
            ServiceBuilder::new()
                .layer(middleware::map_request(drop_unusable_request_id))
                .layer(SetRequestIdLayer::x_request_id(KeepUsableOrGenerate))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(DefaultOnResponse::new())
                        .on_failure(()),
                )
                .layer(middleware::from_fn_with_state(self, envelope))
                .layer(RequestBodyLimitLayer::new(self.body_limit))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    self.timeout,
                )),
        )
    }
}

/// [`Layers::default`] applied to `router`.
pub fn with_common_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    Layers::default().apply(router)
}

fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id = %RequestId::from_headers(req.headers()),
        trace_id = tracing::field::Empty,
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
    );
    // the caller's W3C trace context (the gateway sends one when tracing is
    // on): the trace id on every line logged inside, and the parent of the
    // exported span
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    service_log::join_trace(&span, traceparent);
    span
}

async fn envelope(State(layers): State<Layers>, mut req: Request, next: Next) -> Response {
    let rid = RequestId::from_headers(req.headers());
    req.extensions_mut().insert(BodyLimit(layers.body_limit));
    let mut resp = next.run(req).await;
    let pending = match resp.extensions_mut().remove::<PendingEnvelope>() {
        Some(pending) => pending,
        None if is_bare_error(&resp) => {
            if resp.status() == StatusCode::GATEWAY_TIMEOUT {
                tracing::warn!(
                    request_id = %rid,
                    timeout_ms = u64::try_from(layers.timeout.as_millis()).unwrap_or(u64::MAX),
                    "Request timed out"
                );
            }
            bare_status_envelope(resp.status(), layers.body_limit)
        }
        None => return resp,
    };
    let mut rendered = pending.render(rid.as_str());
    // Headers the handler or the framework added (e.g. `Allow` on a 405)
    // stay; the body's own headers are the envelope's.
    for name in resp.headers().keys() {
        if name != CONTENT_LENGTH && !rendered.headers().contains_key(name) {
            for value in resp.headers().get_all(name) {
                rendered.headers_mut().append(name.clone(), value.clone());
            }
        }
    }
    rendered
}

/// An error status without a JSON body.
fn is_bare_error(resp: &Response) -> bool {
    let status = resp.status();
    let json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    (status.is_client_error() || status.is_server_error()) && !json
}
