//! `cargo xtask lint`: rustfmt check and clippy with warnings denied,
//! native for the whole workspace and wasm32-wasip1 for the filters, the
//! crates they build on, and the auth filter's test-only variant.

use std::path::Path;

use anyhow::Result;

use crate::util::{cargo, step};
use crate::wasm::{package_args, WASM_TARGET};

/// The crates the filters build on, checked for wasm too.
pub const WASM_LIBRARIES: [&str; 4] = ["filter-core", "filter-host", "logfmt", "pricing"];

pub fn run(root: &Path) -> Result<()> {
    let clippy = |args: &[&str]| {
        step(
            cargo()
                .current_dir(root)
                .arg("clippy")
                .args(args)
                .args(["--", "-D", "warnings"]),
        )
    };
    step(
        cargo()
            .current_dir(root)
            .args(["fmt", "--all", "--", "--check"]),
    )?;
    clippy(&["--workspace", "--all-targets"])?;
    let mut wasm = vec!["--target", WASM_TARGET];
    wasm.extend(package_args());
    wasm.extend(WASM_LIBRARIES.iter().flat_map(|p| ["-p", p]));
    clippy(&wasm)?;
    clippy(&[
        "--target",
        WASM_TARGET,
        "-p",
        "auth-filter",
        "--features",
        "trap-on-marked-request",
    ])
}
