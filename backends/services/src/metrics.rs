//! The backends' own Prometheus counters (`GET /metrics`), plus the
//! per-request bookkeeping middleware (counts, durations, `Slow request`
//! log lines).
//!
//! Names are prefixed `pricing_backend_` so they never collide with the
//! gateway's SPEC §8 metrics when the ops service appends them. Each
//! service instance has its own registry (see [`service_http::metrics`]),
//! which also exports `process_*` and `pricing_backend_build_info`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use service_http::metrics::prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use service_http::metrics::{encode, register, registry, DURATION_BUCKETS};

/// The metrics of one service, in its own registry.
#[derive(Debug)]
pub struct Metrics {
    slow_request: Duration,
    registry: Registry,
    /// `pricing_backend_requests_total{service,endpoint,method,status_code}`.
    requests: IntCounterVec,
    /// `pricing_backend_request_duration_seconds{service,endpoint}`.
    duration: HistogramVec,
    /// Audit rows written (`pricing_backend_audit_writes_total{result="success"}`).
    pub audit_writes: IntCounter,
    /// Audit rows that could not be written (the request failed with 503;
    /// `result="error"`).
    pub audit_failures: IntCounter,
}

impl Metrics {
    /// `service` is the Envoy cluster name of the service (`data_service`,
    /// ...), the `service` label of every family.
    pub fn new(service: &'static str, slow_request: Duration) -> Arc<Self> {
        let registry = registry(
            "pricing_backend_build_info",
            env!("CARGO_PKG_VERSION"),
            &[("service", service)],
        );
        let requests = IntCounterVec::new(
            Opts::new(
                "pricing_backend_requests_total",
                "Requests answered by a pricing backend.",
            )
            .const_label("service", service),
            &["endpoint", "method", "status_code"],
        )
        .expect("valid metric options");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "pricing_backend_request_duration_seconds",
                "Time spent answering, per endpoint.",
            )
            .const_label("service", service)
            .buckets(DURATION_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric options");
        let audit = IntCounterVec::new(
            Opts::new(
                "pricing_backend_audit_writes_total",
                "Audit rows written, by result.",
            )
            .const_label("service", service),
            &["result"],
        )
        .expect("valid metric options");
        register(&registry, &requests);
        register(&registry, &duration);
        register(&registry, &audit);
        Arc::new(Self {
            slow_request,
            registry,
            requests,
            duration,
            audit_writes: audit.with_label_values(&["success"]),
            audit_failures: audit.with_label_values(&["error"]),
        })
    }

    /// Counts one answered request.
    pub fn record(&self, endpoint: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .with_label_values(&[endpoint, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
    }

    /// Requests counted so far for one endpoint and status.
    pub fn requests_for(&self, endpoint: &str, status: u16) -> u64 {
        use service_http::metrics::prometheus::core::Collector as _;
        let status = status.to_string();
        self.requests
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_owned())
                };
                label("endpoint").as_deref() == Some(endpoint)
                    && label("status_code").as_deref() == Some(status.as_str())
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        encode(&self.registry)
    }
}

/// `GET /metrics` handler body.
pub fn metrics_response(metrics: &Metrics) -> Response {
    service_http::metrics::metrics_response(metrics.render())
}

/// Middleware: counts each request under its route template (`unmatched`
/// for unknown paths) and logs `Slow request` past the configured limit.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    metrics.record(&endpoint, &method, status, took);
    if took >= metrics.slow_request {
        tracing::warn!(
            endpoint = %endpoint,
            method = %method,
            status_code = status,
            duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "Slow request"
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_with_the_spec_labels_and_timed_in_50us_to_10s_buckets() {
        let m = Metrics::new("data_service", Duration::from_secs(1));
        m.record("/rates/{ticker}", "GET", 200, Duration::from_micros(40));
        m.record("/rates/{ticker}", "GET", 404, Duration::from_millis(3));
        assert_eq!(m.requests_for("/rates/{ticker}", 200), 1);
        assert_eq!(m.requests_for("/rates/{ticker}", 404), 1);
        assert_eq!(m.requests_for("/other", 200), 0);
        let text = m.render();
        assert!(
            text.contains("pricing_backend_requests_total{endpoint=\"/rates/{ticker}\",method=\"GET\",service=\"data_service\",status_code=\"200\"} 1\n"),
            "{text}"
        );
        let bucket = |le: &str| {
            format!("pricing_backend_request_duration_seconds_bucket{{endpoint=\"/rates/{{ticker}}\",service=\"data_service\",le=\"{le}\"}}")
        };
        assert!(
            text.contains(&format!("{} 1\n", bucket("0.00005"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 1\n", bucket("0.0025"))),
            "{text}"
        );
        assert!(text.contains(&format!("{} 2\n", bucket("0.005"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", bucket("10"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))), "{text}");
        assert!(text.contains("# TYPE pricing_backend_request_duration_seconds histogram\n"));
    }

    #[test]
    fn audit_results_build_info_and_process_metrics_are_exported() {
        let m = Metrics::new("calculation_service", Duration::from_secs(1));
        m.audit_writes.inc();
        let text = m.render();
        assert!(text.contains(
            "pricing_backend_audit_writes_total{result=\"success\",service=\"calculation_service\"} 1\n"
        ));
        assert!(text.contains(
            "pricing_backend_audit_writes_total{result=\"error\",service=\"calculation_service\"} 0\n"
        ));
        assert!(text.contains(&format!(
            "pricing_backend_build_info{{service=\"calculation_service\",version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name}: {text}");
        }
    }
}
