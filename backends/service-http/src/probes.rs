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

use std::sync::atomic::{AtomicBool, Ordering};
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

/// How long in-flight requests may take to finish after the server stops
/// accepting connections (`SHUTDOWN_GRACE_SECONDS`, default 10).
pub fn shutdown_grace() -> Duration {
    seconds_from_env("SHUTDOWN_GRACE_SECONDS").unwrap_or(DEFAULT_SHUTDOWN_GRACE)
}

/// How long the process keeps serving, readiness 503, between the signal
/// and closing its listener (`SHUTDOWN_DELAY_SECONDS`, default 0).
pub fn shutdown_delay() -> Duration {
    seconds_from_env("SHUTDOWN_DELAY_SECONDS").unwrap_or(Duration::ZERO)
}

/// A whole or fractional number of seconds from `name`; unset, empty or
/// unparsable (logged) is `None`.
fn seconds_from_env(name: &str) -> Option<Duration> {
    let raw = std::env::var(name).ok()?;
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Some(Duration::from_secs_f64(s)),
        _ => {
            tracing::warn!(
                variable = name,
                value = raw,
                "Not a number of seconds between 0 and 3600, using the default"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_settings_read_seconds_and_fall_back_on_nonsense() {
        // One test touches these variables: tests run on threads.
        std::env::set_var("SHUTDOWN_GRACE_SECONDS", "2.5");
        std::env::set_var("SHUTDOWN_DELAY_SECONDS", "-1");
        assert_eq!(shutdown_grace(), Duration::from_millis(2500));
        assert_eq!(shutdown_delay(), Duration::ZERO);
        std::env::set_var("SHUTDOWN_GRACE_SECONDS", "soon");
        std::env::set_var("SHUTDOWN_DELAY_SECONDS", "3");
        assert_eq!(shutdown_grace(), DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(shutdown_delay(), Duration::from_secs(3));
        std::env::remove_var("SHUTDOWN_GRACE_SECONDS");
        std::env::remove_var("SHUTDOWN_DELAY_SECONDS");
        assert_eq!(shutdown_grace(), DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(shutdown_delay(), Duration::ZERO);
    }
}
