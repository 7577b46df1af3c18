//! The ops service: operator endpoints behind the gateway.
//!
//! * `GET /metrics` (alias `/monitoring/metrics`): the SPEC §8 families and
//!   the cluster resilience statistics from Envoy's admin API — histograms
//!   converted from microseconds to seconds — merged with every backend's
//!   own `/metrics` ([`exposition`]); on the public port without any
//!   series that names a client ([`public`]).
//! * `GET /health/detailed`, `GET /health/{service}`: dependency health with
//!   latency ([`health`] defines which dependencies are critical), from a
//!   cache: each dependency is probed at most once per
//!   [`HEALTH_CACHE_TTL`], however many callers ask at once. On the public
//!   port `/health/detailed` gives the overall status only (same 200/503)
//!   and `/health/{service}` leaves out versions and errors.
//! * `GET /health/live`, `GET /health/ready`: this service's own liveness
//!   and readiness (Kubernetes probes); it reports its dependencies rather
//!   than needing them, so it is ready unless it is shutting down.
//! * `GET /discovery/services` (admin scope): routes, clusters and endpoint
//!   health from Envoy's admin API ([`discovery`]).
//! * `GET /openapi.json`: the OpenAPI 3 document of the public API
//!   ([`docs`]).
//! * `GET /docs` (and its files under `/docs/`): Swagger UI on that
//!   document, compiled in ([`docs_page`]).
//!
//! Two listeners: the public one (`LISTEN_ADDR`, routed by the gateway)
//! and the internal one (`INTERNAL_LISTEN_ADDR`, never routed by the
//! gateway; Prometheus and operators), which serves every route with the
//! full metrics and dependency details.

pub mod config;
pub mod discovery;
pub mod docs;
pub mod docs_page;
pub mod error;
pub mod exposition;
pub mod health;
pub mod public;
pub mod text_format;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::proto::MetricFamily;
use tokio::net::TcpListener;

pub use config::{Backend, OpsConfig};
pub use error::{AppError, RequestId};
pub use service_http::shutdown_signal;

/// Version reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long one probe of a dependency answers `/health/detailed` and
/// `/health/{service}` before the next caller probes again.
pub const HEALTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// Default address of the internal listener (`INTERNAL_LISTEN_ADDR`).
pub const DEFAULT_INTERNAL_LISTEN_ADDR: &str = "127.0.0.1:8085";

/// Name under which Envoy's admin scrape is counted in
/// `ops_scrape_errors_total`.
pub const ENVOY_TARGET: &str = "envoy";

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: OpsConfig,
    client: reqwest::Client,
    database: Option<Result<sqlx::AnyPool, String>>,
    scrape_errors: Mutex<BTreeMap<String, u64>>,
    /// The last probe of each dependency; its lock makes concurrent
    /// callers wait for one probe instead of starting their own.
    health_cache: BTreeMap<String, tokio::sync::Mutex<Option<(Instant, health::DependencyReport)>>>,
}

impl AppState {
    /// State for `config`; the database pool connects lazily.
    pub fn new(config: OpsConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.probe_timeout)
            .connect_timeout(config.probe_timeout)
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|_| "cannot build the HTTP client".to_owned())?;
        let database = config.database_url.as_deref().map(|url| {
            sqlx::any::install_default_drivers();
            sqlx::any::AnyPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .acquire_timeout(config.probe_timeout)
                .idle_timeout(Some(std::time::Duration::from_secs(30)))
                .connect_lazy(url)
                .map_err(|_| "DATABASE_URL is not a supported database URL".to_owned())
        });
        let mut targets: BTreeMap<String, u64> = BTreeMap::new();
        targets.insert(ENVOY_TARGET.to_owned(), 0);
        for b in &config.backends {
            targets.insert(b.name.clone(), 0);
        }
        let health_cache = dependency_names(&config)
            .into_iter()
            .map(|name| (name, tokio::sync::Mutex::new(None)))
            .collect();
        Ok(AppState {
            inner: Arc::new(Inner {
                client,
                database,
                scrape_errors: Mutex::new(targets),
                health_cache,
                config,
            }),
        })
    }

    fn config(&self) -> &OpsConfig {
        &self.inner.config
    }

    fn count_scrape_error(&self, target: &str) {
        if let Ok(mut map) = self.inner.scrape_errors.lock() {
            *map.entry(target.to_owned()).or_insert(0) += 1;
        }
    }

    fn scrape_error_counts(&self) -> Vec<(String, u64)> {
        self.inner
            .scrape_errors
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// The router of the public port (the one the gateway routes to): the
/// metrics without client-labelled series, the overall health without
/// dependency details.
pub fn app(state: AppState) -> Router {
    routes(
        get(health_detailed),
        get(health_one),
        get(metrics),
        get(monitoring_metrics),
    )
    .with_state(state)
}

/// The router of the internal port: every route, with the full metrics
/// (client ids included) and every dependency's details.
pub fn internal_app(state: AppState) -> Router {
    routes(
        get(internal_health_detailed),
        get(internal_health_one),
        get(internal_metrics),
        get(internal_metrics),
    )
    .with_state(state)
}

fn routes(
    detailed: axum::routing::MethodRouter<AppState>,
    one: axum::routing::MethodRouter<AppState>,
    metrics: axum::routing::MethodRouter<AppState>,
    monitoring_metrics: axum::routing::MethodRouter<AppState>,
) -> Router<AppState> {
    Router::new()
        .route("/health", get(liveness))
        // Static routes win over `/health/{service}` in axum: these two are
        // never taken for a dependency name.
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/detailed", detailed)
        .route("/health/{service}", one)
        .route("/metrics", metrics)
        .route("/monitoring/metrics", monitoring_metrics)
        .route("/discovery/services", get(discovery_services))
        .route("/openapi.json", get(openapi))
        .merge(docs_page::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A bound, ready-to-serve ops service.
pub struct OpsServer {
    listener: TcpListener,
    router: Router,
    state: AppState,
    internal: Option<TcpListener>,
}

/// The one startup path of `main` and the tests: state, router, listener.
pub async fn build(config: OpsConfig) -> Result<OpsServer, String> {
    let listen = config.listen_addr;
    let state = AppState::new(config)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    Ok(OpsServer {
        listener,
        router: app(state.clone()),
        state,
        internal: None,
    })
}

/// [`build`] on a listener the caller has bound already: a test that must
/// name the ops service's port in Envoy's configuration before the service
/// starts holds the port from the start, so nothing else (an outgoing
/// connection's ephemeral port) can take it in between.
pub async fn build_on(
    config: OpsConfig,
    listener: std::net::TcpListener,
) -> Result<OpsServer, String> {
    let listen = listener
        .local_addr()
        .map_err(|e| format!("ops listener: {e}"))?;
    let state = AppState::new(OpsConfig {
        listen_addr: listen,
        ..config
    })?;
    Ok(OpsServer {
        listener: tokio_listener(listener, &format!("ops listener {listen}"))?,
        router: app(state.clone()),
        state,
        internal: None,
    })
}

/// `listener` for tokio (non-blocking); errors start with `what`.
fn tokio_listener(listener: std::net::TcpListener, what: &str) -> Result<TcpListener, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{what}: {e}"))?;
    TcpListener::from_std(listener).map_err(|e| format!("{what}: {e}"))
}

impl OpsServer {
    /// Also serves [`internal_app`] on `addr` (the binary:
    /// `INTERNAL_LISTEN_ADDR`).
    pub async fn bind_internal(self, addr: SocketAddr) -> Result<Self, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (INTERNAL_LISTEN_ADDR): {e}"))?;
        Ok(OpsServer {
            internal: Some(listener),
            ..self
        })
    }

    /// [`OpsServer::bind_internal`] on a listener the caller has bound.
    pub fn with_internal_listener(self, listener: std::net::TcpListener) -> Result<Self, String> {
        Ok(OpsServer {
            internal: Some(tokio_listener(listener, "internal listener")?),
            ..self
        })
    }

    /// The internal listener's address, when there is one.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves behind the shared layers ([`service_http::Layers`]: request
    /// ids, body limit, trace span, timeout, envelopes) until `shutdown`
    /// completes, then drains in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Some(internal) = self.internal else {
            return service_http::serve_until(
                self.listener,
                self.router,
                service_http::Layers::default(),
                shutdown,
            )
            .await;
        };
        // One shutdown for both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let (public, internal) = tokio::join!(
            service_http::serve_until(
                self.listener,
                self.router,
                service_http::Layers::default(),
                stopped(stop_rx.clone()),
            ),
            service_http::serve_until(
                internal,
                internal_app(self.state),
                service_http::Layers::default(),
                stopped(stop_rx),
            ),
        );
        public.and(internal)
    }
}

/// Liveness.
///
/// Answered by the gateway itself with this same body; used by liveness,
/// readiness and startup probes.
#[utoipa::path(get, path = "/health", operation_id = "getHealth", tag = "Operations",
    responses((status = 200, description = "The gateway is up.", body = health::Liveness)))]
pub async fn liveness() -> Json<health::Liveness> {
    Json(health::Liveness {
        status: "healthy",
        version: VERSION,
    })
}

/// Liveness of the ops service.
///
/// From the process alone: never touches the database, Redis or any
/// backend. Through the gateway this is the ops service's own liveness
/// (the gateway's is `/health`).
#[utoipa::path(get, path = "/health/live", operation_id = "getLiveness", tag = "Operations",
    responses((status = 200, description = "The ops service is up.", body = health::Liveness)))]
pub async fn live() -> Json<health::Liveness> {
    liveness().await
}

/// Readiness of the ops service.
///
/// The ops service reports its dependencies (`/health/detailed`) instead
/// of needing them, so it is ready unless it is shutting down (503 from
/// SIGTERM on, while it finishes the requests in flight).
#[utoipa::path(get, path = "/health/ready", operation_id = "getReadiness", tag = "Operations",
    responses(
        (status = 200, description = "Ready for traffic.", body = health::Liveness),
        (status = 503, response = pricing::openapi::responses::ServiceUnavailable),
    ))]
pub async fn ready(rid: RequestId) -> Result<Json<health::Liveness>, AppError> {
    if service_http::is_draining() {
        return Err(AppError::ServiceUnavailable(
            rid,
            "Not ready: shutting down".into(),
        ));
    }
    Ok(liveness().await)
}

/// Every dependency name `/health/{service}` knows.
fn dependency_names(config: &OpsConfig) -> Vec<String> {
    let mut names: Vec<String> = config.backends.iter().map(|b| b.name.clone()).collect();
    if config.database_url.is_some() {
        names.push("database".into());
    }
    if config.redis_url.is_some() {
        names.push("redis".into());
    }
    names
}

/// The dependency's report from the cache, probing it when the cached one
/// is older than [`HEALTH_CACHE_TTL`]. Concurrent callers wait for the one
/// probe in flight.
async fn probe(state: &AppState, name: &str) -> Option<health::DependencyReport> {
    let slot = state.inner.health_cache.get(name)?;
    let mut cached = slot.lock().await;
    if let Some((at, report)) = cached.as_ref() {
        if at.elapsed() < HEALTH_CACHE_TTL {
            return Some(report.clone());
        }
    }
    let report = probe_now(state, name).await?;
    *cached = Some((Instant::now(), report.clone()));
    Some(report)
}

async fn probe_now(state: &AppState, name: &str) -> Option<health::DependencyReport> {
    let config = state.config();
    let timeout = config.probe_timeout;
    if let Some(b) = config.backends.iter().find(|b| b.name == name) {
        return Some(
            health::probe_http(
                &state.inner.client,
                &b.name,
                &b.base_url,
                b.critical,
                timeout,
            )
            .await,
        );
    }
    match name {
        "database" => match state.inner.database.as_ref()? {
            Ok(pool) => Some(health::probe_database(pool, timeout).await),
            Err(e) => Some(health::DependencyReport {
                name: "database".into(),
                kind: "database",
                status: health::Status::Unhealthy,
                critical: true,
                latency_ms: 0.0,
                version: None,
                error: Some(e.clone()),
            }),
        },
        "redis" => Some(health::probe_redis(config.redis_url.as_deref()?, timeout).await),
        _ => None,
    }
}

/// Overall health of the gateway's dependencies.
///
/// `healthy`, `degraded` (only the rate-limit service or Redis down) or
/// `unhealthy` (a critical dependency down), from checks at most a few
/// seconds old. Public callers get the overall status only
/// (`dependencies` is empty); each dependency's status, latency and
/// version are on the ops service's internal port.
#[utoipa::path(get, path = "/health/detailed", operation_id = "getDetailedHealth", tag = "Operations",
    responses(
        (status = 200, description = "Healthy or degraded.", body = health::DetailedHealth),
        (status = 503, description = "Unhealthy: a critical dependency is down (or the ops service itself is unreachable, then with the error envelope).",
            body = health::DetailedHealth),
    ))]
pub async fn health_detailed(State(state): State<AppState>) -> Response {
    let (status, mut body) = detailed_health(&state).await;
    body.dependencies.clear();
    (status, Json(body)).into_response()
}

/// `/health/detailed` on the internal port: every dependency's report.
pub async fn internal_health_detailed(State(state): State<AppState>) -> Response {
    let (status, body) = detailed_health(&state).await;
    (status, Json(body)).into_response()
}

/// Each backend's `/health`, the rate-limit service, the database (a
/// `SELECT 1`) and Redis (a `PING`, only when `REDIS_URL` is set), each
/// with its latency (cached, see [`HEALTH_CACHE_TTL`]).
async fn detailed_health(state: &AppState) -> (StatusCode, health::DetailedHealth) {
    let names = dependency_names(state.config());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, name) in names.into_iter().enumerate() {
        let state = state.clone();
        tasks.spawn(async move { (i, probe(&state, &name).await) });
    }
    let mut reports: Vec<(usize, health::DependencyReport)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, Some(r))) = joined {
            reports.push((i, r));
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<health::DependencyReport> = reports.into_iter().map(|(_, r)| r).collect();
    let overall = health::overall(&reports);
    let dependencies = reports.into_iter().map(|r| (r.name.clone(), r)).collect();
    let status = StatusCode::from_u16(overall.http_status()).unwrap_or(StatusCode::OK);
    (
        status,
        health::DetailedHealth {
            status: overall,
            version: VERSION,
            dependencies,
        },
    )
}

/// Health of one dependency.
///
/// From a check at most a few seconds old; public callers get no version
/// and no error text (the internal port has them).
#[utoipa::path(get, path = "/health/{service}", operation_id = "getDependencyHealth", tag = "Operations",
    params(("service" = String, Path, description = "Dependency name; `redis` exists only when `REDIS_URL` is set.",
        pattern = "^(data_service|calculation_service|auth_service|rate_limit_service|database|redis)$")),
    responses(
        (status = 200, description = "The dependency is healthy.", body = health::DependencyReport),
        (status = 404, response = pricing::openapi::responses::DependencyNotFound),
        (status = 503, description = "The dependency is unhealthy (or the ops service is unreachable, then with the error envelope).",
            body = health::DependencyReport),
    ))]
pub async fn health_one(
    state: State<AppState>,
    service: Path<String>,
    rid: RequestId,
) -> Result<Response, AppError> {
    one_health(state, service, rid, true).await
}

/// `/health/{service}` on the internal port, with version and error.
pub async fn internal_health_one(
    state: State<AppState>,
    service: Path<String>,
    rid: RequestId,
) -> Result<Response, AppError> {
    one_health(state, service, rid, false).await
}

async fn one_health(
    State(state): State<AppState>,
    Path(service): Path<String>,
    rid: RequestId,
    public: bool,
) -> Result<Response, AppError> {
    let mut report = probe(&state, &service).await.ok_or_else(|| {
        AppError::NotFound(
            rid,
            format!(
                "Unknown dependency; known: {}",
                dependency_names(state.config()).join(", ")
            ),
        )
    })?;
    let status = match report.status {
        health::Status::Healthy => StatusCode::OK,
        health::Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
    };
    if public {
        report.version = None;
        report.error = None;
    }
    Ok((status, Json(report)).into_response())
}

async fn fetch_text(client: &reqwest::Client, url: String) -> Result<String, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| health::describe_reqwest_error(&e))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status().as_u16()));
    }
    response
        .text()
        .await
        .map_err(|_| "body read failed".to_owned())
}

/// Prometheus metrics.
///
/// No series that names a client (per-client rate-limit utilisation and
/// the like are on the ops service's internal port).
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "Operations",
    responses((status = 200, content_type = "text/plain", body = String,
        description = "Prometheus text exposition: the gateway's request, authentication, rate-limit and backend metrics (durations in seconds), cluster resilience counters and the backends' own metrics, without client-labelled series.")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    exposition_response(exposition::render(public::redact(
        merged_metrics(&state).await,
    )))
}

/// `/metrics` on the internal port: everything, client ids included.
pub async fn internal_metrics(State(state): State<AppState>) -> Response {
    exposition_response(exposition::render(merged_metrics(&state).await))
}

fn exposition_response(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// Envoy's statistics and every backend's metrics, merged.
async fn merged_metrics(state: &AppState) -> Vec<MetricFamily> {
    let client = &state.inner.client;
    let config = state.config();
    let envoy = fetch_text(
        client,
        format!("{}/stats/prometheus", config.envoy_admin_url),
    );
    let backend_scrapes: Vec<_> = config
        .backends
        .iter()
        .map(|b| {
            let client = client.clone();
            let url = format!("{}/metrics", b.base_url);
            tokio::spawn(async move { fetch_text(&client, url).await })
        })
        .collect();
    let envoy = envoy.await;
    let mut backends = Vec::with_capacity(backend_scrapes.len());
    for (b, task) in config.backends.iter().zip(backend_scrapes) {
        let result = task
            .await
            .unwrap_or_else(|_| Err("scrape task failed".to_owned()));
        backends.push((b.name.clone(), result));
    }

    let mut sources = Vec::new();
    // A target that does not answer, or answers text that is not an
    // exposition, is left out and counted.
    let envoy = envoy.and_then(|text| exposition::gateway_families(&text));
    match envoy {
        Ok(families) => sources.push(families),
        Err(e) => {
            tracing::warn!(target = ENVOY_TARGET, reason = %e, "metrics scrape failed");
            state.count_scrape_error(ENVOY_TARGET);
        }
    }
    for (name, result) in backends {
        match result.and_then(|text| exposition::backend_families(&text)) {
            Ok(families) => sources.push(families),
            Err(e) => {
                tracing::warn!(target = %name, reason = %e, "metrics scrape failed");
                state.count_scrape_error(&name);
            }
        }
    }
    let mut families = exposition::merge(sources);
    families.push(exposition::scrape_errors_family(
        &state.scrape_error_counts(),
    ));
    families.extend(exposition::own_families());
    families
}

/// The caller's identity as set by the gateway's auth filter.
fn require_admin(headers: &HeaderMap, rid: &RequestId) -> Result<(), AppError> {
    let client = headers
        .get("x-client-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    if client.is_none() {
        return Err(AppError::Unauthorized(rid.clone()));
    }
    let is_admin = headers
        .get("x-client-scopes")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|scopes| scopes.split_whitespace().any(|s| s == "admin"));
    if is_admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(rid.clone()))
    }
}

/// Prometheus metrics (alias of `/metrics`).
#[utoipa::path(get, path = "/monitoring/metrics", operation_id = "getMonitoringMetrics", tag = "Operations",
    responses((status = 200, content_type = "text/plain", body = String, description = "Same as `/metrics`.")))]
pub async fn monitoring_metrics(state: State<AppState>) -> Response {
    metrics(state).await
}

/// Routed services and endpoint health.
///
/// Requires the `admin` scope.
#[utoipa::path(get, path = "/discovery/services", operation_id = "getServices", tag = "Operations",
    responses(
        (status = 200, description = "Every upstream cluster with its public routes and healthy/total endpoints.", body = discovery::ServiceList),
        (status = 403, response = pricing::openapi::responses::Forbidden),
    ),
    security(("ApiKeyAuth" = []), ("BearerAuth" = [])))]
pub async fn discovery_services(
    State(state): State<AppState>,
    headers: HeaderMap,
    rid: RequestId,
) -> Result<Response, AppError> {
    require_admin(&headers, &rid)?;
    let client = &state.inner.client;
    let admin = &state.config().envoy_admin_url;
    let get_json = |path: &str| {
        let url = format!("{admin}{path}");
        async move {
            let text = fetch_text(client, url).await?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|_| "answered something other than JSON".to_owned())
        }
    };
    let (clusters, static_routes, dynamic_routes) = tokio::join!(
        get_json("/clusters?format=json"),
        get_json("/config_dump?resource=static_route_configs"),
        get_json("/config_dump?resource=dynamic_route_configs"),
    );
    let clusters = clusters.map_err(|e| {
        tracing::warn!(reason = %e, "Envoy admin /clusters unavailable");
        AppError::ServiceUnavailable(
            rid.clone(),
            "The gateway's admin interface is unavailable".into(),
        )
    })?;
    let mut routes = Vec::new();
    for dump in [static_routes, dynamic_routes].into_iter().flatten() {
        routes.extend(discovery::parse_routes(&dump));
    }
    let services = discovery::services(discovery::parse_clusters(&clusters), &routes);
    Ok(Json(discovery::ServiceList {
        status: "success",
        services,
    })
    .into_response())
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "Operations",
    responses((status = 200, description = "OpenAPI 3.1 document, generated from the handlers' own types.",
        body = Object)))]
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        docs::openapi_json(),
    )
        .into_response()
}

async fn not_found(rid: RequestId) -> AppError {
    AppError::NotFound(rid, "No such endpoint".into())
}

async fn method_not_allowed(rid: RequestId) -> AppError {
    AppError::MethodNotAllowed(rid)
}
