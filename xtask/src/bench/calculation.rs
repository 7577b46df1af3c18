//! `cargo xtask bench calculation`: calculation-service throughput on
//! loopback (BENCHMARKS.md).
//!
//! Starts target/server/calculation-service on a free 127.0.0.1 port over a
//! fresh SQLite database (or BENCH_DATABASE_URL), warms the rate cache, then
//! runs wrk with POST /calculate-locate for a cached ticker and prints wrk's
//! latency distribution (p50 … p99) and the service's CPU per request.
//! Every answered request writes its audit row, so it finally prints how
//! many rows the audit log holds against the 200 answers.
//!
//! Settings: BENCH_DURATION (10s), BENCH_CONNECTIONS (64), BENCH_THREADS
//! (1), BENCH_DATABASE_URL (fresh SQLite), BIN_DIR (target/server).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use super::common::{
    answers, binary, clk_tck, cpu_ticks, curl_post, free_port, post_lua, require, setting,
    wait_until, wrk, Proc,
};
use super::stack::BODY;

pub struct Settings {
    pub duration: String,
    pub connections: u32,
    pub threads: u32,
}

impl Settings {
    pub fn from_env() -> Result<Settings> {
        Ok(Settings {
            duration: setting("BENCH_DURATION", "10s".to_owned())?,
            connections: setting("BENCH_CONNECTIONS", 64)?,
            threads: setting("BENCH_THREADS", 1)?,
        })
    }
}

pub fn run(root: &Path, s: &Settings) -> Result<()> {
    require(&[("wrk", "wrk"), ("curl", "curl")])?;
    let service = binary(root, "calculation-service")?;
    let tmp = tempfile::Builder::new().prefix("bench-calc.").tempdir()?;
    let db_url = setting(
        "BENCH_DATABASE_URL",
        format!("sqlite://{}/bench.db", tmp.path().display()),
    )?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let svc = Proc::spawn(
        Command::new(service)
            .env("DATABASE_URL", &db_url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_LEVEL", "warn"),
        &tmp.path().join("service.log"),
    )?;
    if !wait_until(Duration::from_secs(10), || {
        answers(&format!("{base}/health"))
    }) {
        bail!("bench: the calculation service did not answer on {base}/health");
    }
    let url = format!("{base}/calculate-locate");
    let warm = curl_post(&url, &["content-type: application/json"], Some(BODY), true)?;
    println!("warm-up answer: {warm}");
    let lua = tmp.path().join("post.lua");
    std::fs::write(&lua, post_lua(BODY, &[]))?;
    let before = svc.ticks()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "wrk -t{} -c{} -d{} --latency (POST /calculate-locate, AAPL cached, {cores} cores)",
        s.threads, s.connections, s.duration
    );
    let out = wrk(
        None,
        &format!(
            "-t{} -c{} -d{} --latency",
            s.threads, s.connections, s.duration
        ),
        Some(&lua),
        &url,
    )?;
    print!("{}", out.text);
    let after = cpu_ticks(svc.pid())?;
    // CPU time the service itself used per answered request: on a machine
    // shared with other work this shows the capacity (requests per
    // core-second) even when wall-clock throughput is limited by what the
    // scheduler gives us.
    let cpu = (after - before) as f64 / clk_tck() as f64;
    let n = out.requests;
    if n > 0 && cpu > 0.0 {
        println!(
            "service CPU: {cpu:.2} s for {n} requests = {:.0} us/request = {} requests per core-second",
            cpu / n as f64 * 1e6,
            super::common::thousands(n as f64 / cpu)
        );
    }
    // Every 200 answer left exactly one audit row.
    if db_url.starts_with("sqlite://") {
        std::thread::sleep(Duration::from_millis(500));
        let rows = super::db::audit_rows(&db_url)?;
        println!(
            "audit rows: {rows} (wrk completed {n} requests + 1 warm-up; non-2xx: {})",
            out.non_2xx
        );
    }
    svc.stop();
    Ok(())
}
