//! `cargo xtask fuzz-smoke`: a short fuzzing run of every cargo-fuzz
//! target of fuzz/ (default 10 s each), as `cargo xtask test` runs it.
//!
//! Runs on the default (stable) toolchain with `RUSTC_BOOTSTRAP=1`, which
//! lets cargo-fuzz pass its nightly-only flags (`-Zsanitizer=address`);
//! `--toolchain nightly` (or `$FUZZ_TOOLCHAIN`) uses that toolchain
//! instead. New corpus entries go to a scratch directory, so the committed
//! seed corpus stays as it is. A crash fails the run and leaves the input
//! in fuzz/artifacts/<target>/.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{output, step};

/// cargo, run in fuzz/ (its own workspace). The rustup proxy on PATH, not
/// `$CARGO`: only the proxy understands `+toolchain`.
fn cargo(root: &Path, toolchain: Option<&str>) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root.join("fuzz"));
    match toolchain {
        Some(t) => {
            c.arg(format!("+{t}"));
        }
        None => {
            c.env("RUSTC_BOOTSTRAP", "1");
        }
    }
    c
}

pub fn smoke(root: &Path, seconds: u32, toolchain: Option<&str>) -> Result<()> {
    let version = output(cargo(root, toolchain).args(["fuzz", "--version"]))?;
    if !version.status.success() {
        bail!("cargo-fuzz is missing: cargo install cargo-fuzz --locked (or: cargo xtask setup cargo-tools)");
    }
    let list = output(cargo(root, toolchain).args(["fuzz", "list"]))?;
    if !list.status.success() {
        bail!(
            "cargo fuzz list failed:\n{}",
            String::from_utf8_lossy(&list.stderr)
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("fuzz-smoke.")
        .tempdir()
        .context("cannot create a scratch directory")?;
    for target in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        let new = scratch.path().join(target);
        std::fs::create_dir_all(&new)?;
        println!("fuzzing {target} for {seconds}s");
        step(
            cargo(root, toolchain)
                .args(["fuzz", "run", target])
                .arg(&new)
                .arg(format!("corpus/{target}"))
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg("-print_final_stats=1"),
        )?;
    }
    Ok(())
}
