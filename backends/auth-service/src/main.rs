//! `auth-service` binary: configuration from the environment, serve until
//! SIGTERM / Ctrl-C.

use std::process::ExitCode;

use service_http::config::ServiceArgs;

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(config) = service_http::config::load(
        "auth-service",
        |a: &auth_service::config::Args| &a.service.common,
        auth_service::config::Args::into_config,
    ) else {
        return ExitCode::FAILURE;
    };
    tracing::info!(
        environment = %config.service.environment,
        signing = ?config.signing,
        "Starting"
    );
    // A database that is down at startup is waited for (not listening
    // meanwhile): migrations run before the first request is accepted.
    let started = service_http::retry_start(
        || auth_service::start(&config),
        auth_service::StartError::is_unavailable,
    )
    .await;
    match started {
        Some(Ok((server, _state))) => {
            service_http::run_until_signal(server).await;
            service_log::flush();
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "Startup failed");
            ExitCode::FAILURE
        }
        None => {
            tracing::info!("Stopped before the database was reachable");
            ExitCode::SUCCESS
        }
    }
}
