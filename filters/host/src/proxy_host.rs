//! [`ProxyHost`]: the proxy-wasm implementation of the filters' one host
//! trait, `filter_core::host::Host`.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use filter_core::host::{Host, LogLevel, MetricKind, PendingCounts, SharedWrite};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};

/// What the requests of one worker (one VM) share with its root context:
/// the clock its tick refreshes and the counters its tick hands over.
#[derive(Clone, Default)]
pub struct WorkerState {
    /// Wall clock as of the last tick (ms since the epoch).
    pub clock: Rc<Cell<u64>>,
    /// How far real time may be ahead of `clock` (see
    /// `Host::clock_slack_ms`).
    pub clock_slack_ms: u64,
    /// Counters counted through [`Host::count`], handed to the host at
    /// each tick.
    pub counts: Rc<RefCell<PendingCounts>>,
}

impl WorkerState {
    /// A worker whose tick comes every `tick`: the clock may lag by up to
    /// twice that (a tick may come late under load).
    pub fn with_tick(tick: std::time::Duration) -> Self {
        Self {
            clock_slack_ms: 2 * u64::try_from(tick.as_millis()).unwrap_or(u64::MAX),
            ..Self::default()
        }
    }

    /// The tick: refreshes the clock and hands the counted increments to
    /// the host (one host call per counter that counted anything).
    pub fn on_tick(&self) {
        self.clock.set(host_time_ms());
        if let Ok(mut counts) = self.counts.try_borrow_mut() {
            counts.flush(|id, by| {
                let _ = hostcalls::increment_metric(id, by);
            });
        }
    }
}

/// The proxy as the filters' logic sees it. Made per request (or per
/// callback); what it reads from the host it reads at most once: the
/// request headers (one host call for the whole map, the first time one is
/// needed) and the peer address.
#[derive(Default)]
pub struct ProxyHost {
    /// The worker's tick clock and counters; without one the clock is read
    /// from the host and counts are dropped.
    worker: Option<WorkerState>,
    headers: OnceCell<Vec<(String, String)>>,
    source: OnceCell<Option<String>>,
    /// ` trace_id="…"` (empty without one), written after the
    /// `request_id` that ends a request's log lines.
    trace_id: String,
}

impl ProxyHost {
    /// A host for one request of `worker`.
    pub fn for_worker(worker: &WorkerState) -> Self {
        Self {
            worker: Some(worker.clone()),
            ..Self::default()
        }
    }

    /// Ends every log line that names the request (` request_id=`) with
    /// `field` (from `filter_core::logfmt::trace_id_field`).
    pub fn set_trace_id(&mut self, field: String) {
        self.trace_id = field;
    }
}

impl Host for ProxyHost {
    fn request_header(&self, name: &str) -> Option<String> {
        self.headers
            .get_or_init(|| hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default())
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn request_body(&self, len: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, len)
            .ok()
            .flatten()
    }

    fn source_address(&self) -> Option<String> {
        self.source
            .get_or_init(|| {
                hostcalls::get_property(vec!["source", "address"])
                    .ok()
                    .flatten()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
            })
            .clone()
    }

    fn send_reply(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let _ = hostcalls::send_http_response(
            u32::from(status),
            headers.to_vec(),
            Some(body.as_bytes()),
        );
    }

    fn now_ms(&self) -> u64 {
        match &self.worker {
            Some(worker) => worker.clock.get(),
            None => host_time_ms(),
        }
    }

    fn clock_slack_ms(&self) -> u64 {
        self.worker.as_ref().map_or(0, |w| w.clock_slack_ms)
    }

    fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(key)
            .ok()
            .and_then(|(value, _)| value)
    }

    fn shared_get_versioned(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set_if_unchanged(
        &self,
        key: &str,
        value: &[u8],
        version: Option<u32>,
    ) -> SharedWrite {
        match hostcalls::set_shared_data(key, Some(value), version) {
            Ok(()) => SharedWrite::Written,
            Err(Status::CasMismatch) => SharedWrite::Conflict,
            Err(_) => SharedWrite::Failed,
        }
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn increment_metric(&self, id: u32, by: i64) {
        let _ = hostcalls::increment_metric(id, by);
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn count(&self, slot: usize) {
        if let Some(worker) = &self.worker {
            if let Ok(mut counts) = worker.counts.try_borrow_mut() {
                counts.count(slot);
            }
        }
    }

    fn log(&self, level: LogLevel, line: &str) {
        let level = match level {
            LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
            LogLevel::Info => proxy_wasm::types::LogLevel::Info,
            LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
            LogLevel::Error => proxy_wasm::types::LogLevel::Error,
        };
        if self.trace_id.is_empty() || !line.contains(" request_id=") {
            let _ = hostcalls::log(level, line);
        } else {
            let _ = hostcalls::log(level, &format!("{line}{}", self.trace_id));
        }
    }
}

/// Host wall clock, milliseconds since the Unix epoch (0 if unavailable).
pub fn host_time_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The plugin configuration Envoy hands to `on_configure` (empty when
/// there is none).
fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The plugin configuration read by `parse`. A refusal is logged at error
/// level (its message names the field) and gives `None`, for
/// `on_configure` to return false.
pub fn parsed_plugin_configuration<T, E: std::fmt::Display>(
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<T> {
    match parse(&plugin_configuration()) {
        Ok(config) => Some(config),
        Err(message) => {
            let _ = hostcalls::log(proxy_wasm::types::LogLevel::Error, &message.to_string());
            None
        }
    }
}
