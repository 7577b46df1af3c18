//! Configuration of the ops service, read from the environment.

use std::net::SocketAddr;
use std::time::Duration;

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
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/pricing.db";

/// The backends `OPS_BACKENDS` may name, in report order.
pub const BACKEND_NAMES: [&str; 4] = [
    "data_service",
    "calculation_service",
    "auth_service",
    "rate_limit_service",
];

impl OpsConfig {
    /// Reads the SPEC §9 variables plus `LISTEN_ADDR`, `ENVOY_ADMIN_URL`,
    /// `AUTH_SERVICE_URL`, `RATELIMIT_SERVICE_URL`, `OPS_BACKENDS` and
    /// `OPS_PROBE_TIMEOUT_MS` from the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`OpsConfig::from_env`] with the variables looked up by `lookup`.
    ///
    /// `OPS_BACKENDS` is a comma-separated list of [`BACKEND_NAMES`] (unset:
    /// all four) or `none`: the gateway pods' `gateway-metrics` container
    /// sets `none`, so it serves its own pod's Envoy metrics and checks and
    /// scrapes no backend (each backend pod is scraped on its own).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let listen_addr = match var("LISTEN_ADDR") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("LISTEN_ADDR is not a socket address: {v}"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8084)),
        };
        let probe_timeout = match var("OPS_PROBE_TIMEOUT_MS") {
            Some(v) => Duration::from_millis(
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| (1..=60_000).contains(ms))
                    .ok_or_else(|| format!("OPS_PROBE_TIMEOUT_MS must be 1..60000, got {v}"))?,
            ),
            None => Duration::from_millis(2000),
        };
        let url = |name: &str, default: &str| -> Result<String, String> {
            let v = var(name).unwrap_or_else(|| default.to_owned());
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(format!("{name} must be an http:// URL, got {v}"));
            }
            Ok(v.trim_end_matches('/').to_owned())
        };
        let wanted: Vec<String> = match var("OPS_BACKENDS") {
            None => BACKEND_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            Some(v) if v.trim() == "none" => Vec::new(),
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
        let all_backends = vec![
            Backend {
                name: "data_service".into(),
                base_url: url("DATA_SERVICE_URL", "http://127.0.0.1:8081")?,
                critical: true,
            },
            Backend {
                name: "calculation_service".into(),
                base_url: url("CALCULATION_SERVICE_URL", "http://127.0.0.1:8082")?,
                critical: true,
            },
            Backend {
                name: "auth_service".into(),
                base_url: url("AUTH_SERVICE_URL", "http://127.0.0.1:8083")?,
                critical: true,
            },
            Backend {
                name: "rate_limit_service".into(),
                base_url: url("RATELIMIT_SERVICE_URL", "http://127.0.0.1:8091")?,
                critical: false,
            },
        ];
        Ok(OpsConfig {
            listen_addr,
            envoy_admin_url: url("ENVOY_ADMIN_URL", "http://127.0.0.1:9901")?,
            backends: all_backends
                .into_iter()
                .filter(|b| wanted.contains(&b.name))
                .collect(),
            database_url: Some(var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into())),
            redis_url: var("REDIS_URL"),
            probe_timeout,
        })
    }
}

/// The internal listener's address: `INTERNAL_LISTEN_ADDR`, default
/// [`crate::DEFAULT_INTERNAL_LISTEN_ADDR`] (`127.0.0.1:8085`). The gateway
/// never routes to it; it serves the full metrics (client ids included)
/// and every dependency's health details to Prometheus and operators.
pub fn internal_listen_addr_from_env() -> Result<SocketAddr, String> {
    let v = std::env::var("INTERNAL_LISTEN_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| crate::DEFAULT_INTERNAL_LISTEN_ADDR.to_owned());
    v.parse()
        .map_err(|_| format!("INTERNAL_LISTEN_ADDR is not a socket address: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<OpsConfig, String> {
        OpsConfig::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
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
