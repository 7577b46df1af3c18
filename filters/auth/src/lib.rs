//! Authentication filter for Envoy (proxy-wasm). All decisions live in
//! `filter_core::auth`; this crate only moves data between the host and
//! that logic. With a `metrics` section in its configuration it also
//! records the SPEC §8 request metrics (`filter_host::MetricsRecorder`, the
//! metrics filter's own recording), saving the gateway a second wasm filter.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::rc::Rc;
use std::time::Duration;

use filter_core::auth::{
    Actions, AttemptStatus, Authenticator, IncomingRequest, PendingVerification, Settings, Step,
    VerifyAnswer, API_KEY_HEADER, AUTHORIZATION_HEADER,
};
use filter_core::host::PendingCounts;
use filter_core::logfmt::trace_id_field;
use filter_host::{
    host_time_ms, parsed_plugin_configuration, MetricsRecorder, ProxyHost, RequestMetrics,
    WorkerState,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(AuthRoot {
            auth: None,
            metrics: None,
            worker: WorkerState::with_tick(CLOCK_TICK),
        })
    });
}}

/// Period of the root context's tick, which refreshes the clock requests
/// read (so a request costs no time host call) and hands the counted
/// requests to the host (see [`filter_host::FLUSH_PERIOD`]).
const CLOCK_TICK: Duration = filter_host::FLUSH_PERIOD;

fn log(level: LogLevel, line: &str) {
    let _ = hostcalls::log(level, line);
}

struct AuthRoot {
    auth: Option<Rc<Authenticator>>,
    /// Set when the configuration asks this filter to record the request
    /// metrics too (its `metrics` section).
    metrics: Option<MetricsRecorder>,
    /// The tick clock and the `authentication_attempts_total` counters,
    /// one slot per [`AttemptStatus::index`].
    worker: WorkerState,
}

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(settings) = parsed_plugin_configuration(Settings::from_json) else {
            return false;
        };
        // One slot per status, in `AttemptStatus::index` order.
        let mut attempts = PendingCounts::default();
        for (index, status) in AttemptStatus::ALL.into_iter().enumerate() {
            match hostcalls::define_metric(MetricType::Counter, &status.metric_name()) {
                Ok(id) if attempts.add_slot(id) == index && status.index() == index => {}
                _ => {
                    log(
                        LogLevel::Error,
                        "auth filter: cannot define authentication_attempts_total",
                    );
                    return false;
                }
            }
        }
        *self.worker.counts.borrow_mut() = attempts;
        self.worker.clock.set(host_time_ms());
        if hostcalls::set_tick_period(CLOCK_TICK).is_err() {
            log(LogLevel::Error, "auth filter: cannot start the clock tick");
            return false;
        }
        self.metrics = settings.metrics.clone().map(MetricsRecorder::new);
        self.auth = Some(Rc::new(Authenticator::new(settings)));
        true
    }

    fn on_tick(&mut self) {
        self.worker.on_tick();
        if let Some(metrics) = &self.metrics {
            metrics.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let auth = self.auth.clone()?;
        Some(Box::new(AuthRequest {
            auth,
            host: ProxyHost::for_worker(&self.worker),
            pending: None,
            headers: Vec::new(),
            metrics: self.metrics.as_ref().map(MetricsRecorder::request),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct AuthRequest {
    auth: Rc<Authenticator>,
    host: ProxyHost,
    /// Verification in flight: call token and state.
    pending: Option<(u32, PendingVerification)>,
    /// The request headers, kept while a verification is in flight.
    headers: Vec<(String, Vec<u8>)>,
    /// This request's metrics, when the filter records them.
    metrics: Option<RequestMetrics>,
}

/// Applies the actions to the request whose headers are `headers`; `true`
/// when the request may continue. Header edits come first, so a request
/// answered locally after authentication (its client's bucket is empty)
/// still carries its identity for what reads it at the end of the request.
fn apply(actions: &Actions, headers: &[(String, Vec<u8>)]) -> bool {
    // Only headers the request carries cost a remove call, and none that
    // is set anyway (a set replaces any copy the client sent).
    for name in &actions.remove_headers {
        let set_anyway = actions.set_headers.iter().any(|(n, _)| n == name);
        if !set_anyway && headers.iter().any(|(n, _)| n == name) {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
        }
    }
    for (name, value) in &actions.set_headers {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
    }
    if let Some(reply) = &actions.reply {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        if hostcalls::send_http_response(
            u32::from(reply.status),
            headers,
            Some(reply.body.as_bytes()),
        )
        .is_err()
        {
            let _ = hostcalls::reset_http_request();
        }
        return false;
    }
    true
}

/// The request's `traceparent` when it looks like one (55 visible ASCII
/// characters for version 00; at most 128 for a later version).
fn traceparent(headers: &[(String, Vec<u8>)]) -> Option<&str> {
    let (_, value) = headers.iter().find(|(name, _)| name == "traceparent")?;
    let value = std::str::from_utf8(value).ok()?;
    (value.len() >= 55 && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(value)
}

impl AuthRequest {
    /// The key check, carrying the request's W3C `traceparent` when it has
    /// one (with tracing on, the gateway sets it to its own span before this
    /// filter), so the auth service's span joins the request's trace.
    fn dispatch(&self, pending: &PendingVerification, traceparent: Option<&str>) -> Option<u32> {
        let settings = self.auth.settings();
        let body = pending.request_body();
        let mut headers = vec![
            (":method", "POST"),
            (":path", settings.verify_path.as_str()),
            (":authority", settings.auth_service_authority.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(traceparent) = traceparent {
            headers.push(("traceparent", traceparent));
        }
        hostcalls::dispatch_http_call(
            &settings.auth_service_cluster,
            headers,
            Some(&body),
            vec![],
            Duration::from_millis(settings.verify_timeout_ms),
        )
        .ok()
    }
}

impl Context for AuthRequest {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some((expected, pending)) = self.pending.take() else {
            return;
        };
        if expected != token_id {
            self.pending = Some((expected, pending));
            return;
        }
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let answer = match status {
            Some(status) => VerifyAnswer::Response {
                status,
                body: &body,
            },
            None => VerifyAnswer::Failed,
        };
        let actions = self.auth.on_verify_response(&self.host, &pending, answer);
        let headers = std::mem::take(&mut self.headers);
        if apply(&actions, &headers) {
            let _ = hostcalls::resume_http_request();
        } else if let Some(metrics) = &mut self.metrics {
            metrics.answered_here();
        }
    }
}

impl HttpContext for AuthRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // One host call for every header (names arrive lower-case). Values
        // are read as bytes: a non-UTF-8 value must not trap the VM.
        let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        #[cfg(feature = "trap-on-marked-request")]
        if headers.iter().any(|(name, _)| name == "x-test-trap") {
            // A wasm `unreachable` trap: the VM is dead from here on.
            std::process::abort();
        }
        let step = {
            // A repeated header is one comma-separated value (RFC 9110
            // §5.3): two credentials never make one valid credential.
            let find = |name: &str| {
                let mut values = headers
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| String::from_utf8_lossy(v));
                let first = values.next()?;
                let mut rest = values.peekable();
                if rest.peek().is_none() {
                    return Some(first);
                }
                let mut joined = first.into_owned();
                for value in rest {
                    joined.push(',');
                    joined.push_str(&value);
                }
                Some(std::borrow::Cow::Owned(joined))
            };
            let path = find(":path").unwrap_or_default();
            if let Some(metrics) = &mut self.metrics {
                metrics.on_request_headers(Some(&path), find(":method").as_deref());
            }
            let api_key = find(API_KEY_HEADER);
            let authorization = find(AUTHORIZATION_HEADER);
            let request_id = find("x-request-id").unwrap_or_default();
            self.host
                .set_trace_id(trace_id_field(traceparent(&headers)));
            let request = IncomingRequest {
                path: &path,
                api_key: api_key.as_deref(),
                authorization: authorization.as_deref(),
                request_id: &request_id,
            };
            self.auth.on_request(&self.host, &request)
        };
        let actions = match step {
            Step::Done(actions) => actions,
            Step::VerifyKey(pending) => match self.dispatch(&pending, traceparent(&headers)) {
                Some(token) => {
                    self.pending = Some((token, pending));
                    self.headers = headers;
                    // Pausing in the request headers stops the body and
                    // trailers as well (Envoy turns it into
                    // StopAllIterationAndWatermark unless a plugin sets
                    // `allow_on_headers_stop_iteration`, which ours do not),
                    // so nothing of the request moves on before the
                    // decision, and the filter needs no body or trailer
                    // callbacks: their exports are dropped (Makefile), which
                    // spares every request with a body a VM entry.
                    return Action::Pause;
                }
                None => self
                    .auth
                    .on_verify_response(&self.host, &pending, VerifyAnswer::Failed),
            },
        };
        if apply(&actions, &headers) {
            Action::Continue
        } else {
            if let Some(metrics) = &mut self.metrics {
                metrics.answered_here();
            }
            Action::Pause
        }
    }

    fn on_log(&mut self) {
        if let Some(metrics) = &mut self.metrics {
            metrics.on_log();
        }
    }
}
