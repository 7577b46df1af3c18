//! proxy-wasm glue of the validation filter. Every decision is made in
//! `filter_core::validation`; this crate only forwards host calls.
//!
//! Plugin configuration (JSON, optional): `{"max_body_bytes": 8192}`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use filter_core::validation::{Flow, RequestValidation, ValidationConfig, ValidationHost};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

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
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match ValidationConfig::parse(&raw) {
            Ok(config) => {
                self.config = config;
                true
            }
            Err(message) => {
                let _ = hostcalls::log(LogLevel::Error, &message);
                false
            }
        }
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

struct ValidationStream {
    core: RequestValidation,
}

/// The host, as the core sees it. Request headers are fetched with one
/// host call the first time one is needed (host calls dominate the cost;
/// one read of the whole map costs less than reading the two to six
/// headers a validated request needs one by one).
#[derive(Default)]
struct Host {
    headers: std::cell::OnceCell<Vec<(String, String)>>,
}

impl ValidationHost for Host {
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

    fn send_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
        let _ = hostcalls::send_http_response(
            u32::from(status),
            headers.to_vec(),
            Some(body.as_bytes()),
        );
    }

    fn log_warn(&mut self, line: &str) {
        let _ = hostcalls::log(LogLevel::Warn, line);
    }
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
                .on_request_headers(&mut Host::default(), end_of_stream),
        )
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.core
                .on_request_body(&mut Host::default(), body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.core.on_request_trailers(&mut Host::default()))
    }
}
