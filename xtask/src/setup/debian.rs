//! Debian packages, installed (apt-get, through sudo when not root) only
//! when the command a package stands for is missing from PATH.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use anyhow::Result;

use crate::util::{on_path, quiet_step};

/// A command a task runs and the Debian package that provides it.
pub type Need = (&'static str, &'static str);

/// What the tests run. `pg_ctlcluster` stands for the PostgreSQL server
/// binaries (initdb, pg_ctl under /usr/lib/postgresql/<v>/bin) that the
/// PostgreSQL TLS, probe and crash tests run a cluster of their own with.
pub const TEST: &[Need] = &[
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    ("docker-compose", "docker-compose"),
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("chromium", "chromium"),
    ("node", "nodejs"),
    ("g++", "g++"),
    ("redis-server", "redis-server"),
    ("pg_ctlcluster", "postgresql"),
];

/// What the benchmarks drive.
pub const BENCH: &[Need] = &[
    ("wrk", "wrk"),
    ("curl", "curl"),
    ("taskset", "util-linux"),
    ("gnuplot", "gnuplot-nox"),
    ("valgrind", "valgrind"),
];

/// What `cargo xtask run` needs: openssl for the certificate, curl for the
/// lines it prints.
pub const RUN: &[Need] = &[("openssl", "openssl"), ("curl", "curl")];

/// The packages of `needs` whose command is missing, each once.
pub fn missing(needs: &[Need]) -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for &(cmd, pkg) in needs {
        if on_path(cmd).is_none() && !out.contains(&pkg) {
            out.push(pkg);
        }
    }
    out
}

/// Installs the packages of `needs` whose command is missing.
pub fn ensure(needs: &[Need]) -> Result<()> {
    install(&missing(needs))
}

/// `apt-get update` and `apt-get install` of the packages (nothing when
/// there are none).
pub fn install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    println!("installing Debian packages: {}", packages.join(" "));
    quiet_step(apt().args(["update", "-qq"]))?;
    quiet_step(
        apt()
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )
}

/// apt-get, through sudo unless this process runs as root.
fn apt() -> Command {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        // sudo resets the environment: the frontend goes on its command line.
        c.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_commands_are_installed_once_per_package() {
        let needs = [
            ("sh", "dash"),
            ("no-such-command-here", "pkg-a"),
            ("no-such-command-either", "pkg-a"),
        ];
        assert_eq!(missing(&needs), ["pkg-a"]);
    }
}
