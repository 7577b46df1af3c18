//! The switches of one rendering: the deployment shape, ports and paths
//! (command line) and the SPEC §9 variables (environment or `--set`),
//! checked once here so the builders only see valid values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::envoy::Port;

/// The gateway's version, in `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `make run`: every process on 127.0.0.1.
    Local,
    /// docker-compose: services by name, the internal admin listener.
    Compose,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Local => "local",
            Shape::Compose => "compose",
        }
    }
}

/// Envoy cluster of each backend, with its local and compose address
/// (docs/architecture.md).
pub const UPSTREAMS: [(&str, &str, &str); 5] = [
    ("data_service", "127.0.0.1:8081", "data-service:8081"),
    (
        "calculation_service",
        "127.0.0.1:8082",
        "calculation-service:8082",
    ),
    ("auth_service", "127.0.0.1:8083", "auth-service:8083"),
    ("ops_service", "127.0.0.1:8084", "ops-service:8084"),
    (
        "rate_limit_service",
        "127.0.0.1:8090",
        "ratelimit-service:8090",
    ),
];

/// SPEC §9 variables that move a backend in the local shape.
const SERVICE_URL_VARS: [(&str, &str); 2] = [
    ("data_service", "DATA_SERVICE_URL"),
    ("calculation_service", "CALCULATION_SERVICE_URL"),
];

/// The rate-limit service answers gRPC on one port and `/health` on another.
pub const RATE_LIMIT_HEALTH_PORT: u16 = 8091;

/// A rendering that cannot be made, naming the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

/// What the command line says (`gateway-config render --help`).
#[derive(Debug, Clone)]
pub struct Options {
    pub shape: Shape,
    pub tls: bool,
    pub listen_address: Option<String>,
    pub listener_port: Port,
    pub tls_port: Port,
    pub admin_port: Port,
    pub stats_port: Port,
    pub wasm_dir: Option<String>,
    pub cert_dir: Option<String>,
    pub no_wasm: bool,
    /// `CLUSTER=host:port[,host:port]` overrides.
    pub upstreams: Vec<String>,
    pub rate_limit_health_port: Option<u16>,
}

impl Options {
    pub fn new(shape: Shape) -> Self {
        Self {
            shape,
            tls: true,
            listen_address: None,
            listener_port: Port::Number(8000),
            tls_port: Port::Number(8443),
            admin_port: Port::Number(9901),
            stats_port: Port::Number(9902),
            wasm_dir: None,
            cert_dir: None,
            no_wasm: false,
            upstreams: Vec::new(),
            rate_limit_health_port: None,
        }
    }
}

/// One upstream host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub address: String,
    pub port: u16,
}

/// Everything the builders need, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub shape: Shape,
    pub listen_address: String,
    pub listener_port: Port,
    pub tls_port: Port,
    pub admin_port: Port,
    pub stats_port: Port,
    /// The compose shape's `internal_admin` listener.
    pub stats_listener: bool,
    pub wasm_dir: String,
    pub cert_dir: String,
    pub tls: bool,
    pub wasm: bool,
    pub authentication: bool,
    pub rate_limiting: bool,
    pub rate_limit_per_minute: u32,
    pub rate_limit_failure_mode_deny: bool,
    /// `0.1s`: RATE_LIMIT_TIMEOUT_MS as an Envoy duration.
    pub rate_limit_timeout: String,
    pub slow_request_ms: u64,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// `None`: no CORS; `Some("*")` matches any origin.
    pub cors_origins: Vec<String>,
    pub cb_max_connections: u32,
    pub cb_max_pending_requests: u32,
    pub cb_max_requests: u32,
    pub cb_max_retries: u32,
    /// Health-check interval as an Envoy duration (`2.000s`).
    pub hc_interval: String,
    pub max_downstream_connections: u64,
    /// Hosts of every cluster, in [`UPSTREAMS`] order.
    pub upstreams: Vec<(&'static str, Vec<Host>)>,
    pub rate_limit_health_port: u16,
    /// STATIC when every upstream is an IP address, else STRICT_DNS.
    pub cluster_type: &'static str,
    /// The OTLP/gRPC receiver (`OTEL_EXPORTER_OTLP_ENDPOINT`): tracing on.
    pub otlp: Option<Host>,
    pub otel_service_name: String,
    /// Settings that were ignored, for the user.
    pub warnings: Vec<String>,
}

fn flag(value: &str, name: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => err(format!("{name} must be true or false, got {value:?}")),
    }
}

/// Parses an on/off switch (`--tls on`).
pub fn parse_flag(value: &str, name: &str) -> Result<bool, Error> {
    flag(value, name)
}

fn positive(value: &str, name: &str) -> Result<u64, Error> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => err(format!("{name} must be a positive integer, got {value:?}")),
    }
}

fn positive_u32(value: &str, name: &str) -> Result<u32, Error> {
    let n = positive(value, name)?;
    u32::try_from(n).or_else(|_| err(format!("{name} must be a positive integer, got {value:?}")))
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// `host:port` with a non-empty host name or address.
fn host_port(s: &str) -> Option<Host> {
    let (host, port) = s.rsplit_once(':')?;
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Host {
        address: host.to_owned(),
        port: port.parse().ok()?,
    })
}

/// `http://host[:port][/]`, the port defaulting to 80 when `default_port`.
fn http_url(url: &str, default_port: Option<u16>) -> Option<Host> {
    let rest = url.strip_prefix("http://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if host.is_empty() || !host.chars().all(is_host_char) {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok()?
        }
        Some(_) => return None,
        None => default_port?,
    };
    Some(Host {
        address: host.to_owned(),
        port,
    })
}

fn is_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `https://app.example.com[:port]` (or `http://`).
fn is_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    !host.is_empty()
        && host.chars().all(is_host_char)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

impl Settings {
    /// Checks `options` and the variables in `env` (the process environment
    /// with the `--set` overrides applied).
    pub fn new(options: &Options, env: &BTreeMap<String, String>) -> Result<Self, Error> {
        let get = |name: &str, default: &str| -> String {
            env.get(name).cloned().unwrap_or_else(|| default.to_owned())
        };
        let shape = options.shape;
        let mut warnings = Vec::new();

        let authentication = flag(
            &get("ENABLE_AUTHENTICATION", "true"),
            "ENABLE_AUTHENTICATION",
        )?;
        let rate_limiting = flag(&get("ENABLE_RATE_LIMITING", "true"), "ENABLE_RATE_LIMITING")?;
        let rate_limit_per_minute =
            positive_u32(&get("RATE_LIMIT_PER_MINUTE", "60"), "RATE_LIMIT_PER_MINUTE")?;
        if rate_limit_per_minute > 1_000_000 {
            return err(format!(
                "RATE_LIMIT_PER_MINUTE must be at most 1000000 (the auth filter's bucket), got {rate_limit_per_minute}"
            ));
        }
        let mode = get("RATE_LIMIT_FAILURE_MODE", "allow")
            .trim()
            .to_ascii_lowercase();
        let rate_limit_failure_mode_deny = match mode.as_str() {
            "" | "allow" | "open" => false,
            "deny" | "closed" => true,
            _ => {
                return err(format!(
                    "RATE_LIMIT_FAILURE_MODE must be allow or deny, got {mode:?}"
                ))
            }
        };
        let timeout_ms = positive(
            &get(
                "RATE_LIMIT_TIMEOUT_MS",
                &DEFAULT_RATE_LIMIT_TIMEOUT_MS.to_string(),
            ),
            "RATE_LIMIT_TIMEOUT_MS",
        )?;
        if timeout_ms > 60_000 {
            return err(format!(
                "RATE_LIMIT_TIMEOUT_MS must be at most 60000, got {timeout_ms}"
            ));
        }
        let rate_limit_timeout = duration_ms(timeout_ms);
        for gone in ["LOCAL_RATE_LIMIT_BURST", "LOCAL_RATE_LIMIT_PER_SECOND"] {
            if !get(gone, "").trim().is_empty() {
                warnings.push(format!(
                    "{gone} is ignored: the per-instance bucket is sized from each key's own limit (docs/rate-limiting.md)"
                ));
            }
        }
        let slow_request_ms = positive(&get("SLOW_REQUEST_MS", "500"), "SLOW_REQUEST_MS")?;
        let jwt_secret = get("JWT_SECRET_KEY", "");
        if authentication && !options.no_wasm && jwt_secret.len() < 32 {
            return err(
                "JWT_SECRET_KEY must be set to at least 32 characters when authentication is enabled",
            );
        }

        let mut cors_origins = Vec::new();
        for o in get("CORS_ORIGINS", "").split(',').map(str::trim) {
            if o.is_empty() {
                continue;
            }
            if o != "*" && !is_origin(o) {
                return err(format!(
                    "CORS_ORIGINS: {o:?} is not an origin like https://app.example.com"
                ));
            }
            cors_origins.push(o.to_owned());
        }

        let hc_ms = positive(
            &get("HEALTH_CHECK_INTERVAL_MS", "2000"),
            "HEALTH_CHECK_INTERVAL_MS",
        )?;

        let mut upstreams: Vec<(&'static str, Vec<Host>)> = Vec::new();
        for (name, local, compose) in UPSTREAMS {
            let default = if shape == Shape::Local {
                local
            } else {
                compose
            };
            let mut hosts = vec![host_port(default).ok_or_else(|| Error(default.into()))?];
            if shape == Shape::Local {
                if let Some((_, var)) = SERVICE_URL_VARS.iter().find(|(c, _)| *c == name) {
                    let url = get(var, "");
                    let url = url.trim();
                    if !url.is_empty() {
                        hosts = vec![http_url(url, Some(80)).ok_or_else(|| {
                            Error(format!(
                                "{var} must be an http://host:port URL, got {url:?}"
                            ))
                        })?];
                    }
                }
            }
            upstreams.push((name, hosts));
        }
        for spec in &options.upstreams {
            let usage = || {
                Error(format!(
                    "--upstream expects CLUSTER=host:port[,host:port], clusters: {}",
                    UPSTREAMS.map(|u| u.0).join(", ")
                ))
            };
            let (name, hosts) = spec.split_once('=').ok_or_else(usage)?;
            let entry = upstreams
                .iter_mut()
                .find(|(n, _)| *n == name)
                .ok_or_else(usage)?;
            entry.1 = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| {
                    host_port(h).ok_or_else(|| {
                        Error(format!("upstream {name}: expected host:port, got {h:?}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        let all_ip = upstreams
            .iter()
            .all(|(_, hosts)| hosts.iter().all(|h| is_ipv4(&h.address)));

        let otlp_url = get("OTEL_EXPORTER_OTLP_ENDPOINT", "");
        let otlp_url = otlp_url.trim();
        let otlp = if otlp_url.is_empty() {
            None
        } else {
            Some(http_url(otlp_url, None).ok_or_else(|| {
                Error(format!(
                    "OTEL_EXPORTER_OTLP_ENDPOINT must be an http://host:port URL of an OTLP/gRPC receiver, got {otlp_url:?}"
                ))
            })?)
        };
        let otel_service_name = match get("OTEL_SERVICE_NAME", "").trim() {
            "" => "gateway".to_owned(),
            name => name.to_owned(),
        };
        if !otel_service_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return err(format!(
                "OTEL_SERVICE_NAME must be a plain name, got {otel_service_name:?}"
            ));
        }

        let (listen_address, wasm_dir, cert_dir, stats_listener) = match shape {
            Shape::Local => ("127.0.0.1", None, default_cert_dir(), false),
            Shape::Compose => (
                "0.0.0.0",
                Some("/etc/envoy/wasm".to_owned()),
                "/etc/envoy/certs".to_owned(),
                true,
            ),
        };
        Ok(Self {
            shape,
            listen_address: options
                .listen_address
                .clone()
                .unwrap_or_else(|| listen_address.to_owned()),
            listener_port: options.listener_port.clone(),
            tls_port: options.tls_port.clone(),
            admin_port: options.admin_port.clone(),
            stats_port: options.stats_port.clone(),
            stats_listener,
            wasm_dir: options
                .wasm_dir
                .clone()
                .or(wasm_dir)
                .unwrap_or_else(default_wasm_dir),
            cert_dir: options.cert_dir.clone().unwrap_or(cert_dir),
            tls: options.tls,
            wasm: !options.no_wasm,
            authentication,
            rate_limiting,
            rate_limit_per_minute,
            rate_limit_failure_mode_deny,
            rate_limit_timeout,
            slow_request_ms,
            jwt_secret,
            jwt_issuer: get("JWT_ISSUER", "borrow-rate-gateway"),
            jwt_audience: get("JWT_AUDIENCE", "borrow-rate-api"),
            cors_origins,
            cb_max_connections: positive_u32(
                &get("UPSTREAM_MAX_CONNECTIONS", "512"),
                "UPSTREAM_MAX_CONNECTIONS",
            )?,
            cb_max_pending_requests: positive_u32(
                &get("UPSTREAM_MAX_PENDING_REQUESTS", "256"),
                "UPSTREAM_MAX_PENDING_REQUESTS",
            )?,
            cb_max_requests: positive_u32(
                &get("UPSTREAM_MAX_REQUESTS", "512"),
                "UPSTREAM_MAX_REQUESTS",
            )?,
            cb_max_retries: positive_u32(
                &get("UPSTREAM_MAX_RETRIES", "16"),
                "UPSTREAM_MAX_RETRIES",
            )?,
            hc_interval: format!("{}.{:03}s", hc_ms / 1000, hc_ms % 1000),
            max_downstream_connections: positive(
                &get("MAX_DOWNSTREAM_CONNECTIONS", "10000"),
                "MAX_DOWNSTREAM_CONNECTIONS",
            )?,
            upstreams,
            rate_limit_health_port: options
                .rate_limit_health_port
                .unwrap_or(RATE_LIMIT_HEALTH_PORT),
            cluster_type: if all_ip { "STATIC" } else { "STRICT_DNS" },
            otlp,
            otel_service_name,
            warnings,
        })
    }

    /// The hosts of `cluster`.
    pub fn hosts(&self, cluster: &str) -> &[Host] {
        self.upstreams
            .iter()
            .find(|(n, _)| *n == cluster)
            .map(|(_, h)| h.as_slice())
            .unwrap_or_default()
    }
}

/// Milliseconds as an Envoy duration without trailing zeros (`0.1s`, `2s`).
/// RATE_LIMIT_TIMEOUT_MS when it is not set.
pub const DEFAULT_RATE_LIMIT_TIMEOUT_MS: u64 = 100;

/// The rate-limit filter's `timeout` when RATE_LIMIT_TIMEOUT_MS is not set
/// (`0.1s`).
pub fn default_rate_limit_timeout() -> String {
    duration_ms(DEFAULT_RATE_LIMIT_TIMEOUT_MS)
}

fn duration_ms(ms: u64) -> String {
    let frac = format!("{:03}", ms % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{frac}s", ms / 1000)
    }
}

/// The repository root (this crate is `envoy/gateway-config`).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

fn default_cert_dir() -> String {
    repo_root().join("certs").display().to_string()
}

/// `$CARGO_TARGET_DIR/wasm32-wasip1/release`, or the workspace's target/.
fn default_wasm_dir() -> String {
    let target = std::env::var("CARGO_TARGET_DIR")
        .ok()
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let target = std::fs::canonicalize(&target).unwrap_or(target);
    target
        .join("wasm32-wasip1")
        .join("release")
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_envoys_notation() {
        assert_eq!(duration_ms(100), "0.1s");
        assert_eq!(duration_ms(2000), "2s");
        assert_eq!(duration_ms(1250), "1.25s");
    }

    #[test]
    fn urls_and_origins() {
        assert_eq!(
            http_url("http://10.0.0.5:8081", Some(80)),
            Some(Host {
                address: "10.0.0.5".into(),
                port: 8081
            })
        );
        assert_eq!(http_url("http://svc/", Some(80)).map(|h| h.port), Some(80));
        assert_eq!(http_url("http://svc", None), None);
        assert_eq!(http_url("https://svc:1", Some(80)), None);
        assert!(is_origin("https://a.example.com"));
        assert!(is_origin("http://localhost:3000"));
        assert!(!is_origin("https://a.example.com/path"));
        assert!(!is_origin("a.example.com"));
    }
}
