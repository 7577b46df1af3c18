//! `ratelimit-service`: the gateway's Envoy Rate Limit Service.
//!
//! Configuration from the environment (see `ratelimit::Config`):
//! `GRPC_LISTEN_ADDR`, `LISTEN_ADDR`, `RATE_LIMIT_PER_MINUTE`,
//! `RATE_LIMITS_FILE`, `RATE_LIMITS_RELOAD_MS`, `REDIS_URL`,
//! `REDIS_CA_FILE`, `REDIS_CLIENT_CERT_FILE`, `REDIS_CLIENT_KEY_FILE`,
//! `RATE_LIMIT_FAILURE_MODE`, `RATE_LIMIT_STORAGE_TIMEOUT_MS`,
//! `RATE_LIMIT_KEY_PREFIX`, `RATE_LIMIT_MEMORY_COUNTERS`, `LOG_LEVEL`, `LOG_FORMAT`,
//! `SHUTDOWN_DELAY_SECONDS`, `SHUTDOWN_GRACE_SECONDS` (`--help` lists them).

use std::process::ExitCode;

use service_http::config::ServiceArgs;

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(config) = service_http::config::load(
        "ratelimit-service",
        |a: &ratelimit::config::Args| &a.common,
        ratelimit::config::Args::into_config,
    ) else {
        return ExitCode::FAILURE;
    };
    let storage = if config.redis_url.is_some() {
        "redis"
    } else {
        "memory"
    };
    let app = match ratelimit::build(config.clone()).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "Cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        grpc = %app.grpc_addr(),
        http = %app.http_addr(),
        storage,
        redis = %config
            .redis_url
            .as_deref()
            .map(ratelimit::config::redact_url)
            .unwrap_or_default(),
        limits_file = %config
            .limits_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".to_owned()),
        default_per_minute = config.default_per_minute,
        "Rate-limit service listening"
    );
    let served = app.serve(service_http::shutdown_signal()).await;
    service_log::flush();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Server error");
            ExitCode::FAILURE
        }
    }
}
