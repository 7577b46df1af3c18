//! What the routers of both pricing services share: the handlers' state,
//! `/health`, `/health/live`, `/health/ready` and `/metrics` behind the
//! request metrics, and the `status: "success"` schema of their bodies.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use store::Store;

use crate::common::{health_ok, health_unavailable, liveness, readiness, AppError};
use crate::metrics::{metrics_response, track, Metrics};

/// What a pricing service's handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

/// `api` (the service's own routes) plus `/health`, `/health/live`,
/// `/health/ready` and `/metrics`, every route counted by [`track`].
pub fn router(state: AppState, api: Router<AppState>) -> Router {
    api.route("/health", get(health))
        .route("/health/live", liveness(env!("CARGO_PKG_VERSION")))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            track,
        ))
        .with_state(state)
}

/// The `status` of every success body.
pub(crate) fn success() -> utoipa::openapi::schema::Schema {
    pricing::openapi::constant("success")
}

/// The dependency check of `/health` and `/health/ready`: the database
/// answers a `SELECT 1`.
async fn database_reachable(state: &AppState) -> Result<(), AppError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "Health check failed");
        health_unavailable("database")
    })
}

/// `/health`: 200 when the database answers, else 503 envelope.
pub async fn health(State(state): State<AppState>) -> Response {
    match database_reachable(&state).await {
        Ok(()) => health_ok(env!("CARGO_PKG_VERSION")),
        Err(e) => e.into_response(),
    }
}

/// `/health/ready`: `/health`'s answer, and 503 once the process is
/// shutting down.
pub async fn ready(State(state): State<AppState>) -> Response {
    readiness(env!("CARGO_PKG_VERSION"), database_reachable(&state).await)
}

/// `/metrics`: this service's own counters.
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(&state.metrics)
}
