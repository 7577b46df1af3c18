//! The public port (routed by the gateway) against the internal port: no
//! client-labelled series and no dependency details on the public one,
//! everything on the internal one; and the dependency checks behind
//! `/health/detailed` are cached, so a burst of calls probes each
//! dependency at most once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use ops_service::{build, Backend, OpsConfig};

const RATELIMIT_METRICS: &str = "# HELP rate_limit_client_utilization_ratio Share.\n\
# TYPE rate_limit_client_utilization_ratio gauge\n\
rate_limit_client_utilization_ratio{client_id=\"secret_fund_42\"} 0.5\n\
# HELP ratelimit_detailed_hits_total Hits.\n\
# TYPE ratelimit_detailed_hits_total counter\n\
ratelimit_detailed_hits_total{node=\"client_id\",descriptor=\"secret_fund_42\",result=\"within_limit\"} 3\n\
# HELP ratelimit_decisions_total Decisions.\n\
# TYPE ratelimit_decisions_total counter\n\
ratelimit_decisions_total{result=\"ok\"} 9\n";

/// A dependency that counts the `/health` probes it receives (each takes
/// 50 ms, so concurrent callers overlap).
async fn counting_backend(metrics: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let probes = Arc::new(AtomicUsize::new(0));
    let counted = probes.clone();
    let router = Router::new()
        .route(
            "/health",
            get(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    axum::Json(serde_json::json!({"status":"healthy","version":"9.9.9"}))
                }
            }),
        )
        .route("/metrics", get(move || async move { metrics }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, probes)
}

struct Ops {
    public: String,
    internal: String,
    probes: Vec<(String, Arc<AtomicUsize>)>,
}

async fn start() -> Ops {
    let mut backends = Vec::new();
    let mut probes = Vec::new();
    for (name, critical, metrics) in [
        ("data_service", true, ""),
        ("calculation_service", true, ""),
        ("auth_service", true, ""),
        ("rate_limit_service", false, RATELIMIT_METRICS),
    ] {
        let (addr, count) = counting_backend(metrics).await;
        backends.push(Backend {
            name: name.into(),
            base_url: format!("http://{addr}"),
            critical,
        });
        probes.push((name.to_owned(), count));
    }
    let server = build(OpsConfig {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        // Nothing listens there: Envoy's part is missing, the backends' is not.
        envoy_admin_url: "http://127.0.0.1:9".into(),
        backends,
        database_url: None,
        redis_url: None,
        probe_timeout: Duration::from_millis(1500),
    })
    .await
    .unwrap()
    .with_internal_listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
    .unwrap();
    let public = format!("http://{}", server.local_addr());
    let internal = format!("http://{}", server.internal_addr().unwrap());
    tokio::spawn(server.serve(std::future::pending()));
    Ops {
        public,
        internal,
        probes,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_text(url: String) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn public_metrics_name_no_client_and_the_internal_port_has_every_series() {
    let ops = start().await;
    for path in ["/metrics", "/monitoring/metrics"] {
        let (status, public) = get_text(format!("{}{path}", ops.public)).await;
        assert_eq!(status, 200);
        assert!(!public.contains("secret_fund_42"), "{path}:\n{public}");
        assert!(!public.contains("client_id="), "{path}:\n{public}");
        assert!(
            public.contains("ratelimit_decisions_total{result=\"ok\"} 9"),
            "{path}:\n{public}"
        );
        let (status, internal) = get_text(format!("{}{path}", ops.internal)).await;
        assert_eq!(status, 200);
        assert!(
            internal
                .contains("rate_limit_client_utilization_ratio{client_id=\"secret_fund_42\"} 0.5"),
            "{path}:\n{internal}"
        );
        assert!(
            internal.contains("descriptor=\"secret_fund_42\""),
            "{path}:\n{internal}"
        );
    }
}

#[tokio::test]
async fn public_health_gives_the_overall_status_and_the_internal_port_the_details() {
    let ops = start().await;
    let (status, body) = get_text(format!("{}/health/detailed", ops.public)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy", "{body}");
    assert_eq!(v["dependencies"], serde_json::json!({}), "{body}");
    assert!(!body.contains("9.9.9"), "{body}");

    let (status, body) = get_text(format!("{}/health/detailed", ops.internal)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["dependencies"]["data_service"]["version"], "9.9.9",
        "{body}"
    );
    assert_eq!(v["dependencies"].as_object().unwrap().len(), 4, "{body}");

    let (status, body) = get_text(format!("{}/health/data_service", ops.public)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy", "{body}");
    assert!(v.get("version").is_none(), "{body}");
    let (_, body) = get_text(format!("{}/health/data_service", ops.internal)).await;
    assert!(body.contains("9.9.9"), "{body}");
    let (status, _) = get_text(format!("{}/health/nope", ops.public)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn fifty_rapid_detailed_health_calls_probe_each_dependency_at_most_once() {
    let ops = start().await;
    // 25 at once, then 25 one after the other, on both ports.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..25 {
        let base = if i % 2 == 0 {
            ops.public.clone()
        } else {
            ops.internal.clone()
        };
        calls.spawn(get_text(format!("{base}/health/detailed")));
    }
    while let Some(r) = calls.join_next().await {
        let (status, body) = r.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    for i in 0..25 {
        let base = if i % 2 == 0 {
            &ops.public
        } else {
            &ops.internal
        };
        let (status, body) = get_text(format!("{base}/health/detailed")).await;
        assert_eq!(status, 200, "{body}");
    }
    for (name, count) in &ops.probes {
        let n = count.load(Ordering::SeqCst);
        assert!(n <= 1, "{name} probed {n} times by 50 calls");
        assert_eq!(n, 1, "{name} never probed");
    }
    // After the cache's lifetime the next call probes again, once.
    tokio::time::sleep(ops_service::HEALTH_CACHE_TTL + Duration::from_millis(200)).await;
    let (status, _) = get_text(format!("{}/health/detailed", ops.public)).await;
    assert_eq!(status, 200);
    for (name, count) in &ops.probes {
        assert_eq!(count.load(Ordering::SeqCst), 2, "{name}");
    }
}
