//! `auth-service` binary: configuration from the environment, serve until
//! SIGTERM / Ctrl-C.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_log::init("auth-service");
    let config = match auth_service::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        environment = %config.service.environment,
        signing = ?config.signing,
        "Starting"
    );
    match auth_service::start(&config).await {
        Ok((server, _state)) => {
            service_http::run_until_signal(server).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "Startup failed");
            ExitCode::FAILURE
        }
    }
}
