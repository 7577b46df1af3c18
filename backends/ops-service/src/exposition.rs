//! The merged exposition's policy: the gateway's allowlist, the
//! microsecond → second rescaling of the filters' histograms, and merging
//! several scrapes (each read by [`crate::text_format`] into the
//! `prometheus` crate's [`MetricFamily`]) into one valid exposition, written
//! by `prometheus::TextEncoder`, the encoder every backend's own `/metrics`
//! uses. This service's own families come straight from its `prometheus`
//! registry (see [`service_http::metrics`]). The encoder writes a family
//! the text called `untyped` as a gauge (see [`crate::text_format`]) and a
//! histogram's `+Inf` bucket from its sample count.

use std::collections::HashSet;

use prometheus::proto::{Counter, Metric, MetricFamily, MetricType};

use crate::text_format::label_pair;
pub use crate::text_format::parse;

/// The SPEC §8 metric families the operators' dashboards query.
pub const SPEC_FAMILIES: [&str; 7] = [
    "http_requests_total",
    "http_request_duration_seconds",
    "authentication_attempts_total",
    "rate_limit_exceeded_total",
    "backend_request_duration_seconds",
    "backend_requests_total",
    "jwt_tokens_issued_total",
];

/// Envoy cluster resilience statistics kept from the admin API: circuit
/// breaker overflows, timeouts, retries, outlier ejections and health-checked
/// membership. Entries ending in `_` or `retry` are prefixes.
pub const CLUSTER_RESILIENCE_FAMILIES: [&str; 10] = [
    "envoy_cluster_upstream_rq_pending_overflow",
    "envoy_cluster_upstream_cx_overflow",
    "envoy_cluster_upstream_rq_active_overflow",
    "envoy_cluster_circuit_breakers_",
    "envoy_cluster_upstream_rq_timeout",
    "envoy_cluster_upstream_rq_retry",
    "envoy_cluster_outlier_detection_ejections_",
    "envoy_cluster_membership_healthy",
    "envoy_cluster_membership_total",
    "envoy_cluster_membership_degraded",
];

/// Whether a family from Envoy's `/stats/prometheus` may be exposed.
pub fn is_exposed_envoy_family(name: &str) -> bool {
    if SPEC_FAMILIES.contains(&name) {
        return true;
    }
    CLUSTER_RESILIENCE_FAMILIES.iter().any(|allowed| {
        if allowed.ends_with('_') || allowed.ends_with("retry") {
            name.starts_with(allowed)
        } else {
            name == *allowed
        }
    })
}

/// Merges families from several scrapes: one family per name (the first
/// help text and type win; a family of another type under a taken name is
/// left out, it cannot be written under one `# TYPE` line), a series
/// already present is not repeated.
pub fn merge(sources: Vec<Vec<MetricFamily>>) -> Vec<MetricFamily> {
    let mut merged: Vec<MetricFamily> = Vec::new();
    let mut seen = HashSet::new();
    for mut family in sources.into_iter().flatten() {
        let index = match merged.iter().position(|f| f.name() == family.name()) {
            Some(i) => i,
            None => {
                let mut empty = MetricFamily::default();
                empty.set_name(family.name().to_owned());
                empty.set_field_type(family.get_field_type());
                merged.push(empty);
                merged.len() - 1
            }
        };
        let target = &mut merged[index];
        if target.get_field_type() != family.get_field_type() {
            continue;
        }
        if target.help().is_empty() {
            target.set_help(family.help().to_owned());
        }
        for metric in family.take_metric() {
            let labels: Vec<(String, String)> = metric
                .get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            if seen.insert((target.name().to_owned(), labels)) {
                target.mut_metric().push(metric);
            }
        }
    }
    merged
}

/// Renders families with `prometheus::TextEncoder`. Families without
/// samples are left out (the encoder refuses them).
pub fn render(mut families: Vec<MetricFamily>) -> String {
    families.retain(|f| !f.get_metric().is_empty() && f.get_field_type() != MetricType::UNTYPED);
    // With empty and untyped families gone the encoder has nothing to refuse.
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_default()
}

/// Envoy's `/stats/prometheus` reduced to the exposed families, with the
/// filters' `*_seconds` histograms (recorded in microseconds) converted to
/// seconds.
pub fn gateway_families(envoy_text: &str) -> Result<Vec<MetricFamily>, String> {
    Ok(parse(envoy_text)?
        .into_iter()
        .filter(|f| is_exposed_envoy_family(f.name()))
        .map(rescale_microsecond_histogram)
        .collect())
}

/// Families a backend's own `/metrics` may contribute: everything except
/// the gateway-owned SPEC §8 families (only the gateway measures requests,
/// so a backend cannot double-count them), this service's own
/// `ops_scrape_errors_total` and `ops_build_info`, and the `process_*`
/// families (every backend has the same unlabelled series; they describe
/// that backend's process and are read from its own scrape, while the merged
/// answer carries this service's). `jwt_tokens_issued_total` is the auth
/// service's and passes.
pub fn backend_families(text: &str) -> Result<Vec<MetricFamily>, String> {
    Ok(parse(text)?
        .into_iter()
        .filter(|f| {
            let name = f.name();
            name == "jwt_tokens_issued_total"
                || !(SPEC_FAMILIES.contains(&name)
                    || name == "ops_scrape_errors_total"
                    || name == OWN_BUILD_INFO
                    || name.starts_with("process_"))
        })
        .collect())
}

/// This service's build info family.
pub const OWN_BUILD_INFO: &str = "ops_build_info";

/// This service's own families: `process_*` (its process collector, Linux)
/// and `ops_build_info{version}` = 1. Both describe the process, so one
/// registry serves every instance in it.
pub fn own_families() -> Vec<MetricFamily> {
    static REGISTRY: std::sync::OnceLock<prometheus::Registry> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            service_http::metrics::registry(OWN_BUILD_INFO, env!("CARGO_PKG_VERSION"), &[])
        })
        .gather()
}

/// Divides every bucket bound and the sum of a `*_seconds` histogram by
/// 10^6. Other families are returned unchanged.
pub fn rescale_microsecond_histogram(mut family: MetricFamily) -> MetricFamily {
    if family.get_field_type() != MetricType::HISTOGRAM || !family.name().ends_with("_seconds") {
        return family;
    }
    for metric in family.mut_metric() {
        let mut histogram = metric.get_histogram().clone();
        histogram.set_sample_sum(histogram.get_sample_sum() / 1e6);
        let buckets = histogram
            .get_bucket()
            .iter()
            .map(|bucket| {
                let mut scaled = bucket.clone();
                scaled.set_upper_bound(bucket.upper_bound() / 1e6);
                scaled
            })
            .collect();
        histogram.set_bucket(buckets);
        metric.set_histogram(histogram);
    }
    family
}

/// The `ops_scrape_errors_total` family: failed scrapes per target, so a
/// backend that is down is visible instead of failing the whole scrape.
pub fn scrape_errors_family(counts: &[(String, u64)]) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name("ops_scrape_errors_total".to_owned());
    family.set_help("Scrapes of a metrics target that failed and were skipped.".to_owned());
    family.set_field_type(MetricType::COUNTER);
    family.set_metric(
        counts
            .iter()
            .map(|(target, count)| {
                let mut metric =
                    Metric::from_label(vec![label_pair("target".into(), target.clone())]);
                let mut counter = Counter::default();
                counter.set_value(*count as f64);
                metric.set_counter(counter);
                metric
            })
            .collect(),
    );
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded Envoy `/stats/prometheus` text, shared with the end-to-end
    /// tests' fake Envoy admin (`tests/tests/ops_endpoints`).
    const ENVOY: &str = include_str!("../testdata/envoy_stats.prom");

    fn names(families: &[MetricFamily]) -> Vec<&str> {
        families.iter().map(|f| f.name()).collect()
    }

    fn parsed(text: &str) -> Vec<MetricFamily> {
        parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn gateway(text: &str) -> Vec<MetricFamily> {
        gateway_families(text).unwrap()
    }

    #[test]
    fn microsecond_bounds_and_sums_become_decimal_seconds() {
        let text = render(gateway(
            "# TYPE http_request_duration_seconds histogram\n\
             http_request_duration_seconds_bucket{le=\"1\"} 0\n\
             http_request_duration_seconds_bucket{le=\"0.5\"} 0\n\
             http_request_duration_seconds_bucket{le=\"5000\"} 1\n\
             http_request_duration_seconds_bucket{le=\"25000\"} 2\n\
             http_request_duration_seconds_bucket{le=\"2.5e+06\"} 3\n\
             http_request_duration_seconds_bucket{le=\"1.2345e+08\"} 4\n\
             http_request_duration_seconds_bucket{le=\"1234567890123\"} 5\n\
             http_request_duration_seconds_bucket{le=\"+Inf\"} 6\n\
             http_request_duration_seconds_sum 61234.5\n\
             http_request_duration_seconds_count 6\n",
        ));
        for bound in [
            "0.000001",
            "0.0000005",
            "0.005",
            "0.025",
            "2.5",
            "123.45",
            "1234567.890123",
        ] {
            assert!(
                text.contains(&format!("_bucket{{le=\"{bound}\"}}")),
                "{bound}: {text}"
            );
        }
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(text.contains("http_request_duration_seconds_sum 0.0612345\n"));
        assert!(text.contains("http_request_duration_seconds_count 6\n"));
    }

    #[test]
    fn only_spec_families_and_cluster_resilience_stats_are_exposed() {
        let kept = gateway(ENVOY);
        assert_eq!(
            names(&kept),
            vec![
                "envoy_cluster_upstream_cx_overflow",
                "envoy_cluster_upstream_rq_pending_overflow",
                "envoy_cluster_upstream_rq_retry",
                "envoy_cluster_upstream_rq_retry_overflow",
                "envoy_cluster_outlier_detection_ejections_enforced_total",
                "envoy_cluster_membership_healthy",
                "envoy_cluster_membership_total",
                "http_requests_total",
                "authentication_attempts_total",
                "rate_limit_exceeded_total",
                "backend_requests_total",
                "http_request_duration_seconds",
                "backend_request_duration_seconds",
            ]
        );
        let text = render(kept);
        assert!(text.contains("\nrate_limit_exceeded_total 5\n"), "{text}");
        assert!(!text.contains("envoy_server_memory_allocated"));
        assert!(!text.contains("admin"));
        assert!(!text.contains("upstream_rq_time"));
    }

    #[test]
    fn seconds_histograms_from_the_gateway_are_rescaled() {
        let text = render(gateway(ENVOY));
        for line in [
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.005"} 30"#,
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.01"} 38"#,
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.025"} 41"#,
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="10"} 42"#,
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="+Inf"} 42"#,
            r#"http_request_duration_seconds_sum{endpoint="/api/v1/rates/{ticker}"} 0.1842505"#,
            r#"http_request_duration_seconds_count{endpoint="/api/v1/rates/{ticker}"} 42"#,
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line}:\n{text}");
        }
        // one `+Inf` bucket per histogram series (two series in the text)
        assert_eq!(text.matches("le=\"+Inf\"").count(), 2, "{text}");
    }

    #[test]
    fn histograms_not_in_seconds_are_left_alone() {
        let family = parsed(
            "# TYPE size_bytes histogram\nsize_bytes_bucket{le=\"5000\"} 1\nsize_bytes_bucket{le=\"+Inf\"} 1\nsize_bytes_sum 5000\nsize_bytes_count 1\n",
        )
        .remove(0);
        let same = rescale_microsecond_histogram(family.clone());
        assert_eq!(same, family);
        assert_eq!(
            same.get_metric()[0].get_histogram().get_bucket()[0].upper_bound(),
            5000.0
        );
    }

    #[test]
    fn merging_keeps_one_type_line_per_family_and_drops_repeated_series() {
        let envoy = gateway(ENVOY);
        let auth = parsed(
            "# HELP jwt_tokens_issued_total Tokens issued.\n# TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 4\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 17\n",
        );
        let data = parsed(
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 18\n# TYPE http_requests_total counter\nhttp_requests_total{endpoint=\"/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 9\n# TYPE jwt_tokens_issued_total gauge\njwt_tokens_issued_total{x=\"y\"} 1\n",
        );
        let text = render(merge(vec![envoy, auth, data]));
        assert_eq!(text.matches("# TYPE process_start_time_seconds").count(), 1);
        assert_eq!(text.matches("# TYPE http_requests_total").count(), 1);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("process_start_time_seconds "))
                .count(),
            1
        );
        assert!(text.contains("process_start_time_seconds 17\n"));
        assert!(text.contains("# HELP jwt_tokens_issued_total Tokens issued.\n"));
        assert!(text.contains("jwt_tokens_issued_total 4\n"));
        // a family of another type under the same name is not merged in
        assert!(!text.contains("jwt_tokens_issued_total{x="), "{text}");
        // the gateway's two http_requests_total series and the data
        // service's one sit in one contiguous group
        let lines: Vec<&str> = text.lines().collect();
        let first = lines
            .iter()
            .position(|l| l.starts_with("http_requests_total{"))
            .unwrap();
        let group = &lines[first..first + 3];
        assert!(
            group.iter().all(|l| l.starts_with("http_requests_total{")),
            "{text}"
        );
        assert!(group
            .iter()
            .any(|l| l.starts_with("http_requests_total{endpoint=\"/rates/{ticker}\"")));
    }

    #[test]
    fn backends_cannot_contribute_gateway_owned_families() {
        let kept = backend_families(
            "# TYPE http_requests_total counter\nhttp_requests_total{endpoint=\"/rates/{ticker}\"} 9\n\
             # TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 2\n\
             # TYPE ops_scrape_errors_total counter\nops_scrape_errors_total{target=\"x\"} 1\n\
             # TYPE pricing_backend_requests_total counter\npricing_backend_requests_total 4\n",
        )
        .unwrap();
        assert_eq!(
            names(&kept),
            vec!["jwt_tokens_issued_total", "pricing_backend_requests_total"]
        );
    }

    #[test]
    fn backends_process_metrics_and_build_info_of_this_service_are_left_out() {
        let kept = backend_families(
            "# TYPE process_open_fds gauge\nprocess_open_fds 9\n\
             # TYPE ops_build_info gauge\nops_build_info{version=\"0\"} 1\n\
             # TYPE auth_build_info gauge\nauth_build_info{version=\"0\"} 1\n",
        )
        .unwrap();
        assert_eq!(names(&kept), vec!["auth_build_info"]);
    }

    #[test]
    fn own_families_are_build_info_and_process_metrics() {
        let own = own_families();
        let own_names: Vec<String> = names(&own).into_iter().map(str::to_owned).collect();
        let text = render(own);
        assert!(
            text.contains(&format!(
                "ops_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for name in service_http::metrics::PROCESS_FAMILIES {
            assert!(own_names.iter().any(|n| n == name), "{name}: {text}");
        }
    }

    #[test]
    fn scrape_errors_are_a_counter_per_target() {
        let text = render(vec![scrape_errors_family(&[
            ("auth_service".to_owned(), 2),
            ("data_service".to_owned(), 0),
        ])]);
        assert!(text.contains("# TYPE ops_scrape_errors_total counter\n"));
        assert!(text.contains("ops_scrape_errors_total{target=\"auth_service\"} 2\n"));
        assert!(text.contains("ops_scrape_errors_total{target=\"data_service\"} 0\n"));
    }

    #[test]
    fn rendering_and_reparsing_is_stable() {
        let once = render(parsed(ENVOY));
        assert_eq!(render(parsed(&once)), once);
    }
}
