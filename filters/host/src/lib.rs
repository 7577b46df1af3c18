//! proxy-wasm host glue shared by the filter cdylibs. Decisions stay in
//! `filter_core`; this crate only moves data between the host and it.
//!
//! [`ProxyHost`] is the one proxy-wasm implementation of
//! `filter_core::host::Host`, used by all three filters.
//!
//! [`MetricsRecorder`] is the SPEC §8 request recording of the metrics
//! filter. The auth filter runs the same recorder when its configuration
//! has a `metrics` section, so the gateway records its metrics without the
//! per-request cost of a second wasm filter.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use filter_core::metrics::{
    method_label, property_u64, record_request, Endpoint, FinishedRequest, MetricCache,
    MetricsConfig, Origin,
};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

mod proxy_host;

pub use proxy_host::{host_time_ms, parsed_plugin_configuration, ProxyHost, WorkerState};

/// One worker's metrics recording: the configuration and the metric ids
/// defined so far, shared by every request of the worker.
#[derive(Clone)]
pub struct MetricsRecorder {
    config: Rc<MetricsConfig>,
    cache: Rc<RefCell<MetricCache>>,
}

impl MetricsRecorder {
    pub fn new(config: MetricsConfig) -> Self {
        Self {
            config: Rc::new(config),
            cache: Rc::new(RefCell::new(MetricCache::new())),
        }
    }

    /// The recording of one request.
    pub fn request(&self) -> RequestMetrics {
        RequestMetrics {
            recorder: self.clone(),
            endpoint: Endpoint::Unmatched,
            method: "OTHER",
            started: None,
            answered_here: false,
        }
    }

    /// Hands the counters counted since the last flush to the host, one
    /// host call per label set (the filter's tick calls this; see
    /// [`FLUSH_PERIOD`]).
    pub fn flush(&self) {
        if let Ok(mut cache) = self.cache.try_borrow_mut() {
            cache.flush(&ProxyHost::default());
        }
    }
}

/// How often a recording filter's tick hands the counted requests to the
/// host. Counting in the VM and handing over totals saves one host call per
/// counter per request; the cost is that `/metrics` shows a counter up to
/// this much later (Envoy itself merges histograms only at its stats flush,
/// every few seconds), and that what a worker counted in its last period is
/// lost if its VM is torn down before the next tick.
pub const FLUSH_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);

/// What one request's metrics need from its request headers, and when the
/// headers reached the filter.
pub struct RequestMetrics {
    recorder: MetricsRecorder,
    endpoint: Endpoint,
    method: &'static str,
    /// When the request headers reached the filter; `None` when they never
    /// did (an earlier filter answered the request itself).
    started: Option<SystemTime>,
    /// The recording filter answered the request itself (no upstream was
    /// asked, so Envoy need not be asked how the response came about).
    answered_here: bool,
}

impl RequestMetrics {
    /// The request headers reached the filter: `path` and `method` are
    /// `:path` and `:method` (read before any route rewrite changes
    /// `:path`). Starts the request's clock.
    pub fn on_request_headers(&mut self, path: Option<&str>, method: Option<&str>) {
        if let Some(path) = path {
            self.endpoint = Endpoint::from_path(path);
        }
        if let Some(method) = method {
            self.method = method_label(method);
        }
        // A clock read is a much cheaper host call than the
        // `request.duration` property lookup.
        self.started = hostcalls::get_current_time().ok();
    }

    /// The recording filter sent the response itself.
    pub fn answered_here(&mut self) {
        self.answered_here = true;
    }

    /// The request is finished (the host's `on_log`): records it.
    pub fn on_log(&mut self) {
        let duration_us = match self.started {
            Some(start) => hostcalls::get_current_time().ok().map_or(0, |now| {
                now.duration_since(start)
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            }),
            None => {
                // Answered before this filter saw the headers (a CORS
                // preflight, say): the headers are still readable here, and
                // Envoy's own stream duration stands in for the clock.
                self.endpoint = request_header(":path")
                    .map_or(Endpoint::Unmatched, |p| Endpoint::from_path(&p));
                self.method = request_header(":method").map_or("OTHER", |m| method_label(&m));
                property(vec!["request", "duration"])
                    .as_deref()
                    .and_then(property_u64)
                    .map_or(0, |ns| ns / 1000)
            }
        };
        let status = property(vec!["response", "code"])
            .as_deref()
            .and_then(property_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0);
        // As few property reads as the answer allows (each costs a host
        // call and a call back into the VM for the copy). No cluster: the
        // route answered itself (a direct response, no route) and nothing
        // more need be read. A backend latency: an upstream answered. Only
        // without one do the details tell an upstream failure (timeout,
        // reset, no healthy host) from a local reply (rate limited,
        // invalid request).
        let (origin, cluster, backend_latency_us) = if self.answered_here {
            (Origin::Local, None, None)
        } else {
            match property_string(vec!["xds", "cluster_name"]) {
                None => (Origin::Local, None, None),
                Some(cluster) => match property(vec!["response", "backend_latency"])
                    .as_deref()
                    .and_then(property_u64)
                {
                    Some(ns) => (Origin::Upstream, Some(cluster), Some(ns / 1000)),
                    None => (
                        property_string(vec!["response", "code_details"])
                            .map_or(Origin::Local, |d| Origin::from_code_details(&d)),
                        Some(cluster),
                        None,
                    ),
                },
            }
        };
        let request = FinishedRequest {
            endpoint: self.endpoint,
            method: self.method,
            status,
            duration_us,
            origin,
            cluster,
            backend_latency_us,
        };
        if let Ok(mut cache) = self.recorder.cache.try_borrow_mut() {
            record_request(
                &mut cache,
                &ProxyHost::default(),
                &self.recorder.config,
                &request,
            );
        }
    }
}

/// One request header of the current request, `None` when absent (or not
/// valid UTF-8).
pub fn request_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    hostcalls::get_property(path).ok().flatten()
}

fn property_string(path: Vec<&str>) -> Option<String> {
    property(path).and_then(|b| String::from_utf8(b).ok())
}
