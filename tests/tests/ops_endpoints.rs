//! The ops service over real HTTP: a fake Envoy admin (recorded
//! `/stats/prometheus` text, `/clusters?format=json`, route config dump) and
//! fake backends on port 0, the ops service built with its one `build`
//! path, and the docs page rendered in headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ops_service::{build, build_on, Backend, OpsConfig};
use serde_json::Value;

/// Envoy 1.40 `/stats/prometheus` shape with the filters' metrics (wasm
/// histograms in microseconds) and admin-only statistics that must not leak.
const ENVOY_STATS: &str = r#"# TYPE envoy_cluster_upstream_cx_overflow counter
envoy_cluster_upstream_cx_overflow{envoy_cluster_name="calculation_service"} 0
envoy_cluster_upstream_cx_overflow{envoy_cluster_name="data_service"} 2
# TYPE envoy_cluster_upstream_rq_pending_overflow counter
envoy_cluster_upstream_rq_pending_overflow{envoy_cluster_name="data_service"} 11
# TYPE envoy_cluster_upstream_rq_retry counter
envoy_cluster_upstream_rq_retry{envoy_cluster_name="data_service"} 3
# TYPE envoy_cluster_outlier_detection_ejections_enforced_total counter
envoy_cluster_outlier_detection_ejections_enforced_total{envoy_cluster_name="data_service"} 1
# TYPE envoy_cluster_membership_healthy gauge
envoy_cluster_membership_healthy{envoy_cluster_name="data_service"} 1
# TYPE envoy_cluster_membership_total gauge
envoy_cluster_membership_total{envoy_cluster_name="data_service"} 2
# TYPE envoy_server_memory_allocated gauge
envoy_server_memory_allocated{} 7340032
# TYPE envoy_http_downstream_rq_total counter
envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="admin"} 17
# TYPE envoy_server_hot_restart_epoch gauge
envoy_server_hot_restart_epoch{} 0
# TYPE http_requests_total counter
http_requests_total{endpoint="/api/v1/rates/{ticker}",method="GET",status_code="200"} 40
http_requests_total{endpoint="/api/v1/rates/{ticker}",method="GET",status_code="404"} 2
# TYPE authentication_attempts_total counter
authentication_attempts_total{status="success"} 42
authentication_attempts_total{status="invalid_key"} 3
# TYPE rate_limit_exceeded_total counter
rate_limit_exceeded_total{} 5
# TYPE backend_requests_total counter
backend_requests_total{service="data_service",status="success"} 42
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="5000"} 30
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="10000"} 38
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="25000"} 41
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="10000000"} 42
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="+Inf"} 42
http_request_duration_seconds_sum{endpoint="/api/v1/rates/{ticker}"} 184250.5
http_request_duration_seconds_count{endpoint="/api/v1/rates/{ticker}"} 42
# TYPE backend_request_duration_seconds histogram
backend_request_duration_seconds_bucket{service="data_service",le="5000"} 40
backend_request_duration_seconds_bucket{service="data_service",le="+Inf"} 42
backend_request_duration_seconds_sum{service="data_service"} 90000
backend_request_duration_seconds_count{service="data_service"} 42
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="data_service",le="0.5"} 4
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="data_service",le="+Inf"} 42
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="data_service"} 99.5
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="data_service"} 42
"#;

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

async fn spawn(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

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
    spawn(router).await
}

/// A backend answering `/health` healthy and `/metrics` with `metrics`.
async fn fake_backend(metrics: &'static str) -> SocketAddr {
    let router = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status":"healthy","version":"0.1.0"})) }),
        )
        .route("/metrics", get(move || async move { metrics }));
    spawn(router).await
}

/// A backend whose `/health` fails (database unreachable).
async fn failing_backend() -> SocketAddr {
    let router = Router::new().route(
        "/health",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "{}") }),
    );
    spawn(router).await
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
    let url = |a: SocketAddr| format!("http://{a}");
    let config = OpsConfig {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        envoy_admin_url: url(deps.admin),
        backends: vec![
            Backend {
                name: "data_service".into(),
                base_url: url(deps.data),
                critical: true,
            },
            Backend {
                name: "calculation_service".into(),
                base_url: url(deps.calculation),
                critical: true,
            },
            Backend {
                name: "auth_service".into(),
                base_url: url(deps.auth),
                critical: true,
            },
            Backend {
                name: "rate_limit_service".into(),
                base_url: url(deps.rate_limit),
                critical: false,
            },
        ],
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

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_text(url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = client().get(url).send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
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

#[tokio::test]
async fn metrics_expose_only_spec_and_resilience_families_with_durations_in_seconds() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let (status, headers, text) = get_text(&format!("{ops}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE.as_str()]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_valid_exposition(&text);

    for spec in [
        r#"http_requests_total{endpoint="/api/v1/rates/{ticker}",method="GET",status_code="200"} 40"#,
        r#"authentication_attempts_total{status="invalid_key"} 3"#,
        "rate_limit_exceeded_total 5",
        r#"backend_requests_total{service="data_service",status="success"} 42"#,
        r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.005"} 30"#,
        r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.01"} 38"#,
        r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="10"} 42"#,
        r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="+Inf"} 42"#,
        r#"http_request_duration_seconds_sum{endpoint="/api/v1/rates/{ticker}"} 0.1842505"#,
        r#"backend_request_duration_seconds_sum{service="data_service"} 0.09"#,
        r#"envoy_cluster_upstream_rq_pending_overflow{envoy_cluster_name="data_service"} 11"#,
        r#"envoy_cluster_upstream_cx_overflow{envoy_cluster_name="data_service"} 2"#,
        r#"envoy_cluster_upstream_rq_retry{envoy_cluster_name="data_service"} 3"#,
        r#"envoy_cluster_outlier_detection_ejections_enforced_total{envoy_cluster_name="data_service"} 1"#,
        r#"envoy_cluster_membership_healthy{envoy_cluster_name="data_service"} 1"#,
        "jwt_tokens_issued_total 7",
        r#"data_rate_lookups_total{outcome="found"} 40"#,
        r#"ops_scrape_errors_total{target="envoy"} 0"#,
    ] {
        assert!(text.contains(spec), "missing `{spec}` in\n{text}");
    }
    for leaked in [
        "envoy_server_memory_allocated",
        "envoy_http_downstream_rq_total",
        "hot_restart",
        "envoy_cluster_upstream_rq_time",
        r#"le="5000""#,
    ] {
        assert!(!text.contains(leaked), "`{leaked}` must not be exposed");
    }
    assert_eq!(text.matches("# TYPE jwt_tokens_issued_total").count(), 1);
}

#[tokio::test]
async fn monitoring_metrics_is_the_same_exposition() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let (_, _, a) = get_text(&format!("{ops}/metrics")).await;
    let (status, _, b) = get_text(&format!("{ops}/monitoring/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    // The ops service's own process_* (CPU, memory, fds) move between two
    // scrapes; everything else is the same.
    let steady = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with("process_"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert!(a.contains("\nprocess_resident_memory_bytes "), "{a}");
    assert!(a.contains("\nops_build_info{version=\""), "{a}");
    assert_eq!(steady(&a), steady(&b));
}

#[tokio::test]
async fn a_backend_that_is_down_is_skipped_and_counted_not_fatal() {
    let mut deps = Deps::all_up().await;
    deps.rate_limit = closed_addr();
    let ops = start_ops(&deps).await;
    let (status, _, first) = get_text(&format!("{ops}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        first.contains(r#"ops_scrape_errors_total{target="rate_limit_service"} 1"#),
        "{first}"
    );
    assert!(first.contains("jwt_tokens_issued_total 7"));
    assert!(first.contains("http_requests_total{"));
    let (_, _, second) = get_text(&format!("{ops}/metrics")).await;
    assert!(second.contains(r#"ops_scrape_errors_total{target="rate_limit_service"} 2"#));
    assert!(second.contains(r#"ops_scrape_errors_total{target="auth_service"} 0"#));
}

#[tokio::test]
async fn envoy_admin_down_still_serves_the_backends_metrics() {
    let mut deps = Deps::all_up().await;
    deps.admin = closed_addr();
    let ops = start_ops(&deps).await;
    let (status, _, text) = get_text(&format!("{ops}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid_exposition(&text);
    assert!(text.contains(r#"ops_scrape_errors_total{target="envoy"} 1"#));
    assert!(text.contains("jwt_tokens_issued_total 7"));
    assert!(!text.contains("http_requests_total"));
}

#[tokio::test]
async fn detailed_health_reports_every_dependency_with_latency() {
    let mut deps = Deps::all_up().await;
    deps.redis_url = Some("redis://127.0.0.1:6379/0".into());
    let ops = start_ops(&deps).await;
    let (status, _, body) = get_text(&format!("{ops}/health/detailed")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(v["status"], "healthy", "{body}");
    let deps = v["dependencies"].as_object().unwrap();
    let mut names: Vec<&str> = deps.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "auth_service",
            "calculation_service",
            "data_service",
            "database",
            "rate_limit_service",
            "redis"
        ]
    );
    for (name, d) in deps {
        assert_eq!(d["status"], "healthy", "{name}: {d}");
        let latency = d["latency_ms"].as_f64().unwrap();
        assert!((0.0..1500.0).contains(&latency), "{name}: {latency}");
    }
    assert_eq!(deps["data_service"]["version"], "0.1.0");
    assert_eq!(deps["redis"]["critical"], false);
    assert_eq!(deps["database"]["critical"], true);
}

#[tokio::test]
async fn the_real_postgres_database_answers_the_ping() {
    let mut deps = Deps::all_up().await;
    deps.database_url = Some("postgres://postgres@127.0.0.1:5432/test".into());
    let ops = start_ops(&deps).await;
    let (status, _, body) = get_text(&format!("{ops}/health/database")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["kind"], "database");
}

#[tokio::test]
async fn a_non_critical_dependency_down_is_degraded_with_200() {
    let mut deps = Deps::all_up().await;
    deps.rate_limit = closed_addr();
    deps.redis_url = Some(format!("redis://{}", closed_addr()));
    let ops = start_ops(&deps).await;
    let (status, _, body) = get_text(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(
        v["dependencies"]["rate_limit_service"]["status"],
        "unhealthy"
    );
    assert_eq!(v["dependencies"]["redis"]["status"], "unhealthy");
    assert!(v["dependencies"]["redis"]["error"].is_string());
}

#[tokio::test]
async fn a_critical_dependency_down_is_unhealthy_with_503() {
    let mut deps = Deps::all_up().await;
    deps.calculation = failing_backend().await;
    let ops = start_ops(&deps).await;
    let (status, _, body) = get_text(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert_eq!(
        v["dependencies"]["calculation_service"]["status"],
        "unhealthy"
    );
    assert_eq!(
        v["dependencies"]["calculation_service"]["error"],
        "/health answered 503"
    );
    assert_eq!(v["dependencies"]["data_service"]["status"], "healthy");
}

#[tokio::test]
async fn a_missing_sqlite_database_is_unhealthy() {
    let mut deps = Deps::all_up().await;
    deps.database_url = Some("sqlite:///nonexistent-dir/none.db".into());
    let ops = start_ops(&deps).await;
    let (status, _, body) = get_text(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["dependencies"]["database"]["status"], "unhealthy");
}

#[tokio::test]
async fn one_dependency_answers_200_when_healthy_and_503_when_not() {
    let mut deps = Deps::all_up().await;
    deps.auth = failing_backend().await;
    let ops = start_ops(&deps).await;
    let (status, _, body) = get_text(&format!("{ops}/health/data_service")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("data_service"), Some("healthy"))
    );
    let (status, _, body) = get_text(&format!("{ops}/health/auth_service")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn an_unknown_dependency_is_a_404_envelope_with_the_request_id() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let r = client()
        .get(format!("{ops}/health/mainframe"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["code"], "NOT_FOUND");
    assert_eq!(v["error"]["request_id"], "req-abc-123");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_envelope() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let (status, headers, body) = get_text(&format!("{ops}/admin/clusters")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "NOT_FOUND");
    let rid = headers["x-request-id"].to_str().unwrap();
    assert!(!rid.is_empty());
    assert_eq!(v["error"]["request_id"], rid);

    let r = client()
        .post(format!("{ops}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn discovery_without_identity_is_401() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let r = client()
        .get(format!("{ops}/discovery/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn discovery_without_the_admin_scope_is_403() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    for scopes in ["", "read", "administrator"] {
        let r = client()
            .get(format!("{ops}/discovery/services"))
            .header("x-client-id", "test123")
            .header("x-client-scopes", scopes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "scopes {scopes:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "FORBIDDEN");
    }
}

#[tokio::test]
async fn discovery_lists_routed_services_with_healthy_and_total_endpoints() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let r = client()
        .get(format!("{ops}/discovery/services"))
        .header("x-client-id", "ops-team")
        .header("x-client-scopes", "read admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "success");
    let services = v["services"].as_array().unwrap();
    let data = services
        .iter()
        .find(|s| s["service"] == "data_service")
        .unwrap();
    assert_eq!(data["cluster"], "data_service");
    assert_eq!(data["healthy_endpoints"], 1);
    assert_eq!(data["total_endpoints"], 2);
    assert_eq!(data["routes"][0]["pattern"], "/api/v1/rates/[^/]+");
    assert_eq!(
        data["endpoints"][1]["health_flags"][0],
        "failed_active_health_check"
    );
    let calc = services
        .iter()
        .find(|s| s["service"] == "calculation_service")
        .unwrap();
    assert_eq!(calc["routes"][0]["pattern"], "/api/v1/calculate-locate");
    let rls = services.last().unwrap();
    assert_eq!(rls["service"], "rate_limit_service");
    assert_eq!(rls["routes"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn discovery_with_envoy_admin_down_is_a_503_envelope() {
    let mut deps = Deps::all_up().await;
    deps.admin = closed_addr();
    let ops = start_ops(&deps).await;
    let r = client()
        .get(format!("{ops}/discovery/services"))
        .header("x-client-id", "ops-team")
        .header("x-client-scopes", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn the_openapi_document_is_served_as_json() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;
    let r = client()
        .get(format!("{ops}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["info"]["title"], "Borrow Rate & Locate Fee API");
    assert!(v["components"]["securitySchemes"]["ApiKeyAuth"].is_object());
    assert!(v["components"]["securitySchemes"]["BearerAuth"].is_object());
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

#[tokio::test]
async fn the_docs_page_and_its_files_are_served_from_the_binary_with_a_same_origin_policy() {
    let deps = Deps::all_up().await;
    let ops = start_ops(&deps).await;

    for path in ["/docs", "/docs/"] {
        let (status, headers, source) = get_text(&format!("{ops}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(source.contains(r#"<div id="swagger-ui"></div>"#));
        assert!(!source.contains("https://") && !source.contains("http://"));
    }
    for file in ops_service::docs_page::ASSETS {
        let r = client()
            .get(format!("{ops}/docs/{file}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{file}"
        );
        assert!(r.bytes().await.unwrap().len() > 100, "{file}");
    }
    let (_, _, init) = get_text(&format!("{ops}/docs/swagger-initializer.js")).await;
    assert!(init.contains(r#""url": "/openapi.json""#), "{init}");
    for unknown in [
        "/docs/index.html",
        "/docs/oauth2-redirect.html",
        "/docs/nope.js",
    ] {
        let (status, _, body) = get_text(&format!("{ops}{unknown}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
            "NOT_FOUND"
        );
    }
}

/// Where the built filters are: this build's target directory, or the
/// filters' own target directory.
fn wasm_dir() -> Option<PathBuf> {
    let root = e2e::repo_root();
    [
        e2e::target_dir().join("wasm32-wasip1/release"),
        root.join("target/filters/wasm32-wasip1/release"),
        root.join("target/wasm32-wasip1/release"),
    ]
    .into_iter()
    .find(|d| {
        ["auth_filter", "validation_filter", "metrics_filter"]
            .iter()
            .all(|f| d.join(format!("{f}.wasm")).exists())
    })
}

const JWT_SECRET: &str = "schemathesis-run-secret-0123456789abcdef";

/// The gateway's own Envoy configuration (gateway-config, local shape, TLS
/// and global rate limiting off), pointed at the given upstreams; listener
/// and admin ports left for the harness.
fn rendered_gateway(upstreams: &[(&str, SocketAddr)], wasm: &std::path::Path) -> String {
    use gateway_config::envoy::Port;
    let mut options = gateway_config::Options::new(gateway_config::Shape::Local);
    options.tls = false;
    options.listener_port = Port::Placeholder("{{LISTENER_PORT}}".into());
    options.admin_port = Port::Placeholder("{{ADMIN_PORT}}".into());
    options.wasm_dir = Some(wasm.display().to_string());
    options.upstreams = upstreams
        .iter()
        .map(|(cluster, addr)| format!("{cluster}={addr}"))
        .collect();
    let sets = [
        "ENABLE_RATE_LIMITING=false".to_owned(),
        format!("JWT_SECRET_KEY={JWT_SECRET}"),
    ];
    e2e::render_gateway(&options, &sets, true).unwrap_or_else(|e| panic!("render failed: {e}"))
}

fn schemathesis() -> Option<PathBuf> {
    let p = e2e::repo_root().join(".venv/bin/schemathesis");
    p.exists().then_some(p)
}

/// Runs schemathesis (bounded: examples per operation and wall time) and
/// answers (success, output).
async fn run_schemathesis(schema_url: &str, base_url: &str, extra: &[&str]) -> (bool, String) {
    let bin =
        schemathesis().expect("schemathesis is not installed: .venv/bin/pip install schemathesis");
    let dir = tempdir("schemathesis");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.current_dir(&dir)
        .args(["run", schema_url, "--url", base_url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--max-time",
            "150",
            "--request-timeout",
            "10",
            "--workers",
            "2",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--suppress-health-check",
            "all",
        ])
        .args(extra)
        .env("NO_PROXY", "*")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("schemathesis did not finish within 240 s")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The gateway's real Envoy configuration (auth, validation and metrics
/// filters, local replies, routes) in front of the real data, calculation,
/// auth and ops services, with a real admin key of client `test123`.
struct GatewayStack {
    envoy: e2e::Envoy,
    key: String,
    dir: PathBuf,
    /// The backends' servers and states, alive as long as the stack.
    _servers: Vec<Box<dyn std::any::Any + Send>>,
}

/// Starts a [`GatewayStack`] and waits (bounded) until it answers.
async fn gateway_stack() -> GatewayStack {
    let Some(wasm) = wasm_dir() else {
        panic!("the filters are not built: run `make wasm`");
    };
    let dir = tempdir("schemathesis-db");
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("gateway.db").display());
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();

    let service_config = services::Config::new(any_port, database_url.clone());
    let (data, data_state) = services::start_data_service(&service_config).await.unwrap();
    let (calc, calc_state) = services::start_calculation_service(&service_config)
        .await
        .unwrap();
    let auth_config = auth_service::config::Config::hs256(
        services::Config::new(any_port, database_url.clone()),
        JWT_SECRET,
    );
    let (auth, auth_state) = auth_service::start(&auth_config).await.unwrap();
    let key = auth_state
        .store
        .create_api_key(&store::NewApiKey {
            client_id: "test123".into(),
            scopes: vec!["admin".into()],
            rate_limit_per_minute: None,
            expires_at: None,
        })
        .await
        .unwrap()
        .key;
    // The rate-limit service is not in the request path here (global rate
    // limiting off); a stand-in answers its health check.
    let rate_limit = fake_backend("").await;

    // Held from now on, so no ephemeral port of Envoy's connections takes it.
    let ops_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops_addr: SocketAddr = ops_listener.local_addr().unwrap();
    let envoy = e2e::Envoy::start(&rendered_gateway(
        &[
            ("data_service", data.addr),
            ("calculation_service", calc.addr),
            ("auth_service", auth.addr),
            ("ops_service", ops_addr),
        ],
        &wasm,
    ))
    .await;
    let url = |a: SocketAddr| format!("http://{a}");
    let ops = build_on(
        OpsConfig {
            listen_addr: ops_addr,
            envoy_admin_url: format!("http://127.0.0.1:{}", envoy.admin_port),
            backends: vec![
                Backend {
                    name: "data_service".into(),
                    base_url: url(data.addr),
                    critical: true,
                },
                Backend {
                    name: "calculation_service".into(),
                    base_url: url(calc.addr),
                    critical: true,
                },
                Backend {
                    name: "auth_service".into(),
                    base_url: url(auth.addr),
                    critical: true,
                },
                Backend {
                    name: "rate_limit_service".into(),
                    base_url: url(rate_limit),
                    critical: false,
                },
            ],
            database_url: Some(database_url),
            redis_url: Some("redis://127.0.0.1:6379".into()),
            probe_timeout: Duration::from_millis(2000),
        },
        ops_listener,
    )
    .await
    .unwrap();
    tokio::spawn(ops.serve(std::future::pending()));

    // The chain answers once the active health checks of both the data
    // service and the ops service (started after Envoy) have passed (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for path in ["/api/v1/rates/AAPL", "/discovery/services"] {
        loop {
            let r = client()
                .get(envoy.url(path))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            if status == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway never answered 200 on {path}: {status} {body}\n{}",
                envoy.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    GatewayStack {
        envoy,
        key,
        dir,
        _servers: vec![
            Box::new(data),
            Box::new(data_state),
            Box::new(calc),
            Box::new(calc_state),
            Box::new(auth),
            Box::new(auth_state),
        ],
    }
}

/// The whole public API through the gateway's real Envoy configuration
/// (auth, validation and metrics filters, local replies, routes) in front of
/// the real data, calculation, auth and ops services, with a real admin key.
/// Schemathesis generates valid and invalid requests from `/openapi.json`
/// and checks every answer against the document.
#[tokio::test]
async fn schemathesis_finds_no_server_errors_and_no_undocumented_answers_through_the_gateway() {
    let GatewayStack {
        envoy,
        key,
        dir,
        _servers,
    } = gateway_stack().await;

    // The operator endpoints through the real gateway and its real admin API.
    let r = client()
        .get(envoy.url("/discovery/services"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    let data_service = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cluster"] == "data_service")
        .cloned()
        .unwrap_or_else(|| panic!("no data_service in {v}"));
    assert_eq!(data_service["healthy_endpoints"], 1, "{data_service}");
    assert_eq!(data_service["total_endpoints"], 1, "{data_service}");
    assert!(
        !data_service["routes"].as_array().unwrap().is_empty(),
        "{data_service}"
    );
    let (status, _, body) = get_text(&envoy.url("/health/detailed")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "healthy",
        "{body}"
    );
    // The ops service's own probes through the gateway's `/health/` route,
    // public like every `/health/*` path, not taken for dependency names.
    for probe in ["/health/live", "/health/ready"] {
        let (status, _, body) = get_text(&envoy.url(probe)).await;
        assert_eq!(status, StatusCode::OK, "{probe}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["status"],
            "healthy",
            "{probe}: {body}"
        );
    }
    let (status, _, metrics) = get_text(&envoy.url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid_exposition(&metrics);
    assert!(
        metrics.contains(r#"endpoint="/api/v1/rates/{ticker}""#),
        "{metrics}"
    );
    assert!(
        metrics.contains("authentication_attempts_total{"),
        "{metrics}"
    );
    assert!(!metrics.contains("envoy_server_"), "{metrics}");

    let (ok, output) = run_schemathesis(
        &envoy.url("/openapi.json"),
        &envoy.url(""),
        &["-H", &format!("X-API-Key: {key}")],
    )
    .await;
    let summary: String = output
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let log = e2e::target_dir().join("schemathesis-gateway.log");
    let _ = std::fs::write(&log, &output);
    println!("{summary}\nfull output: {}", log.display());
    assert!(ok, "schemathesis found problems:\n{output}");
    // Every operation of the document is exercised (schemathesis leaves out
    // the schema's own `/openapi.json`).
    let tested = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert!(tested >= 10, "only {tested} operations tested:\n{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Python with Playwright (`make test-tools` installs it into `.venv`).
fn playwright_python() -> PathBuf {
    let python = e2e::repo_root().join(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import playwright"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Playwright is not installed: make test-tools (or .venv/bin/pip install playwright)"
    );
    python
}

/// The docs page (Swagger UI) through the real gateway in Debian's headless
/// Chromium, driven by Playwright as a person would use it
/// (`tests/browser/docs_page.py`): Authorize with a real API key, Try it
/// out on `POST /api/v1/calculate-locate` with the SPEC §5 worked example,
/// the page shows 200 and `total_fee` 58.75; without the key it shows 401;
/// nothing is fetched from another origin and no CSP violation occurs.
/// Writes its screenshot to the target directory, and the README's
/// `docs/api-docs.png` when `UPDATE_DOCS_SCREENSHOT=1`.
#[tokio::test]
async fn the_docs_page_authorizes_and_tries_out_a_locate_fee_in_a_real_browser() {
    let python = playwright_python();
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium is not installed: apt-get install -y chromium");
    let GatewayStack {
        envoy,
        key,
        dir,
        _servers,
    } = gateway_stack().await;

    // The page and exactly its files need no credential; any other name
    // under /docs/ does, and with one the ops service answers 404.
    for path in ["/docs", "/docs/"].into_iter().map(str::to_owned).chain(
        ops_service::docs_page::ASSETS
            .iter()
            .map(|f| format!("/docs/{f}")),
    ) {
        let r = client().get(envoy.url(&path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} without a credential");
    }
    let r = client()
        .get(envoy.url("/docs/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client()
        .get(envoy.url("/docs/nope.js"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    let shot = if std::env::var("UPDATE_DOCS_SCREENSHOT").as_deref() == Ok("1") {
        e2e::repo_root().join("docs/api-docs.png")
    } else {
        e2e::target_dir().join("api-docs.png")
    };
    let before = std::fs::metadata(&shot).and_then(|m| m.modified()).ok();
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(e2e::repo_root().join("tests/browser/docs_page.py"))
        .arg(format!("--base-url={}", envoy.url("")))
        .arg("--client-id=test123")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--chromium={}", chromium.display()))
        .env("DOCS_API_KEY", &key)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("NO_PROXY", "*")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the browser test did not finish within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the docs page failed in the browser:\n{stdout}\n{stderr}\ngateway log (tail):\n{}",
        envoy
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stdout.contains("authorized: 200, total_fee 58.75"),
        "{stdout}"
    );
    assert!(stdout.contains("not authorized: 401"), "{stdout}");
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(
        std::fs::metadata(&shot).and_then(|m| m.modified()).ok() != before,
        "the screenshot was not rewritten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
