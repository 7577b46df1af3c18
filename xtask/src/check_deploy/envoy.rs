//! `envoy`: `envoy --mode validate` on the compose-shaped config, with
//! only the container mount points replaced by local paths.

use anyhow::{bail, Result};

use super::Ctx;
use crate::util::{is_executable, output, read};

pub fn check(ctx: &Ctx) -> Result<&'static str> {
    if !is_executable(&ctx.envoy) {
        bail!(
            "{} missing: make envoy (cargo xtask setup envoy)",
            ctx.envoy.display()
        );
    }
    let rendered = ctx.tmp("envoy-compose.yaml");
    ctx.render_compose(&rendered)?;
    for f in ["auth_filter", "validation_filter", "metrics_filter"] {
        let wasm = ctx.wasm_dir.join(format!("{f}.wasm"));
        if !wasm.is_file() {
            bail!(
                "{} missing: make wasm (cargo build --release --target wasm32-wasip1 -p <filter>)",
                wasm.display()
            );
        }
    }
    let certs = ctx.tmp("certs");
    crate::cert::ensure(&certs)?;
    // Only the container mount points change; everything else is validated
    // as rendered.
    let text = read(&rendered)?
        .replace("/etc/envoy/wasm/", &format!("{}/", ctx.wasm_dir.display()))
        .replace("/etc/envoy/certs/", &format!("{}/", certs.display()));
    let config = ctx.tmp("envoy-validate.yaml");
    std::fs::write(&config, text)?;
    let out = output(
        ctx.cmd(&ctx.envoy)
            .args(["--mode", "validate", "-c"])
            .arg(&config)
            .args(["--log-level", "error"]),
    )?;
    if !out.status.success() {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = all.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        bail!("{tail}\nenvoy --mode validate rejects the compose-shaped config");
    }
    Ok("--mode validate accepts the compose-shaped config")
}
