//! `cargo xtask <task>`: the project's tooling.
//!
//!   cargo xtask check-deploy [alerts|dashboards|compose|envoy|kubernetes|images|all]…
//!   cargo xtask run [start|stop|status]
//!   cargo xtask wasm-drop-callbacks FILE.wasm CALLBACK…
//!   cargo xtask prometheus-rule [--check]
//!   cargo xtask bench <calculation|e2e|open-loop|breakdown|chain|validation|memory|callgrind|all> | soak

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::check_deploy::{self, Check};
use xtask::run;
use xtask::util::repo_root;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "The project's tooling")]
struct Cli {
    /// The repository to work on (default: the one this tool is built from).
    #[arg(long, global = true, hide = true)]
    root: Option<std::path::PathBuf>,
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Offline checks of the deployment artifacts (no Docker engine, no
    /// cluster); every check when none is named.
    CheckDeploy {
        #[arg(value_enum)]
        checks: Vec<Check>,
    },
    /// Run the whole stack on 127.0.0.1 in the foreground (start), or stop
    /// it / show it from another shell.
    Run {
        #[arg(value_enum, default_value = "start")]
        action: run::Action,
    },
    /// certs/ and envoy/rendered/compose.yaml, which docker-compose up mounts
    /// (from $GATEWAY_ENV_FILE, default .env.example).
    ComposeConfig,
    /// The benchmarks of BENCHMARKS.md (loopback, bounded).
    #[command(subcommand)]
    Bench(xtask::bench::Cmd),
    /// Soak of the whole stack: no failed request, bounded RSS growth,
    /// audit rows = calculations (SOAK_SECONDS, default 300).
    Soak,
    /// deploy/prometheus/prometheus-rule.yaml from alerts.yml; with
    /// --check, fail when the committed file differs instead.
    PrometheusRule {
        #[arg(long)]
        check: bool,
    },
    /// Remove proxy-wasm callback exports a filter leaves to the SDK's
    /// no-op default from a built .wasm, in place.
    WasmDropCallbacks {
        file: std::path::PathBuf,
        #[arg(required = true)]
        callbacks: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.clone().unwrap_or_else(repo_root);
    let result = match cli.task {
        Task::CheckDeploy { checks } => check_deploy::run(&root, &checks),
        Task::WasmDropCallbacks { file, callbacks } => xtask::wasm_drop::run(&file, &callbacks),
        Task::PrometheusRule { check } => xtask::prometheus_rule::run(&root, check),
        Task::Bench(cmd) => xtask::bench::run(&root, cmd),
        Task::Soak => xtask::bench::soak(&root),
        Task::ComposeConfig => check_deploy::compose_config(&root),
        Task::Run { action } => run::run(&root, action).map_err(|e| anyhow::anyhow!("run: {e:#}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
