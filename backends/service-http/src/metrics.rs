//! Each service's own Prometheus registry and its `GET /metrics` answer.
//!
//! Built on the `prometheus` crate (tikv/rust-prometheus) with one
//! [`Registry`] per service instance, never the crate's default global
//! registry: tests start several services in one process, and each must
//! count only its own requests. [`registry`] registers, besides the
//! service's own families:
//!
//! * the `process_*` families of the crate's `ProcessCollector` (Linux),
//!   [`PROCESS_FAMILIES`];
//! * `<name>_build_info{version="…"} 1`.
//!
//! Duration histograms use [`DURATION_BUCKETS`] (50 µs to 10 s).

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
pub use prometheus;
use prometheus::{Histogram, HistogramOpts, IntGaugeVec, Opts, Registry, TextEncoder};

/// Upper bounds (seconds) of every duration histogram: 50 µs to 10 s.
pub const DURATION_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// The families of the process collector every [`registry`] holds on
/// Linux.
pub const PROCESS_FAMILIES: [&str; 7] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
];

/// A fresh registry holding the process collector (on Linux) and the gauge
/// `build_info{version}` = 1 (`build_info` is the full family name, e.g.
/// `pricing_backend_build_info`), plus `const_labels` on the build info only
/// (e.g. `service`).
pub fn registry(build_info: &str, version: &str, const_labels: &[(&str, &str)]) -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        // Cannot fail on a fresh registry: the names are not taken yet.
        let _ = registry.register(Box::new(process));
    }
    let mut opts = Opts::new(build_info, "Always 1; the labels name the running build.");
    for (k, v) in const_labels {
        opts = opts.const_label(*k, *v);
    }
    if let Ok(info) = IntGaugeVec::new(opts, &["version"]) {
        info.with_label_values(&[version]).set(1);
        let _ = registry.register(Box::new(info));
    }
    registry
}

/// Registers a collector the caller built from constant, valid options;
/// a clash with an already registered name is a programming error caught by
/// the unit tests, so it only logs.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: &C) {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
}

/// A duration histogram (seconds, [`DURATION_BUCKETS`]) registered in
/// `registry`.
pub fn duration_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let histogram =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()))
            .expect("valid metric options");
    register(registry, &histogram);
    histogram
}

/// The registry in the Prometheus text format (0.0.4).
pub fn encode(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_default()
}

/// `GET /metrics` answer: [`encode`] with its content type.
pub fn metrics_response(text: String) -> Response {
    ([(CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::HistogramVec;

    #[test]
    fn build_info_is_one_with_the_version_and_const_labels() {
        let r = registry("x_build_info", "1.2.3", &[("service", "data_service")]);
        let text = encode(&r);
        assert!(
            text.contains("x_build_info{service=\"data_service\",version=\"1.2.3\"} 1\n"),
            "{text}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_exported_on_linux() {
        let text = encode(&registry("x_build_info", "0", &[]));
        for name in PROCESS_FAMILIES {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing:\n{text}"
            );
        }
    }

    #[test]
    fn registries_are_independent() {
        let a = registry("x_build_info", "0", &[]);
        let b = registry("x_build_info", "0", &[]);
        let h = HistogramVec::new(
            HistogramOpts::new("x_seconds", "x").buckets(DURATION_BUCKETS.to_vec()),
            &["l"],
        )
        .unwrap();
        register(&a, &h);
        h.with_label_values(&["v"]).observe(0.00004);
        let text = encode(&a);
        assert!(
            text.contains("x_seconds_bucket{l=\"v\",le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{l=\"v\",le=\"10\"} 1\n"),
            "{text}"
        );
        assert!(!encode(&b).contains("x_seconds"));
    }
}
