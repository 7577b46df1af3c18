//! `ops-service`: operator endpoints behind the gateway (see the library docs).

use ops_service::config::OpsArgs;
use ops_service::{build, shutdown_signal};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Ok(args) = service_http::config::load::<OpsArgs>("ops-service", |a| &a.common) else {
        return std::process::ExitCode::from(2);
    };
    let internal = args.internal_listen_addr;
    let config = match args.into_config() {
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
