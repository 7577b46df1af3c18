//! The gateway's Envoy configuration, rendered by gateway-config and run in
//! a real Envoy: routes, the 404/405 envelope, edge hardening, resilient
//! clusters (health checks, safe retries, circuit breakers) and TLS.
//!
//! These suites exercise Envoy's own behaviour, so the config is rendered
//! without the wasm filters (they have their own suites) and with
//! authentication and rate limiting off; test backends stand in for the
//! services.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use e2e::{free_port, render_gateway, repo_root, CountingUpstream, Envoy};
use gateway_config::envoy::Port;
use gateway_config::{Options, Shape};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Rendering and starting the gateway
// ---------------------------------------------------------------------------

fn cert_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gateway-tls-certs-{}", std::process::id()));
        let status = Command::new(repo_root().join("scripts/gen-cert.sh"))
            .arg(&dir)
            .status()
            .expect("scripts/gen-cert.sh runs");
        assert!(status.success(), "scripts/gen-cert.sh failed");
        dir
    })
    .clone()
}

/// Which backend ports each cluster gets, plus renderer settings.
#[derive(Default)]
struct Setup {
    upstreams: Vec<(&'static str, Vec<u16>)>,
    sets: Vec<(&'static str, String)>,
    tls_port: Option<u16>,
}

impl Setup {
    fn upstream(mut self, cluster: &'static str, ports: &[u16]) -> Self {
        self.upstreams.push((cluster, ports.to_vec()));
        self
    }
    fn set(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.sets.push((k, v.into()));
        self
    }
    fn tls(mut self) -> Self {
        self.tls_port = Some(free_port());
        self
    }

    fn render(&self) -> String {
        let mut options = Options::new(Shape::Local);
        options.no_wasm = true;
        options.listener_port = Port::Placeholder("{{LISTENER_PORT}}".into());
        options.admin_port = Port::Placeholder("{{ADMIN_PORT}}".into());
        match self.tls_port {
            Some(p) => {
                options.tls = true;
                options.tls_port = Port::Number(p);
                options.cert_dir = Some(cert_dir().display().to_string());
            }
            None => options.tls = false,
        }
        let mut sets = vec![
            "ENABLE_AUTHENTICATION=false".to_owned(),
            "ENABLE_RATE_LIMITING=false".to_owned(),
        ];
        sets.extend(self.sets.iter().map(|(k, v)| format!("{k}={v}")));
        // Clusters without a test backend point at a closed port.
        let closed = free_port();
        for cluster in [
            "data_service",
            "calculation_service",
            "auth_service",
            "ops_service",
        ] {
            let ports = self
                .upstreams
                .iter()
                .find(|(c, _)| *c == cluster)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| vec![closed]);
            let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            options
                .upstreams
                .push(format!("{cluster}={}", hosts.join(",")));
        }
        // Only the settings given here, never the test process's own.
        render_gateway(&options, &sets, false).unwrap_or_else(|e| panic!("render failed: {e}"))
    }

    async fn start(self) -> (Envoy, Option<u16>) {
        let yaml = self.render();
        (Envoy::start(&yaml).await, self.tls_port)
    }
}

// ---------------------------------------------------------------------------
// A backend that can be killed and brought back on the same port
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 to everything.
    Healthy,
    /// 200 on /health, 500 with a backend envelope on everything else.
    FailsRequests,
    /// 200 on /health at once, everything else after the delay.
    Slow(Duration),
}

/// A backend in its own runtime on its own thread: `kill` drops the runtime,
/// which closes the listener and every open connection, like a crash.
struct TestBackend {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestBackend {
    fn start(behaviour: Behaviour) -> TestBackend {
        Self::start_on(free_port(), behaviour, Arc::new(AtomicUsize::new(0)))
    }

    fn start_on(port: u16, behaviour: Behaviour, hits: Arc<AtomicUsize>) -> TestBackend {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let counter = hits.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(move |uri: Uri| {
                    let counter = counter.clone();
                    async move {
                        if uri.path() == "/health" {
                            return (StatusCode::OK, r#"{"status":"healthy","version":"0.1.0"}"#)
                                .into_response();
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        match behaviour {
                            Behaviour::Healthy => (
                                StatusCode::OK,
                                [("content-type", "application/json")],
                                r#"{"status":"success"}"#,
                            )
                                .into_response(),
                            Behaviour::FailsRequests => (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                [("content-type", "application/json")],
                                r#"{"status":"error","error":{"code":"INTERNAL_ERROR","message":"boom","request_id":""}}"#,
                            )
                                .into_response(),
                            Behaviour::Slow(d) => {
                                tokio::time::sleep(d).await;
                                (StatusCode::OK, r#"{"status":"success"}"#).into_response()
                            }
                        }
                    }
                });
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
            // Dropping the runtime cancels every connection task.
            drop(rt);
        });
        TestBackend {
            port,
            hits,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn kill(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Talking to the gateway
// ---------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
    /// Asserts the SPEC §6 envelope with `code`, and that its request id is
    /// the x-request-id header.
    fn assert_envelope(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "content-type of {}",
            self.body
        );
        let v = self.json();
        assert_eq!(v["status"], "error", "{}", self.body);
        assert_eq!(v["error"]["code"], code, "{}", self.body);
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let rid = self.header("x-request-id").expect("x-request-id header");
        assert!(!rid.is_empty());
        assert_eq!(
            v["error"]["request_id"], rid,
            "request_id matches x-request-id"
        );
    }
}

/// One HTTP/1.1 request written byte for byte (no client-side path
/// normalisation), answered with `Connection: close`. Blocking: the tests
/// run on a multi-threaded runtime so in-process upstreams keep serving.
fn raw(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let (status, headers, body) = e2e::parse_response(&buf);
    assert!(
        status != 0,
        "no status line in {:?}",
        String::from_utf8_lossy(&buf)
    );
    let headers: HashMap<String, String> = headers.into_iter().collect();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Reply {
    into_reply(client.get(url).send().await.expect("request")).await
}

async fn into_reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// A counter or gauge from Envoy's admin /stats (plain format).
async fn stat(envoy: &Envoy, name: &str) -> u64 {
    let text = envoy.admin_get(&format!("/stats?filter=^{name}$")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Routing and the envelope
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_public_route_reaches_its_backend_under_the_upstream_path() {
    let data = CountingUpstream::start().await;
    let calc = CountingUpstream::start().await;
    let auth = CountingUpstream::start().await;
    let ops = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .upstream("calculation_service", &[calc.port])
        .upstream("auth_service", &[auth.port])
        .upstream("ops_service", &[ops.port])
        .start()
        .await;
    let port = envoy.port;

    let r = raw(port, "GET", "/api/v1/rates/AAPL", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    let r = raw(
        port,
        "POST",
        "/api/v1/calculate-locate",
        &[("content-type", "application/json")],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(
        port,
        "POST",
        "/api/v1/auth/token",
        &[("x-api-key", "brl_x")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ops_paths = [
        "/health/detailed",
        "/health/data_service",
        "/metrics",
        "/monitoring/metrics",
        "/discovery/services",
        "/docs",
        "/docs/",
        "/docs/swagger-ui-bundle.js",
        "/openapi.json",
    ];
    for p in ops_paths {
        let r = raw(port, "GET", p, &[], "");
        assert_eq!(r.status, 200, "{p}: {}", r.body);
    }

    let seen = |u: &CountingUpstream| -> Vec<(String, String)> {
        u.requests()
            .iter()
            .filter(|r| r.path != "/health")
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    };
    assert_eq!(seen(&data), [("GET".into(), "/rates/AAPL".into())]);
    assert_eq!(seen(&calc), [("POST".into(), "/calculate-locate".into())]);
    let calc_req = calc
        .requests()
        .into_iter()
        .find(|r| r.path == "/calculate-locate")
        .expect("calc request");
    assert_eq!(calc_req.body, body.as_bytes(), "body forwarded unchanged");
    assert_eq!(seen(&auth), [("POST".into(), "/api/v1/auth/token".into())]);
    let ops_seen: Vec<String> = seen(&ops).into_iter().map(|(_, p)| p).collect();
    assert_eq!(ops_seen, ops_paths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_by_envoy_itself() {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    let r = raw(envoy.port, "GET", "/health", &[], "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"healthy","version":"0.1.0"})
    );
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let non_health = data
        .requests()
        .iter()
        .filter(|r| r.path != "/health")
        .count();
    assert_eq!(non_health, 0, "no backend involved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_a_404_envelope_and_never_reach_a_backend() {
    let up = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[up.port])
        .upstream("calculation_service", &[up.port])
        .upstream("auth_service", &[up.port])
        .upstream("ops_service", &[up.port])
        .start()
        .await;
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/api/v1/rates"),
        ("GET", "/api/v1/rates/AAPL/history"),
        ("POST", "/internal/v1/keys/verify"),
        ("GET", "/rates/AAPL"),
        ("GET", "/stats/prometheus"),
        ("GET", "/healthz"),
    ] {
        let r = raw(envoy.port, method, path, &[], "");
        r.assert_envelope(404, "NOT_FOUND");
    }
    let non_health = up.requests().iter().filter(|r| r.path != "/health").count();
    assert_eq!(non_health, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_on_a_known_path_gets_a_405_envelope_with_allow() {
    let up = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[up.port])
        .upstream("calculation_service", &[up.port])
        .upstream("auth_service", &[up.port])
        .upstream("ops_service", &[up.port])
        .start()
        .await;
    for (method, path, allow) in [
        ("POST", "/api/v1/rates/AAPL", "GET"),
        ("DELETE", "/api/v1/rates/AAPL", "GET"),
        ("GET", "/api/v1/calculate-locate", "POST"),
        ("PUT", "/api/v1/calculate-locate", "POST"),
        ("GET", "/api/v1/auth/token", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/health/detailed", "GET"),
        ("POST", "/metrics", "GET"),
        ("PATCH", "/discovery/services", "GET"),
    ] {
        let r = raw(envoy.port, method, path, &[], "");
        r.assert_envelope(405, "METHOD_NOT_ALLOWED");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    let non_health = up.requests().iter().filter(|r| r.path != "/health").count();
    assert_eq!(non_health, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_supplied_identity_headers_and_request_ids_never_reach_a_backend() {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[
            ("x-client-id", "big_fund"),
            ("x-client-scopes", "admin"),
            ("x-auth-method", "api_key"),
            ("x-client-rate-limit", "100000"),
            ("x-client-tier", "platinum"),
            ("x-api-key-id", "key_chosenByClient01"),
            ("x-request-id", "chosen-by-client"),
            ("x-forwarded-for", "10.9.9.9"),
        ],
        "",
    );
    assert_eq!(r.status, 200);
    assert_ne!(r.header("x-request-id"), Some("chosen-by-client"));
    let req = data
        .requests()
        .into_iter()
        .find(|r| r.path == "/rates/AAPL")
        .expect("forwarded");
    for h in [
        "x-client-id",
        "x-client-scopes",
        "x-auth-method",
        "x-client-rate-limit",
        "x-client-tier",
        "x-api-key-id",
    ] {
        assert_eq!(req.header(h), None, "{h} reached the backend");
    }
    assert_ne!(req.header("x-request-id"), Some("chosen-by-client"));
    assert_eq!(
        req.header("x-request-id"),
        r.header("x-request-id"),
        "same id both ways"
    );
    // The edge trusts no client hop: the external address is the peer's,
    // and a client-supplied X-Forwarded-For only gets Envoy's hop appended.
    assert_eq!(req.header("x-envoy-external-address"), Some("127.0.0.1"));
    let xff = req.header("x-forwarded-for").unwrap_or_default();
    assert!(
        xff.starts_with("10.9.9.9,") && xff.split(',').count() == 2,
        "{xff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_by_envoy_and_never_reach_a_backend() {
    let ops = CountingUpstream::start().await;
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("ops_service", &[ops.port])
        .upstream("data_service", &[data.port])
        .set("CORS_ORIGINS", "https://app.example.com")
        .start()
        .await;
    let preflight = |origin: &'static str| {
        raw(
            envoy.port,
            "OPTIONS",
            "/api/v1/rates/AAPL",
            &[("origin", origin), ("access-control-request-method", "GET")],
            "",
        )
    };
    let ok = preflight("https://app.example.com");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let other = preflight("https://evil.example.com");
    assert_eq!(other.header("access-control-allow-origin"), None);
    // A plain OPTIONS is not a preflight: the path does not serve it.
    raw(envoy.port, "OPTIONS", "/api/v1/rates/AAPL", &[], "")
        .assert_envelope(405, "METHOD_NOT_ALLOWED");
    // Actual requests: CORS headers for the allowed origin only.
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("origin", "https://app.example.com")],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("x-request-id")));
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("origin", "https://evil.example.com")],
        "",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let forwarded = |u: &CountingUpstream| {
        u.requests()
            .iter()
            .filter(|r| r.method == "OPTIONS")
            .count()
    };
    assert_eq!(
        forwarded(&ops) + forwarded(&data),
        0,
        "no preflight was forwarded"
    );
}

// ---------------------------------------------------------------------------
// Edge hardening
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_with_an_underscore_is_rejected() {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("x_client_id", "big_fund")],
        "",
    );
    // Rejected before Envoy assigns a request id: the reply still carries
    // one of its own, the same in the header and the body.
    r.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(
        data.requests()
            .iter()
            .filter(|r| r.path != "/health")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_slash_in_the_path_is_rejected() {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    for target in [
        "/api/v1/rates/AAPL%2F..%2F..%2Finternal",
        "/api/v1/rates/A%2fB",
        "/api/v1%2Frates/AAPL",
    ] {
        let r = raw(envoy.port, "GET", target, &[], "");
        r.assert_envelope(400, "VALIDATION_ERROR");
    }
    assert_eq!(
        data.requests()
            .iter()
            .filter(|r| r.path != "/health")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_slashes_and_dot_segments_are_normalised_before_routing() {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    for target in [
        "//api/v1//rates/AAPL",
        "/api/v1/x/../rates/AAPL",
        "/api/v1/./rates/AAPL",
        "/api/v1/%72ates/AAPL",
    ] {
        let r = raw(envoy.port, "GET", target, &[], "");
        assert_eq!(r.status, 200, "{target}: {}", r.body);
    }
    // `/internal/...` reached through dot segments is still not routed.
    let r = raw(
        envoy.port,
        "POST",
        "/api/v1/../../internal/v1/keys/verify",
        &[],
        "",
    );
    r.assert_envelope(404, "NOT_FOUND");
    let paths: Vec<String> = data
        .requests()
        .into_iter()
        .filter(|r| r.path != "/health")
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, vec!["/rates/AAPL"; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused() {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    let big = "a".repeat(40 * 1024);
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("x-padding", &big)],
        "",
    );
    assert_eq!(r.status, 431, "{}", r.body);
    assert_eq!(
        data.requests()
            .iter()
            .filter(|r| r.path != "/health")
            .count(),
        0
    );
}

// ---------------------------------------------------------------------------
// Resilience
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_gives_503_envelopes_and_traffic_recovers_without_restarting_envoy() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = free_port();
    let mut backend = TestBackend::start_on(port, Behaviour::Healthy, hits.clone());
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[port])
        .set("HEALTH_CHECK_INTERVAL_MS", "500")
        .start()
        .await;
    let client = reqwest::Client::new();
    let url = envoy.url("/api/v1/rates/AAPL");
    assert_eq!(get(&client, &url).await.status, 200);

    backend.kill();
    let killed_at = Instant::now();
    // Health-check window: 2 failed checks at 500 ms, plus a 1 s timeout.
    let window = Duration::from_secs(3);
    let r = get(&client, &url).await;
    r.assert_envelope(503, "SERVICE_UNAVAILABLE");
    loop {
        if stat(&envoy, "cluster.data_service.membership_healthy").await == 0 {
            break;
        }
        assert!(
            killed_at.elapsed() < window,
            "host still healthy after {window:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once ejected by the health checker, Envoy answers at once, with no
    // connection attempt.
    let r = get(&client, &url).await;
    r.assert_envelope(503, "SERVICE_UNAVAILABLE");
    assert!(stat(&envoy, "cluster.data_service.health_check.failure").await >= 2);

    let before = hits.load(Ordering::SeqCst);
    let _backend = TestBackend::start_on(port, Behaviour::Healthy, hits.clone());
    let back_at = Instant::now();
    loop {
        let r = get(&client, &url).await;
        if r.status == 200 {
            break;
        }
        assert!(
            back_at.elapsed() < window,
            "no recovery within {window:?}: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        hits.load(Ordering::SeqCst) > before,
        "the restarted backend served it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_retries_hide_one_failing_instance_of_two() {
    let good = TestBackend::start(Behaviour::Healthy);
    let bad = TestBackend::start(Behaviour::FailsRequests);
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[good.port, bad.port])
        .start()
        .await;
    let client = reqwest::Client::new();
    for i in 0..30 {
        let r = get(&client, &envoy.url("/api/v1/rates/AAPL")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert!(bad.hits() >= 1, "the failing instance was tried");
    assert!(
        good.hits() >= 30,
        "every request ended on the good instance"
    );
    assert!(stat(&envoy, "cluster.data_service.upstream_rq_retry").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calculation_that_failed_upstream_is_never_retried() {
    let good = TestBackend::start(Behaviour::Healthy);
    let bad = TestBackend::start(Behaviour::FailsRequests);
    let (envoy, _) = Setup::default()
        .upstream("calculation_service", &[good.port, bad.port])
        .start()
        .await;
    let client = reqwest::Client::new();
    let mut failures = 0;
    for _ in 0..30 {
        let r = client
            .post(envoy.url("/api/v1/calculate-locate"))
            .header("content-type", "application/json")
            .body(r#"{"ticker":"AAPL","position_value":100,"loan_days":1,"client_id":"test123"}"#)
            .send()
            .await
            .expect("request");
        match r.status().as_u16() {
            200 => {}
            500 => failures += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert!(
        bad.hits() >= 1,
        "the failing instance was chosen at least once"
    );
    assert_eq!(
        failures,
        bad.hits(),
        "each failed attempt reached the client, none retried"
    );
    assert_eq!(
        stat(&envoy, "cluster.calculation_service.upstream_rq_retry").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_trips_under_a_flood_to_a_slow_backend_and_counts_the_overflow() {
    let slow = TestBackend::start(Behaviour::Slow(Duration::from_millis(700)));
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[slow.port])
        .set("UPSTREAM_MAX_CONNECTIONS", "2")
        .set("UPSTREAM_MAX_REQUESTS", "2")
        .set("UPSTREAM_MAX_PENDING_REQUESTS", "2")
        .start()
        .await;
    let client = reqwest::Client::new();
    let url = envoy.url("/api/v1/rates/AAPL");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { get(&client, &url).await }));
    }
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            200 => ok += 1,
            503 => {
                r.assert_envelope(503, "SERVICE_UNAVAILABLE");
                shed += 1;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert!(
        ok >= 2,
        "the breaker lets the allowed requests through ({ok})"
    );
    assert!(shed >= 10, "most of the flood is shed ({shed} of 24)");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shedding is fast"
    );
    let overflow = stat(&envoy, "cluster.data_service.upstream_rq_pending_overflow").await
        + stat(&envoy, "cluster.data_service.upstream_rq_overflow").await;
    assert!(
        overflow >= shed as u64,
        "overflow counted: {overflow} for {shed} shed"
    );
    // A request whose attempt outlived the 1 s per-try timeout on a busy
    // machine is retried, and its retry may be the one shed: that request
    // reached the backend once. Every other shed request never did.
    let retried = stat(&envoy, "cluster.data_service.upstream_rq_retry").await;
    assert!(
        slow.hits() as u64 <= (24 - shed) as u64 + retried,
        "shed requests never reached the backend ({} hits, {shed} shed, {retried} retried)",
        slow.hits()
    );
}

/// An upstream that answers `/health` properly and everything else with
/// bytes that are not HTTP. Stops when the test process ends.
fn start_garbage_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let answer: &[u8] = if head.starts_with("GET /health ") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
                } else {
                    b"THIS IS NOT HTTP\r\n\r\n"
                };
                let _ = conn.write_all(answer);
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_gets_a_504_envelope_within_the_route_timeout() {
    let slow = TestBackend::start(Behaviour::Slow(Duration::from_secs(10)));
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[slow.port])
        .start()
        .await;
    let started = Instant::now();
    let r = get(&reqwest::Client::new(), &envoy.url("/api/v1/rates/AAPL")).await;
    r.assert_envelope(504, "BACKEND_TIMEOUT");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "per-try timeout is 1 s, took {took:?}"
    );
    assert!(
        took < Duration::from_millis(4500),
        "route timeout is 3 s, took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answering_garbage_gets_a_502_envelope() {
    let port = start_garbage_upstream();
    let (envoy, _) = Setup::default()
        .upstream("calculation_service", &[port])
        .start()
        .await;
    let r = into_reply(
        reqwest::Client::new()
            .post(envoy.url("/api/v1/calculate-locate"))
            .header("content-type", "application/json")
            .body(r#"{"ticker":"AAPL","position_value":100,"loan_days":1,"client_id":"test123"}"#)
            .send()
            .await
            .expect("request"),
    )
    .await;
    r.assert_envelope(502, "BACKEND_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_admin_listener_exposes_only_the_read_only_views_the_ops_service_reads() {
    let data = CountingUpstream::start().await;
    let stats_port = free_port();
    let closed = free_port();
    let mut options = Options::new(Shape::Compose);
    options.no_wasm = true;
    options.tls = false;
    options.listen_address = Some("127.0.0.1".into());
    options.listener_port = Port::Placeholder("{{LISTENER_PORT}}".into());
    options.admin_port = Port::Placeholder("{{ADMIN_PORT}}".into());
    options.stats_port = Port::Number(stats_port);
    options.upstreams = vec![
        format!("data_service=127.0.0.1:{}", data.port),
        format!("calculation_service=127.0.0.1:{closed}"),
        format!("auth_service=127.0.0.1:{closed}"),
        format!("ops_service=127.0.0.1:{closed}"),
    ];
    let sets = [
        "ENABLE_AUTHENTICATION=false".to_owned(),
        "ENABLE_RATE_LIMITING=false".to_owned(),
    ];
    let yaml = render_gateway(&options, &sets, false).unwrap_or_else(|e| panic!("render: {e}"));
    let envoy = Envoy::start(&yaml).await;
    assert_eq!(
        raw(envoy.port, "GET", "/api/v1/rates/AAPL", &[], "").status,
        200
    );

    let stats = raw(stats_port, "GET", "/stats/prometheus", &[], "");
    assert_eq!(stats.status, 200);
    assert!(
        stats.body.contains("envoy_cluster_upstream_rq_total"),
        "Prometheus text"
    );
    let clusters = raw(stats_port, "GET", "/clusters?format=json", &[], "");
    assert_eq!(clusters.status, 200);
    assert!(
        clusters.json()["cluster_statuses"].is_array(),
        "{}",
        clusters.body
    );
    let routes = raw(
        stats_port,
        "GET",
        "/config_dump?resource=static_route_configs",
        &[],
        "",
    );
    assert_eq!(routes.status, 200);
    assert!(routes.body.contains("/api/v1/rates/{ticker}"));

    for (method, target) in [
        ("GET", "/config_dump"),
        ("GET", "/config_dump?resource=static_listeners"),
        ("GET", "/clusters"),
        ("GET", "/stats"),
        ("GET", "/runtime"),
        ("POST", "/quitquitquit"),
        ("POST", "/healthcheck/fail"),
        ("POST", "/logging?level=trace"),
        ("POST", "/stats/prometheus"),
    ] {
        let r = raw(stats_port, method, target, &[], "");
        assert_eq!(
            r.status, 404,
            "{method} {target} must not reach the admin API"
        );
    }
    // Envoy is still serving (nothing above reached the admin API).
    assert_eq!(raw(envoy.port, "GET", "/health", &[], "").status, 200);
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// `openssl s_client` against the TLS listener: (exit success, all output).
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("s_client")
        .args([
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_handshakes_succeed_and_older_or_weak_ones_fail() {
    let (_envoy, tls) = Setup::default().tls().start().await;
    let tls = tls.expect("tls port");

    let (ok, out) = s_client(tls, &["-tls1_3"]);
    assert!(ok && out.contains("TLSv1.3"), "TLS 1.3 refused:\n{out}");
    let (ok, out) = s_client(tls, &["-tls1_2"]);
    assert!(ok && out.contains("TLSv1.2"), "TLS 1.2 refused:\n{out}");
    assert!(out.contains("ECDHE"), "forward-secret suite:\n{out}");

    // The client is allowed to offer TLS 1.1 (security level 0), so the
    // refusal comes from the server.
    let (ok, out) = s_client(tls, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 accepted:\n{out}");
    assert!(
        out.contains("alert protocol version"),
        "server refused the version:\n{out}"
    );

    let (ok, out) = s_client(tls, &["-tls1_2", "-cipher", "AES128-SHA"]);
    assert!(!ok, "a non-forward-secret CBC suite was accepted:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_on_tls_responses_only() {
    let (envoy, tls) = Setup::default().tls().start().await;
    let tls = tls.expect("tls port");
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{tls}/health"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{text}"
    );
    // Error answers over TLS carry it too.
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{tls}/nope"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/2 404"), "{text}");
    assert!(text.contains("strict-transport-security:"), "{text}");

    let plain = raw(envoy.port, "GET", "/health", &[], "");
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("strict-transport-security"),
        None,
        "no HSTS over plain HTTP"
    );
}
