//! proxy-wasm glue of the validation filter. Every decision is made in
//! `filter_core::validation`; this crate only forwards host calls.
//!
//! Plugin configuration (JSON, optional): `{"max_body_bytes": 8192}`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use filter_core::validation::{Flow, RequestValidation, ValidationConfig};
use filter_host::{parsed_plugin_configuration, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(ValidationRoot { config: ValidationConfig::default() })
    });
}}

struct ValidationRoot {
    config: ValidationConfig,
}

impl Context for ValidationRoot {}

impl RootContext for ValidationRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(config) = parsed_plugin_configuration(ValidationConfig::parse) else {
            return false;
        };
        self.config = config;
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ValidationStream {
            core: RequestValidation::new(self.config.clone()),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request. Each callback hands the core a fresh [`ProxyHost`], so the
/// request headers are read (in one host call, the first time one is
/// needed) only in the header phase, where Envoy still has them.
struct ValidationStream {
    core: RequestValidation,
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for ValidationStream {}

impl HttpContext for ValidationStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(
            self.core
                .on_request_headers(&ProxyHost::default(), end_of_stream),
        )
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.core
                .on_request_body(&ProxyHost::default(), body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.core.on_request_trailers(&ProxyHost::default()))
    }
}
