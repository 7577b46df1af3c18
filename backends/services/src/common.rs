//! HTTP plumbing shared by every backend.
//!
//! * [`AppError`]: the one error type handlers return; it renders as the
//!   SPEC §6 envelope ([`pricing::ErrorEnvelope`]).
//! * Request ids: the incoming `x-request-id` is kept (a fresh one is
//!   generated when absent or unusable), handed to handlers as
//!   [`RequestId`], put into every error body and echoed as `x-request-id`
//!   on **every** response.
//! * [`ApiJson`] / [`JsonBody`]: JSON body extractors whose rejections are
//!   envelopes (415 wrong content type, 413 too large, 400 malformed).
//! * Any bare error produced by the framework (unknown route 404, wrong
//!   method 405, ...) is turned into an envelope as well.
//! * [`serve`] binds (port 0 works), serves with the layers above and shuts
//!   down gracefully; [`shutdown_signal`] waits for SIGTERM or Ctrl-C.
//! * [`init_tracing`]: one logfmt line per event, level from `LOG_LEVEL`.
//! * [`health_ok`] / [`health_unavailable`]: the `/health` shapes.
//!
//! A backend's `main` is typically:
//!
//! ```no_run
//! # async fn demo(router: axum::Router) -> std::io::Result<()> {
//! use services::common::{serve, shutdown_signal};
//! let server = serve(router, "127.0.0.1:8081".parse().unwrap()).await?;
//! shutdown_signal().await;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use pricing::{ErrorCode, ErrorEnvelope, FieldError};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Header carrying the request id, in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest incoming request id that is kept as is; longer or non-printable
/// ids are replaced by a generated one.
pub const MAX_REQUEST_ID_LEN: usize = 128;

// ---------------------------------------------------------------------------
// Request ids
// ---------------------------------------------------------------------------

/// The id of the request being served (from `x-request-id` or generated).
///
/// Extract it in a handler with `RequestId` as an argument; it never
/// rejects (outside the [`serve`] layers it generates a fresh id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(pub String);

impl RequestId {
    /// Keeps a usable incoming id (1–128 visible ASCII characters), or
    /// generates a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= MAX_REQUEST_ID_LEN
                    && s.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(|s| Self(s.to_owned()))
            .unwrap_or_else(Self::generate)
    }

    /// A fresh random id in UUID v4 text form.
    pub fn generate() -> Self {
        let b: [u8; 16] = rand::random();
        let hex = |s: &[u8]| s.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut v = b;
        v[6] = (v[6] & 0x0f) | 0x40;
        v[8] = (v[8] & 0x3f) | 0x80;
        Self(format!(
            "{}-{}-{}-{}-{}",
            hex(&v[0..4]),
            hex(&v[4..6]),
            hex(&v[6..8]),
            hex(&v[8..10]),
            hex(&v[10..16])
        ))
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
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_headers(&parts.headers)))
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

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

/// An error body waiting for its request id; the [`serve`] layers render
/// it (outside them it is rendered with a generated id).
#[derive(Debug, Clone)]
struct PendingEnvelope {
    code: ErrorCode,
    message: String,
    details: Vec<FieldError>,
}

impl PendingEnvelope {
    fn render(&self, request_id: &str) -> Response {
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
        let pending = PendingEnvelope {
            code: self.code(),
            message: self.message(),
            details: match self {
                Self::Validation { details, .. } => details,
                _ => Vec::new(),
            },
        };
        let rid = RequestId::generate();
        let mut resp = pending.render(rid.as_str());
        resp.extensions_mut().insert(pending);
        resp
    }
}

impl From<store::StoreError> for AppError {
    fn from(e: store::StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

// ---------------------------------------------------------------------------
// JSON extractors
// ---------------------------------------------------------------------------

/// The raw bytes of a JSON request body, after the SPEC §4 transport
/// checks: `Content-Type` must be `application/json` (else 415) and the
/// body at most [`pricing::MAX_BODY_BYTES`] (else 413). The content is not
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
        let limit = pricing::MAX_BODY_BYTES;
        if !is_json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(AppError::PayloadTooLarge(limit));
        }
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

// ---------------------------------------------------------------------------
// The layer every backend runs behind
// ---------------------------------------------------------------------------

/// Wraps a router with the shared behaviour: request ids in and out,
/// envelopes for every error (including the framework's bare 404/405/413).
/// [`serve`] applies it; call it yourself only when serving another way.
pub fn with_common_layers(router: Router) -> Router {
    router.layer(middleware::from_fn(request_envelope))
}

async fn request_envelope(mut req: Request, next: Next) -> Response {
    let rid = RequestId::from_headers(req.headers());
    req.extensions_mut().insert(rid.clone());
    let mut resp = next.run(req).await;
    if let Some(pending) = resp.extensions_mut().remove::<PendingEnvelope>() {
        resp = pending.render(rid.as_str());
    } else if resp.status().is_client_error() || resp.status().is_server_error() {
        let already_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !already_json {
            resp = bare_status_envelope(resp.status()).render(rid.as_str());
        }
    }
    if let Ok(v) = HeaderValue::from_str(rid.as_str()) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

fn bare_status_envelope(status: StatusCode) -> PendingEnvelope {
    let (code, message) = match status.as_u16() {
        400 => (ErrorCode::ValidationError, "Invalid request"),
        401 => (ErrorCode::Unauthorized, "Authentication required"),
        403 => (ErrorCode::Forbidden, "Forbidden"),
        404 => (ErrorCode::NotFound, "No such resource"),
        405 => (
            ErrorCode::MethodNotAllowed,
            "Method not allowed on this path",
        ),
        413 => (ErrorCode::PayloadTooLarge, "Request body too large"),
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

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

/// A running HTTP server.
pub struct Server {
    /// The address actually bound (the real port when asked for port 0).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// `http://<addr>` + `path`, handy for tests and logs.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting connections, lets in-flight requests finish (up to
    /// 10 s), then returns. Errors are logged.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => tracing::info!(addr = %self.addr, "Server stopped"),
            Ok(Ok(Err(e))) => tracing::error!(addr = %self.addr, error = %e, "Server error"),
            Ok(Err(e)) => tracing::error!(addr = %self.addr, error = %e, "Server task failed"),
            Err(_) => {
                tracing::warn!(addr = %self.addr, "Graceful shutdown timed out");
                self.task.abort();
            }
        }
    }

    /// Waits until the server ends on its own (it normally runs until
    /// [`Server::shutdown`]).
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)?
    }
}

/// Binds `listen` (port 0 picks a free port), serves `router` behind
/// [`with_common_layers`] in a background task and returns at once.
pub async fn serve(router: Router, listen: SocketAddr) -> io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let app = with_common_layers(router);
    let task = tokio::spawn(async move {
        axum::serve(no_delay(listener), app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, "Listening");
    Ok(Server {
        addr,
        stop: Some(tx),
        task,
    })
}

/// `listener` with `TCP_NODELAY` on every accepted connection: a response
/// written in more than one segment must not wait for the peer's delayed
/// ACK (Nagle), which shows as 40 ms latency spikes behind Envoy.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Runs `server` until [`shutdown_signal`], then shuts it down gracefully.
pub async fn run_until_signal(server: Server) {
    shutdown_signal().await;
    server.shutdown().await;
}

/// Resolves `LISTEN_ADDR` from the environment, else `default`.
pub fn listen_addr_from_env(default: &str) -> Result<SocketAddr, String> {
    let raw = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| default.to_owned());
    raw.parse()
        .map_err(|_| format!("LISTEN_ADDR: {raw:?} is not an address like 127.0.0.1:8081"))
}

// ---------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------

/// Installs the global logger: one logfmt line per event
/// (`ts=… level=INFO service=… msg="…" key=value`), filtered by `LOG_LEVEL`
/// (`error`, `warn`, `info`, `debug`, `trace`, or an env-filter
/// expression; default `info`). Calling it twice is harmless.
pub fn init_tracing(service: &'static str) {
    service_log::init(service);
}

/// Quotes a value for a logfmt line (exposed for handlers that build
/// their own structured messages).
pub fn logfmt_value(v: &str) -> String {
    service_log::value(v)
}
