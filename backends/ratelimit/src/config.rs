//! Service configuration, read from the environment by the binary and built
//! directly by tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default gRPC address (Envoy's `rate_limit_service` cluster).
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:8090";
/// Default HTTP address (`/health`, `/metrics`).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8091";
/// Limits file used by the binary when `RATE_LIMITS_FILE` is unset and the
/// file exists (paths are relative to the repository root, where `make run`
/// starts every process).
pub const DEFAULT_LIMITS_FILE: &str = "backends/ratelimit/limits.yaml";

/// What the service answers when its counter storage (Redis) cannot be
/// reached or does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Answer `OK`: the request goes through (the Envoy local bucket still
    /// caps each client per instance).
    Allow,
    /// Answer `OVER_LIMIT` with `Retry-After: 1`: the request is refused
    /// with 429 `RATE_LIMITED`.
    Deny,
}

impl std::str::FromStr for FailureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" | "open" => Ok(Self::Allow),
            "deny" | "closed" => Ok(Self::Deny),
            other => Err(format!(
                "RATE_LIMIT_FAILURE_MODE: {other:?} is not one of allow, deny"
            )),
        }
    }
}

/// Files for a `rediss://` connection, each a PEM file read when the
/// service starts (`REDIS_CA_FILE`, `REDIS_CLIENT_CERT_FILE`,
/// `REDIS_CLIENT_KEY_FILE`). With no CA file the server certificate is
/// checked against the system roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// CA bundle the Redis server certificate must chain to (replaces the
    /// system roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain) for mutual TLS; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// Private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl RedisTls {
    /// Whether any file is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }
}

/// `url` with its password replaced by `***`, for logs
/// (`rediss://app:***@cache:6380/0`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Everything the rate-limit service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address for `envoy.service.ratelimit.v3.RateLimitService`
    /// (`GRPC_LISTEN_ADDR`, default `127.0.0.1:8090`; port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for `/health` and `/metrics` (`LISTEN_ADDR`,
    /// default `127.0.0.1:8091`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// Per-client limit per minute when the key carries no limit of its own
    /// and the limits file has no override (`RATE_LIMIT_PER_MINUTE`, default 60).
    pub default_per_minute: u64,
    /// The limits file (`RATE_LIMITS_FILE`); `None` uses the built-in
    /// defaults of [`crate::limits::LimitsFile`].
    pub limits_file: Option<PathBuf>,
    /// How often the limits file's modification time is polled; a change is
    /// applied without restart (`RATE_LIMITS_RELOAD_MS`, default 1000).
    pub reload_interval: Duration,
    /// Redis URL for counters shared by every service replica (`REDIS_URL`:
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS);
    /// `None` keeps counters in memory.
    pub redis_url: Option<String>,
    /// CA and client certificate files for a `rediss://` URL.
    pub redis_tls: RedisTls,
    /// Answer when Redis is down (`RATE_LIMIT_FAILURE_MODE`, `allow` by default).
    pub failure_mode: FailureMode,
    /// Longest wait for one storage operation before [`Config::failure_mode`]
    /// applies (`RATE_LIMIT_STORAGE_TIMEOUT_MS`, default 100).
    pub storage_timeout: Duration,
    /// Prefix of every counter namespace, so deployments (or test runs)
    /// sharing one Redis never share counters (`RATE_LIMIT_KEY_PREFIX`,
    /// default `brl`).
    pub key_prefix: String,
    /// Capacity of the in-memory counter cache: the number of distinct
    /// clients and addresses tracked at once (`RATE_LIMIT_MEMORY_COUNTERS`,
    /// default 100000).
    pub memory_counters: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: parse_addr(DEFAULT_GRPC_ADDR),
            http_addr: parse_addr(DEFAULT_HTTP_ADDR),
            default_per_minute: 60,
            limits_file: None,
            reload_interval: Duration::from_millis(1000),
            redis_url: None,
            redis_tls: RedisTls::default(),
            failure_mode: FailureMode::Allow,
            storage_timeout: Duration::from_millis(100),
            key_prefix: "brl".to_owned(),
            memory_counters: 100_000,
        }
    }
}

fn parse_addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Config {
    /// Reads the configuration from the environment (see each field).
    /// Errors name the variable at fault.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with an explicit variable source.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = Self::default();
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = non_empty("GRPC_LISTEN_ADDR") {
            c.grpc_addr = v.parse().map_err(|_| {
                format!("GRPC_LISTEN_ADDR: {v:?} is not an address like {DEFAULT_GRPC_ADDR}")
            })?;
        }
        if let Some(v) = non_empty("LISTEN_ADDR") {
            c.http_addr = v.parse().map_err(|_| {
                format!("LISTEN_ADDR: {v:?} is not an address like {DEFAULT_HTTP_ADDR}")
            })?;
        }
        if let Some(v) = non_empty("RATE_LIMIT_PER_MINUTE") {
            c.default_per_minute = positive("RATE_LIMIT_PER_MINUTE", &v)?;
        }
        c.limits_file = match non_empty("RATE_LIMITS_FILE") {
            Some(v) => Some(PathBuf::from(v)),
            None => {
                let p = PathBuf::from(DEFAULT_LIMITS_FILE);
                p.exists().then_some(p)
            }
        };
        if let Some(v) = non_empty("RATE_LIMITS_RELOAD_MS") {
            c.reload_interval = Duration::from_millis(positive("RATE_LIMITS_RELOAD_MS", &v)?);
        }
        c.redis_url = non_empty("REDIS_URL");
        c.redis_tls = RedisTls {
            ca_file: non_empty("REDIS_CA_FILE").map(PathBuf::from),
            client_cert_file: non_empty("REDIS_CLIENT_CERT_FILE").map(PathBuf::from),
            client_key_file: non_empty("REDIS_CLIENT_KEY_FILE").map(PathBuf::from),
        };
        if c.redis_tls.client_cert_file.is_some() != c.redis_tls.client_key_file.is_some() {
            return Err(
                "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE: set both or neither".to_owned(),
            );
        }
        if c.redis_tls.is_set()
            && !c
                .redis_url
                .as_deref()
                .is_some_and(|u| u.trim_start().starts_with("rediss://"))
        {
            return Err(
                "REDIS_CA_FILE / REDIS_CLIENT_CERT_FILE need a rediss:// REDIS_URL".to_owned(),
            );
        }
        if let Some(v) = non_empty("RATE_LIMIT_FAILURE_MODE") {
            c.failure_mode = v.parse()?;
        }
        if let Some(v) = non_empty("RATE_LIMIT_STORAGE_TIMEOUT_MS") {
            c.storage_timeout =
                Duration::from_millis(positive("RATE_LIMIT_STORAGE_TIMEOUT_MS", &v)?);
        }
        if let Some(v) = non_empty("RATE_LIMIT_KEY_PREFIX") {
            c.key_prefix = v;
        }
        if let Some(v) = non_empty("RATE_LIMIT_MEMORY_COUNTERS") {
            c.memory_counters = positive("RATE_LIMIT_MEMORY_COUNTERS", &v)?;
        }
        Ok(c)
    }
}

fn positive(name: &str, v: &str) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name}: {v:?} is not a positive integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_architecture_ports_and_spec_limit() {
        let c = from(&[]).unwrap();
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:8090");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8091");
        assert_eq!(c.default_per_minute, 60);
        assert_eq!(c.failure_mode, FailureMode::Allow);
        assert!(c.redis_url.is_none());
    }

    #[test]
    fn environment_overrides_are_read() {
        let c = from(&[
            ("RATE_LIMIT_PER_MINUTE", "120"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("RATE_LIMIT_FAILURE_MODE", "deny"),
            ("GRPC_LISTEN_ADDR", "127.0.0.1:0"),
        ])
        .unwrap();
        assert_eq!(c.default_per_minute, 120);
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.failure_mode, FailureMode::Deny);
        assert_eq!(c.grpc_addr.port(), 0);
    }

    #[test]
    fn redis_tls_files_are_read_and_need_a_rediss_url() {
        let c = from(&[
            ("REDIS_URL", "rediss://app:pw@cache:6380/0"),
            ("REDIS_CA_FILE", "/etc/redis/ca.pem"),
        ])
        .unwrap();
        assert_eq!(
            c.redis_tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/redis/ca.pem"))
        );
        let e = from(&[
            ("REDIS_URL", "redis://cache:6379"),
            ("REDIS_CA_FILE", "/etc/redis/ca.pem"),
        ])
        .unwrap_err();
        assert!(e.contains("rediss://"), "{e}");
        let e = from(&[
            ("REDIS_URL", "rediss://cache:6380"),
            ("REDIS_CLIENT_CERT_FILE", "/etc/redis/client.pem"),
        ])
        .unwrap_err();
        assert!(e.starts_with("REDIS_CLIENT_CERT_FILE"), "{e}");
    }

    #[test]
    fn passwords_are_redacted_from_logged_urls() {
        assert_eq!(
            redact_url("rediss://app:s3cret@cache:6380/0"),
            "rediss://app:***@cache:6380/0"
        );
        assert_eq!(redact_url("redis://:s3cret@cache"), "redis://:***@cache");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
    }

    #[test]
    fn a_bad_value_is_reported_with_its_variable_name() {
        let e = from(&[("RATE_LIMIT_PER_MINUTE", "zero")]).unwrap_err();
        assert!(e.starts_with("RATE_LIMIT_PER_MINUTE"), "{e}");
        let e = from(&[("RATE_LIMIT_PER_MINUTE", "0")]).unwrap_err();
        assert!(e.starts_with("RATE_LIMIT_PER_MINUTE"), "{e}");
        let e = from(&[("RATE_LIMIT_FAILURE_MODE", "maybe")]).unwrap_err();
        assert!(e.starts_with("RATE_LIMIT_FAILURE_MODE"), "{e}");
    }
}
