//! `ops-service`: operator endpoints behind the gateway (see the library docs).

use ops_service::config::OpsArgs;
use ops_service::{build, shutdown_signal};
use service_http::config::ServiceArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Ok((config, internal)) = service_http::config::load(
        "ops-service",
        |a: &OpsArgs| &a.common,
        |a| {
            let internal = a.internal_listen_addr;
            Ok((a.into_config()?, internal))
        },
    ) else {
        return std::process::ExitCode::from(2);
    };
    let server = match build(config).await {
        Ok(s) => s.bind_internal(internal).await,
        Err(e) => Err(e),
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(reason = %e, "startup failed");
            return std::process::ExitCode::from(1);
        }
    };
    tracing::info!(
        addr = %server.local_addr(),
        internal = %server.internal_addr().map(|a| a.to_string()).unwrap_or_default(),
        "ops service listening"
    );
    let served = server.serve(shutdown_signal()).await;
    service_log::flush();
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(reason = %e, "server failed");
            std::process::ExitCode::from(1)
        }
    }
}
