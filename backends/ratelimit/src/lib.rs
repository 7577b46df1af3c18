//! The gateway's rate-limit service: Envoy Rate Limit Service v3
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) over
//! gRPC, with fixed-window counters from `limitador`, kept in memory or in
//! Redis (`REDIS_URL`), plus a small HTTP port with `/health` and `/metrics`.
//!
//! * [`build`] binds both listeners (port 0 works), loads the limits file and
//!   prepares the counter store; [`RateLimitApp::serve`] runs until the
//!   shutdown future completes; [`spawn`] does both on a background task.
//! * Descriptors, limits file and headers: see [`limits`] and
//!   `docs/rate-limiting.md`.

pub mod config;
pub mod counters;
pub mod limits;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use pricing::error::ErrorCode;
use service_http::{health_ok, liveness, readiness, AppError, Layers};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument as _;

pub use config::{Config, FailureMode};
use counters::{Counters, Outcome};
use limits::{Limits, Rule};
pub use metrics::Metrics;

/// Version reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Shared state of the gRPC and HTTP sides.
pub struct Shared {
    config: Config,
    limits: Limits,
    counters: Counters,
    metrics: Metrics,
    last_storage_error_log: AtomicU64,
    last_other_domain_log: AtomicU64,
}

impl Shared {
    /// The request counters exposed on `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// At most one storage-error log line per second (an outage would
    /// otherwise log once per request).
    fn storage_error_log_due(&self) -> bool {
        once_per_second(&self.last_storage_error_log)
    }

    /// At most one "another domain" log line per second.
    fn other_domain_log_due(&self) -> bool {
        once_per_second(&self.last_other_domain_log)
    }
}

fn once_per_second(last_log: &AtomicU64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = last_log.load(Ordering::Relaxed);
    now != last
        && last_log
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// A bound, not yet serving, rate-limit service.
pub struct RateLimitApp {
    grpc: TcpListener,
    http: TcpListener,
    shared: Arc<Shared>,
}

/// Binds the listeners, loads the limits file and prepares the counters.
/// Errors (bad limits file, address in use) name their cause.
pub async fn build(config: Config) -> Result<RateLimitApp, String> {
    let limits = Limits::new(config.default_per_minute, config.limits_file.clone())?;
    warn_if_old_format(&limits);
    let counters = match &config.redis_url {
        Some(url) => Counters::redis_with_tls(
            url,
            &config.redis_tls,
            &config.key_prefix,
            config.storage_timeout,
        )?,
        None => Counters::memory(
            &config.key_prefix,
            config.memory_counters,
            config.storage_timeout,
        ),
    };
    if counters.needs_connection() {
        // A failure here is not fatal: the service starts, answers per the
        // failure mode and keeps reconnecting in the background.
        if let Err(e) = counters.connect(Duration::from_secs(2)).await {
            log_connect_error(&e, config.redis_url.as_deref().unwrap_or_default(), true);
        }
    }
    let grpc = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|e| format!("GRPC_LISTEN_ADDR {}: {e}", config.grpc_addr))?;
    let http = TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| format!("LISTEN_ADDR {}: {e}", config.http_addr))?;
    Ok(RateLimitApp {
        grpc,
        http,
        shared: Arc::new(Shared {
            config,
            limits,
            counters,
            metrics: Metrics::default(),
            last_storage_error_log: AtomicU64::new(0),
            last_other_domain_log: AtomicU64::new(0),
        }),
    })
}

impl RateLimitApp {
    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .unwrap_or_else(|_| self.shared.config.grpc_addr)
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| self.shared.config.http_addr)
    }

    /// Shared state (for tests reading metrics directly).
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves gRPC and HTTP, reloads the limits file and reconnects Redis
    /// until `shutdown` completes, then stops gracefully.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = self.shared;
        let background = tokio::spawn(background_tasks(Arc::clone(&shared), stop_rx.clone()));

        let grpc_service = RateLimitServiceServer::new(Rls {
            shared: Arc::clone(&shared),
        });
        let mut grpc_stop = stop_rx.clone();
        let grpc = tonic::transport::Server::builder()
            .add_service(grpc_service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(self.grpc).with_nodelay(Some(true)),
                async move {
                    let _ = grpc_stop.changed().await;
                },
            );
        let mut http_stop = stop_rx.clone();
        let http = service_http::serve_until(
            self.http,
            http_app(Arc::clone(&shared)),
            Layers::default(),
            async move {
                let _ = http_stop.changed().await;
            },
        );
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let (g, h) = tokio::join!(grpc, http);
        background.abort();
        g.map_err(|e| format!("gRPC server: {e}"))?;
        h.map_err(|e| format!("HTTP server: {e}"))?;
        Ok(())
    }
}

/// A service running on a background task (tests, benchmarks, e2e).
pub struct Running {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// Shared state (metrics).
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Running {
    /// Graceful stop: listeners closed, in-flight calls finished.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// [`build`] then [`RateLimitApp::serve`] on a background task.
pub async fn spawn(config: Config) -> Result<Running, String> {
    let app = build(config).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let grpc_addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let shared = app.shared();
    let task = tokio::spawn(app.serve(async move {
        let _ = rx.await;
    }));
    Ok(Running {
        grpc_addr,
        http_addr,
        shared,
        stop: Some(tx),
        task,
    })
}

fn warn_if_old_format(limits: &Limits) {
    if limits.current().converted_from_old_format {
        tracing::warn!(
            migration = limits::MIGRATION_SECTION,
            "Rate limits file in the old format, converted; please migrate it"
        );
    }
}

async fn background_tasks(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut reload = tokio::time::interval(shared.config.reload_interval);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconnect = tokio::time::interval(Duration::from_secs(1));
    let mut last_connect_error: Option<counters::StorageError> = None;
    reconnect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = reload.tick() => match shared.limits.reload_if_changed() {
                Ok(true) => {
                    shared.metrics.reloads.inc();
                    warn_if_old_format(&shared.limits);
                    tracing::info!(
                        file = %shared
                            .config
                            .limits_file
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        "Rate limits reloaded"
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    shared.metrics.reload_errors.inc();
                    tracing::error!(error = %e, "Rate limits file rejected; previous limits stay in force");
                }
            },
            _ = reconnect.tick(), if shared.counters.needs_connection() => {
                match shared.counters.connect(Duration::from_secs(2)).await {
                    Ok(()) => {
                        last_connect_error = None;
                        tracing::info!("Redis connected");
                    }
                    Err(e) => {
                        // Logged once per distinct error, not every second.
                        let url = shared.config.redis_url.as_deref().unwrap_or_default();
                        log_connect_error(&e, url, last_connect_error.as_ref() != Some(&e));
                        last_connect_error = Some(e);
                    }
                }
            }
        }
    }
}

/// A failed Redis connection: TLS and credential errors (configuration
/// that retrying will not fix) at error level, an unreachable Redis as a
/// warning; `loud` false logs at debug level only. The URL is logged without
/// its password.
fn log_connect_error(e: &counters::StorageError, url: &str, loud: bool) {
    let redis = config::redact_url(url);
    if !loud {
        tracing::debug!(redis = %redis, error = %e, "Redis still unreachable");
    } else if e.is_configuration() {
        tracing::error!(redis = %redis, "{e}; retrying every second");
    } else {
        tracing::warn!(redis = %redis, error = %e, "Redis unreachable; retrying every second");
    }
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

struct Rls {
    shared: Arc<Shared>,
}

/// One descriptor's verdict, before it is turned into protobuf.
struct Verdict {
    rule: Rule,
    outcome: Outcome,
}

#[tonic::async_trait]
impl RateLimitService for Rls {
    /// One decision, in a `rate_limit_decision` span joined to the trace the
    /// call's `traceparent` metadata names (Envoy sends it when tracing is
    /// on).
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let span = tracing::info_span!("rate_limit_decision", trace_id = tracing::field::Empty);
        let traceparent = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        service_log::join_trace(&span, traceparent);
        self.decide(request).instrument(span).await
    }
}

impl Rls {
    async fn decide(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let started = Instant::now();
        let req = request.into_inner();
        if req.domain.is_empty() {
            return Err(tonic::Status::invalid_argument("domain must not be empty"));
        }
        let s = &self.shared;
        let request_hits = u64::from(req.hits_addend.max(1));
        let mut statuses = Vec::with_capacity(req.descriptors.len());
        let mut verdicts: Vec<Verdict> = Vec::new();
        let mut storage_failed = false;
        // Another domain has no limits here (as in envoyproxy/ratelimit).
        let other_domain = req.domain != limits::DOMAIN;
        if other_domain && s.other_domain_log_due() {
            tracing::warn!(
                domain = %req.domain,
                expected = limits::DOMAIN,
                "Rate limit request for another domain answered OK"
            );
        }
        let mut rules: Vec<Option<Rule>> = req
            .descriptors
            .iter()
            .map(|d| {
                if other_domain {
                    return None;
                }
                s.limits
                    .rule_for(d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str())))
            })
            .collect();
        // `replaces`: a limit named by another matched limit does not apply.
        let replaced: Vec<String> = rules
            .iter()
            .flatten()
            .flat_map(|r| r.replaces.iter().cloned())
            .collect();
        let mut replaced_here = vec![false; rules.len()];
        if !replaced.is_empty() {
            for (i, rule) in rules.iter_mut().enumerate() {
                if rule
                    .as_ref()
                    .and_then(|r| r.name.as_ref())
                    .is_some_and(|n| replaced.contains(n))
                {
                    *rule = None;
                    replaced_here[i] = true;
                }
            }
        }
        for ((d, rule), replaced) in req.descriptors.iter().zip(rules).zip(replaced_here) {
            let Some(rule) = rule else {
                if !replaced {
                    s.metrics.unmatched.inc();
                }
                statuses.push(DescriptorStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                });
                continue;
            };
            if rule.unlimited {
                statuses.push(DescriptorStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                });
                continue;
            }
            let hits = d
                .hits_addend
                .as_ref()
                .map(|h| h.value)
                .filter(|h| *h > 0)
                .unwrap_or(request_hits);
            match s.counters.hit(&req.domain, &rule, hits).await {
                Ok(outcome) => {
                    if rule.kind == limits::RuleKind::Client && !rule.shadow {
                        s.metrics.utilisation.record(
                            &rule.subject,
                            rule.max.saturating_sub(outcome.remaining),
                            rule.max,
                            outcome.reset,
                        );
                    }
                    if let Some(values) = &rule.detailed {
                        let node = rule.path.as_str();
                        let result = if outcome.limited {
                            "over_limit"
                        } else {
                            "within_limit"
                        };
                        s.metrics.detailed.add(
                            &[node, values.as_str(), result],
                            &[node, "_other", result],
                            hits,
                        );
                    }
                    if rule.shadow {
                        // Counted and reported, never refused; not shown in
                        // the response headers either.
                        if outcome.limited {
                            s.metrics.shadow_over_limit.add(
                                &[rule.path.as_str()],
                                &["_other"],
                                hits,
                            );
                            tracing::info!(
                                policy = %rule.policy,
                                node = %rule.path,
                                subject = %rule.subject,
                                limit = rule.max,
                                "Rate limit exceeded in shadow mode; allowed"
                            );
                        }
                        let mut status = status_for(&rule, &outcome);
                        status.code = Code::Ok as i32;
                        statuses.push(status);
                        continue;
                    }
                    statuses.push(status_for(&rule, &outcome));
                    verdicts.push(Verdict { rule, outcome });
                }
                Err(e) => {
                    s.metrics.storage_errors.inc();
                    if s.storage_error_log_due() {
                        tracing::warn!(
                            error = %e,
                            kind = rule.kind.as_str(),
                            failure_mode = ?s.config.failure_mode,
                            "Rate limit storage error"
                        );
                    }
                    // A shadow-mode limit never refuses, not even here.
                    let denied = s.config.failure_mode == FailureMode::Deny && !rule.shadow;
                    storage_failed |= !rule.shadow;
                    statuses.push(DescriptorStatus {
                        code: if denied { Code::OverLimit } else { Code::Ok } as i32,
                        current_limit: Some(rate_limit(&rule)),
                        ..Default::default()
                    });
                }
            }
        }

        let limited = verdicts.iter().find(|v| v.outcome.limited);
        let deny_on_failure = storage_failed && s.config.failure_mode == FailureMode::Deny;
        let overall = if limited.is_some() || deny_on_failure {
            Code::OverLimit
        } else {
            Code::Ok
        };
        // Headers describe the most restrictive matched limit: the refusing
        // one, else the one with the fewest hits left. `RateLimit-Policy`
        // lists every limit that applied.
        let shown = limited.or_else(|| verdicts.iter().min_by_key(|v| v.outcome.remaining));
        let mut headers = Vec::new();
        if let Some(v) = shown {
            let reset = ceil_secs(v.outcome.reset);
            headers.push(header_value("x-ratelimit-limit", v.rule.max.to_string()));
            headers.push(header_value(
                "x-ratelimit-remaining",
                v.outcome.remaining.to_string(),
            ));
            headers.push(header_value("x-ratelimit-reset", reset.to_string()));
            if v.outcome.limited {
                headers.push(header_value("retry-after", reset.to_string()));
            }
            headers.push(header_value("ratelimit-policy", policy_header(&verdicts)));
            headers.push(header_value(
                "ratelimit",
                format!(
                    "{};r={};t={reset}",
                    sf_string(&v.rule.policy),
                    v.outcome.remaining
                ),
            ));
        } else if deny_on_failure {
            headers.push(header_value("retry-after", "1".to_owned()));
        }

        match (overall, storage_failed) {
            (Code::OverLimit, false) => s.metrics.over_limit.inc(),
            (Code::OverLimit, true) => s.metrics.failure_denied.inc(),
            (_, true) => s.metrics.failure_allowed.inc(),
            _ => s.metrics.ok.inc(),
        }
        if let Some(v) = limited {
            tracing::warn!(
                kind = v.rule.kind.as_str(),
                policy = %v.rule.policy,
                subject = %v.rule.subject,
                limit = v.rule.max,
                window_secs = v.rule.window_secs,
                retry_after = ceil_secs(v.outcome.reset),
                domain = %req.domain,
                "Rate limit exceeded"
            );
        }
        s.metrics.observe_latency(started.elapsed());
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: overall as i32,
            statuses,
            response_headers_to_add: headers,
            ..Default::default()
        }))
    }
}

fn rate_limit(rule: &Rule) -> RateLimit {
    RateLimit {
        name: rule.name.clone().unwrap_or_else(|| rule.policy.clone()),
        requests_per_unit: u32::try_from(rule.max).unwrap_or(u32::MAX),
        unit: match rule.unit {
            limits::Unit::Second => Unit::Second,
            limits::Unit::Minute => Unit::Minute,
            limits::Unit::Hour => Unit::Hour,
            limits::Unit::Day => Unit::Day,
        } as i32,
    }
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): every limit
/// that applied, `"<policy>";q=<limit>;w=<window seconds>`, comma-separated,
/// each policy once.
fn policy_header(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::with_capacity(verdicts.len());
    for v in verdicts {
        if seen.contains(&v.rule.policy.as_str()) {
            continue;
        }
        seen.push(&v.rule.policy);
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&format!(
            "{};q={};w={}",
            sf_string(&v.rule.policy),
            v.rule.max,
            v.rule.window_secs
        ));
    }
    out
}

/// A structured-field string (RFC 8941 §3.3.3): quoted, `\\` and `"`
/// escaped, characters outside printable ASCII replaced by `?`.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

fn status_for(rule: &Rule, o: &Outcome) -> DescriptorStatus {
    DescriptorStatus {
        code: if o.limited { Code::OverLimit } else { Code::Ok } as i32,
        current_limit: Some(rate_limit(rule)),
        limit_remaining: u32::try_from(o.remaining).unwrap_or(u32::MAX),
        duration_until_reset: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: i64::try_from(ceil_secs(o.reset)).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// Whole seconds, rounded up, at least 1 (a `Retry-After: 0` invites a
/// retry storm).
fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

fn header_value(key: &str, value: String) -> HeaderValue {
    HeaderValue {
        key: key.to_owned(),
        value,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// HTTP: /health and /metrics
// ---------------------------------------------------------------------------

/// The HTTP side: `GET /health`, `GET /health/live` (the process alone),
/// `GET /health/ready` (`/health`'s answer, 503 while shutting down),
/// `GET /metrics`; anything else is a 404 envelope.
/// [`RateLimitApp::serve`] runs it behind the shared layers
/// ([`service_http::Layers`]: request ids, envelopes, limits).
pub fn http_app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", liveness(VERSION))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(shared)
}

/// The dependency check of `/health` and `/health/ready`: the counter
/// store (Redis when configured) answers.
async fn counters_reachable(s: &Shared) -> Result<(), AppError> {
    s.counters.probe().await.map_err(|e| AppError::Other {
        code: ErrorCode::ServiceUnavailable,
        message: format!("Unhealthy: redis unreachable ({e})"),
    })
}

async fn health(State(s): State<Arc<Shared>>) -> Response {
    match counters_reachable(&s).await {
        Ok(()) => health_ok(VERSION),
        Err(e) => e.into_response(),
    }
}

async fn ready(State(s): State<Arc<Shared>>) -> Response {
    readiness(VERSION, counters_reachable(&s).await)
}

async fn metrics_text(State(s): State<Arc<Shared>>) -> Response {
    service_http::metrics::metrics_response(s.metrics.render(s.counters.kind()))
}

async fn not_found() -> AppError {
    AppError::NotFound("No such endpoint".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_rounded_up_and_never_zero() {
        assert_eq!(ceil_secs(Duration::from_millis(0)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(60)), 60);
    }
}
