//! `gateway-config render`: the gateway's Envoy configuration for one
//! deployment shape, and the Istio resources generated from the same values.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gateway_config::envoy::Port;
use gateway_config::settings::parse_flag;
use gateway_config::{Error, Options, Shape};

#[derive(Parser)]
#[command(about = "The gateway's Envoy configuration and Istio resources, from typed values")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShapeArg {
    Local,
    Compose,
}

// Parsed once per run: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Render the Envoy bootstrap. Switches come from the environment (SPEC
    /// §9) and may be overridden with --set NAME=VALUE: ENABLE_AUTHENTICATION,
    /// ENABLE_RATE_LIMITING, CORS_ORIGINS, SLOW_REQUEST_MS, JWT_SECRET_KEY,
    /// JWT_ISSUER, JWT_AUDIENCE, RATE_LIMIT_PER_MINUTE, RATE_LIMIT_FAILURE_MODE
    /// (allow|deny), RATE_LIMIT_TIMEOUT_MS, OTEL_EXPORTER_OTLP_ENDPOINT
    /// (http://host:port of an OTLP/gRPC receiver: tracing on),
    /// OTEL_SERVICE_NAME, UPSTREAM_MAX_*, HEALTH_CHECK_INTERVAL_MS,
    /// MAX_DOWNSTREAM_CONNECTIONS, DATA_SERVICE_URL, CALCULATION_SERVICE_URL.
    Render {
        #[arg(long, value_enum, default_value = "local")]
        shape: ShapeArg,
        /// on|off: the :8443 listener.
        #[arg(long, default_value = "on")]
        tls: String,
        /// Output file, or - for stdout.
        #[arg(long)]
        out: String,
        /// Address of the public listeners (default: per shape).
        #[arg(long)]
        listen_address: Option<String>,
        /// A port, or a {{NAME}} placeholder for the e2e harness.
        #[arg(long, default_value = "8000")]
        listener_port: String,
        #[arg(long, default_value = "8443")]
        tls_port: String,
        #[arg(long, default_value = "9901")]
        admin_port: String,
        /// Compose: listener exposing the read-only admin views the ops
        /// service needs.
        #[arg(long, default_value = "9902")]
        stats_port: String,
        /// Directory of auth_filter.wasm, validation_filter.wasm,
        /// metrics_filter.wasm.
        #[arg(long)]
        wasm_dir: Option<String>,
        /// Directory of gateway.crt and gateway.key.
        #[arg(long)]
        cert_dir: Option<String>,
        /// Leave out the wasm filters (tests of Envoy's own routing, cluster
        /// and TLS behaviour).
        #[arg(long)]
        no_wasm: bool,
        /// CLUSTER=HOST:PORT[,HOST:PORT]
        #[arg(long)]
        upstream: Vec<String>,
        /// HTTP port of the rate-limit service's /health (default 8091).
        #[arg(long)]
        rate_limit_health_port: Option<u16>,
        /// NAME=VALUE: override an environment variable.
        #[arg(long)]
        set: Vec<String>,
    },
    /// Write the generated Istio resources (local-reply.yaml,
    /// wasm-plugins.yaml, ratelimit.yaml, stats.yaml) into DIR, or check
    /// that DIR holds them unchanged.
    Istio {
        #[arg(long, default_value = "deploy/base/istio")]
        dir: PathBuf,
        /// Fail when a file differs instead of writing it.
        #[arg(long)]
        check: bool,
    },
}

fn port(value: &str, name: &str) -> Result<Port, Error> {
    if value.starts_with("{{") && value.ends_with("}}") {
        return Ok(Port::Placeholder(value.to_owned()));
    }
    value
        .parse()
        .map(Port::Number)
        .map_err(|_| Error(format!("{name} must be a port number, got {value:?}")))
}

/// Writes `text` to `out` (owner-only: it may hold JWT_SECRET_KEY), or to
/// stdout for `-`.
fn write_out(out: &str, text: &str) -> Result<(), Error> {
    let io = |e: std::io::Error| Error(format!("{out}: {e}"));
    if out == "-" {
        return std::io::stdout().write_all(text.as_bytes()).map_err(io);
    }
    let out = PathBuf::from(out);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp_name = out.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, &out).map_err(io)
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Render {
            shape,
            tls,
            out,
            listen_address,
            listener_port,
            tls_port,
            admin_port,
            stats_port,
            wasm_dir,
            cert_dir,
            no_wasm,
            upstream,
            rate_limit_health_port,
            set,
        } => {
            let mut env: BTreeMap<String, String> = std::env::vars().collect();
            for kv in &set {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| Error(format!("--set expects NAME=VALUE, got {kv:?}")))?;
                env.insert(k.to_owned(), v.to_owned());
            }
            let options = Options {
                shape: match shape {
                    ShapeArg::Local => Shape::Local,
                    ShapeArg::Compose => Shape::Compose,
                },
                tls: parse_flag(&tls, "--tls")?,
                listen_address,
                listener_port: port(&listener_port, "--listener-port")?,
                tls_port: port(&tls_port, "--tls-port")?,
                admin_port: port(&admin_port, "--admin-port")?,
                stats_port: port(&stats_port, "--stats-port")?,
                wasm_dir,
                cert_dir,
                no_wasm,
                upstreams: upstream,
                rate_limit_health_port,
            };
            let (text, warnings) = gateway_config::render(&options, &env)?;
            for w in warnings {
                eprintln!("gateway-config: warning: {w}");
            }
            write_out(&out, &text)
        }
        Command::Istio { dir, check } => gateway_config::istio::write_or_check(&dir, check),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-config: {e}");
            ExitCode::from(2)
        }
    }
}
