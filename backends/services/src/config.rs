//! Service configuration from the environment (SPEC §9 plus `LISTEN_ADDR`):
//! [`Args`] declares the variables (the shared ones flattened in from
//! `service_http::config`), [`Config`] is what the services run with.

use std::net::SocketAddr;
use std::time::Duration;

use service_http::config::{number, CommonArgs, DatabaseArgs};

/// The variables of a pricing service (and of the auth service, which
/// flattens them into its own).
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "A pricing service of the borrow-rate gateway")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Requests slower than this many milliseconds are logged as
    /// `Slow request`.
    #[arg(long, env = "SLOW_REQUEST_MS", value_name = "MS",
          default_value = "500", value_parser = number::<u64>)]
    pub slow_request_ms: u64,
    /// Milliseconds after which an unanswered request is answered 504
    /// `BACKEND_TIMEOUT` (0 counts as 1).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", value_name = "MS",
          default_value = "30000", value_parser = number::<u64>)]
    pub request_timeout_ms: u64,
    /// Deployment name shown in logs.
    #[arg(
        long,
        env = "ENVIRONMENT",
        value_name = "NAME",
        default_value = "development"
    )]
    pub environment: String,
}

impl Args {
    /// Read from the process environment (and command-line flags).
    pub fn from_env() -> Result<Self, String> {
        service_http::config::from_env()
    }

    /// The [`Config`] these values mean, listening on `LISTEN_ADDR` or
    /// `default_listen`.
    pub fn into_config(self, default_listen: &str) -> Result<Config, String> {
        let default = service_http::config::socket_addr(default_listen)
            .map_err(|e| format!("default listen address {default_listen:?} {e}"))?;
        let options = self.database.store_options();
        let mut c = Config::new(
            self.common.listen_addr_or(default),
            self.database.database_url,
        );
        c.db_max_connections = options.max_connections;
        c.db_acquire_timeout = options.acquire_timeout;
        c.slow_request = Duration::from_millis(self.slow_request_ms);
        c.request_timeout = Duration::from_millis(self.request_timeout_ms.max(1));
        c.environment = self.environment;
        Ok(c)
    }
}

/// Everything a pricing service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`LISTEN_ADDR`; default per service:
    /// data 127.0.0.1:8081, calculation 127.0.0.1:8082). Port 0 picks a
    /// free port.
    pub listen_addr: SocketAddr,
    /// Database (`DATABASE_URL`; default `sqlite://var/pricing.db`).
    pub database_url: String,
    /// Most pooled database connections (`DB_MAX_CONNECTIONS`, default 10).
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before the
    /// database counts as down and the answer is 503
    /// (`DB_ACQUIRE_TIMEOUT_MS`, default 3000).
    pub db_acquire_timeout: Duration,
    /// Requests slower than this are logged as `Slow request`
    /// (`SLOW_REQUEST_MS`, default 500).
    pub slow_request: Duration,
    /// Requests still unanswered after this are answered 504
    /// `BACKEND_TIMEOUT` (`REQUEST_TIMEOUT_MS`, default 30000: above every
    /// gateway route timeout).
    pub request_timeout: Duration,
    /// Deployment name shown in logs (`ENVIRONMENT`, default `development`).
    pub environment: String,
}

impl Config {
    /// Defaults with the given listen address and database.
    pub fn new(listen_addr: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            listen_addr,
            database_url: database_url.into(),
            db_max_connections: 10,
            db_acquire_timeout: Duration::from_secs(3),
            slow_request: Duration::from_millis(500),
            request_timeout: service_http::DEFAULT_TIMEOUT,
            environment: "development".to_owned(),
        }
    }

    /// Reads the environment ([`Args`]); `default_listen` is the service's
    /// own port. The error names the offending variable.
    pub fn from_env(default_listen: &str) -> Result<Self, String> {
        Args::from_env()?.into_config(default_listen)
    }

    /// The shared HTTP layers with this configuration's timeout.
    pub fn layers(&self) -> service_http::Layers {
        service_http::Layers::default().timeout(self.request_timeout)
    }

    /// The store options this configuration implies.
    pub fn store_options(&self) -> store::StoreOptions {
        let mut o = store::StoreOptions::new(self.database_url.clone());
        o.max_connections = self.db_max_connections;
        o.acquire_timeout = self.db_acquire_timeout;
        o
    }
}
