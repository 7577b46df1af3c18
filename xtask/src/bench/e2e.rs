//! The end-to-end benchmarks through the make-run stack (BENCHMARKS.md,
//! "End to end through the gateway").
//!
//! * `cargo xtask bench e2e`: calculate-locate through the whole gateway
//!   (auth, local + global rate limit, validation, metrics, the calculation
//!   service and its audit write), closed loop (wrk) for maximum
//!   throughput; CPU per request of each process from /proc. Settings:
//!   BENCH_DURATION (10s), BENCH_CONNECTIONS (32).
//! * `cargo xtask bench open-loop`: latency at constant offered load
//!   (target/server/open_loop, latency from each request's scheduled
//!   start), rates and calculate-locate at each rate of BENCH_RATES ("500
//!   1000 2000"), BENCH_SECONDS (10) each.
//! * `cargo xtask bench breakdown`: where Envoy's CPU goes. A second Envoy
//!   on :8100 runs the full rendered gateway config, then the same config
//!   with one part taken out at a time (configs.rs), the stack serving as
//!   backends. Variants run interleaved (A B C … A B C …) for BENCH_ROUNDS
//!   (3) rounds of BENCH_SECONDS (5), wrk -t1 -c32; medians of req/s and of
//!   Envoy CPU per request. BREAKDOWN_VARIANTS picks some (e.g. "full
//!   envoy-local-bucket").

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use super::common::{
    answers, clk_tck, cpu_ticks, curl_post, envoy_bin, first_seen, key_values, list_setting,
    lua_header, median, open_loop, post_lua, require, setting, thousands, wait_until, wrk, Proc,
};
use super::configs;
use super::stack::{Stack, BODY, CALCULATE};

pub struct E2e {
    pub duration: String,
    pub connections: u32,
}

impl E2e {
    pub fn from_env() -> Result<E2e> {
        Ok(E2e {
            duration: setting("BENCH_DURATION", "10s".to_owned())?,
            connections: setting("BENCH_CONNECTIONS", 32)?,
        })
    }
}

pub fn e2e(root: &Path, s: &E2e) -> Result<()> {
    require(&[("wrk", "wrk"), ("curl", "curl")])?;
    let stack = Stack::start(root, &[])?;
    let dir = stack.run_dir.join("bench");
    std::fs::create_dir_all(&dir)?;
    let lua = dir.join("post.lua");
    std::fs::write(&lua, post_lua(BODY, &[lua_header("X-API-Key", &stack.key)]))?;
    let pids = stack.pids();
    let ticks = |pid: u32| cpu_ticks(pid).unwrap_or(0);
    let before: Vec<u64> = pids.iter().map(|(_, p)| ticks(*p)).collect();
    println!(
        "wrk -t1 -c{} -d{} --latency POST /api/v1/calculate-locate through Envoy :8000",
        s.connections, s.duration
    );
    let out = wrk(
        None,
        &format!("-t1 -c{} -d{} --latency", s.connections, s.duration),
        Some(&lua),
        CALCULATE,
    )?;
    print!("{}", out.text);
    let hz = clk_tck() as f64;
    println!("CPU per 1,000 requests (ms), by process:");
    for ((name, pid), b) in pids.iter().zip(before) {
        let t = ticks(*pid).saturating_sub(b) as f64;
        println!(
            "  {name:22} {:8.1}",
            1e6 * t / hz / out.requests.max(1) as f64
        );
    }
    Ok(())
}

pub struct OpenLoop {
    pub rates: Vec<String>,
    pub seconds: u32,
}

impl OpenLoop {
    pub fn from_env() -> Result<OpenLoop> {
        Ok(OpenLoop {
            rates: list_setting("BENCH_RATES", "500 1000 2000"),
            seconds: setting("BENCH_SECONDS", 10)?,
        })
    }
}

pub fn open_loop_bench(root: &Path, s: &OpenLoop) -> Result<()> {
    require(&[("curl", "curl")])?;
    let gen = open_loop(root)?;
    let stack = Stack::start(root, &[])?;
    println!("| endpoint | offered req/s | achieved | ok | non-2xx | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for rate in &s.rates {
        for endpoint in ["rates", "calculate-locate"] {
            let mut cmd = Command::new(&gen);
            cmd.args(["--rate", rate, "--seconds", &s.seconds.to_string()]);
            if endpoint == "rates" {
                cmd.args(["--url", "http://127.0.0.1:8000/api/v1/rates/AAPL"]);
            } else {
                cmd.args(["--url", CALCULATE, "--method", "POST", "--body", BODY])
                    .args(["--header", "content-type: application/json"]);
            }
            cmd.args(["--header", &stack.key_header()]);
            let out = crate::util::run(&mut cmd)?;
            let v = key_values(&String::from_utf8_lossy(&out.stdout));
            let f = |k: &str| v.get(k).map_or("?", String::as_str);
            println!(
                "| {endpoint} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f("offered_rps"),
                f("achieved_rps"),
                f("ok"),
                f("non_2xx"),
                f("errors"),
                f("p50_ms"),
                f("p90_ms"),
                f("p99_ms"),
                f("p999_ms"),
                f("max_ms")
            );
        }
    }
    Ok(())
}

pub struct Breakdown {
    pub rounds: u32,
    pub seconds: u32,
    pub variants: Vec<String>,
}

impl Breakdown {
    pub fn from_env(rounds: u32, seconds: u32) -> Result<Breakdown> {
        Ok(Breakdown {
            rounds: setting("BENCH_ROUNDS", rounds)?,
            seconds: setting("BENCH_SECONDS", seconds)?,
            variants: list_setting(
                "BREAKDOWN_VARIANTS",
                "full no-metrics no-auth-wasm no-validation no-global-rl no-local-rl envoy-local-bucket no-access-log",
            ),
        })
    }
}

struct Row {
    variant: String,
    rps: f64,
    cpu_us: f64,
    non_2xx: u64,
}

pub fn breakdown(root: &Path, s: &Breakdown) -> Result<()> {
    require(&[("wrk", "wrk"), ("curl", "curl")])?;
    let envoy = envoy_bin(root)?;
    let stack = Stack::start(root, &[])?;
    let work = stack.run_dir.join("breakdown");
    std::fs::create_dir_all(&work)?;
    let lua = work.join("post.lua");
    std::fs::write(&lua, post_lua(BODY, &[lua_header("X-API-Key", &stack.key)]))?;
    // Without the auth filter nothing sets the identity the calculation
    // service and the rate limits key on (client id and the key's own
    // limit): that variant sends both itself.
    let identity = work.join("post-identity.lua");
    std::fs::write(
        &identity,
        post_lua(
            BODY,
            &[
                lua_header("x-client-id", "test123"),
                lua_header("x-client-rate-limit", "1000000"),
            ],
        ),
    )?;
    // The variants: the full config, and the full config minus one part.
    let full = configs::render_local(root, &[("JWT_SECRET_KEY", stack.jwt_secret()?)])?;
    configs::write_breakdown(&work, &full)?;
    for v in &s.variants {
        if !work.join(format!("{v}.yaml")).is_file() {
            bail!("bench: no breakdown variant {v}");
        }
    }
    let hz = clk_tck() as f64;
    let key_header = stack.key_header();
    let url = "http://127.0.0.1:8100/api/v1/calculate-locate";
    let mut rows = Vec::new();
    for round in 1..=s.rounds {
        for v in &s.variants {
            let envoy = Proc::spawn(
                Command::new(&envoy)
                    .arg("-c")
                    .arg(work.join(format!("{v}.yaml")))
                    .args(["--concurrency", "2", "-l", "warn", "--base-id", "7"])
                    .arg("--disable-hot-restart"),
                &work.join(format!("envoy-{v}.log")),
            )?;
            wait_until(Duration::from_secs(10), || {
                answers("http://127.0.0.1:8100/health")
            });
            // Active health checks pass; the key is verified once before
            // measuring.
            std::thread::sleep(Duration::from_secs(3));
            for _ in 0..3 {
                curl_post(
                    url,
                    &[&key_header, "content-type: application/json"],
                    Some(BODY),
                    false,
                )?;
            }
            let t0 = envoy.ticks()?;
            let script = if v == "no-auth-wasm" { &identity } else { &lua };
            let out = wrk(
                None,
                &format!("-t1 -c32 -d{}s", s.seconds),
                Some(script),
                url,
            )?;
            let t1 = envoy.ticks()?;
            envoy.stop();
            let cpu_us =
                ((t1 - t0) as f64 * 1e6 / hz / out.requests.max(1) as f64 * 10.0).round() / 10.0;
            println!("{round}\t{v}\t{:.2}\t{cpu_us:.1}\t{}", out.rps, out.non_2xx);
            rows.push(Row {
                variant: v.clone(),
                rps: out.rps,
                cpu_us,
                non_2xx: out.non_2xx,
            });
        }
    }
    print!("{}", breakdown_table(&rows));
    Ok(())
}

fn breakdown_table(rows: &[Row]) -> String {
    let order = first_seen(rows.iter().map(|r| r.variant.as_str()));
    let med = |v: &str| {
        let of: Vec<&Row> = rows.iter().filter(|r| r.variant == v).collect();
        (
            median(of.iter().map(|r| r.rps)),
            median(of.iter().map(|r| r.cpu_us)),
            of.iter().map(|r| r.non_2xx).sum::<u64>(),
        )
    };
    let full_cpu = med("full").1;
    let mut out = String::from(
        "\n| variant | req/s (median) | Envoy CPU µs/req (median) | CPU µs/req less than full | non-2xx |\n|---|---|---|---|---|\n",
    );
    for v in order {
        let (rps, cpu, bad) = med(v);
        let saved = if v == "full" || full_cpu.is_nan() {
            "–".to_owned()
        } else {
            format!("{:.1}", full_cpu - cpu)
        };
        out.push_str(&format!(
            "| {v} | {} | {cpu:.1} | {saved} | {bad} |\n",
            thousands(rps)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breakdown_table_gives_medians_against_full() {
        let row = |v: &str, rps: f64, cpu_us: f64, non_2xx: u64| Row {
            variant: v.into(),
            rps,
            cpu_us,
            non_2xx,
        };
        let rows = [
            row("full", 4000.0, 300.0, 0),
            row("no-metrics", 4200.0, 280.0, 1),
            row("full", 4400.0, 320.0, 0),
            row("no-metrics", 4600.0, 270.0, 2),
        ];
        let t = breakdown_table(&rows);
        assert!(t.contains("| full | 4,200 | 310.0 | – | 0 |"), "{t}");
        assert!(
            t.contains("| no-metrics | 4,400 | 275.0 | 35.0 | 3 |"),
            "{t}"
        );
    }
}
