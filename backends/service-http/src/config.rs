//! Configuration: each service's settings are a `clap` derive struct whose
//! fields declare their variable (`#[arg(long, env = "…")]`), with the
//! pieces every backend shares flattened into it: [`CommonArgs`]
//! (`LISTEN_ADDR`, the `LOG_*` variables, the shutdown delays) and, for
//! the services with a database, [`DatabaseArgs`].
//!
//! [`from_env`] reads the declared variables the way every backend always
//! has: a value is trimmed, an empty one counts as unset (the default
//! applies), and a flag on the command line (`--listen-addr …`) wins over
//! the variable. Every error names the variable at fault:
//! `RATE_LIMIT_PER_MINUTE: "zero" is not a positive integer`.
//! [`from_lookup`] does the same with another variable source (tests).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

pub use service_log::LogArgs;

/// What every backend reads: where it listens, how it logs, how it stops.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// HTTP listen address; each service has its own default, port 0 picks
    /// a free port.
    #[arg(long, env = "LISTEN_ADDR", value_name = "ADDR", value_parser = socket_addr)]
    pub listen_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Seconds between SIGTERM and closing the listener, readiness
    /// answering 503 meanwhile (0 to 3600, fractions allowed).
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", value_name = "SECONDS",
          default_value = "0", value_parser = seconds)]
    pub shutdown_delay_seconds: Duration,
    /// Seconds the requests in flight get to finish once the listener is
    /// closed (0 to 3600).
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS",
          default_value = "10", value_parser = seconds)]
    pub shutdown_grace_seconds: Duration,
}

impl CommonArgs {
    /// `LISTEN_ADDR`, else the service's `default`.
    pub fn listen_addr_or(&self, default: SocketAddr) -> SocketAddr {
        self.listen_addr.unwrap_or(default)
    }

    /// Installs the shutdown settings [`crate::shutdown_signal`] and
    /// [`crate::Server::shutdown`] use.
    pub fn apply_shutdown(&self) {
        crate::probes::set_shutdown(self.shutdown_delay_seconds, self.shutdown_grace_seconds);
    }
}

/// [`CommonArgs`] alone, for a service that reads its other variables
/// itself.
#[derive(Debug, Clone, Parser)]
pub struct Shared {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The database variables of SPEC §9 shared by the services that use it.
#[cfg(feature = "store")]
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DatabaseArgs {
    /// Database URL (`sqlite://…` or `postgres://…`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL",
          default_value = store::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Most pooled connections (0 counts as 1).
    #[arg(long, env = "DB_MAX_CONNECTIONS", value_name = "N",
          default_value = "10", value_parser = number::<u32>)]
    pub db_max_connections: u32,
    /// Milliseconds a request waits for a connection before the database
    /// counts as down (0 counts as 1).
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", value_name = "MS",
          default_value = "3000", value_parser = number::<u64>)]
    pub db_acquire_timeout_ms: u64,
}

#[cfg(feature = "store")]
impl DatabaseArgs {
    /// The store options these values mean.
    pub fn store_options(&self) -> store::StoreOptions {
        let mut o = store::StoreOptions::new(self.database_url.clone());
        o.max_connections = self.db_max_connections.max(1);
        o.acquire_timeout = Duration::from_millis(self.db_acquire_timeout_ms.max(1));
        o
    }
}

/// Files for a `rediss://` `REDIS_URL`, each a PEM file: the CA bundle
/// the server certificate must chain to (the system roots without it) and
/// a client certificate and key for mutual TLS. The rate-limit service
/// flattens it into its variables; the ops service's Redis probe reads it
/// alone ([`RedisTls::from_env`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct RedisTls {
    /// CA bundle the Redis server certificate must chain to.
    #[arg(long = "redis-ca-file", env = "REDIS_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (chain) for mutual TLS; needs the key.
    #[arg(
        long = "redis-client-cert-file",
        env = "REDIS_CLIENT_CERT_FILE",
        value_name = "FILE"
    )]
    pub client_cert_file: Option<std::path::PathBuf>,
    /// Private key of the client certificate.
    #[arg(
        long = "redis-client-key-file",
        env = "REDIS_CLIENT_KEY_FILE",
        value_name = "FILE"
    )]
    pub client_key_file: Option<std::path::PathBuf>,
}

impl RedisTls {
    /// Whether any file is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }

    /// The three variables alone, from the process environment (empty
    /// values count as unset; paths cannot be malformed).
    pub fn from_env() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            tls: RedisTls,
        }
        from_lookup::<Only>(|name| std::env::var(name).ok())
            .map(|o| o.tls)
            .unwrap_or_default()
    }
}

/// Parses `T` from the process environment and command line, installs
/// the logger for `service` (with `T`'s [`LogArgs`]) and the shutdown
/// settings, then turns `T` into what the service runs with (`convert`,
/// where checks between variables go). On an error the logger is
/// installed from the `LOG_*` variables alone when `T` did not parse, the
/// error is logged as `Invalid configuration` and returned.
pub fn load<T: Parser, C>(
    service: &'static str,
    common: fn(&T) -> &CommonArgs,
    convert: impl FnOnce(T) -> Result<C, String>,
) -> Result<C, String> {
    let converted = match from_env::<T>() {
        Ok(args) => {
            let c = common(&args);
            service_log::init_with(service, c.log.settings());
            c.apply_shutdown();
            convert(args)
        }
        Err(e) => {
            service_log::init(service);
            Err(e)
        }
    };
    converted.map_err(|e| {
        tracing::error!(error = %e, "Invalid configuration");
        e
    })
}

/// `T` from the process environment, command-line flags winning. `--help`
/// and `--version` print and exit.
pub fn from_env<T: Parser>() -> Result<T, String> {
    let cli: Vec<OsString> = std::env::args_os().skip(1).collect();
    if cli
        .iter()
        .any(|a| ["-h", "--help", "-V", "--version"].contains(&a.to_string_lossy().as_ref()))
    {
        return Ok(T::parse());
    }
    parse(|name| std::env::var(name).ok(), cli)
}

/// `T` from the variables `lookup` gives (no command line).
pub fn from_lookup<T: Parser>(lookup: impl Fn(&str) -> Option<String>) -> Result<T, String> {
    parse(lookup, Vec::new())
}

/// A lookup for [`from_lookup`] answering the variables `pairs` sets
/// (tests, fixed sets): the first pair with the name wins.
pub fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// A service's variables that mean one configuration once checked
/// together: [`ServiceArgs::into_config`] is where the checks between
/// variables go, the provided functions read the variables first.
pub trait ServiceArgs: Parser {
    /// What the service runs with.
    type Config;

    /// The configuration these values mean.
    fn into_config(self) -> Result<Self::Config, String>;

    /// The configuration from the process environment and command line
    /// ([`from_env`]). Errors name the variable at fault.
    fn config_from_env() -> Result<Self::Config, String> {
        from_env::<Self>()?.into_config()
    }

    /// The configuration from the variables `lookup` gives
    /// ([`from_lookup`]).
    fn config_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self::Config, String> {
        from_lookup::<Self>(lookup)?.into_config()
    }
}

fn parse<T: Parser>(
    lookup: impl Fn(&str) -> Option<String>,
    cli: Vec<OsString>,
) -> Result<T, String> {
    let mut cmd = T::command();
    let mut argv: Vec<OsString> = vec![cmd.get_name().into()];
    // Each set variable becomes its flag; the others lose their `env` so
    // that clap never reads the process environment itself.
    cmd = cmd.args_override_self(true).mut_args(|arg| {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            return arg;
        };
        let value = env
            .to_str()
            .and_then(&lookup)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        match value {
            Some(v) => {
                argv.push(format!("--{long}={v}").into());
                arg
            }
            None => arg.env(None::<&'static str>),
        }
    });
    argv.extend(cli);
    let matches = cmd
        .try_get_matches_from_mut(argv)
        .map_err(|e| message(&cmd, &e))?;
    T::from_arg_matches(&matches).map_err(|e| message(&cmd, &e))
}

/// `VARIABLE: "value" reason` for a bad value, clap's own text otherwise.
fn message(cmd: &clap::Command, e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let (Some(arg), Some(value)) = (
        text(ContextKind::InvalidArg),
        text(ContextKind::InvalidValue),
    ) else {
        return e.render().to_string().trim().to_owned();
    };
    let long = arg
        .trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let name = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or(arg);
    let reason = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_else(|| "is not an accepted value".to_owned());
    format!("{name}: {value:?} {reason}")
}

// ---------------------------------------------------------------------------
// Value parsers (the error is the reason; the variable and value are added)
// ---------------------------------------------------------------------------

/// A socket address like `127.0.0.1:8081`.
pub fn socket_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| "is not an address like 127.0.0.1:8081".to_owned())
}

/// A whole number.
pub fn number<T: FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| "is not a valid number".to_owned())
}

/// A whole number above zero.
pub fn positive(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("is not a positive integer".to_owned()),
    }
}

/// A whole number in `min..=max`.
pub fn between(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |v| {
        v.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("is not between {min} and {max}"))
    }
}

/// Seconds from 0 to 3600, fractions allowed.
pub fn seconds(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err("is not a number of seconds between 0 and 3600".to_owned()),
    }
}

/// An `http://` or `https://` URL, without its trailing `/`.
pub fn http_url(v: &str) -> Result<String, String> {
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(v.trim_end_matches('/').to_owned())
    } else {
        Err("is not an http:// or https:// URL".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, env = "DEMO_LIMIT", default_value = "60", value_parser = positive)]
        demo_limit: u64,
    }

    fn demo(pairs: &[(&str, &str)]) -> Result<Demo, String> {
        from_lookup(vars(pairs))
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let d = demo(&[("DEMO_LIMIT", "  "), ("LISTEN_ADDR", "")]).unwrap();
        assert_eq!(d.demo_limit, 60);
        assert_eq!(d.common.listen_addr, None);
        assert_eq!(d.common.shutdown_grace_seconds, Duration::from_secs(10));
        assert_eq!(d.common.shutdown_delay_seconds, Duration::ZERO);
        assert_eq!(d.common.log.settings().level, "info");
    }

    #[test]
    fn values_are_trimmed_and_parsed() {
        let d = demo(&[
            ("DEMO_LIMIT", " 7 "),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("SHUTDOWN_GRACE_SECONDS", "2.5"),
            ("LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(d.demo_limit, 7);
        assert_eq!(d.common.listen_addr, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(d.common.shutdown_grace_seconds, Duration::from_millis(2500));
        assert_eq!(d.common.log.settings().format, service_log::Format::Json);
    }

    #[test]
    fn errors_name_the_variable_and_the_value() {
        let e = demo(&[("DEMO_LIMIT", "zero")]).unwrap_err();
        assert_eq!(e, r#"DEMO_LIMIT: "zero" is not a positive integer"#);
        let e = demo(&[("LISTEN_ADDR", "nowhere")]).unwrap_err();
        assert_eq!(
            e,
            r#"LISTEN_ADDR: "nowhere" is not an address like 127.0.0.1:8081"#
        );
        let e = demo(&[("SHUTDOWN_DELAY_SECONDS", "-1")]).unwrap_err();
        assert!(e.starts_with("SHUTDOWN_DELAY_SECONDS: \"-1\" "), "{e}");
    }

    #[test]
    fn the_command_line_wins_over_the_variable() {
        let d: Demo = parse(
            |k| (k == "DEMO_LIMIT").then(|| "5".to_owned()),
            vec!["--demo-limit=9".into()],
        )
        .unwrap();
        assert_eq!(d.demo_limit, 9);
    }

    #[test]
    fn passwords_are_redacted_from_logged_urls() {
        assert_eq!(
            redact_url("rediss://app:s3cret@cache:6380/0"),
            "rediss://app:***@cache:6380/0"
        );
        assert_eq!(redact_url("redis://:s3cret@cache"), "redis://:***@cache");
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
    }
}
