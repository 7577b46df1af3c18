//! A real Prometheus (Debian package `prometheus`, run directly on a free
//! loopback port with a temporary config) scrapes the gateway's `/metrics`
//! through a real Envoy running the real auth filter, which records the
//! metrics as in the rendered gateway, and the
//! operators' SPEC §8 PromQL queries answer non-empty, plausible values —
//! durations in seconds, not microseconds.
//!
//! Chain: Prometheus → Envoy `/metrics` route → ops service → Envoy admin
//! `/stats/prometheus` (+ the backends' own `/metrics`).
//!
//! Two gateway instances (each an Envoy with its own ops service, as in a
//! pod) scraped on the ops services' internal ports as separate targets,
//! plus the backends: per-instance series in seconds with the
//! sub-millisecond buckets. And what an anonymous caller of the listener
//! gets from `/metrics` and `/health/detailed`: no client id, which the
//! internal port has.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use ops_service::{build_on, Backend, OpsConfig};
use serde_json::Value;

/// A key the fake auth service knows (`brl_` + 40 base62 characters) and
/// the lower-case hex SHA-256 the auth filter sends for it.
const GOOD_KEY: &str = "brl_OpsOpsOpsOpsOpsOpsOpsOpsOpsOpsOpsOpsOpsx";
const GOOD_KEY_HASH: &str = "9c3964ee825572d7af2e2157318328bca866984d138d3e56ecaa32047d18b464";
/// Well-formed but unknown.
const UNKNOWN_KEY: &str = "brl_ZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzq";

/// Token bucket of the rates route (refilled one token per 100 ms):
/// back-to-back requests beyond it get 429 all through the run.
const RATES_BUCKET: u32 = 3;

async fn spawn(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

fn health_routes(router: Router, metrics: &'static str) -> Router {
    router
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status":"healthy","version":"0.1.0"})) }),
        )
        .route("/metrics", get(move || async move { metrics }))
}

/// Data service stand-in: every answer takes 2–14 ms.
async fn fake_data_service() -> SocketAddr {
    let n = Arc::new(AtomicU64::new(0));
    let router = health_routes(Router::new(), "").fallback(move || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        async move {
            tokio::time::sleep(Duration::from_millis(2 + (i % 5) * 3)).await;
            (
                [("content-type", "application/json")],
                r#"{"status":"success","ticker":"AAPL","current_rate":0.0039105,"borrow_status":"EASY"}"#,
            )
        }
    });
    spawn(router).await
}

/// Calculation service stand-in: every fourth request (the first one
/// included) fails with 503.
async fn fake_calculation_service() -> SocketAddr {
    let n = Arc::new(AtomicU64::new(0));
    let router = health_routes(Router::new(), "").fallback(move || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        async move {
            if i.is_multiple_of(4) {
                (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"error"}"#)
            } else {
                (StatusCode::OK, r#"{"status":"success","total_fee":58.75}"#)
            }
        }
    });
    spawn(router).await
}

/// Auth service stand-in: key verification for one known hash, and its own
/// `/metrics` with `jwt_tokens_issued_total`.
async fn fake_auth_service() -> SocketAddr {
    let router = health_routes(
        Router::new(),
        "# HELP jwt_tokens_issued_total JWTs issued.\n# TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 3\n",
    )
    .route(
        "/internal/v1/keys/verify",
        post(|body: String| async move {
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            if v["key_hash"] == GOOD_KEY_HASH {
                (
                    StatusCode::OK,
                    r#"{"client_id":"test123","status":"active","expires_at":null,"rate_limit_per_minute":null,"scopes":[]}"#,
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    r#"{"status":"error","error":{"code":"UNAUTHORIZED","message":"Unknown key","request_id":""}}"#,
                )
            }
        }),
    );
    spawn(router).await
}

/// Where the built filters are: this build's target directory, or the
/// filters' own target directory.
fn wasm_dir() -> PathBuf {
    let root = e2e::repo_root();
    let candidates = [
        e2e::target_dir().join("wasm32-wasip1/release"),
        root.join("target/filters/wasm32-wasip1/release"),
        root.join("target/wasm32-wasip1/release"),
    ];
    candidates
        .iter()
        .find(|d| d.join("auth_filter.wasm").exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "auth_filter.wasm not built (looked in {candidates:?}): \
                 run `make wasm`"
            )
        })
}

fn cluster(name: &str, addr: SocketAddr) -> String {
    format!(
        r#"
  - name: {name}
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#,
        port = addr.port()
    )
}

fn wasm_filter(name: &str, dir: &std::path::Path, config: &str) -> String {
    format!(
        r#"
          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {file} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{config}'
                fail_open: false"#,
        file = dir.join(format!("{name}.wasm")).display()
    )
}

/// The gateway: metrics filter observing everything, auth filter, a local
/// token bucket on the rates route, SPEC §8 stats tags and µs buckets.
fn envoy_config(data: SocketAddr, calc: SocketAddr, auth: SocketAddr, ops: SocketAddr) -> String {
    let stats_config = e2e::gateway_part("stats_config", 0);
    let dir = wasm_dir();
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{ADMIN_PORT}}}} }} }}
stats_flush_interval: 1s
{stats_config}
static_resources:
  listeners:
  - name: public
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{LISTENER_PORT}}}} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: public
          route_config:
            name: public
            virtual_hosts:
            - name: gateway
              domains: ["*"]
              routes:
              - match: {{ prefix: "/api/v1/rates/" }}
                route: {{ cluster: data_service, prefix_rewrite: "/rates/" }}
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: rates_bucket
                    token_bucket: {{ max_tokens: {RATES_BUCKET}, tokens_per_fill: 1, fill_interval: 0.1s }}
                    filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
                    filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
              - match: {{ path: "/api/v1/calculate-locate" }}
                route: {{ cluster: calculation_service }}
              - match: {{ path: "/metrics" }}
                route: {{ cluster: ops_service }}
              - match: {{ prefix: "/health/" }}
                route: {{ cluster: ops_service }}
          http_filters:{auth_filter}
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: local_rate_limit
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:{c1}{c2}{c3}{c4}
"#,
        // As the rendered gateway runs it: the auth filter records the
        // metrics too.
        auth_filter = wasm_filter(
            "auth_filter",
            &dir,
            r#"{"metrics": {"slow_request_ms": 500}}"#
        ),
        c1 = cluster("data_service", data),
        c2 = cluster("calculation_service", calc),
        c3 = cluster("auth_service", auth),
        c4 = cluster("ops_service", ops),
    )
}

/// A Prometheus server process; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        Prometheus::start_with(&format!(
            "  - job_name: gateway\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// Prometheus scraping every second with `scrape_configs` (YAML list
    /// items indented by two spaces).
    fn start_with(scrape_configs: &str) -> Prometheus {
        let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("prometheus is not installed: apt-get install -y --no-install-recommends prometheus");
        let port = e2e::free_port();
        let dir =
            std::env::temp_dir().join(format!("ops-prometheus-{}-{}", std::process::id(), port));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Prometheus { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            let url = format!("http://127.0.0.1:{}/-/ready", self.port);
            if let Ok(r) = client().get(url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Instant query; answers the result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let r = client()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls a query until it has a sample for which `accept` holds.
    async fn wait_for(&self, promql: &str, accept: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let values: Vec<f64> = self
                .query(promql)
                .await
                .iter()
                .filter_map(|s| s["value"][1].as_str()?.parse().ok())
                .collect();
            if let Some(v) = values.iter().copied().find(|v| accept(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "`{promql}` never gave an acceptable value (last {values:?})\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn scrape_health(&self) -> Value {
        let r = client()
            .get(format!("http://127.0.0.1:{}/api/v1/targets", self.port))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends the mixed traffic of one round; answers (status → count).
async fn traffic(envoy: &e2e::Envoy, rounds: usize) -> std::collections::BTreeMap<u16, usize> {
    let c = client();
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..rounds {
        let (method_post, path, key) = match i % 6 {
            0..=2 => (false, "/api/v1/rates/AAPL", Some(GOOD_KEY)),
            3 => (true, "/api/v1/calculate-locate", Some(GOOD_KEY)),
            4 => (false, "/api/v1/rates/MSFT", Some(UNKNOWN_KEY)),
            _ => (false, "/api/v1/rates/GME", None),
        };
        let mut req = if method_post {
            c.post(envoy.url(path))
                .header("content-type", "application/json")
                .body(r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#)
        } else {
            c.get(envoy.url(path))
        };
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let status = req.send().await.unwrap().status().as_u16();
        *seen.entry(status).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn operators_promql_answers_plausible_values_from_a_real_prometheus() {
    let data = fake_data_service().await;
    let calc = fake_calculation_service().await;
    let auth = fake_auth_service().await;

    // The ops service needs Envoy's admin port, Envoy needs the ops port:
    // bind the ops service first on a known free port.
    let ops_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops_addr: SocketAddr = ops_listener.local_addr().unwrap();

    let envoy = e2e::Envoy::start(&envoy_config(data, calc, auth, ops_addr)).await;

    let url = |a: SocketAddr| format!("http://{a}");
    let server = build_on(
        OpsConfig {
            listen_addr: ops_addr,
            envoy_admin_url: format!("http://127.0.0.1:{}", envoy.admin_port),
            backends: vec![
                Backend {
                    name: "data_service".into(),
                    base_url: url(data),
                    critical: true,
                },
                Backend {
                    name: "calculation_service".into(),
                    base_url: url(calc),
                    critical: true,
                },
                Backend {
                    name: "auth_service".into(),
                    base_url: url(auth),
                    critical: true,
                },
            ],
            database_url: None,
            redis_url: None,
            probe_timeout: Duration::from_millis(800),
        },
        ops_listener,
    )
    .await
    .unwrap();
    tokio::spawn(server.serve(std::future::pending()));

    // Warm-up: every series exists before Prometheus' first scrape, so
    // rate() sees the increase of the main traffic.
    let warm = traffic(&envoy, 12).await;
    for status in [200, 401, 429, 503] {
        assert!(
            warm.contains_key(&status),
            "warm-up got {warm:?}\n{}",
            envoy.log()
        );
    }

    let gateway_metrics = client()
        .get(envoy.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        gateway_metrics.contains("http_request_duration_seconds_bucket{"),
        "{gateway_metrics}"
    );
    assert!(
        gateway_metrics.contains(r#"le="0.005""#),
        "{gateway_metrics}"
    );
    assert!(!gateway_metrics.contains(r#"le="5000""#));

    let mut prometheus = Prometheus::start(&format!("127.0.0.1:{}", envoy.port));
    prometheus.wait_ready().await;
    prometheus
        .wait_for("up{job=\"gateway\"}", |v| v == 1.0)
        .await;
    prometheus
        .wait_for("count(http_request_duration_seconds_bucket)", |v| v > 0.0)
        .await;

    let seen = traffic(&envoy, 120).await;
    assert!(
        seen.get(&429).copied().unwrap_or(0) > 0,
        "no 429 in {seen:?}"
    );
    assert!(
        seen.get(&401).copied().unwrap_or(0) > 0,
        "no 401 in {seen:?}"
    );
    assert!(
        seen.get(&503).copied().unwrap_or(0) > 0,
        "no 503 in {seen:?}"
    );
    let sent: usize = seen.values().sum::<usize>() + warm.values().sum::<usize>();

    // Counters visible in Prometheus as exactly what was sent (the scrapes
    // through /metrics are counted too, so compare the API endpoints only).
    let api_total = prometheus
        .wait_for(r#"sum(http_requests_total{endpoint=~"/api/v1/.*"})"#, |v| {
            v >= sent as f64
        })
        .await;
    assert_eq!(api_total as usize, sent, "seen {seen:?} + warm-up {warm:?}");
    // Histograms are flushed every second by Envoy, scraped every second.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let request_rate = prometheus
        .wait_for("sum(rate(http_requests_total[5m]))", |v| v > 0.0)
        .await;
    let p95 = prometheus
        .wait_for(
            "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))",
            |v| v.is_finite(),
        )
        .await;
    let error_rate = prometheus
        .wait_for(
            r#"sum(rate(http_requests_total{status_code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
            |v| v > 0.0,
        )
        .await;
    let auth_success = prometheus
        .wait_for(
            r#"sum(rate(authentication_attempts_total{status="success"}[5m])) / sum(rate(authentication_attempts_total[5m]))"#,
            |v| v > 0.0,
        )
        .await;
    let rate_limited = prometheus
        .wait_for(
            "sum(rate(rate_limit_exceeded_total[5m])) / sum(rate(http_requests_total[5m]))",
            |v| v > 0.0,
        )
        .await;
    let backend_p95 = prometheus
        .wait_for(
            "histogram_quantile(0.95, sum(rate(backend_request_duration_seconds_bucket[5m])) by (le, service))",
            |v| v.is_finite(),
        )
        .await;
    let data_backend_p95 = prometheus
        .wait_for(
            r#"histogram_quantile(0.95, sum(rate(backend_request_duration_seconds_bucket{service="data_service"}[5m])) by (le, service))"#,
            |v| v.is_finite(),
        )
        .await;
    let backend_p95_max = prometheus
        .query(
            "max(histogram_quantile(0.95, sum(rate(backend_request_duration_seconds_bucket[5m])) by (le, service)))",
        )
        .await[0]["value"][1]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    let jwt = prometheus
        .wait_for("jwt_tokens_issued_total", |v| v >= 0.0)
        .await;

    println!(
        "request_rate={request_rate:.3}/s p95={p95}s error_rate={error_rate:.3} \
         auth_success={auth_success:.3} rate_limited={rate_limited:.3} backend_p95(data_service)={data_backend_p95}s \
         backend_p95(max)={backend_p95_max}s jwt_tokens_issued_total={jwt} traffic={seen:?}"
    );
    // Seconds, not microseconds: the backends answer in 2-14 ms.
    assert!((0.001..=1.0).contains(&p95), "p95 {p95} s");
    // Every service's backend p95 is a duration in seconds; the data
    // service stand-in takes 2-14 ms.
    assert!(
        backend_p95 > 0.0 && backend_p95_max < 1.0,
        "backend p95 {backend_p95} / max {backend_p95_max} s"
    );
    assert!(
        (0.002..=1.0).contains(&data_backend_p95),
        "data_service p95 {data_backend_p95} s"
    );
    assert!(request_rate > 0.0 && request_rate < 10_000.0);
    assert!((0.0..1.0).contains(&error_rate), "error rate {error_rate}");
    assert!(
        (0.0..1.0).contains(&auth_success),
        "auth success {auth_success}"
    );
    assert!(
        (0.0..1.0).contains(&rate_limited),
        "rate-limit ratio {rate_limited}"
    );
    assert_eq!(jwt, 3.0);

    let targets = prometheus.scrape_health().await;
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
}

/// Client ids the gateway authenticated, as the fake data service saw them
/// (`x-client-id`, set by the auth filter).
type SeenClients = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// Data service stand-in that answers at once and records the client ids.
async fn recording_data_service(seen: SeenClients) -> SocketAddr {
    let router = health_routes(Router::new(), "").fallback(
        move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                if let Some(c) = headers.get("x-client-id").and_then(|v| v.to_str().ok()) {
                    seen.lock().unwrap().insert(c.to_owned());
                }
                (
                    [("content-type", "application/json")],
                    r#"{"status":"success","ticker":"AAPL","current_rate":0.0039105,"borrow_status":"EASY"}"#,
                )
            }
        },
    );
    spawn(router).await
}

/// Rate-limit service stand-in: its `/metrics` has one
/// `rate_limit_client_utilization_ratio{client_id}` series per client the
/// gateway let through, as the real one has per client in its window.
async fn fake_rate_limit_service(seen: SeenClients) -> SocketAddr {
    let router = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status":"healthy","version":"0.1.0"})) }),
        )
        .route(
            "/metrics",
            get(move || {
                let seen = seen.clone();
                async move {
                    let mut out = String::from(
                        "# HELP rate_limit_client_utilization_ratio Share of its limit each client used.\n\
                         # TYPE rate_limit_client_utilization_ratio gauge\n",
                    );
                    for c in seen.lock().unwrap().iter() {
                        out.push_str(&format!(
                            "rate_limit_client_utilization_ratio{{client_id=\"{c}\"}} 0.25\n"
                        ));
                    }
                    out
                }
            }),
        );
    spawn(router).await
}

/// One gateway instance as a pod runs it: an Envoy and its own ops
/// service (public port routed by that Envoy, internal port not).
struct Instance {
    envoy: e2e::Envoy,
    internal: SocketAddr,
}

async fn start_instance(backends: &[(&str, SocketAddr, bool)]) -> Instance {
    let addr = |name: &str| backends.iter().find(|b| b.0 == name).unwrap().1;
    let ops_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops_addr: SocketAddr = ops_listener.local_addr().unwrap();
    let envoy = e2e::Envoy::start(&envoy_config(
        addr("data_service"),
        addr("calculation_service"),
        addr("auth_service"),
        ops_addr,
    ))
    .await;
    let server = build_on(
        OpsConfig {
            listen_addr: ops_addr,
            envoy_admin_url: format!("http://127.0.0.1:{}", envoy.admin_port),
            backends: backends
                .iter()
                .map(|(name, a, critical)| Backend {
                    name: (*name).into(),
                    base_url: format!("http://{a}"),
                    critical: *critical,
                })
                .collect(),
            database_url: None,
            redis_url: None,
            probe_timeout: Duration::from_millis(800),
        },
        ops_listener,
    )
    .await
    .unwrap()
    .with_internal_listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
    .unwrap();
    let internal = server.internal_addr().unwrap();
    tokio::spawn(server.serve(std::future::pending()));
    Instance { envoy, internal }
}

async fn backends(seen: &SeenClients) -> Vec<(&'static str, SocketAddr, bool)> {
    vec![
        (
            "data_service",
            recording_data_service(seen.clone()).await,
            true,
        ),
        (
            "calculation_service",
            fake_calculation_service().await,
            true,
        ),
        ("auth_service", fake_auth_service().await, true),
        (
            "rate_limit_service",
            fake_rate_limit_service(seen.clone()).await,
            false,
        ),
    ]
}

/// `n` requests through `envoy`: authenticated rate look-ups of client
/// `test123` and, every third one, an anonymous one (a 401 the auth filter
/// answers itself, well under a millisecond).
async fn requests(envoy: &e2e::Envoy, n: usize) -> usize {
    let c = client();
    for i in 0..n {
        let req = if i % 3 == 2 {
            c.get(envoy.url("/api/v1/rates/GME"))
        } else {
            c.get(envoy.url("/api/v1/rates/AAPL"))
                .header("x-api-key", GOOD_KEY)
        };
        let status = req.send().await.unwrap().status().as_u16();
        assert!(
            [200, 401, 429].contains(&status),
            "{status}\n{}",
            envoy.log()
        );
    }
    n
}

async fn text(url: String) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn prometheus_keeps_per_instance_series_of_two_gateways_in_seconds() {
    let seen = SeenClients::default();
    let backends = backends(&seen).await;
    let a = start_instance(&backends).await;
    let b = start_instance(&backends).await;

    let gateway_targets = format!("'{}', '{}'", a.internal, b.internal);
    let backend_targets = backends
        .iter()
        .map(|(_, addr, _)| format!("'{addr}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut prometheus = Prometheus::start_with(&format!(
        "  - job_name: gateway\n    static_configs:\n      - targets: [{gateway_targets}]\n\
         \x20 - job_name: backends\n    static_configs:\n      - targets: [{backend_targets}]\n"
    ));
    prometheus.wait_ready().await;

    // Different traffic per instance, so each instance's series is its own.
    let sent_a = requests(&a.envoy, 7).await;
    let sent_b = requests(&b.envoy, 12).await;

    prometheus
        .wait_for(r#"count(up{job="gateway"} == 1)"#, |v| v == 2.0)
        .await;
    prometheus
        .wait_for(r#"count(up{job="backends"} == 1)"#, |v| v == 4.0)
        .await;
    for (instance, sent) in [(a.internal, sent_a), (b.internal, sent_b)] {
        let total = prometheus
            .wait_for(
                &format!(
                    r#"sum(http_requests_total{{job="gateway",instance="{instance}",endpoint=~"/api/v1/.*"}})"#
                ),
                |v| v >= sent as f64,
            )
            .await;
        assert_eq!(total as usize, sent, "instance {instance}");
        // Histograms reach Envoy's statistics at its 1 s flush; a 401 the
        // auth filter answers itself lands in the 1 ms bucket.
        let fast = prometheus
            .wait_for(
                &format!(
                    r#"sum(http_request_duration_seconds_bucket{{job="gateway",instance="{instance}",le="0.001"}})"#
                ),
                |v| v > 0.0,
            )
            .await;
        let all = prometheus
            .wait_for(
                &format!(
                    r#"sum(http_request_duration_seconds_bucket{{job="gateway",instance="{instance}",le="+Inf"}})"#
                ),
                |v| v >= fast,
            )
            .await;
        // The 0.5 ms bound exists too (sub-millisecond buckets).
        let half_ms = prometheus
            .query(&format!(
                r#"sum(http_request_duration_seconds_bucket{{job="gateway",instance="{instance}",le="0.0005"}})"#
            ))
            .await;
        println!("instance {instance}: {total} requests, {fast} within 1 ms of {all}, within 0.5 ms {half_ms:?}");
        assert!(!half_ms.is_empty(), "no le=\"0.0005\" bucket on {instance}");
        // In seconds: no bucket bound in microseconds.
        assert!(prometheus
            .query(&format!(
                r#"http_request_duration_seconds_bucket{{instance="{instance}",le="5000"}}"#
            ))
            .await
            .is_empty());
    }
    let instances = prometheus
        .query(r#"count by (instance) (http_request_duration_seconds_bucket{job="gateway"})"#)
        .await;
    assert_eq!(instances.len(), 2, "{instances:?}");
    // More traffic on both: rates per instance, and the operators' p95.
    requests(&a.envoy, 6).await;
    requests(&b.envoy, 6).await;
    prometheus
        .wait_for(
            r#"count(sum by (instance) (rate(http_requests_total{job="gateway"}[1m])) > 0)"#,
            |v| v == 2.0,
        )
        .await;
    // The operators' query still answers over both instances.
    prometheus
        .wait_for(
            r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{job="gateway"}[1m])) by (le))"#,
            |v| v.is_finite() && v < 1.0,
        )
        .await;
}

#[tokio::test]
async fn anonymous_metrics_and_health_on_the_listener_name_no_client() {
    let seen = SeenClients::default();
    let backends = backends(&seen).await;
    let gw = start_instance(&backends).await;
    requests(&gw.envoy, 6).await;
    assert!(seen.lock().unwrap().contains("test123"), "{seen:?}");
    // Counters reach Envoy on the filter's 200 ms tick.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // The internal port has the client's series ...
    let (status, internal) = text(format!("http://{}/metrics", gw.internal)).await;
    assert_eq!(status, 200);
    assert!(
        internal.contains(r#"rate_limit_client_utilization_ratio{client_id="test123"} 0.25"#),
        "{internal}"
    );
    let (status, body) = text(format!("http://{}/health/detailed", gw.internal)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["dependencies"]["data_service"]["status"], "healthy",
        "{body}"
    );

    // ... the listener, asked without a credential, has none of it.
    for path in ["/metrics", "/health/detailed", "/health/rate_limit_service"] {
        let (status, body) = text(gw.envoy.url(path)).await;
        assert_eq!(status, 200, "{path}: {body}");
        if path == "/metrics" {
            assert!(body.contains("http_requests_total{"), "{path}: {body}");
        }
        assert!(!body.contains("test123"), "{path}: {body}");
        assert!(!body.contains("client_id"), "{path}: {body}");
    }
    let (status, body) = text(gw.envoy.url("/health/detailed")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy", "{body}");
    assert_eq!(v["dependencies"], serde_json::json!({}), "{body}");
}
