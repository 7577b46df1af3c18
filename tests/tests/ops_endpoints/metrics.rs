//! `/metrics` (and `/monitoring/metrics`): the merged exposition, with a
//! backend or Envoy's admin down.

use axum::http::{header, StatusCode};

use super::{assert_valid_exposition, closed_addr, get_text, ops_all_up, ops_with};

#[tokio::test]
async fn metrics_expose_only_spec_and_resilience_families_with_durations_in_seconds() {
    let ops = ops_all_up().await;
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
    let ops = ops_all_up().await;
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
    let ops = ops_with(|d| d.rate_limit = closed_addr()).await;
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
    let ops = ops_with(|d| d.admin = closed_addr()).await;
    let (status, _, text) = get_text(&format!("{ops}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid_exposition(&text);
    assert!(text.contains(r#"ops_scrape_errors_total{target="envoy"} 1"#));
    assert!(text.contains("jwt_tokens_issued_total 7"));
    assert!(!text.contains("http_requests_total"));
}
