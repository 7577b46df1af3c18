//! Service configuration, read from the environment by the binary and built
//! directly by tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use service_http::config::{positive, socket_addr, CommonArgs, ServiceArgs};

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

/// Files for a `rediss://` connection (`REDIS_CA_FILE`,
/// `REDIS_CLIENT_CERT_FILE`, `REDIS_CLIENT_KEY_FILE`), declared once for
/// this service and the ops service's Redis probe.
pub use service_http::config::RedisTls;

/// `url` with its password replaced by `***`, for logs.
pub use service_http::config::redact_url;

/// The rate-limit service's variables (the shared ones flattened in from
/// `service_http::config`).
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "The borrow-rate gateway's rate-limit service")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// gRPC listen address of the Rate Limit Service.
    #[arg(long, env = "GRPC_LISTEN_ADDR", value_name = "ADDR", value_parser = socket_addr)]
    pub grpc_listen_addr: Option<SocketAddr>,
    /// Per-client limit per minute without a key or file override.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", value_name = "N",
          default_value = "60", value_parser = positive)]
    pub rate_limit_per_minute: u64,
    /// The limits file (default: backends/ratelimit/limits.yaml when it
    /// exists, else built-in defaults).
    #[arg(long, env = "RATE_LIMITS_FILE", value_name = "FILE")]
    pub rate_limits_file: Option<PathBuf>,
    /// Milliseconds between checks of the limits file.
    #[arg(long, env = "RATE_LIMITS_RELOAD_MS", value_name = "MS",
          default_value = "1000", value_parser = positive)]
    pub rate_limits_reload_ms: u64,
    /// Redis for counters shared by every replica; memory when unset.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub redis_url: Option<String>,
    #[command(flatten)]
    pub redis_tls: RedisTls,
    /// `allow` or `deny` when Redis is down.
    #[arg(long, env = "RATE_LIMIT_FAILURE_MODE", value_name = "MODE",
          default_value = "allow", value_parser = failure_mode)]
    pub rate_limit_failure_mode: FailureMode,
    /// Longest wait in milliseconds for one storage operation.
    #[arg(long, env = "RATE_LIMIT_STORAGE_TIMEOUT_MS", value_name = "MS",
          default_value = "100", value_parser = positive)]
    pub rate_limit_storage_timeout_ms: u64,
    /// Prefix of every counter namespace.
    #[arg(
        long,
        env = "RATE_LIMIT_KEY_PREFIX",
        value_name = "PREFIX",
        default_value = "brl"
    )]
    pub rate_limit_key_prefix: String,
    /// Distinct clients and addresses the memory counters track at once.
    #[arg(long, env = "RATE_LIMIT_MEMORY_COUNTERS", value_name = "N",
          default_value = "100000", value_parser = positive)]
    pub rate_limit_memory_counters: u64,
}

fn failure_mode(v: &str) -> Result<FailureMode, String> {
    match v.to_ascii_lowercase().as_str() {
        "allow" | "open" => Ok(FailureMode::Allow),
        "deny" | "closed" => Ok(FailureMode::Deny),
        _ => Err("is not one of allow, deny".to_owned()),
    }
}

/// `Args::config_from_env()` reads the configuration from the environment;
/// errors name the variable at fault.
impl ServiceArgs for Args {
    type Config = Config;

    /// The [`Config`] these values mean; checks the Redis TLS files.
    fn into_config(self) -> Result<Config, String> {
        let d = Config::default();
        let c = Config {
            grpc_addr: self.grpc_listen_addr.unwrap_or(d.grpc_addr),
            http_addr: self.common.listen_addr_or(d.http_addr),
            default_per_minute: self.rate_limit_per_minute,
            limits_file: self.rate_limits_file.or_else(|| {
                let p = PathBuf::from(DEFAULT_LIMITS_FILE);
                p.exists().then_some(p)
            }),
            reload_interval: Duration::from_millis(self.rate_limits_reload_ms),
            redis_url: self.redis_url,
            redis_tls: self.redis_tls,
            failure_mode: self.rate_limit_failure_mode,
            storage_timeout: Duration::from_millis(self.rate_limit_storage_timeout_ms),
            key_prefix: self.rate_limit_key_prefix,
            memory_counters: self.rate_limit_memory_counters,
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
        Ok(c)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Args::config_from_lookup(service_http::config::vars(pairs))
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
    fn a_bad_value_is_reported_with_its_variable_name() {
        let e = from(&[("RATE_LIMIT_PER_MINUTE", "zero")]).unwrap_err();
        assert!(e.starts_with("RATE_LIMIT_PER_MINUTE"), "{e}");
        let e = from(&[("RATE_LIMIT_PER_MINUTE", "0")]).unwrap_err();
        assert!(e.starts_with("RATE_LIMIT_PER_MINUTE"), "{e}");
        let e = from(&[("RATE_LIMIT_FAILURE_MODE", "maybe")]).unwrap_err();
        assert!(e.starts_with("RATE_LIMIT_FAILURE_MODE"), "{e}");
    }
}
