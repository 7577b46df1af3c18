//! The startup path shared by `main` and the tests.

use axum::Router;
use store::Store;

use crate::common::{serve_with, Server};
use crate::config::Config;
use crate::metrics::Metrics;
pub use crate::routes::AppState;

/// Why a service could not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting is invalid (the message names it).
    Config(String),
    /// The database could not be opened.
    Database(store::StoreError),
    /// The listen address could not be bound.
    Listen(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "configuration: {e}"),
            Self::Database(e) => write!(f, "database: {e}"),
            Self::Listen(e) => write!(f, "listen: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl StartError {
    /// Whether the database could not be reached (or was not ready):
    /// retrying the start later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(e) if e.is_unavailable())
    }
}

/// Opens the database (migrating and seeding it) and builds the state.
/// `service` is the Envoy cluster name used as the metrics label.
pub async fn build(config: &Config, service: &'static str) -> Result<AppState, store::StoreError> {
    let store = Store::connect_with(config.store_options()).await?;
    Ok(AppState {
        store,
        metrics: Metrics::new(service, config.slow_request),
    })
}

/// [`build`] + [`serve_with`] of the data service.
pub async fn start_data_service(config: &Config) -> Result<(Server, AppState), StartError> {
    start(config, "data_service", crate::data::app).await
}

/// [`build`] + [`serve_with`] of the calculation service.
pub async fn start_calculation_service(config: &Config) -> Result<(Server, AppState), StartError> {
    start(config, "calculation_service", crate::calculation::app).await
}

async fn start(
    config: &Config,
    service: &'static str,
    app: fn(AppState) -> Router,
) -> Result<(Server, AppState), StartError> {
    let state = build(config, service).await.map_err(StartError::Database)?;
    let server = serve_with(app(state.clone()), config.listen_addr, config.layers())
        .await
        .map_err(StartError::Listen)?;
    Ok((server, state))
}

/// A `start_*` function, boxed so binaries can pass it to [`run_main`].
pub type StartFn = for<'a> fn(
    &'a Config,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Server, AppState), StartError>> + Send + 'a>,
>;

/// `main` of a service binary: logging, config, start, run until
/// SIGTERM/Ctrl-C, graceful stop. Exit code 1 on a startup failure.
pub async fn run_main(
    service: &'static str,
    default_listen: &str,
    start: StartFn,
) -> std::process::ExitCode {
    let Ok(config) = service_http::config::load(
        service,
        |a: &crate::config::Args| &a.common,
        |a| a.into_config(default_listen),
    ) else {
        return std::process::ExitCode::FAILURE;
    };
    tracing::info!(
        environment = %config.environment,
        database = %service_http::config::redact_url(&config.database_url),
        "Starting"
    );
    // A database that is down at startup is waited for (not listening
    // meanwhile): migrations run before the first request is accepted.
    let started = crate::common::retry_start(|| start(&config), StartError::is_unavailable).await;
    match started {
        Some(Ok((server, _state))) => {
            crate::common::run_until_signal(server).await;
            service_log::flush();
            std::process::ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "Startup failed");
            std::process::ExitCode::FAILURE
        }
        None => {
            tracing::info!("Stopped before the database was reachable");
            std::process::ExitCode::SUCCESS
        }
    }
}
