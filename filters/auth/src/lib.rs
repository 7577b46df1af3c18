//! Authentication filter for Envoy (proxy-wasm). All decisions live in
//! `filter_core::auth`; this crate only moves data between the host and
//! that logic. With a `metrics` section in its configuration it also
//! records the SPEC §8 request metrics (`filter_host::MetricsRecorder`, the
//! metrics filter's own recording), saving the gateway a second wasm filter.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use filter_core::auth::{
    Actions, AttemptStatus, Authenticator, Host, IncomingRequest, PendingVerification, Settings,
    SharedWrite, Step, VerifyAnswer, API_KEY_HEADER, AUTHORIZATION_HEADER,
};
use filter_core::metrics::{trace_id_field, PendingCounts};
use filter_host::{MetricsRecorder, RequestMetrics};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AuthRoot::default()) });
}}

/// Period of the root context's tick, which refreshes the clock requests
/// read (so a request costs no time host call) and hands the counted
/// requests to the host (see [`filter_host::FLUSH_PERIOD`]).
const CLOCK_TICK: Duration = filter_host::FLUSH_PERIOD;

/// Host wall clock, milliseconds since the Unix epoch (0 if unavailable).
fn host_time_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The host as seen by the core logic.
#[derive(Clone)]
struct ProxyHost {
    /// `authentication_attempts_total`, one slot per
    /// [`AttemptStatus::index`], handed to the host at each tick.
    attempts: Rc<RefCell<PendingCounts>>,
    /// Wall clock as of the last tick (ms since the epoch).
    clock: Rc<Cell<u64>>,
    /// This request's peer address, read at most once (a refused request
    /// asks for it both to check and to count the failure).
    source: OnceCell<Option<String>>,
    /// ` trace_id="…"` from the request's `traceparent` (empty without
    /// one), written after the `request_id` that ends this request's lines.
    trace_id: String,
}

impl Host for ProxyHost {
    fn now_ms(&self) -> u64 {
        self.clock.get()
    }

    fn clock_slack_ms(&self) -> u64 {
        // A tick may come late under load; twice the period is the margin
        // the core adds before judging ages and expiries.
        2 * u64::try_from(CLOCK_TICK.as_millis()).unwrap_or(u64::MAX)
    }

    fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(key)
            .ok()
            .and_then(|(value, _)| value)
    }

    fn shared_set(&self, key: &str, value: &[u8]) {
        if hostcalls::set_shared_data(key, Some(value), None).is_err() {
            log(LogLevel::Debug, "auth filter: shared data write failed");
        }
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

    fn count_attempt(&self, status: AttemptStatus) {
        if let Ok(mut attempts) = self.attempts.try_borrow_mut() {
            attempts.count(status.index());
        }
    }

    fn log_warn(&self, line: &str) {
        if self.trace_id.is_empty() || !line.contains(" request_id=") {
            log(LogLevel::Warn, line);
        } else {
            log(LogLevel::Warn, &format!("{line}{}", self.trace_id));
        }
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
}

fn log(level: LogLevel, line: &str) {
    let _ = hostcalls::log(level, line);
}

#[derive(Default)]
struct AuthRoot {
    auth: Option<Rc<Authenticator>>,
    /// Set when the configuration asks this filter to record the request
    /// metrics too (its `metrics` section).
    metrics: Option<MetricsRecorder>,
    attempts: Rc<RefCell<PendingCounts>>,
    clock: Rc<Cell<u64>>,
}

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let settings = match Settings::from_json(&config) {
            Ok(settings) => settings,
            Err(err) => {
                log(LogLevel::Error, &err.to_string());
                return false;
            }
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
        self.attempts = Rc::new(RefCell::new(attempts));
        self.clock.set(host_time_ms());
        if hostcalls::set_tick_period(CLOCK_TICK).is_err() {
            log(LogLevel::Error, "auth filter: cannot start the clock tick");
            return false;
        }
        self.metrics = settings.metrics.clone().map(MetricsRecorder::new);
        self.auth = Some(Rc::new(Authenticator::new(settings)));
        true
    }

    fn on_tick(&mut self) {
        self.clock.set(host_time_ms());
        if let Ok(mut attempts) = self.attempts.try_borrow_mut() {
            attempts.flush(|id, by| {
                let _ = hostcalls::increment_metric(id, by);
            });
        }
        if let Some(metrics) = &self.metrics {
            metrics.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let auth = self.auth.clone()?;
        Some(Box::new(AuthRequest {
            auth,
            host: ProxyHost {
                attempts: Rc::clone(&self.attempts),
                clock: Rc::clone(&self.clock),
                source: OnceCell::new(),
                trace_id: String::new(),
            },
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
            self.host.trace_id = trace_id_field(traceparent(&headers));
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
