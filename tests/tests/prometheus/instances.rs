//! Two gateway instances scraped as separate targets, and what an
//! anonymous caller of the listener gets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use e2e::stand_in::{client, health_routes, serve, with_health};
use ops_service::build_on;
use serde_json::Value;

use super::server::Prometheus;
use super::{envoy_config, fake_auth_service, fake_calculation_service, ops_config, GOOD_KEY};

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
    serve(router).await
}

/// Rate-limit service stand-in: its `/metrics` has one
/// `rate_limit_client_utilization_ratio{client_id}` series per client the
/// gateway let through, as the real one has per client in its window.
async fn fake_rate_limit_service(seen: SeenClients) -> SocketAddr {
    let router = with_health(Router::new()).route(
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
    serve(router).await
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
    let server = build_on(ops_config(ops_addr, &envoy, backends), ops_listener)
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
