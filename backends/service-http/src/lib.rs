//! The HTTP plumbing every backend shares.
//!
//! * [`Layers`]: the tower-http stack every route runs behind — request id
//!   (`x-request-id` kept when usable, generated otherwise, echoed on
//!   **every** response), request body limit, a tracing span per request
//!   and a timeout — plus the SPEC §6 envelope for every bare error status
//!   the framework or those layers produce (404, 405, 413, 504).
//! * [`AppError`]: the one error type handlers return; it renders as the
//!   envelope ([`pricing::ErrorEnvelope`]) carrying the request id.
//! * [`RequestId`], [`ApiJson`], [`JsonBody`]: extractors; the JSON ones
//!   reject with envelopes (415 wrong content type, 413 too large, 400
//!   malformed).
//! * [`serve`] / [`serve_with`] bind (port 0 works) and serve in the
//!   background; [`serve_until`] serves a bound listener until a future
//!   completes; [`shutdown_signal`] waits for SIGTERM or Ctrl-C.
//! * [`config`]: each service's settings as a `clap` struct read from its
//!   variables, with the shared pieces ([`config::CommonArgs`],
//!   [`config::DatabaseArgs`]) flattened in; errors name the variable.
//! * [`health_ok`] / [`health_unavailable`]: the `/health` shapes.
//! * [`metrics`]: each service's own Prometheus registry (`process_*`,
//!   `*_build_info`, the shared duration buckets) and its `/metrics` answer.
//! * [`liveness`] / [`readiness`]: `GET /health/live` (the process alone)
//!   and `GET /health/ready` (dependencies, 503 while draining), see
//!   [`probes`] for the shutdown sequence and its settings.
//!
//! A backend's `main` is typically:
//!
//! ```no_run
//! # async fn demo(router: axum::Router) -> std::io::Result<()> {
//! use service_http::{run_until_signal, serve};
//! let server = serve(router, "127.0.0.1:8081".parse().unwrap()).await?;
//! run_until_signal(server).await;
//! # Ok(()) }
//! ```

pub mod config;
mod error;
mod json;
mod layers;
pub mod metrics;
pub mod probes;
mod request_id;
mod serve;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::{envelope_response, health_ok, health_unavailable, AppError};
pub use json::{is_json_content_type, read_body_limited, ApiJson, JsonBody};
pub use layers::{with_common_layers, Layers, DEFAULT_TIMEOUT};
pub use probes::{is_draining, liveness, readiness, shutdown_delay, shutdown_grace};
pub use request_id::{
    is_usable_request_id, KeepUsableOrGenerate, RequestId, MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER,
};
pub use serve::{
    no_delay, retry_start, run_until_signal, serve, serve_until, serve_with, shutdown_signal,
    Server,
};
