//! Service configuration from the environment (SPEC §9 plus `LISTEN_ADDR`).

use std::net::SocketAddr;
use std::time::Duration;

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

    /// Reads the environment; `default_listen` is the service's own port.
    /// The error names the offending variable.
    pub fn from_env(default_listen: &str) -> Result<Self, String> {
        let listen_addr = crate::common::listen_addr_from_env(default_listen)?;
        let mut c = Self::new(listen_addr, store::database_url_from_env());
        c.db_max_connections = env_number("DB_MAX_CONNECTIONS", 10u32)?.max(1);
        c.db_acquire_timeout =
            Duration::from_millis(env_number("DB_ACQUIRE_TIMEOUT_MS", 3000u64)?.max(1));
        c.slow_request = Duration::from_millis(env_number("SLOW_REQUEST_MS", 500u64)?);
        c.request_timeout =
            Duration::from_millis(env_number("REQUEST_TIMEOUT_MS", 30_000u64)?.max(1));
        if let Ok(e) = std::env::var("ENVIRONMENT") {
            if !e.trim().is_empty() {
                c.environment = e;
            }
        }
        Ok(c)
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

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}: {v:?} is not a valid number")),
        _ => Ok(default),
    }
}
