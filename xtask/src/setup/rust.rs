//! The Rust side: rustup components and targets, and the cargo-installed
//! tools of the tests.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, on_path, output, quiet_step, read};
use crate::wasm::{WASM_TARGET, WASM_TEST_TARGET};

/// Lines `rustup <what> list --installed` prints.
fn installed(what: &str) -> Result<Vec<String>> {
    if on_path("rustup").is_none() {
        bail!("rustup not found on PATH (source ~/.cargo/env)");
    }
    let out = output(Command::new("rustup").args([what, "list", "--installed"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn target(name: &str) -> Result<()> {
    if !installed("target")?.iter().any(|t| t == name) {
        quiet_step(Command::new("rustup").args(["target", "add", name]))?;
    }
    Ok(())
}

/// rustfmt, clippy and the filters' wasm target.
pub fn toolchain() -> Result<()> {
    let components = installed("component")?;
    for c in ["rustfmt", "clippy"] {
        if !components.iter().any(|l| l.starts_with(c)) {
            quiet_step(Command::new("rustup").args(["component", "add", c]))?;
        }
    }
    target(WASM_TARGET)
}

/// The wasm-bindgen version Cargo.lock pins: wasm-bindgen-test-runner must
/// be the same.
pub fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    lines.find(|l| *l == name)?;
    let version = lines.next()?.strip_prefix("version = \"")?;
    Some(version.strip_suffix('"')?.to_owned())
}

/// wasm-bindgen-test-runner (matching Cargo.lock) with its target, and
/// cargo-fuzz.
pub fn cargo_tools(root: &Path) -> Result<()> {
    target(WASM_TEST_TARGET)?;
    let lock = read(&root.join("Cargo.lock"))?;
    let version =
        locked_version(&lock, "wasm-bindgen").context("Cargo.lock pins no wasm-bindgen")?;
    let runner = output(Command::new("wasm-bindgen-test-runner").arg("--version"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_owned())
        .unwrap_or_default();
    if !runner.ends_with(&format!(" {version}")) {
        println!("installing wasm-bindgen-cli {version}");
        quiet_step(
            cargo()
                .args(["install", "-q", "wasm-bindgen-cli", "--version"])
                .arg(format!("={version}")),
        )?;
    }
    if on_path("cargo-fuzz").is_none() {
        println!("installing cargo-fuzz");
        quiet_step(cargo().args(["install", "-q", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_version_is_the_line_after_the_name() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"9\"\n\n\
                    [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "serde"), None);
    }
}
