//! Configuration of the ops service, read from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use service_http::config::{between, http_url, socket_addr, CommonArgs, ServiceArgs};

/// A backend that the ops service checks (`/health`) and scrapes (`/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Dependency name, equal to its Envoy cluster name (`data_service`).
    pub name: String,
    /// Base URL of its HTTP interface, without trailing slash.
    pub base_url: String,
    /// Whether the gateway cannot serve its API without it (see
    /// [`crate::health`] for the rule).
    pub critical: bool,
}

/// Everything `build` needs.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// Address the HTTP server binds (`LISTEN_ADDR`, default `127.0.0.1:8084`).
    pub listen_addr: SocketAddr,
    /// Base URL of Envoy's admin interface (`ENVOY_ADMIN_URL`, default
    /// `http://127.0.0.1:9901`); only `/stats/prometheus`, `/clusters` and
    /// `/config_dump` are read from it.
    pub envoy_admin_url: String,
    /// Backends to check and scrape, in report order: data, calculation and
    /// auth services and the rate-limit service's HTTP side; `OPS_BACKENDS`
    /// narrows the list ([`BACKEND_NAMES`]), `none` empties it.
    pub backends: Vec<Backend>,
    /// Database to ping (`DATABASE_URL`, default `sqlite://var/pricing.db`);
    /// `None` leaves the database out of the report.
    pub database_url: Option<String>,
    /// Redis to ping (`REDIS_URL`); checked only when set.
    pub redis_url: Option<String>,
    /// Upper bound on each probe and each scrape (`OPS_PROBE_TIMEOUT_MS`,
    /// default 2000).
    pub probe_timeout: Duration,
}

/// Default database URL shared with the other services.
pub const DEFAULT_DATABASE_URL: &str = store::DEFAULT_DATABASE_URL;

/// The backends `OPS_BACKENDS` may name, in report order.
pub const BACKEND_NAMES: [&str; 4] = [
    "data_service",
    "calculation_service",
    "auth_service",
    "rate_limit_service",
];

/// The ops service's variables (the shared ones flattened in from
/// `service_http::config`).
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "The borrow-rate gateway's ops service")]
pub struct OpsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The internal listener (full metrics and health details; never
    /// routed by the gateway).
    #[arg(long, env = "INTERNAL_LISTEN_ADDR", value_name = "ADDR",
          default_value = crate::DEFAULT_INTERNAL_LISTEN_ADDR, value_parser = socket_addr)]
    pub internal_listen_addr: SocketAddr,
    /// Envoy's admin interface.
    #[arg(long, env = "ENVOY_ADMIN_URL", value_name = "URL",
          default_value = "http://127.0.0.1:9901", value_parser = http_url)]
    pub envoy_admin_url: String,
    /// The data service.
    #[arg(long, env = "DATA_SERVICE_URL", value_name = "URL",
          default_value = "http://127.0.0.1:8081", value_parser = http_url)]
    pub data_service_url: String,
    /// The calculation service.
    #[arg(long, env = "CALCULATION_SERVICE_URL", value_name = "URL",
          default_value = "http://127.0.0.1:8082", value_parser = http_url)]
    pub calculation_service_url: String,
    /// The auth service.
    #[arg(long, env = "AUTH_SERVICE_URL", value_name = "URL",
          default_value = "http://127.0.0.1:8083", value_parser = http_url)]
    pub auth_service_url: String,
    /// The rate-limit service's HTTP side.
    #[arg(long, env = "RATELIMIT_SERVICE_URL", value_name = "URL",
          default_value = "http://127.0.0.1:8091", value_parser = http_url)]
    pub ratelimit_service_url: String,
    /// `none` or a comma-separated list of [`BACKEND_NAMES`]; all four
    /// when unset.
    #[arg(long, env = "OPS_BACKENDS", value_name = "NAMES")]
    pub ops_backends: Option<String>,
    /// Database to ping.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Redis to ping; checked only when set.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Upper bound in milliseconds on each probe and each scrape.
    #[arg(long, env = "OPS_PROBE_TIMEOUT_MS", value_name = "MS",
          default_value = "2000", value_parser = between(1, 60_000))]
    pub ops_probe_timeout_ms: u64,
}

/// `OpsArgs::config_from_env()` reads the configuration from the
/// environment; errors name the variable at fault.
impl ServiceArgs for OpsArgs {
    type Config = OpsConfig;

    /// The [`OpsConfig`] these values mean.
    fn into_config(self) -> Result<OpsConfig, String> {
        let wanted: Vec<String> = match self.ops_backends.as_deref() {
            None => BACKEND_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            Some("none") => Vec::new(),
            Some(v) => {
                let names: Vec<String> = v.split(',').map(|n| n.trim().to_owned()).collect();
                if let Some(bad) = names.iter().find(|n| !BACKEND_NAMES.contains(&n.as_str())) {
                    return Err(format!(
                        "OPS_BACKENDS must be none or a comma-separated list of {}, got {bad:?}",
                        BACKEND_NAMES.join(", ")
                    ));
                }
                names
            }
        };
        let all_backends = [
            ("data_service", self.data_service_url, true),
            ("calculation_service", self.calculation_service_url, true),
            ("auth_service", self.auth_service_url, true),
            ("rate_limit_service", self.ratelimit_service_url, false),
        ];
        Ok(OpsConfig {
            listen_addr: self
                .common
                .listen_addr_or(SocketAddr::from(([127, 0, 0, 1], 8084))),
            envoy_admin_url: self.envoy_admin_url,
            backends: all_backends
                .into_iter()
                .filter(|(name, _, _)| wanted.iter().any(|w| w == name))
                .map(|(name, base_url, critical)| Backend {
                    name: name.to_owned(),
                    base_url,
                    critical,
                })
                .collect(),
            database_url: Some(self.database_url),
            redis_url: self.redis_url,
            probe_timeout: Duration::from_millis(self.ops_probe_timeout_ms),
        })
    }
}

impl OpsConfig {
    /// The configuration from the variables looked up by `lookup`
    /// ([`OpsArgs`]).
    ///
    /// `OPS_BACKENDS` is a comma-separated list of [`BACKEND_NAMES`] (unset:
    /// all four) or `none`: the gateway pods' `gateway-metrics` container
    /// sets `none`, so it serves its own pod's Envoy metrics and checks and
    /// scrapes no backend (each backend pod is scraped on its own).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        OpsArgs::config_from_lookup(lookup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<OpsConfig, String> {
        OpsConfig::from_vars(service_http::config::vars(pairs))
    }

    fn backend_names(c: &OpsConfig) -> Vec<&str> {
        c.backends.iter().map(|b| b.name.as_str()).collect()
    }

    #[test]
    fn every_backend_by_default_a_list_narrows_them_and_none_drops_them() {
        assert_eq!(backend_names(&config(&[]).unwrap()), BACKEND_NAMES);
        assert_eq!(
            backend_names(&config(&[("OPS_BACKENDS", "")]).unwrap()),
            BACKEND_NAMES
        );
        let narrowed = config(&[
            ("OPS_BACKENDS", "rate_limit_service, data_service"),
            ("DATA_SERVICE_URL", "http://data:8081/"),
        ])
        .unwrap();
        assert_eq!(
            backend_names(&narrowed),
            vec!["data_service", "rate_limit_service"]
        );
        assert_eq!(narrowed.backends[0].base_url, "http://data:8081");
        assert!(config(&[("OPS_BACKENDS", "none")])
            .unwrap()
            .backends
            .is_empty());
    }

    #[test]
    fn unknown_backend_names_are_refused() {
        let e = config(&[("OPS_BACKENDS", "data_service,pricing")]).unwrap_err();
        assert!(
            e.contains("OPS_BACKENDS") && e.contains("\"pricing\""),
            "{e}"
        );
        assert!(config(&[("OPS_BACKENDS", "none,data_service")]).is_err());
    }
}
