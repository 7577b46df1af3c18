//! Open-loop load generator with latency correction, for the end-to-end
//! benchmarks (`cargo xtask bench open-loop`, `chain` and `soak`, BENCHMARKS.md).
//!
//! Requests are scheduled at a constant rate, whatever the answers do (a
//! closed-loop tool such as wrk waits for each answer and so hides queueing);
//! each latency is measured from the request's *scheduled* start, so a
//! stalled gateway shows up in the percentiles instead of pausing the load
//! (no coordinated omission).
//!
//!     open_loop --url http://127.0.0.1:8000/api/v1/rates/AAPL --rate 1000 --seconds 10 \
//!         [--warmup 1] [--method POST] [--body '{...}'] [--header 'x-api-key: ...']...
//!
//! `--warmup S` runs the same schedule for S seconds first and leaves those
//! answers out of the figures (the connections it opens are kept).
//!
//! Prints one line of `key=value` pairs: offered and achieved rate, counts by
//! outcome, and p50 / p90 / p99 / p99.9 / max in milliseconds.

use std::time::{Duration, Instant};

struct Args {
    url: String,
    rate: f64,
    seconds: f64,
    warmup: f64,
    method: reqwest::Method,
    body: Option<String>,
    headers: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        rate: 0.0,
        seconds: 10.0,
        warmup: 0.0,
        method: reqwest::Method::GET,
        body: None,
        headers: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--rate" => args.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            "--warmup" => {
                args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?;
            }
            "--method" => {
                args.method = value()?.parse().map_err(|e| format!("--method: {e}"))?;
            }
            "--body" => args.body = Some(value()?),
            "--header" => {
                let h = value()?;
                let (k, v) = h
                    .split_once(':')
                    .ok_or(format!("--header {h:?}: expected 'name: value'"))?;
                args.headers
                    .push((k.trim().to_owned(), v.trim().to_owned()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.url.is_empty()
        || args.rate.is_nan()
        || args.rate <= 0.0
        || args.seconds.is_nan()
        || args.seconds <= 0.0
        || args.warmup.is_nan()
        || args.warmup < 0.0
    {
        return Err("--url, --rate > 0 and --seconds > 0 are required".into());
    }
    Ok(args)
}

/// The value at quantile `q` of sorted `v`, in milliseconds.
fn quantile_ms(v: &[Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let idx = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx].as_secs_f64() * 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("open_loop: {e}");
            std::process::exit(2);
        }
    };
    // One runtime thread: the generator stays a small, steady load of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    // Idle connections are dropped after 20 s, well before the gateway's
    // 60 s downstream idle timeout: a connection the server is closing at
    // the moment the client reuses it fails at the transport level (the
    // HTTP/1.1 keep-alive race every client must avoid this way).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let warm = (args.rate * args.warmup).round() as u64;
    let total = warm + (args.rate * args.seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut wall = Instant::now();
    for i in 0..total {
        if i == warm {
            wall = Instant::now();
        }
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at).await;
        let mut req = client.request(args.method.clone(), &args.url);
        for (k, v) in &args.headers {
            req = req.header(k, v);
        }
        if let Some(body) = &args.body {
            req = req.body(body.clone());
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let _ = resp.bytes().await;
                    Some(status)
                }
                Err(e) => {
                    // The whole source chain: reqwest's own message is only
                    // "error sending request".
                    let mut why = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        why = format!("{why}: {s}");
                        source = s.source();
                    }
                    eprintln!("open_loop: request {i}: {why}");
                    None
                }
            };
            let _ = tx.send((i >= warm, outcome, at.elapsed()));
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let (mut ok, mut non_2xx, mut errors) = (0u64, 0u64, 0u64);
    while let Some((measured, outcome, latency)) = rx.recv().await {
        if !measured {
            continue;
        }
        match outcome {
            Some(s) if (200..300).contains(&s) => ok += 1,
            Some(_) => non_2xx += 1,
            None => errors += 1,
        }
        latencies.push(latency);
    }
    let elapsed = wall.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "offered_rps={:.0} achieved_rps={:.0} requests={} ok={ok} non_2xx={non_2xx} errors={errors} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        args.rate,
        latencies.len() as f64 / elapsed,
        latencies.len(),
        quantile_ms(&latencies, 0.50),
        quantile_ms(&latencies, 0.90),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 0.999),
        latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    );
}
