//! The backends' own Prometheus counters (`GET /metrics`), plus the
//! per-request bookkeeping middleware (counts, durations, `Slow request`
//! log lines).
//!
//! Names are prefixed `pricing_backend_` so they never collide with the
//! gateway's SPEC §8 metrics when the ops service appends them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Counters of one service.
#[derive(Debug)]
pub struct Metrics {
    /// Envoy cluster name of the service (`data_service`, ...), the
    /// `service` label.
    service: &'static str,
    slow_request: Duration,
    requests: Mutex<BTreeMap<(String, String, u16), RequestStats>>,
    /// Audit rows written.
    pub audit_writes: AtomicU64,
    /// Audit rows that could not be written (the request failed with 503).
    pub audit_failures: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct RequestStats {
    count: u64,
    micros: u64,
}

impl Metrics {
    pub fn new(service: &'static str, slow_request: Duration) -> Arc<Self> {
        Arc::new(Self {
            service,
            slow_request,
            requests: Mutex::default(),
            audit_writes: AtomicU64::new(0),
            audit_failures: AtomicU64::new(0),
        })
    }

    /// Counts one answered request.
    pub fn record(&self, endpoint: &str, method: &str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            let e = m
                .entry((endpoint.to_owned(), method.to_owned(), status))
                .or_default();
            e.count += 1;
            e.micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        }
    }

    /// Requests counted so far for one endpoint and status.
    pub fn requests_for(&self, endpoint: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((e, _, s), _)| e == endpoint && *s == status)
                    .map(|(_, v)| v.count)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let svc = self.service;
        out.push_str(
            "# HELP pricing_backend_requests_total Requests answered by a pricing backend.\n",
        );
        out.push_str("# TYPE pricing_backend_requests_total counter\n");
        let snapshot: Vec<_> = self
            .requests
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        for ((endpoint, method, status), v) in &snapshot {
            let _ = writeln!(
                out,
                "pricing_backend_requests_total{{service=\"{svc}\",endpoint=\"{endpoint}\",method=\"{method}\",status_code=\"{status}\"}} {}",
                v.count
            );
        }
        out.push_str(
            "# HELP pricing_backend_request_duration_seconds Time spent answering, per endpoint.\n",
        );
        out.push_str("# TYPE pricing_backend_request_duration_seconds summary\n");
        let mut per_endpoint: BTreeMap<&str, RequestStats> = BTreeMap::new();
        for ((endpoint, _, _), v) in &snapshot {
            let e = per_endpoint.entry(endpoint.as_str()).or_default();
            e.count += v.count;
            e.micros += v.micros;
        }
        for (endpoint, v) in per_endpoint {
            let _ = writeln!(
                out,
                "pricing_backend_request_duration_seconds_sum{{service=\"{svc}\",endpoint=\"{endpoint}\"}} {}.{:06}",
                v.micros / 1_000_000,
                v.micros % 1_000_000
            );
            let _ = writeln!(
                out,
                "pricing_backend_request_duration_seconds_count{{service=\"{svc}\",endpoint=\"{endpoint}\"}} {}",
                v.count
            );
        }
        out.push_str("# HELP pricing_backend_audit_writes_total Audit rows written, by result.\n");
        out.push_str("# TYPE pricing_backend_audit_writes_total counter\n");
        let _ = writeln!(
            out,
            "pricing_backend_audit_writes_total{{service=\"{svc}\",result=\"success\"}} {}",
            self.audit_writes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "pricing_backend_audit_writes_total{{service=\"{svc}\",result=\"error\"}} {}",
            self.audit_failures.load(Ordering::Relaxed)
        );
        out
    }
}

/// `GET /metrics` handler body.
pub fn metrics_response(metrics: &Metrics) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
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
