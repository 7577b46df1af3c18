//! Metrics filter core: route templates, SPEC §8 metric names with labels
//! encoded in the name, what to record for one finished request, and the
//! operator log lines (`Slow request`, `Backend service error`,
//! `Rate limit exceeded`).
//!
//! Labels travel inside the metric name
//! (`http_requests_total.endpoint=/api/v1/rates/{ticker};.method=GET;.status_code=200;`)
//! and Envoy's `stats_config.stats_tags` turns each `.label=value;` into a
//! real Prometheus label. Durations are recorded in **microseconds** (wasm
//! histograms take integers); the gateway's public `/metrics` rescales every
//! `*_seconds` histogram to seconds.
//!
//! Host access (define / increment / record a metric, read properties and
//! headers, log) goes through [`Host`](crate::host::Host), so everything here runs
//! natively with a test double.

use serde::{Deserialize, Serialize};

pub use crate::endpoint::{one_segment_after, Endpoint, UNMATCHED};
pub use crate::host::{MetricKind, PendingCounts};
pub use crate::logfmt::trace_id_field;

mod record;

pub use record::{record_request, MetricCache};

/// Method label: the standard methods as sent, anything else `OTHER`
/// (bounded cardinality).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

/// Metric names as defined in wasm (before tag extraction).
pub mod names {
    pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
    pub const RATE_LIMIT_EXCEEDED_TOTAL: &str = "rate_limit_exceeded_total";
    pub const BACKEND_REQUEST_DURATION_SECONDS: &str = "backend_request_duration_seconds";
    pub const BACKEND_REQUESTS_TOTAL: &str = "backend_requests_total";
}

/// Builds `name.label=value;.label=value;` (the encoding `stats_tags`
/// extracts). With no labels the plain name is returned.
pub fn encoded_name(name: &str, labels: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        name.len()
            + labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 3)
                .sum::<usize>(),
    );
    out.push_str(name);
    for (key, value) in labels {
        out.push('.');
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push(';');
    }
    out
}

/// Cluster names become the `service` label; anything outside
/// `[A-Za-z0-9_.-]` (which would break the name encoding) becomes `_`.
pub fn service_label(cluster: &str) -> String {
    let cleaned: String = cluster
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// Plugin configuration of the metrics filter (JSON).
///
/// ```json
/// {"slow_request_ms": 500}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Requests taking longer than this many milliseconds (from the request
    /// headers reaching the filter until the request is logged) are logged
    /// as `Slow request`. Default 500
    /// (`SLOW_REQUEST_MS`); must be at least 1.
    #[serde(default = "default_slow_request_ms")]
    pub slow_request_ms: u64,
}

fn default_slow_request_ms() -> u64 {
    500
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            slow_request_ms: default_slow_request_ms(),
        }
    }
}

impl MetricsConfig {
    /// Parses the plugin configuration; an empty configuration means the
    /// defaults. The error names the offending field.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        crate::plugin_config::parse_or_default(raw, "metrics", |config: &Self| {
            match config.invalid_field() {
                Some((field, problem)) => Err(format!("{field} {problem}")),
                None => Ok(()),
            }
        })
    }

    /// The first field out of range and what is wrong with it, for a
    /// configuration that deserialised (also checked where the auth filter
    /// carries this configuration as its `metrics` section).
    pub fn invalid_field(&self) -> Option<(&'static str, &'static str)> {
        (self.slow_request_ms == 0).then_some(("slow_request_ms", "must be at least 1"))
    }
}

/// How the response came about, from Envoy's `response.code_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An upstream answered (`via_upstream`).
    Upstream,
    /// The request was routed to a cluster but the upstream failed: timeout,
    /// reset, connection failure, no healthy host.
    UpstreamFailure,
    /// Answered by Envoy or a filter without an upstream.
    Local,
}

impl Origin {
    pub fn from_code_details(details: &str) -> Self {
        if details == "via_upstream" {
            Self::Upstream
        } else if details.starts_with("upstream_")
            || details == "response_timeout"
            || details == "no_healthy_upstream"
            || details.starts_with("overflow")
            || details == "maintenance_mode"
        {
            Self::UpstreamFailure
        } else {
            Self::Local
        }
    }
}

/// What the metrics filter knows about a request when it has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRequest {
    pub endpoint: Endpoint,
    pub method: &'static str,
    /// HTTP status sent downstream (0 when none was sent).
    pub status: u16,
    /// Whole request (request headers until the access log), in
    /// microseconds.
    pub duration_us: u64,
    pub origin: Origin,
    /// Upstream cluster, when the request was routed to one.
    pub cluster: Option<String>,
    /// Time spent with the upstream, microseconds, when Envoy knows it.
    pub backend_latency_us: Option<u64>,
}

/// Decodes an integer property value (Envoy sends 8 bytes, little endian).
pub fn property_u64(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

#[cfg(test)]
mod tests;
