//! `cargo xtask <task>`: the project's tooling.
//!
//!   cargo xtask check-deploy [alerts|dashboards|compose|envoy|kubernetes|images|all]…
//!   cargo xtask run [start|stop|status]
//!   cargo xtask wasm-drop-callbacks FILE.wasm CALLBACK…
//!   cargo xtask prometheus-rule [--check]
//!   cargo xtask measure --key KEY [--seconds S] [--threads N]
//!   cargo xtask bench <calculation|e2e|open-loop|breakdown|chain|validation|memory|callgrind|all> | soak
//!   cargo xtask setup TOOLS…
//!   cargo xtask wasm [--test-variant] | wasm-images
//!   cargo xtask lint | test | fuzz-smoke | gen-cert [DIR] | clean

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::check_deploy::{self, Check};
use xtask::run;
use xtask::setup::Tools;
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
    /// Resource figures of a running `cargo xtask run` stack (docs/deploy.md,
    /// "Resources"): a bounded load on loopback, RSS and CPU from /proc.
    Measure(xtask::measure::Args),
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
    /// Install what the other tasks need, each tool only when it is
    /// missing (rustup components, .venv, cargo install, Debian packages).
    Setup {
        #[arg(value_enum, required = true)]
        tools: Vec<Tools>,
    },
    /// Build the proxy-wasm filters (release, wasm32-wasip1) without the
    /// callback exports each leaves to the SDK.
    Wasm {
        /// Instead: the test-only auth filter that traps on `x-test-trap`
        /// (target/wasm-test-variant, never shipped).
        #[arg(long)]
        test_variant: bool,
    },
    /// OCI images of the built filters for Istio.
    WasmImages {
        #[arg(
            long,
            env = "REGISTRY",
            default_value = "registry.example.com/borrow-rate"
        )]
        registry: String,
        /// The image tag (default: the workspace's version).
        #[arg(long, env = "VERSION", default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
    },
    /// rustfmt check and clippy with warnings denied (native, and wasm for
    /// the filters and the crates they build on).
    Lint,
    /// Every test: the workspace, the filter core inside wasm, a fuzzing
    /// smoke run; says what it skipped (DATABASE_URL, REDIS_URL unset).
    Test {
        #[command(flatten)]
        fuzz: FuzzArgs,
    },
    /// A short fuzzing run of every cargo-fuzz target (fuzz/).
    FuzzSmoke {
        #[command(flatten)]
        fuzz: FuzzArgs,
    },
    /// The gateway's self-signed TLS certificate in DIR (default certs/),
    /// unless one valid for another day is there.
    GenCert { dir: Option<std::path::PathBuf> },
    /// `cargo clean` and the local run state (.run/, envoy/rendered/).
    Clean,
}

#[derive(clap::Args)]
struct FuzzArgs {
    /// Seconds per fuzz target.
    #[arg(long = "fuzz-seconds", env = "FUZZ_SECONDS", default_value_t = 10)]
    seconds: u32,
    /// A toolchain for cargo fuzz (e.g. nightly); default: the stable one
    /// with RUSTC_BOOTSTRAP=1.
    #[arg(long = "fuzz-toolchain", env = "FUZZ_TOOLCHAIN")]
    toolchain: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.clone().unwrap_or_else(repo_root);
    let result = match cli.task {
        Task::CheckDeploy { checks } => check_deploy::run(&root, &checks),
        Task::WasmDropCallbacks { file, callbacks } => xtask::wasm_drop::run(&file, &callbacks),
        Task::PrometheusRule { check } => xtask::prometheus_rule::run(&root, check),
        Task::Measure(args) => xtask::measure::run(&root, &args),
        Task::Setup { tools } => xtask::setup::run(&root, &tools),
        Task::Wasm {
            test_variant: false,
        } => xtask::wasm::build(&root),
        Task::Wasm { test_variant: true } => xtask::wasm::test_variant(&root),
        Task::WasmImages { registry, version } => xtask::wasm::images(&root, &registry, &version),
        Task::Lint => xtask::lint::run(&root),
        Task::Test { fuzz } => xtask::test::run(&root, fuzz.seconds, fuzz.toolchain.as_deref()),
        Task::FuzzSmoke { fuzz } => {
            xtask::fuzz::smoke(&root, fuzz.seconds, fuzz.toolchain.as_deref())
        }
        Task::GenCert { dir } => xtask::cert::run(&dir.unwrap_or_else(|| root.join("certs"))),
        Task::Clean => xtask::clean::run(&root),
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
