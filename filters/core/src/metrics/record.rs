//! What one finished request records: the SPEC §8 metrics (through a
//! per-worker [`MetricCache`] of metric ids and buffered counts) and the
//! operator log lines it calls for.

use std::collections::HashMap;

use crate::endpoint::Endpoint;
use crate::host::{Host, LogLevel, MetricKind, PendingCounts};
use crate::logfmt::{quote, trace_id_field};

use super::{encoded_name, names, service_label, FinishedRequest, MetricsConfig, Origin};

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

/// The cached counter slot, or defines the counter `name()` and gives it a
/// slot in `counts`.
fn cached_slot(
    slot: &mut Option<usize>,
    defined: &mut usize,
    counts: &mut PendingCounts,
    host: &impl Host,
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
    host: &impl Host,
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
        host: &impl Host,
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

    fn request_duration(&mut self, host: &impl Host, endpoint: Endpoint) -> Option<u32> {
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

    fn backend_total(&mut self, host: &impl Host, cluster: &str, failed: bool) -> Option<usize> {
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

    fn backend_latency(&mut self, host: &impl Host, cluster: &str) -> Option<u32> {
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

    fn rate_limited(&mut self, host: &impl Host) -> Option<usize> {
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
    pub fn flush(&mut self, host: &impl Host) {
        self.counts.flush(|id, by| host.increment_metric(id, by));
    }
}

/// Records the SPEC §8 metrics of one finished request and writes the
/// operator log lines it calls for. Counters reach the host at the next
/// [`MetricCache::flush`]; histogram samples and log lines at once.
pub fn record_request(
    cache: &mut MetricCache,
    host: &impl Host,
    config: &MetricsConfig,
    request: &FinishedRequest,
) {
    let endpoint = request.endpoint.template();
    if let Some(slot) = cache.request_total(host, request.endpoint, request.method, request.status)
    {
        cache.counts.count(slot);
    }
    if let Some(id) = cache.request_duration(host, request.endpoint) {
        host.record_metric(id, request.duration_us);
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
                    host.record_metric(id, latency);
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
            quote(&client_id),
            quote(endpoint),
            quote(&request_id),
        )
    };
    if backend_failed {
        let service = request.cluster.as_deref().map(service_label);
        let line = common(
            "Backend service error",
            "ERROR",
            &format!(
                " service={} status_code={}",
                quote(service.as_deref().unwrap_or("unknown")),
                request.status
            ),
        );
        host.log(LogLevel::Error, &line);
    }
    if rate_limited {
        host.log(LogLevel::Warn, &common("Rate limit exceeded", "WARN", ""));
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
        host.log(LogLevel::Warn, &line);
    }
}
