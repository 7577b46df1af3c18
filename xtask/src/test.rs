//! `cargo xtask test`: every test, as `make test` runs them after the
//! lints and the wasm builds: `cargo test --workspace` (PostgreSQL too
//! when `DATABASE_URL` is set, Redis when `REDIS_URL` is), the filter
//! core's tests compiled to wasm32-unknown-unknown (Node, through
//! wasm-bindgen-test-runner), and a short fuzzing run. Says what it
//! skipped, before and after.

use std::path::Path;

use anyhow::Result;

use crate::util::{cargo, step};
use crate::wasm::WASM_TEST_TARGET;

/// A variable of the environment, when set and not empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn run(root: &Path, fuzz_seconds: u32, fuzz_toolchain: Option<&str>) -> Result<()> {
    let database = var("DATABASE_URL");
    match &database {
        None => println!(
            "DATABASE_URL is unset: tests use SQLite only.\n  \
             Skipped: the PostgreSQL runs of the service and gatewayctl tests, and the\n  \
             database-outage test (503 and recovery), which needs PostgreSQL.\n  \
             Run them with DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test"
        ),
        Some(url) => println!(
            "DATABASE_URL is set: tests run on SQLite and on PostgreSQL ({}@…)",
            without_secrets(url)
        ),
    }
    step(cargo().current_dir(root).args(["test", "--workspace"]))?;
    println!("filter core tests compiled to wasm (wasm32-unknown-unknown, node runner):");
    step(
        cargo()
            .current_dir(root)
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            )
            .args([
                "test",
                "-p",
                "filter-core",
                "--target",
                WASM_TEST_TARGET,
                "--lib",
            ]),
    )?;
    println!("fuzzing smoke run (FUZZ_SECONDS={fuzz_seconds} per target):");
    crate::fuzz::smoke(root, fuzz_seconds, fuzz_toolchain)?;
    if var("REDIS_URL").is_none() {
        println!(
            "Note: REDIS_URL unset: the Redis-backed rate-limit tests were skipped \
             (in-memory counters tested)."
        );
    }
    if database.is_none() {
        println!("Note: PostgreSQL tests were skipped (DATABASE_URL unset).");
    }
    Ok(())
}

/// The URL up to its host, without a password: `postgres://user`.
fn without_secrets(url: &str) -> String {
    let before_host = url.split('@').next().unwrap_or(url);
    match before_host.split_once("://") {
        Some((scheme, user)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}")
        }
        None => before_host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_secrets;

    #[test]
    fn the_database_url_is_shown_without_its_password() {
        assert_eq!(
            without_secrets("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres"
        );
        assert_eq!(
            without_secrets("postgres://app:s3cret@db:5432/x"),
            "postgres://app"
        );
    }
}
