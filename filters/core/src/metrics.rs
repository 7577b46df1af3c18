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
//! headers, log) goes through [`MetricsHost`], so everything here runs
//! natively with a test double.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Endpoint label for any path that is not a SPEC §2 route, so that callers
/// cannot inflate label cardinality.
pub const UNMATCHED: &str = "unmatched";

/// The SPEC §2 routes, as route templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Health,
    HealthDetailed,
    HealthService,
    Metrics,
    MonitoringMetrics,
    DiscoveryServices,
    Docs,
    OpenApi,
    AuthToken,
    Rates,
    CalculateLocate,
    Unmatched,
}

impl Endpoint {
    /// Maps a request path (query string and fragment ignored) to its route.
    pub fn from_path(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        match path {
            "/health" => Self::Health,
            "/health/detailed" => Self::HealthDetailed,
            "/metrics" => Self::Metrics,
            "/monitoring/metrics" => Self::MonitoringMetrics,
            "/discovery/services" => Self::DiscoveryServices,
            "/docs" => Self::Docs,
            "/openapi.json" => Self::OpenApi,
            "/api/v1/auth/token" => Self::AuthToken,
            "/api/v1/calculate-locate" => Self::CalculateLocate,
            _ => {
                if one_segment_after(path, "/api/v1/rates/").is_some() {
                    Self::Rates
                } else if one_segment_after(path, "/health/").is_some() {
                    Self::HealthService
                } else {
                    Self::Unmatched
                }
            }
        }
    }

    /// The label value: the route template, or [`UNMATCHED`].
    pub const fn template(self) -> &'static str {
        match self {
            Self::Health => "/health",
            Self::HealthDetailed => "/health/detailed",
            Self::HealthService => "/health/{service}",
            Self::Metrics => "/metrics",
            Self::MonitoringMetrics => "/monitoring/metrics",
            Self::DiscoveryServices => "/discovery/services",
            Self::Docs => "/docs",
            Self::OpenApi => "/openapi.json",
            Self::AuthToken => "/api/v1/auth/token",
            Self::Rates => "/api/v1/rates/{ticker}",
            Self::CalculateLocate => "/api/v1/calculate-locate",
            Self::Unmatched => UNMATCHED,
        }
    }
}

/// The single non-empty path segment after `prefix` (`/api/v1/rates/AAPL`
/// → `AAPL`), ignoring query string and fragment; `None` when the path has
/// another shape.
pub fn one_segment_after<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let rest = path.strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

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

/// Counter or histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Histogram,
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
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let config: Self =
            parse_config(raw).map_err(|e| format!("invalid metrics filter configuration: {e}"))?;
        if let Some((field, problem)) = config.invalid_field() {
            return Err(format!(
                "invalid metrics filter configuration: {field} {problem}"
            ));
        }
        Ok(config)
    }

    /// The first field out of range and what is wrong with it, for a
    /// configuration that deserialised (also checked where the auth filter
    /// carries this configuration as its `metrics` section).
    pub fn invalid_field(&self) -> Option<(&'static str, &'static str)> {
        (self.slow_request_ms == 0).then_some(("slow_request_ms", "must be at least 1"))
    }
}

/// Deserialises a plugin configuration; errors name the field
/// (`slow_request_ms: invalid type: string "x", expected u64`).
pub fn parse_config<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
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

/// Host access the metrics filter needs.
pub trait MetricsHost {
    /// Defines (or looks up) a metric; `None` when the host refuses.
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment(&mut self, id: u32, by: i64);
    fn record(&mut self, id: u32, value: u64);
    /// A request header, read only when a log line needs it.
    fn request_header(&self, name: &str) -> Option<String>;
    fn log_info(&mut self, line: &str);
    fn log_warn(&mut self, line: &str);
    fn log_error(&mut self, line: &str);
}

/// Metric ids by label set, kept for the life of the plugin so each label
/// set is defined once. Keys are the labels themselves (no name is built or
/// hashed as a string once a label set is known: this runs on every request).
///
/// Counter increments are not handed to the host one by one: they add up
/// in [`PendingCounts`] and [`MetricCache::flush`] (the filter's tick) hands
/// each label set's total over in one call. Histogram samples go to the host
/// at once (they cannot be summed).
#[derive(Debug, Default)]
pub struct MetricCache {
    /// `http_requests_total` by label set: its slot in `counts`.
    requests: HashMap<(Endpoint, &'static str, u16), usize>,
    durations: HashMap<Endpoint, u32>,
    /// By upstream cluster: the success and error counters (slots in
    /// `counts`) and the latency histogram.
    backends: HashMap<String, BackendIds>,
    rate_limited: Option<usize>,
    counts: PendingCounts,
    defined: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct BackendIds {
    success: Option<usize>,
    error: Option<usize>,
    latency: Option<u32>,
}

/// Counter increments not yet handed to the host, one slot per counter.
#[derive(Debug, Default)]
pub struct PendingCounts {
    /// Metric id and the increments since the last flush.
    slots: Vec<(u32, i64)>,
}

impl PendingCounts {
    /// A new slot for the counter `id`.
    pub fn add_slot(&mut self, id: u32) -> usize {
        self.slots.push((id, 0));
        self.slots.len() - 1
    }

    /// Counts one more in `slot` (from [`PendingCounts::add_slot`]).
    pub fn count(&mut self, slot: usize) {
        if let Some((_, pending)) = self.slots.get_mut(slot) {
            *pending += 1;
        }
    }

    /// Increments not yet handed to the host, over every counter.
    pub fn pending(&self) -> i64 {
        self.slots.iter().map(|(_, n)| n).sum()
    }

    /// Hands every counter's pending increments to `increment` (one call
    /// per counter that has any) and starts counting from zero.
    pub fn flush(&mut self, mut increment: impl FnMut(u32, i64)) {
        for (id, pending) in &mut self.slots {
            if *pending != 0 {
                increment(*id, *pending);
                *pending = 0;
            }
        }
    }
}

/// The cached counter slot, or defines the counter `name()` and gives it a
/// slot in `counts`.
fn cached_slot(
    slot: &mut Option<usize>,
    defined: &mut usize,
    counts: &mut PendingCounts,
    host: &mut impl MetricsHost,
    name: impl FnOnce() -> String,
) -> Option<usize> {
    if slot.is_none() {
        if let Some(id) = host.define_metric(MetricKind::Counter, &name()) {
            *slot = Some(counts.add_slot(id));
            *defined += 1;
        }
    }
    *slot
}

/// The cached id, or defines the metric `name()` and caches its id.
fn cached_id(
    slot: &mut Option<u32>,
    defined: &mut usize,
    host: &mut impl MetricsHost,
    kind: MetricKind,
    name: impl FnOnce() -> String,
) -> Option<u32> {
    if slot.is_none() {
        *slot = host.define_metric(kind, &name());
        if slot.is_some() {
            *defined += 1;
        }
    }
    *slot
}

impl MetricCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of label sets defined so far.
    pub fn len(&self) -> usize {
        self.defined
    }

    pub fn is_empty(&self) -> bool {
        self.defined == 0
    }

    fn request_total(
        &mut self,
        host: &mut impl MetricsHost,
        endpoint: Endpoint,
        method: &'static str,
        status: u16,
    ) -> Option<usize> {
        let key = (endpoint, method, status);
        if let Some(slot) = self.requests.get(&key) {
            return Some(*slot);
        }
        let mut slot = None;
        let slot = cached_slot(&mut slot, &mut self.defined, &mut self.counts, host, || {
            encoded_name(
                names::HTTP_REQUESTS_TOTAL,
                &[
                    ("endpoint", endpoint.template()),
                    ("method", method),
                    ("status_code", &status.to_string()),
                ],
            )
        })?;
        self.requests.insert(key, slot);
        Some(slot)
    }

    fn request_duration(&mut self, host: &mut impl MetricsHost, endpoint: Endpoint) -> Option<u32> {
        if let Some(id) = self.durations.get(&endpoint) {
            return Some(*id);
        }
        let mut slot = None;
        let id = cached_id(
            &mut slot,
            &mut self.defined,
            host,
            MetricKind::Histogram,
            || {
                encoded_name(
                    names::HTTP_REQUEST_DURATION_SECONDS,
                    &[("endpoint", endpoint.template())],
                )
            },
        )?;
        self.durations.insert(endpoint, id);
        Some(id)
    }

    fn backend_total(
        &mut self,
        host: &mut impl MetricsHost,
        cluster: &str,
        failed: bool,
    ) -> Option<usize> {
        let outcome = if failed { "error" } else { "success" };
        let mut ids = self.backends.get(cluster).copied().unwrap_or_default();
        let slot = if failed {
            &mut ids.error
        } else {
            &mut ids.success
        };
        if let Some(slot) = *slot {
            return Some(slot);
        }
        let found = cached_slot(slot, &mut self.defined, &mut self.counts, host, || {
            encoded_name(
                names::BACKEND_REQUESTS_TOTAL,
                &[("service", &service_label(cluster)), ("status", outcome)],
            )
        })?;
        self.backends.insert(cluster.to_owned(), ids);
        Some(found)
    }

    fn backend_latency(&mut self, host: &mut impl MetricsHost, cluster: &str) -> Option<u32> {
        let mut ids = self.backends.get(cluster).copied().unwrap_or_default();
        if let Some(id) = ids.latency {
            return Some(id);
        }
        let id = cached_id(
            &mut ids.latency,
            &mut self.defined,
            host,
            MetricKind::Histogram,
            || {
                encoded_name(
                    names::BACKEND_REQUEST_DURATION_SECONDS,
                    &[("service", &service_label(cluster))],
                )
            },
        )?;
        self.backends.insert(cluster.to_owned(), ids);
        Some(id)
    }

    fn rate_limited(&mut self, host: &mut impl MetricsHost) -> Option<usize> {
        cached_slot(
            &mut self.rate_limited,
            &mut self.defined,
            &mut self.counts,
            host,
            || names::RATE_LIMIT_EXCEEDED_TOTAL.to_owned(),
        )
    }

    /// Counter increments recorded since the last [`MetricCache::flush`].
    pub fn pending(&self) -> i64 {
        self.counts.pending()
    }

    /// Hands the counters' pending increments to the host: one call per
    /// label set that counted anything since the last flush.
    pub fn flush(&mut self, host: &mut impl MetricsHost) {
        self.counts.flush(|id, by| host.increment(id, by));
    }
}

/// Records the SPEC §8 metrics of one finished request and writes the
/// operator log lines it calls for. Counters reach the host at the next
/// [`MetricCache::flush`]; histogram samples and log lines at once.
pub fn record_request(
    cache: &mut MetricCache,
    host: &mut impl MetricsHost,
    config: &MetricsConfig,
    request: &FinishedRequest,
) {
    let endpoint = request.endpoint.template();
    if let Some(slot) = cache.request_total(host, request.endpoint, request.method, request.status)
    {
        cache.counts.count(slot);
    }
    if let Some(id) = cache.request_duration(host, request.endpoint) {
        host.record(id, request.duration_us);
    }

    let backend_failed = match (request.origin, &request.cluster) {
        (Origin::Local, _) | (_, None) => false,
        (origin, Some(cluster)) => {
            let failed = origin == Origin::UpstreamFailure || request.status >= 500;
            if let Some(slot) = cache.backend_total(host, cluster, failed) {
                cache.counts.count(slot);
            }
            if let Some(latency) = request.backend_latency_us {
                if let Some(id) = cache.backend_latency(host, cluster) {
                    host.record(id, latency);
                }
            }
            failed
        }
    };

    let rate_limited = request.status == 429;
    if rate_limited {
        if let Some(slot) = cache.rate_limited(host) {
            cache.counts.count(slot);
        }
    }
    let slow = request.duration_us > config.slow_request_ms.saturating_mul(1000);
    if !(backend_failed || rate_limited || slow) {
        return;
    }

    // Identity is read only when a line is written (host calls cost).
    let request_id = host.request_header("x-request-id").unwrap_or_default();
    let client_id = host.request_header("x-client-id").unwrap_or_default();
    let trace_id = trace_id_field(host.request_header("traceparent").as_deref());
    let common = |msg: &str, level: &str, extra: &str| {
        format!(
            "level={level} msg=\"{msg}\"{extra} client_id={} endpoint={} request_id={}{trace_id}",
            logfmt_quote(&client_id),
            logfmt_quote(endpoint),
            logfmt_quote(&request_id),
        )
    };
    if backend_failed {
        let service = request.cluster.as_deref().map(service_label);
        let line = common(
            "Backend service error",
            "ERROR",
            &format!(
                " service={} status_code={}",
                logfmt_quote(service.as_deref().unwrap_or("unknown")),
                request.status
            ),
        );
        host.log_error(&line);
    }
    if rate_limited {
        host.log_warn(&common("Rate limit exceeded", "WARN", ""));
    }
    if slow {
        let line = common(
            "Slow request",
            "WARN",
            &format!(
                " duration_ms={} threshold_ms={} status_code={}",
                request.duration_us / 1000,
                config.slow_request_ms,
                request.status
            ),
        );
        host.log_warn(&line);
    }
}

/// ` trace_id="<32 hex>"`, the field written after `request_id`, when
/// `traceparent` is a W3C trace context (the gateway sets one on every
/// request when tracing is on); empty otherwise, so lines without tracing
/// are unchanged.
pub fn trace_id_field(traceparent: Option<&str>) -> String {
    let trace_id = traceparent.and_then(|tp| tp.split('-').nth(1));
    match trace_id {
        Some(t)
            if t.len() == 32
                && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && t.bytes().any(|b| b != b'0') =>
        {
            format!(" trace_id=\"{t}\"")
        }
        _ => String::new(),
    }
}

/// A logfmt value in double quotes, with `"`, `\` and control characters
/// escaped, bounded to 256 characters.
pub fn logfmt_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().take(256) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Decodes an integer property value (Envoy sends 8 bytes, little endian).
pub fn property_u64(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct FakeHost {
        defined: Vec<(MetricKind, String)>,
        counters: HashMap<u32, i64>,
        /// Host calls that incremented a counter.
        increments: usize,
        histograms: HashMap<u32, Vec<u64>>,
        headers: Vec<(String, String)>,
        logs: Vec<(String, String)>,
    }

    impl FakeHost {
        fn id_of(&self, name: &str) -> u32 {
            self.defined.iter().position(|(_, n)| n == name).unwrap() as u32
        }
        fn counter(&self, name: &str) -> i64 {
            self.counters.get(&self.id_of(name)).copied().unwrap_or(0)
        }
        fn samples(&self, name: &str) -> Vec<u64> {
            self.histograms
                .get(&self.id_of(name))
                .cloned()
                .unwrap_or_default()
        }
        fn has(&self, name: &str) -> bool {
            self.defined.iter().any(|(_, n)| n == name)
        }
    }

    impl MetricsHost for FakeHost {
        fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
            self.defined.push((kind, name.to_owned()));
            Some(self.defined.len() as u32 - 1)
        }
        fn increment(&mut self, id: u32, by: i64) {
            self.increments += 1;
            *self.counters.entry(id).or_default() += by;
        }
        fn record(&mut self, id: u32, value: u64) {
            self.histograms.entry(id).or_default().push(value);
        }
        fn request_header(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
        fn log_info(&mut self, line: &str) {
            self.logs.push(("info".into(), line.into()));
        }
        fn log_warn(&mut self, line: &str) {
            self.logs.push(("warn".into(), line.into()));
        }
        fn log_error(&mut self, line: &str) {
            self.logs.push(("error".into(), line.into()));
        }
    }

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
        host: &mut FakeHost,
        request: &FinishedRequest,
    ) {
        for _ in 0..times {
            record_request(cache, host, &MetricsConfig::default(), request);
        }
    }

    const RATES_200: &str =
        "http_requests_total.endpoint=/api/v1/rates/{ticker};.method=GET;.status_code=200;";

    #[test]
    fn known_paths_map_to_their_route_templates() {
        let cases = [
            ("/api/v1/rates/AAPL", "/api/v1/rates/{ticker}"),
            ("/api/v1/rates/BRK.B?x=1", "/api/v1/rates/{ticker}"),
            ("/api/v1/calculate-locate", "/api/v1/calculate-locate"),
            ("/api/v1/calculate-locate?debug", "/api/v1/calculate-locate"),
            ("/api/v1/auth/token", "/api/v1/auth/token"),
            ("/health", "/health"),
            ("/health/detailed", "/health/detailed"),
            ("/health/data_service", "/health/{service}"),
            ("/metrics", "/metrics"),
            ("/monitoring/metrics", "/monitoring/metrics"),
            ("/discovery/services", "/discovery/services"),
            ("/docs", "/docs"),
            ("/openapi.json", "/openapi.json"),
        ];
        for (path, template) in cases {
            assert_eq!(Endpoint::from_path(path).template(), template, "{path}");
        }
    }

    #[test]
    fn unknown_paths_fold_into_unmatched() {
        for path in [
            "/",
            "",
            "/api/v1/rates/",
            "/api/v1/rates/AAPL/extra",
            "/api/v1/rates",
            "/health/",
            "/wp-admin.php",
            "/API/V1/RATES/AAPL",
            "/internal/v1/keys/verify",
        ] {
            assert_eq!(Endpoint::from_path(path).template(), UNMATCHED, "{path}");
        }
    }

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
        let mut host = FakeHost::default();
        record_times(
            2,
            &mut cache,
            &mut host,
            &finished(200, Origin::Local, None),
        );
        cache.flush(&mut host);
        assert_eq!(host.counter(RATES_200), 2);
        assert_eq!(
            host.samples("http_request_duration_seconds.endpoint=/api/v1/rates/{ticker};"),
            [1_234, 1_234]
        );
        assert!(host.logs.is_empty());
        assert!(!host.defined.iter().any(|(_, n)| n.starts_with("backend")));
    }

    #[test]
    fn each_label_set_is_defined_only_once() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost::default();
        let upstream_ok = finished(200, Origin::Upstream, Some("data_service"));
        record_times(5, &mut cache, &mut host, &upstream_ok);
        assert_eq!(host.defined.len(), 4);
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn counters_reach_the_host_only_at_a_flush_each_label_set_in_one_call() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost::default();
        let config = MetricsConfig::default();
        let upstream_ok = finished(200, Origin::Upstream, Some("data_service"));
        record_times(3, &mut cache, &mut host, &upstream_ok);
        record_request(
            &mut cache,
            &mut host,
            &config,
            &finished(429, Origin::Local, None),
        );
        // Histogram samples go out at once; counters wait for the flush.
        assert_eq!(
            host.samples("http_request_duration_seconds.endpoint=/api/v1/rates/{ticker};"),
            [1_234; 4]
        );
        assert!(host.counters.is_empty());
        assert_eq!(cache.pending(), 3 + 3 + 2);

        cache.flush(&mut host);
        assert_eq!(host.increments, 4, "one call per counter label set");
        assert_eq!(host.counter(RATES_200), 3);
        assert_eq!(
            host.counter("backend_requests_total.service=data_service;.status=success;"),
            3
        );
        assert_eq!(host.counter("rate_limit_exceeded_total"), 1);
        assert_eq!(cache.pending(), 0);

        // Nothing pending: a flush makes no call; later requests count on.
        cache.flush(&mut host);
        assert_eq!(host.increments, 4);
        record_times(
            1,
            &mut cache,
            &mut host,
            &finished(200, Origin::Local, None),
        );
        cache.flush(&mut host);
        assert_eq!(host.increments, 5);
        assert_eq!(host.counter(RATES_200), 4);
    }

    #[test]
    fn upstream_answers_count_per_service_and_outcome() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost::default();
        let config = MetricsConfig::default();
        let ok = finished(200, Origin::Upstream, Some("data_service"));
        let bad = finished(503, Origin::Upstream, Some("data_service"));
        record_request(&mut cache, &mut host, &config, &ok);
        record_request(&mut cache, &mut host, &config, &bad);
        record_request(&mut cache, &mut host, &config, &bad);
        cache.flush(&mut host);
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
        let errors: Vec<_> = host.logs.iter().filter(|(l, _)| l == "error").collect();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].1.contains("msg=\"Backend service error\""));
        assert!(errors[0].1.contains("service=\"data_service\""));
    }

    #[test]
    fn upstream_failures_are_backend_errors_even_without_latency() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost {
            headers: vec![
                ("x-request-id".into(), "rid-7".into()),
                ("x-client-id".into(), "test123".into()),
            ],
            ..Default::default()
        };
        let mut timeout = finished(504, Origin::UpstreamFailure, Some("calculation_service"));
        timeout.backend_latency_us = None;
        record_request(&mut cache, &mut host, &MetricsConfig::default(), &timeout);
        cache.flush(&mut host);
        assert_eq!(
            host.counter("backend_requests_total.service=calculation_service;.status=error;"),
            1
        );
        assert!(!host.has("backend_request_duration_seconds.service=calculation_service;"));
        assert_eq!(
            host.logs[0].1,
            "level=ERROR msg=\"Backend service error\" service=\"calculation_service\" status_code=504 client_id=\"test123\" endpoint=\"/api/v1/rates/{ticker}\" request_id=\"rid-7\""
        );
    }

    #[test]
    fn local_replies_never_touch_backend_metrics() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost::default();
        record_request(
            &mut cache,
            &mut host,
            &MetricsConfig::default(),
            &finished(400, Origin::Local, Some("calculation_service")),
        );
        assert!(!host.defined.iter().any(|(_, n)| n.starts_with("backend")));
    }

    #[test]
    fn a_429_counts_as_rate_limit_exceeded_and_is_logged() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost::default();
        record_request(
            &mut cache,
            &mut host,
            &MetricsConfig::default(),
            &finished(429, Origin::Local, None),
        );
        cache.flush(&mut host);
        assert_eq!(host.counter("rate_limit_exceeded_total"), 1);
        assert!(host.logs[0]
            .1
            .starts_with("level=WARN msg=\"Rate limit exceeded\""));
    }

    #[test]
    fn requests_over_the_threshold_are_logged_as_slow() {
        let mut cache = MetricCache::new();
        let mut host = FakeHost::default();
        let config = MetricsConfig { slow_request_ms: 1 };
        let mut r = finished(200, Origin::Local, None);
        r.duration_us = 1_000;
        record_request(&mut cache, &mut host, &config, &r);
        assert!(host.logs.is_empty(), "exactly the threshold is not slow");
        r.duration_us = 2_500;
        record_request(&mut cache, &mut host, &config, &r);
        assert_eq!(host.logs.len(), 1);
        assert!(host.logs[0]
            .1
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
        assert!(MetricsConfig::parse(br#"{"slow_request_ms":0}"#)
            .unwrap_err()
            .contains("slow_request_ms"));
        assert!(MetricsConfig::parse(br#"{"slow_request_ms":"x"}"#)
            .unwrap_err()
            .contains("slow_request_ms"));
        assert!(MetricsConfig::parse(br#"{"slow_ms":1}"#)
            .unwrap_err()
            .contains("slow_ms"));
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
    fn the_trace_id_field_comes_only_from_a_w3c_traceparent() {
        assert_eq!(
            trace_id_field(Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )),
            " trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\""
        );
        for bad in [
            None,
            Some(""),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f35\"7b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ] {
            assert_eq!(trace_id_field(bad), "", "{bad:?}");
        }
    }

    #[test]
    fn logfmt_values_are_quoted_and_escaped() {
        assert_eq!(logfmt_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(logfmt_quote("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn integer_properties_decode_little_endian() {
        assert_eq!(property_u64(&429u64.to_le_bytes()), Some(429));
        assert_eq!(property_u64(&[1, 2]), None);
    }
}
