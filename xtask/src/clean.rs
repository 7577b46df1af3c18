//! `cargo xtask clean`: `cargo clean` and the local run state (.run/,
//! envoy/rendered/); the SQLite database var/pricing.db stays.

use std::path::Path;

use anyhow::{Context, Result};

use crate::util::{cargo, step};

pub fn run(root: &Path) -> Result<()> {
    step(cargo().current_dir(root).arg("clean"))?;
    for dir in [".run", "envoy/rendered"] {
        let p = root.join(dir);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}
