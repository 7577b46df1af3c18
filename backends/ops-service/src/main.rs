//! `ops-service`: operator endpoints behind the gateway (see the library docs).

use ops_service::{build, shutdown_signal, OpsConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logging, LISTEN_ADDR and the shutdown settings as every backend reads them.
    let Ok(_) =
        service_http::config::load::<service_http::config::Shared>("ops-service", |a| &a.common)
    else {
        return std::process::ExitCode::from(2);
    };
    let (config, internal) = match OpsConfig::from_env()
        .and_then(|c| Ok((c, ops_service::config::internal_listen_addr_from_env()?)))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(reason = %e, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
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
