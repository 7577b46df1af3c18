//! The ops service over real HTTP: a fake Envoy admin (recorded
//! `/stats/prometheus` text, `/clusters?format=json`, route config dump) and
//! fake backends on port 0, the ops service built with its one `build`
//! path, and the docs page rendered in headless Chromium.
//!
//! * [`metrics`]: `/metrics`, the merged exposition;
//! * [`health`]: `/health/detailed`, `/health/{dependency}`, envelopes;
//! * [`discovery`]: `/discovery/services` and its authorization;
//! * [`docs`]: `/openapi.json` and the docs page (also in a real browser);
//! * [`schemathesis`]: the whole API through the real gateway;
//! * [`stack`]: the real gateway in front of the real services.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod discovery;
mod docs;
mod health;
mod metrics;
mod schemathesis;
mod stack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use e2e::stand_in::{client, health_routes, serve};
use ops_service::{build, Backend, OpsConfig};
use serde_json::Value;

/// Envoy 1.40 `/stats/prometheus` shape with the filters' metrics (wasm
/// histograms in microseconds) and admin-only statistics that must not leak;
/// the same recorded text the ops service's `exposition` unit tests read.
const ENVOY_STATS: &str = include_str!("../../../backends/ops-service/testdata/envoy_stats.prom");

const CLUSTERS_JSON: &str = r#"{"cluster_statuses":[
 {"name":"data_service","host_statuses":[
   {"address":{"socket_address":{"address":"127.0.0.1","port_value":8081}},"health_status":{"eds_health_status":"HEALTHY"},"weight":1},
   {"address":{"socket_address":{"address":"127.0.0.1","port_value":9081}},"health_status":{"failed_active_health_check":true,"eds_health_status":"HEALTHY"},"weight":1}]},
 {"name":"calculation_service","host_statuses":[
   {"address":{"socket_address":{"address":"127.0.0.1","port_value":8082}},"health_status":{"eds_health_status":"HEALTHY"},"weight":1}]},
 {"name":"rate_limit_service","host_statuses":[
   {"address":{"socket_address":{"address":"127.0.0.1","port_value":8090}},"health_status":{"eds_health_status":"HEALTHY"},"weight":1}]}
]}"#;

const ROUTES_JSON: &str = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump.StaticRouteConfig",
 "route_config":{"@type":"type.googleapis.com/envoy.config.route.v3.RouteConfiguration","name":"public","virtual_hosts":[{"name":"api","domains":["*"],"routes":[
  {"name":"/api/v1/rates/{ticker}","match":{"safe_regex":{"regex":"/api/v1/rates/[^/]+"}},"route":{"cluster":"data_service","regex_rewrite":{}}},
  {"name":"/api/v1/calculate-locate","match":{"path":"/api/v1/calculate-locate"},"route":{"cluster":"calculation_service"}},
  {"name":"/health","match":{"path":"/health"},"direct_response":{"status":200}}]}]}}]}"#;

/// A fake Envoy admin interface serving recorded answers.
async fn fake_envoy_admin() -> SocketAddr {
    let router = Router::new()
        .route("/stats/prometheus", get(|| async { ENVOY_STATS }))
        .route(
            "/clusters",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], CLUSTERS_JSON) }),
        )
        .route(
            "/config_dump",
            get(
                |q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                    if q.get("resource").map(String::as_str) == Some("static_route_configs") {
                        ROUTES_JSON.into_response()
                    } else {
                        r#"{"configs":[]}"#.into_response()
                    }
                },
            ),
        );
    serve(router).await
}

/// A backend answering `/health` healthy and `/metrics` with `metrics`.
async fn fake_backend(metrics: &'static str) -> SocketAddr {
    serve(health_routes(Router::new(), metrics)).await
}

/// A backend whose `/health` fails (database unreachable).
async fn failing_backend() -> SocketAddr {
    let router = Router::new().route(
        "/health",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "{}") }),
    );
    serve(router).await
}

/// A loopback address nothing listens on.
/// An address that refuses connections for the rest of the test run: a
/// socket bound to it but never listening holds the port, so no server the
/// other tests start on port 0 can be given it (a closed listener's port
/// could be handed out again and answer).
fn closed_addr() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    std::mem::forget(socket);
    addr
}

const AUTH_METRICS: &str = "# HELP jwt_tokens_issued_total JWTs issued.\n# TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 7\n";
const DATA_METRICS: &str =
    "# TYPE data_rate_lookups_total counter\ndata_rate_lookups_total{outcome=\"found\"} 40\n";

struct Deps {
    admin: SocketAddr,
    data: SocketAddr,
    calculation: SocketAddr,
    auth: SocketAddr,
    rate_limit: SocketAddr,
    database_url: Option<String>,
    redis_url: Option<String>,
}

impl Deps {
    async fn all_up() -> Deps {
        Deps {
            admin: fake_envoy_admin().await,
            data: fake_backend(DATA_METRICS).await,
            calculation: fake_backend("").await,
            auth: fake_backend(AUTH_METRICS).await,
            rate_limit: fake_backend("").await,
            database_url: Some(sqlite_url()),
            redis_url: None,
        }
    }
}

fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("ops-endpoints-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}?mode=rwc", dir.join("ping.db").display())
}

/// Starts the ops service on port 0 with an internal port; answers the
/// internal port's base URL (every route, full metrics and dependency
/// details; `tests/public_port.rs` of the crate compares it with the
/// public port).
async fn start_ops(deps: &Deps) -> String {
    let config = OpsConfig {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        envoy_admin_url: format!("http://{}", deps.admin),
        backends: backends([deps.data, deps.calculation, deps.auth, deps.rate_limit]),
        database_url: deps.database_url.clone(),
        redis_url: deps.redis_url.clone(),
        probe_timeout: Duration::from_millis(1500),
    };
    let server = build(config)
        .await
        .unwrap()
        .with_internal_listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap();
    let addr = server.internal_addr().unwrap();
    tokio::spawn(server.serve(std::future::pending()));
    format!("http://{addr}")
}

/// The ops service on [`Deps::all_up`]: the base URL of its internal port.
async fn ops_all_up() -> String {
    start_ops(&Deps::all_up().await).await
}

/// The ops service on [`Deps::all_up`] as changed by `change`: the base URL
/// of its internal port.
async fn ops_with(change: impl FnOnce(&mut Deps)) -> String {
    let mut deps = Deps::all_up().await;
    change(&mut deps);
    start_ops(&deps).await
}

/// The ops service's backends: data, calculation and auth (critical) and
/// rate limit (not critical), at these addresses.
fn backends(addrs: [SocketAddr; 4]) -> Vec<Backend> {
    let names = [
        ("data_service", true),
        ("calculation_service", true),
        ("auth_service", true),
        ("rate_limit_service", false),
    ];
    names
        .into_iter()
        .zip(addrs)
        .map(|((name, critical), addr)| Backend {
            name: name.into(),
            base_url: format!("http://{addr}"),
            critical,
        })
        .collect()
}

async fn get_text(url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = client().get(url).send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// `GET url`: status and the body as JSON.
async fn get_json(url: &str) -> (StatusCode, Value) {
    let (status, _, body) = get_text(url).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, v)
}

/// Status and JSON body of a request.
async fn send_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn tempdir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ops-{label}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text parses as an exposition; every family has at most one `# TYPE`
/// line, its samples are contiguous and every value is a number.
fn assert_valid_exposition(text: &str) {
    ops_service::exposition::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut typed = std::collections::HashSet::new();
    let mut finished = std::collections::HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(typed.insert(name.clone()), "second TYPE line for {name}");
            if let Some(prev) = current.replace(name.clone()) {
                finished.insert(prev);
            }
            assert!(!finished.contains(&name), "family {name} is split");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let value = line.rsplit(' ').next().unwrap_or_default();
        let base = current.clone().unwrap_or_default();
        assert!(
            name.starts_with(&base),
            "{name} outside its family group ({base})"
        );
        assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
    }
}
