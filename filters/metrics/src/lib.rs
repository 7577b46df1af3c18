//! proxy-wasm glue of the metrics filter. What to record and log is decided
//! in `filter_core::metrics`; the host calls are `filter_host`'s recorder,
//! which the auth filter runs too when it records the metrics itself.
//!
//! Plugin configuration (JSON, optional): `{"slow_request_ms": 500}`.
//! Durations are recorded in microseconds (see `filter_core::metrics`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use filter_core::metrics::MetricsConfig;
use filter_host::{
    parsed_plugin_configuration, request_header, MetricsRecorder, RequestMetrics, FLUSH_PERIOD,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(MetricsRoot {
            recorder: MetricsRecorder::new(MetricsConfig::default()),
        })
    });
}}

struct MetricsRoot {
    recorder: MetricsRecorder,
}

impl Context for MetricsRoot {}

impl RootContext for MetricsRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(config) = parsed_plugin_configuration(MetricsConfig::parse) else {
            return false;
        };
        self.recorder = MetricsRecorder::new(config);
        if hostcalls::set_tick_period(FLUSH_PERIOD).is_err() {
            let _ = hostcalls::log(LogLevel::Error, "metrics filter: cannot start its tick");
            return false;
        }
        true
    }

    /// Hands the requests counted since the last tick to the host.
    fn on_tick(&mut self) {
        self.recorder.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MetricsStream {
            metrics: self.recorder.request(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct MetricsStream {
    metrics: RequestMetrics,
}

impl Context for MetricsStream {}

impl HttpContext for MetricsStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = request_header(":path");
        let method = request_header(":method");
        self.metrics
            .on_request_headers(path.as_deref(), method.as_deref());
        Action::Continue
    }

    fn on_log(&mut self) {
        self.metrics.on_log();
    }
}
