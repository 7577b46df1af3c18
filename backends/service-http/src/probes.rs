//! Kubernetes probes that match failure domains, and the shutdown settings.
//!
//! * `GET /health/live` ([`liveness`]): the process answers HTTP. Never
//!   touches the database, Redis or any other service, so an outage of a
//!   dependency does not restart every replica.
//! * `GET /health/ready` ([`readiness`]): whether this replica should get
//!   traffic: the same dependency check as the service's `/health`, and 503
//!   from the moment the process received SIGTERM (it is draining).
//! * `GET /health` keeps its SPEC shape: 200, or 503 when a dependency the
//!   service needs is down.
//!
//! Shutdown ([`crate::shutdown_signal`]): on SIGTERM or Ctrl-C the process
//! marks itself draining (readiness 503), keeps serving for
//! `SHUTDOWN_DELAY_SECONDS` (default 0) so that load balancers see the
//! 503 or the endpoint removal first, then stops accepting connections
//! and gives the requests in flight up to `SHUTDOWN_GRACE_SECONDS`
//! (default 10) to finish before it exits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use pricing::ErrorCode;

use crate::error::{health_ok, AppError};

/// Default of `SHUTDOWN_GRACE_SECONDS`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Set once the process received SIGTERM or Ctrl-C.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether the process is shutting down (a signal was received).
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// Marks the process as shutting down: every readiness probe answers 503
/// from now on. [`crate::shutdown_signal`] calls it on SIGTERM / Ctrl-C.
pub fn start_draining() {
    DRAINING.store(true, Ordering::SeqCst);
}

/// The `GET /health/live` route: `200 {"status":"healthy","version":…}`
/// from the process alone.
pub fn liveness<S: Clone + Send + Sync + 'static>(version: &'static str) -> MethodRouter<S> {
    get(move || async move { health_ok(version) })
}

/// The `/health/ready` answer: 503 `SERVICE_UNAVAILABLE` while draining,
/// else the outcome of the service's dependency check (`checked`, the
/// same check its `/health` runs): 200 `{"status":"healthy",…}` or the
/// check's 503 envelope.
pub fn readiness(version: &str, checked: Result<(), AppError>) -> Response {
    if is_draining() {
        return AppError::Other {
            code: ErrorCode::ServiceUnavailable,
            message: "Not ready: shutting down".to_owned(),
        }
        .into_response();
    }
    match checked {
        Ok(()) => health_ok(version),
        Err(e) => e.into_response(),
    }
}

/// Milliseconds of the installed settings; `u64::MAX` until
/// [`set_shutdown`] ran (the defaults apply).
static GRACE_MS: AtomicU64 = AtomicU64::new(u64::MAX);
static DELAY_MS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Installs the shutdown settings (`SHUTDOWN_DELAY_SECONDS`,
/// `SHUTDOWN_GRACE_SECONDS`), read with the rest of the service's
/// configuration ([`crate::config::CommonArgs`]).
pub fn set_shutdown(delay: Duration, grace: Duration) {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1);
    DELAY_MS.store(ms(delay), Ordering::SeqCst);
    GRACE_MS.store(ms(grace), Ordering::SeqCst);
}

fn installed(setting: &AtomicU64, default: Duration) -> Duration {
    match setting.load(Ordering::SeqCst) {
        u64::MAX => default,
        ms => Duration::from_millis(ms),
    }
}

/// How long in-flight requests may take to finish after the server stops
/// accepting connections (`SHUTDOWN_GRACE_SECONDS`, default 10).
pub fn shutdown_grace() -> Duration {
    installed(&GRACE_MS, DEFAULT_SHUTDOWN_GRACE)
}

/// How long the process keeps serving, readiness 503, between the signal
/// and closing its listener (`SHUTDOWN_DELAY_SECONDS`, default 0).
pub fn shutdown_delay() -> Duration {
    installed(&DELAY_MS, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_settings_are_the_defaults_until_installed() {
        // One test touches these settings: tests run on threads.
        assert_eq!(shutdown_grace(), DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(shutdown_delay(), Duration::ZERO);
        set_shutdown(Duration::from_secs(3), Duration::from_millis(2500));
        assert_eq!(shutdown_grace(), Duration::from_millis(2500));
        assert_eq!(shutdown_delay(), Duration::from_secs(3));
    }
}
