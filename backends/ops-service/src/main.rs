//! `ops-service`: operator endpoints behind the gateway (see the library docs).

use ops_service::{build, shutdown_signal, OpsConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_log::init("ops-service");
    let config = match OpsConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(reason = %e, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
    };
    let server = match build(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(reason = %e, "startup failed");
            return std::process::ExitCode::from(1);
        }
    };
    tracing::info!(addr = %server.local_addr(), "ops service listening");
    match server.serve(shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(reason = %e, "server failed");
            std::process::ExitCode::from(1)
        }
    }
}
