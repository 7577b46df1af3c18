//! proxy-wasm glue of the metrics filter. What to record and log is decided
//! in `filter_core::metrics`; this crate only forwards host calls.
//!
//! Plugin configuration (JSON, optional): `{"slow_request_ms": 500}`.
//! Durations are recorded in microseconds (see `filter_core::metrics`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use filter_core::metrics::{
    method_label, property_u64, record_request, Endpoint, FinishedRequest, MetricCache, MetricKind,
    MetricsConfig, MetricsHost, Origin,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(MetricsRoot {
            config: Rc::new(MetricsConfig::default()),
            cache: Rc::new(RefCell::new(MetricCache::new())),
        })
    });
}}

struct MetricsRoot {
    config: Rc<MetricsConfig>,
    /// Metric ids by label set, shared by every request of this worker.
    cache: Rc<RefCell<MetricCache>>,
}

impl Context for MetricsRoot {}

impl RootContext for MetricsRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match MetricsConfig::parse(&raw) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(message) => {
                let _ = hostcalls::log(LogLevel::Error, &message);
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MetricsStream {
            config: Rc::clone(&self.config),
            cache: Rc::clone(&self.cache),
            endpoint: Endpoint::Unmatched,
            method: "OTHER",
            started: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct MetricsStream {
    config: Rc<MetricsConfig>,
    cache: Rc<RefCell<MetricCache>>,
    endpoint: Endpoint,
    method: &'static str,
    /// When the request headers reached this filter.
    started: Option<SystemTime>,
}

/// The host, as the core sees it.
struct Host;

impl MetricsHost for Host {
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn increment(&mut self, id: u32, by: i64) {
        let _ = hostcalls::increment_metric(id, by);
    }

    fn record(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn request_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn log_info(&mut self, line: &str) {
        let _ = hostcalls::log(LogLevel::Info, line);
    }

    fn log_warn(&mut self, line: &str) {
        let _ = hostcalls::log(LogLevel::Warn, line);
    }

    fn log_error(&mut self, line: &str) {
        let _ = hostcalls::log(LogLevel::Error, line);
    }
}

fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    hostcalls::get_property(path).ok().flatten()
}

fn property_string(path: Vec<&str>) -> Option<String> {
    property(path).and_then(|b| String::from_utf8(b).ok())
}

impl Context for MetricsStream {}

impl HttpContext for MetricsStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Read before any route rewrite changes `:path`.
        if let Some(path) = Host.request_header(":path") {
            self.endpoint = Endpoint::from_path(&path);
        }
        if let Some(method) = Host.request_header(":method") {
            self.method = method_label(&method);
        }
        // The duration is measured here rather than read from the
        // `request.duration` property: a clock read is a much cheaper host
        // call than a property lookup.
        self.started = hostcalls::get_current_time().ok();
        Action::Continue
    }

    fn on_log(&mut self) {
        let status = property(vec!["response", "code"])
            .as_deref()
            .and_then(property_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0);
        let duration_us = match (self.started, hostcalls::get_current_time()) {
            (Some(start), Ok(now)) => now
                .duration_since(start)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            _ => 0,
        };
        let origin = property_string(vec!["response", "code_details"])
            .map_or(Origin::Local, |d| Origin::from_code_details(&d));
        let (cluster, backend_latency_us) = if origin == Origin::Local {
            (None, None)
        } else {
            (
                property_string(vec!["xds", "cluster_name"]),
                property(vec!["response", "backend_latency"])
                    .as_deref()
                    .and_then(property_u64)
                    .map(|ns| ns / 1000),
            )
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
        if let Ok(mut cache) = self.cache.try_borrow_mut() {
            record_request(&mut cache, &mut Host, &self.config, &request);
        }
    }
}
