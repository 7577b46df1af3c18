//! `cargo xtask <task>`: the project's tooling.
//!
//!   cargo xtask check-deploy [alerts|dashboards|compose|envoy|kubernetes|images|all]…

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::check_deploy::{self, Check};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.clone().unwrap_or_else(repo_root);
    let result = match cli.task {
        Task::CheckDeploy { checks } => check_deploy::run(&root, &checks),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
