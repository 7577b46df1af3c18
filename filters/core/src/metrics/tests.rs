//! Tests of the metrics core: labels and names, what a finished request
//! records, and its log lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::host::{LogLevel, RecordingHost};

fn finished(status: u16, origin: Origin, cluster: Option<&str>) -> FinishedRequest {
    FinishedRequest {
        endpoint: Endpoint::Rates,
        method: "GET",
        status,
        duration_us: 1_234,
        origin,
        cluster: cluster.map(str::to_owned),
        backend_latency_us: cluster.map(|_| 900),
    }
}

/// Records `request` `times` times with the default configuration.
fn record_times(
    times: usize,
    cache: &mut MetricCache,
    host: &RecordingHost,
    request: &FinishedRequest,
) {
    for _ in 0..times {
        record_request(cache, host, &MetricsConfig::default(), request);
    }
}

/// A new cache and host after recording `request` once with the default
/// configuration.
fn recorded_once(request: FinishedRequest) -> (MetricCache, RecordingHost) {
    let mut cache = MetricCache::new();
    let host = RecordingHost::default();
    record_request(&mut cache, &host, &MetricsConfig::default(), &request);
    (cache, host)
}

/// Whether any `backend*` metric was defined.
fn defines_backend_metrics(host: &RecordingHost) -> bool {
    host.metrics
        .borrow()
        .iter()
        .any(|(_, n)| n.starts_with("backend"))
}

const RATES_200: &str =
    "http_requests_total.endpoint=/api/v1/rates/{ticker};.method=GET;.status_code=200;";

#[test]
fn unusual_methods_fold_into_other() {
    assert_eq!(method_label("GET"), "GET");
    assert_eq!(method_label("PROPFIND"), "OTHER");
    assert_eq!(method_label("get"), "OTHER");
}

#[test]
fn labels_are_encoded_in_the_metric_name() {
    assert_eq!(
        encoded_name(
            "http_requests_total",
            &[
                ("endpoint", "/api/v1/rates/{ticker}"),
                ("method", "GET"),
                ("status_code", "200")
            ]
        ),
        RATES_200
    );
    assert_eq!(
        encoded_name("rate_limit_exceeded_total", &[]),
        "rate_limit_exceeded_total"
    );
}

#[test]
fn cluster_names_cannot_break_the_encoding() {
    assert_eq!(service_label("data_service"), "data_service");
    assert_eq!(service_label("a;b=c"), "a_b_c");
    assert_eq!(service_label(""), "unknown");
}

#[test]
fn a_request_counts_once_and_records_its_duration_in_microseconds() {
    let mut cache = MetricCache::new();
    let host = RecordingHost::default();
    record_times(2, &mut cache, &host, &finished(200, Origin::Local, None));
    cache.flush(&host);
    assert_eq!(host.counter(RATES_200), 2);
    assert_eq!(
        host.samples("http_request_duration_seconds.endpoint=/api/v1/rates/{ticker};"),
        [1_234, 1_234]
    );
    assert!(host.logs.borrow().is_empty());
    assert!(!defines_backend_metrics(&host));
}

#[test]
fn each_label_set_is_defined_only_once() {
    let mut cache = MetricCache::new();
    let host = RecordingHost::default();
    let upstream_ok = finished(200, Origin::Upstream, Some("data_service"));
    record_times(5, &mut cache, &host, &upstream_ok);
    assert_eq!(host.metrics.borrow().len(), 4);
    assert_eq!(cache.len(), 4);
}

#[test]
fn counters_reach_the_host_only_at_a_flush_each_label_set_in_one_call() {
    let mut cache = MetricCache::new();
    let host = RecordingHost::default();
    let config = MetricsConfig::default();
    let upstream_ok = finished(200, Origin::Upstream, Some("data_service"));
    record_times(3, &mut cache, &host, &upstream_ok);
    record_request(
        &mut cache,
        &host,
        &config,
        &finished(429, Origin::Local, None),
    );
    // Histogram samples go out at once; counters wait for the flush.
    assert_eq!(
        host.samples("http_request_duration_seconds.endpoint=/api/v1/rates/{ticker};"),
        [1_234; 4]
    );
    assert!(host.counters.borrow().is_empty());
    assert_eq!(cache.pending(), 3 + 3 + 2);

    cache.flush(&host);
    assert_eq!(host.increments.get(), 4, "one call per counter label set");
    assert_eq!(host.counter(RATES_200), 3);
    assert_eq!(
        host.counter("backend_requests_total.service=data_service;.status=success;"),
        3
    );
    assert_eq!(host.counter("rate_limit_exceeded_total"), 1);
    assert_eq!(cache.pending(), 0);

    // Nothing pending: a flush makes no call; later requests count on.
    cache.flush(&host);
    assert_eq!(host.increments.get(), 4);
    record_times(1, &mut cache, &host, &finished(200, Origin::Local, None));
    cache.flush(&host);
    assert_eq!(host.increments.get(), 5);
    assert_eq!(host.counter(RATES_200), 4);
}

#[test]
fn upstream_answers_count_per_service_and_outcome() {
    let mut cache = MetricCache::new();
    let host = RecordingHost::default();
    let config = MetricsConfig::default();
    let ok = finished(200, Origin::Upstream, Some("data_service"));
    let bad = finished(503, Origin::Upstream, Some("data_service"));
    record_request(&mut cache, &host, &config, &ok);
    record_request(&mut cache, &host, &config, &bad);
    record_request(&mut cache, &host, &config, &bad);
    cache.flush(&host);
    assert_eq!(
        host.counter("backend_requests_total.service=data_service;.status=success;"),
        1
    );
    assert_eq!(
        host.counter("backend_requests_total.service=data_service;.status=error;"),
        2
    );
    assert_eq!(
        host.samples("backend_request_duration_seconds.service=data_service;"),
        [900, 900, 900]
    );
    let errors = host.logs_at(LogLevel::Error);
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("msg=\"Backend service error\""));
    assert!(errors[0].contains("service=\"data_service\""));
}

#[test]
fn upstream_failures_are_backend_errors_even_without_latency() {
    let mut cache = MetricCache::new();
    let host =
        RecordingHost::with_headers(&[("x-request-id", "rid-7"), ("x-client-id", "test123")]);
    let mut timeout = finished(504, Origin::UpstreamFailure, Some("calculation_service"));
    timeout.backend_latency_us = None;
    record_request(&mut cache, &host, &MetricsConfig::default(), &timeout);
    cache.flush(&host);
    assert_eq!(
        host.counter("backend_requests_total.service=calculation_service;.status=error;"),
        1
    );
    assert!(!host.has_metric("backend_request_duration_seconds.service=calculation_service;"));
    assert_eq!(
        host.logs.borrow()[0],
        "level=ERROR msg=\"Backend service error\" service=\"calculation_service\" status_code=504 client_id=\"test123\" endpoint=\"/api/v1/rates/{ticker}\" request_id=\"rid-7\""
    );
}

#[test]
fn local_replies_never_touch_backend_metrics() {
    let (_, host) = recorded_once(finished(400, Origin::Local, Some("calculation_service")));
    assert!(!defines_backend_metrics(&host));
}

#[test]
fn a_429_counts_as_rate_limit_exceeded_and_is_logged() {
    let (mut cache, host) = recorded_once(finished(429, Origin::Local, None));
    cache.flush(&host);
    assert_eq!(host.counter("rate_limit_exceeded_total"), 1);
    assert!(host.logs.borrow()[0].starts_with("level=WARN msg=\"Rate limit exceeded\""));
}

#[test]
fn requests_over_the_threshold_are_logged_as_slow() {
    let mut cache = MetricCache::new();
    let host = RecordingHost::default();
    let config = MetricsConfig { slow_request_ms: 1 };
    let mut r = finished(200, Origin::Local, None);
    r.duration_us = 1_000;
    record_request(&mut cache, &host, &config, &r);
    assert!(
        host.logs.borrow().is_empty(),
        "exactly the threshold is not slow"
    );
    r.duration_us = 2_500;
    record_request(&mut cache, &host, &config, &r);
    assert_eq!(host.logs.borrow().len(), 1);
    assert!(host.logs.borrow()[0]
        .starts_with("level=WARN msg=\"Slow request\" duration_ms=2 threshold_ms=1"));
}

#[test]
fn config_defaults_and_rejects_bad_fields_by_name() {
    assert_eq!(MetricsConfig::parse(b"").unwrap().slow_request_ms, 500);
    assert_eq!(MetricsConfig::parse(b"{}").unwrap().slow_request_ms, 500);
    assert_eq!(
        MetricsConfig::parse(br#"{"slow_request_ms":250}"#)
            .unwrap()
            .slow_request_ms,
        250
    );
    crate::plugin_config::assert_rejected_naming(
        MetricsConfig::parse,
        &[
            (r#"{"slow_request_ms":0}"#, "slow_request_ms"),
            (r#"{"slow_request_ms":"x"}"#, "slow_request_ms"),
            (r#"{"slow_ms":1}"#, "slow_ms"),
        ],
    );
}

#[test]
fn response_origin_follows_envoy_code_details() {
    assert_eq!(Origin::from_code_details("via_upstream"), Origin::Upstream);
    for d in [
        "response_timeout",
        "upstream_per_try_timeout",
        "upstream_reset_before_response_started{connection_failure}",
        "no_healthy_upstream",
    ] {
        assert_eq!(Origin::from_code_details(d), Origin::UpstreamFailure, "{d}");
    }
    for d in ["route_not_found", "direct_response", "validation_error", ""] {
        assert_eq!(Origin::from_code_details(d), Origin::Local, "{d}");
    }
}

#[test]
fn integer_properties_decode_little_endian() {
    assert_eq!(property_u64(&429u64.to_le_bytes()), Some(429));
    assert_eq!(property_u64(&[1, 2]), None);
}
