//! `cargo xtask bench <benchmark>` and `cargo xtask soak`: the benchmarks
//! of BENCHMARKS.md, on loopback, every load bounded in count and time.
//!
//! | benchmark | module | measures |
//! |---|---|---|
//! | `calculation` | calculation.rs | calculation service alone (wrk) |
//! | `e2e`, `open-loop`, `breakdown` | e2e.rs | through the make-run stack |
//! | `chain` | chain.rs | the filter chain: bare, ours, native |
//! | `validation`, `memory`, `callgrind` | filters.rs | the filters one at a time |
//! | `all` | here | what `make bench` runs, rounds shortened |
//!
//! Settings come from the environment (BENCH_*, CHAIN_*, …, named in each
//! module's documentation) or, for the filter benchmarks, the command
//! line. The Envoy configurations of the chain and breakdown variants are
//! in configs.rs.

pub mod calculation;
pub mod chain;
mod common;
pub mod configs;
mod db;
pub mod e2e;
pub mod filters;
pub mod soak;
mod stack;

use std::path::Path;
use std::process::Command;

use anyhow::Result;

pub use common::{envoy_validate, wasm_dir};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// The calculation service alone: wrk, latency distribution, CPU per
    /// request, audit rows (BENCH_DURATION, BENCH_CONNECTIONS,
    /// BENCH_THREADS, BENCH_DATABASE_URL).
    Calculation,
    /// calculate-locate through the make-run stack, closed loop; CPU per
    /// request of each process (BENCH_DURATION, BENCH_CONNECTIONS).
    E2e,
    /// Latency at constant offered load through the make-run stack
    /// (BENCH_RATES, BENCH_SECONDS).
    OpenLoop,
    /// Envoy CPU per request: the full config against it with one part
    /// removed (BENCH_ROUNDS, BENCH_SECONDS, BREAKDOWN_VARIANTS).
    Breakdown,
    /// The filter chain: bare Envoy, ours (wasm) and native; latency plot;
    /// scaling; pairs (CHAIN_PARTS, CHAIN_VARIANTS, CHAIN_ROUNDS, …).
    Chain,
    /// µs the validation and metrics filters (or the named .wasm chains)
    /// add against bare Envoy.
    Validation {
        #[arg(default_value_t = 6)]
        rounds: u32,
        #[arg(default_value_t = 5)]
        seconds: u32,
        /// NAME=FILE[,FILE…]: a chain of .wasm files (default: the built
        /// validation and metrics filters).
        variants: Vec<String>,
    },
    /// Envoy RSS the filter VMs add, per worker.
    Memory {
        #[arg(default_value_t = 3)]
        rounds: u32,
        /// .wasm files (default: the three built filters).
        files: Vec<String>,
    },
    /// Instructions per request of the filters' own Rust code (valgrind).
    Callgrind {
        #[arg(default_value_t = 20000)]
        requests: u64,
    },
    /// Every benchmark of `make bench`, rounds shortened (about 15 minutes);
    /// the environment settings still apply.
    All,
}

pub fn run(root: &Path, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Calculation => calculation::run(root, &calculation::Settings::from_env()?),
        Cmd::E2e => e2e::e2e(root, &e2e::E2e::from_env()?),
        Cmd::OpenLoop => e2e::open_loop_bench(root, &e2e::OpenLoop::from_env()?),
        Cmd::Breakdown => e2e::breakdown(root, &e2e::Breakdown::from_env(3, 5)?),
        Cmd::Chain => chain::run(
            root,
            &chain::Settings::from_env(chain::Settings::defaults())?,
        ),
        Cmd::Validation {
            rounds,
            seconds,
            variants,
        } => filters::validation(root, rounds, seconds, &variants),
        Cmd::Memory { rounds, files } => filters::memory(root, rounds, &files),
        Cmd::Callgrind { requests } => filters::callgrind(root, requests),
        Cmd::All => all(root),
    }
}

/// `cargo xtask soak`.
pub fn soak(root: &Path) -> Result<()> {
    soak::run(root, &soak::Settings::from_env()?)
}

/// A heading before a benchmark (the commands `all` runs print
/// themselves).
fn step(what: &str) {
    println!("\n=== {what}");
}

fn cargo(root: &Path, args: &[&str], env: &[(&str, String)]) -> Result<()> {
    crate::util::step(
        crate::util::cargo()
            .current_dir(root)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v))),
    )
}

/// What `make bench` runs, with its shortened rounds.
fn all(root: &Path) -> Result<()> {
    common::require(crate::setup::debian::BENCH)?;
    cargo(root, &["bench", "-p", "pricing", "--bench", "fee"], &[])?;
    step("cargo xtask bench calculation");
    calculation::run(root, &calculation::Settings::from_env()?)?;
    step("cargo xtask bench e2e");
    e2e::e2e(root, &e2e::E2e::from_env()?)?;
    let breakdown = e2e::Breakdown::from_env(2, 4)?;
    step(&format!(
        "cargo xtask bench breakdown ({} rounds of {} s)",
        breakdown.rounds, breakdown.seconds
    ));
    e2e::breakdown(root, &breakdown)?;
    step("cargo xtask bench chain");
    let mut shortened = chain::Settings::defaults();
    shortened.rounds = 4;
    shortened.seconds = 3;
    shortened.plot_seconds = 3;
    shortened.plot_rates.retain(|r| r != "10000");
    shortened.scale_rounds = 2;
    chain::run(root, &chain::Settings::from_env(shortened)?)?;
    let rl = common::binary(root, "ratelimit-bench")?;
    crate::util::step(Command::new(&rl).args(["--secs", "5"]))?;
    cargo(
        root,
        &[
            "test",
            "-q",
            "-p",
            "e2e",
            "--test",
            "auth_filter",
            "benchmark",
            "--",
            "--ignored",
            "--nocapture",
        ],
        &[
            ("BENCH_METRICS", "1".into()),
            (
                "BENCH_ROUNDS",
                common::setting("BENCH_ROUNDS", 3)?.to_string(),
            ),
            (
                "BENCH_SECONDS",
                common::setting("BENCH_SECONDS", 3)?.to_string(),
            ),
        ],
    )?;
    step("cargo xtask bench validation 4 3");
    filters::validation(root, 4, 3, &[])?;
    step("cargo xtask bench callgrind");
    filters::callgrind(root, 20000)?;
    step("cargo xtask bench memory 2");
    filters::memory(root, 2, &[])
}
