//! `cargo xtask soak` (make soak, docs/reliability.md): the make-run stack
//! on a fresh SQLite database under a constant open-loop load of rates and
//! calculate-locate for SOAK_SECONDS (300), with the resident memory of
//! Envoy and of every backend read after a warm-up, every
//! SOAK_SAMPLE_SECONDS (30) and at the end. Fails when any process grew by
//! SOAK_MAX_GROWTH_PERCENT (10) or more, when a request failed, or when the
//! audit log does not hold one row per successful calculation.
//!
//! Settings: SOAK_SECONDS (300), SOAK_RATE (200 req/s of each kind),
//! SOAK_WARMUP_SECONDS (30), SOAK_SAMPLE_SECONDS (30),
//! SOAK_MAX_GROWTH_PERCENT (10). Loopback only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::common::{key_values, open_loop, require, rss_kib, setting};
use super::stack::{Stack, BODY, CALCULATE, WARM_UP_CALLS};

pub struct Settings {
    pub seconds: u64,
    pub rate: u32,
    pub warmup: u64,
    pub sample: u64,
    pub max_growth: f64,
}

impl Settings {
    pub fn from_env() -> Result<Settings> {
        Ok(Settings {
            seconds: setting("SOAK_SECONDS", 300)?,
            rate: setting("SOAK_RATE", 200)?,
            warmup: setting("SOAK_WARMUP_SECONDS", 30)?,
            sample: setting("SOAK_SAMPLE_SECONDS", 30)?,
            max_growth: setting("SOAK_MAX_GROWTH_PERCENT", 10.0)?,
        })
    }
}

/// Both kinds of load in parallel for `seconds`: open_loop's report of
/// each, as `kind=rates …` and `kind=calc …` lines.
fn load(gen: &Path, stack: &Stack, rate: u32, seconds: u64) -> Result<Vec<String>> {
    let common = |cmd: &mut Command| {
        cmd.args([
            "--rate",
            &rate.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .args(["--header", &stack.key_header()])
        .stdout(Stdio::piped());
    };
    let mut rates = Command::new(gen);
    rates.args(["--url", "http://127.0.0.1:8000/api/v1/rates/AAPL"]);
    common(&mut rates);
    let mut calc = Command::new(gen);
    calc.args(["--url", CALCULATE, "--method", "POST", "--body", BODY])
        .args(["--header", "content-type: application/json"]);
    common(&mut calc);
    let (r, c) = (rates.spawn()?, calc.spawn()?);
    let (r, c) = (r.wait_with_output()?, c.wait_with_output()?);
    for (what, o) in [("rates", &r), ("calc", &c)] {
        if !o.status.success() {
            bail!("soak: the {what} load generator failed ({})", o.status);
        }
    }
    Ok(vec![
        format!("kind=rates {}", String::from_utf8_lossy(&r.stdout).trim()),
        format!("kind=calc {}", String::from_utf8_lossy(&c.stdout).trim()),
    ])
}

/// Failed requests (non-2xx and errors) and successful calculations of
/// the load's report lines.
fn tally(lines: &[String]) -> (u64, u64) {
    let (mut bad, mut ok) = (0, 0);
    for l in lines {
        let v = key_values(l);
        let n = |k: &str| -> u64 { v.get(k).and_then(|x| x.parse().ok()).unwrap_or(0) };
        bad += n("non_2xx") + n("errors");
        if v.get("kind").is_some_and(|k| k == "calc") {
            ok += n("ok");
        }
    }
    (bad, ok)
}

pub fn run(root: &Path, s: &Settings) -> Result<()> {
    require(&[("curl", "curl")])?;
    let gen = open_loop(root)?;
    let db_dir = tempfile::Builder::new().prefix("soak-db.").tempdir()?;
    let db_url = format!("sqlite://{}/pricing.db", db_dir.path().display());
    let stack = Stack::start(root, &[("DATABASE_URL", db_url.clone())])?;
    let pids = stack.pids();
    println!(
        "soak: warm-up {}s at {} req/s of each kind",
        s.warmup, s.rate
    );
    let warm = load(&gen, &stack, s.rate, s.warmup)?;
    let before: Vec<u64> = pids
        .iter()
        .map(|(_, p)| rss_kib(*p))
        .collect::<Result<_>>()?;
    println!("soak: {}s at {} req/s of each kind", s.seconds, s.rate);
    // RSS of every process every SOAK_SAMPLE_SECONDS during the run, so a
    // failure shows whether memory levels off or keeps climbing.
    let samples: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, stop, pids) = (samples.clone(), stop.clone(), pids.clone());
        let every = Duration::from_secs(s.sample.max(1));
        std::thread::spawn(move || {
            let mut next = Instant::now() + every;
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    let row = pids.iter().map(|(_, p)| rss_kib(*p).unwrap_or(0)).collect();
                    samples.lock().map(|mut s| s.push(row)).ok();
                    next += every;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let main = load(&gen, &stack, s.rate, s.seconds);
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    let main = main?;
    for l in &main {
        println!("{l}");
    }
    println!("soak: RSS (KiB) every {}s:", s.sample);
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    for (i, (n, _)) in pids.iter().enumerate() {
        let row: String = samples.iter().map(|r| format!("{} ", r[i])).collect();
        println!("  {n:<20} {row}");
    }
    let mut failed = false;
    println!(
        "{:<22} {:>10} {:>10} {:>8}",
        "process", "RSS before", "RSS after", "growth"
    );
    for ((n, pid), b) in pids.iter().zip(&before) {
        let after = rss_kib(*pid)?;
        let growth = 100.0 * (after as f64 - *b as f64) / *b as f64;
        println!("{n:<22} {b:>7} KiB {after:>7} KiB {growth:>7.1}%");
        if growth >= s.max_growth {
            println!("soak: {n} grew {growth:.1}% (limit {}%)", s.max_growth);
            failed = true;
        }
    }
    // Every request of the warm-up and the soak succeeded; the successful
    // calculations (the stack's warm-up calls included).
    let all: Vec<String> = warm.into_iter().chain(main).collect();
    let (bad, ok) = tally(&all);
    let calc_ok = ok + WARM_UP_CALLS;
    if bad != 0 {
        println!("soak: {bad} requests failed");
        failed = true;
    }
    let rows = super::db::audit_rows(&db_url)?;
    println!("soak: {calc_ok} successful calculations, {rows} audit rows");
    if rows != calc_ok as i64 {
        println!("soak: audit rows differ from successful calculations");
        failed = true;
    }
    drop(stack);
    if failed {
        bail!("soak failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_calculations_are_counted_by_kind() {
        let lines = [
            "kind=rates offered_rps=200 ok=100 non_2xx=1 errors=0".to_owned(),
            "kind=calc offered_rps=200 ok=90 non_2xx=0 errors=2".to_owned(),
        ];
        assert_eq!(tally(&lines), (3, 90));
    }
}
