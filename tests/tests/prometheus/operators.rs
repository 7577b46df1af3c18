//! The operators' SPEC §8 PromQL queries, answered by a real Prometheus
//! scraping one gateway.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use e2e::stand_in::client;
use ops_service::build_on;

use super::server::Prometheus;
use super::{
    envoy_config, fake_auth_service, fake_calculation_service, fake_data_service, ops_config,
    GOOD_KEY, UNKNOWN_KEY,
};

/// Sends the mixed traffic of one round; answers (status → count).
async fn traffic(envoy: &e2e::Envoy, rounds: usize) -> BTreeMap<u16, usize> {
    let c = client();
    let mut seen = BTreeMap::new();
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

    let server = build_on(
        ops_config(
            ops_addr,
            &envoy,
            &[
                ("data_service", data, true),
                ("calculation_service", calc, true),
                ("auth_service", auth, true),
            ],
        ),
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

    let gateway_metrics = e2e::text(client().get(envoy.url("/metrics"))).await;
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
