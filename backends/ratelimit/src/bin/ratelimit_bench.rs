//! `ratelimit-bench`: decisions per second and latency of the rate-limit
//! service, in memory and (when `REDIS_URL` is set) with Redis.
//!
//! The service runs in this process on ONE dedicated thread (a
//! current-thread runtime), so its throughput is a per-core figure; the load
//! generator runs on another thread and talks real gRPC over loopback, as
//! Envoy does. Each storage is measured twice:
//!
//! * latency: one call in flight at a time for `--latency-secs` (the delay
//!   the service adds to a request when it is not saturated);
//! * throughput: `--concurrency` calls in flight over `--channels` HTTP/2
//!   connections for `--secs` (closed loop, saturating the service thread).
//!
//! Every call is a distinct-client descriptor (`--clients` ids, limit high
//! enough that every decision counts a hit and answers OK).
//!
//! ```text
//! cargo run --profile server -p ratelimit --bin ratelimit-bench -- --secs 5
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --profile server -p ratelimit --bin ratelimit-bench
//! ```

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::transport::Channel;

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    /// Seconds of the throughput phase (capped at 60).
    secs: u64,
    /// Seconds of the latency phase (capped at 60).
    latency_secs: u64,
    /// Calls in flight during the throughput phase.
    concurrency: usize,
    /// HTTP/2 connections shared by those calls.
    channels: usize,
    /// Distinct client ids cycled through.
    clients: usize,
    /// Run only the in-memory storage even when `REDIS_URL` is set.
    memory_only: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        secs: 5,
        latency_secs: 3,
        concurrency: 64,
        channels: 4,
        clients: 1000,
        memory_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive integer"))
        };
        match a.as_str() {
            "--secs" => o.secs = num("--secs")?.min(60),
            "--latency-secs" => o.latency_secs = num("--latency-secs")?.min(60),
            "--concurrency" => o.concurrency = usize::try_from(num("--concurrency")?.min(4096)).unwrap_or(64),
            "--channels" => o.channels = usize::try_from(num("--channels")?.min(64)).unwrap_or(4),
            "--clients" => o.clients = usize::try_from(num("--clients")?.min(1_000_000)).unwrap_or(1000),
            "--memory-only" => o.memory_only = true,
            "-h" | "--help" => {
                return Err("usage: ratelimit-bench [--secs N] [--latency-secs N] [--concurrency N] [--channels N] [--clients N] [--memory-only]".to_owned())
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Starts the service on its own single-threaded runtime; returns the gRPC
/// address and a sender that stops it.
/// The running service: gRPC address, stop switch and its thread's
/// `/proc/self/task/<tid>/stat` (for the CPU time it used).
struct Service {
    addr: std::net::SocketAddr,
    stop: std::sync::mpsc::Sender<()>,
    stat_path: Option<std::path::PathBuf>,
}

/// CPU seconds (user + system) used so far by the thread behind `stat`.
fn thread_cpu_secs(stat: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 Hz on Linux).
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn start_service(redis_url: Option<String>) -> Result<Service, String> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let stat_path = std::fs::read_link("/proc/thread-self")
            .ok()
            .map(|p| std::path::Path::new("/proc").join(p).join("stat"));
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let config = ratelimit::Config {
                grpc_addr: "127.0.0.1:0"
                    .parse()
                    .unwrap_or(ratelimit::Config::default().grpc_addr),
                http_addr: "127.0.0.1:0"
                    .parse()
                    .unwrap_or(ratelimit::Config::default().http_addr),
                redis_url,
                key_prefix: format!("bench-{}-{nanos}", std::process::id()),
                storage_timeout: Duration::from_millis(500),
                ..ratelimit::Config::default()
            };
            match ratelimit::spawn(config).await {
                Ok(running) => {
                    let _ = addr_tx.send(Ok((running.grpc_addr, stat_path)));
                    // Park this runtime until asked to stop.
                    let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                    running.stop().await;
                }
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                }
            }
        });
    });
    let (addr, stat_path) = addr_rx
        .recv()
        .map_err(|e| format!("service thread: {e}"))??;
    Ok(Service {
        addr,
        stop: stop_tx,
        stat_path,
    })
}

fn request(client: usize) -> RateLimitRequest {
    RateLimitRequest {
        domain: ratelimit::limits::DOMAIN.to_owned(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![
                Entry {
                    key: "client_id".to_owned(),
                    value: format!("bench-client-{client}"),
                },
                Entry {
                    key: "client_limit".to_owned(),
                    value: "1000000000".to_owned(),
                },
            ],
            ..Default::default()
        }],
        hits_addend: 1,
    }
}

/// Latencies in microseconds, sorted.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

struct PhaseResult {
    calls: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

async fn run_phase(
    channels: &[Channel],
    concurrency: usize,
    clients: usize,
    duration: Duration,
) -> PhaseResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let mut client = RateLimitServiceClient::new(channels[worker % channels.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(16_384);
            let mut errors = 0usize;
            let mut i = worker;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.should_rate_limit(request(i % clients)).await {
                    Ok(r) if r.get_ref().overall_code == Code::Ok as i32 => {}
                    _ => errors += 1,
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                i += concurrency;
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            latencies_us.extend(lat);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    PhaseResult {
        calls: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

async fn bench(storage: &str, redis_url: Option<String>, o: &Options) -> Result<(), String> {
    let Service {
        addr,
        stop,
        stat_path,
    } = start_service(redis_url)?;
    let cpu = || stat_path.as_deref().and_then(thread_cpu_secs);
    let mut channels = Vec::new();
    for _ in 0..o.channels {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        channels.push(ch);
    }
    // Warm-up: connections, limits registration, allocator.
    let _ = run_phase(
        &channels,
        o.concurrency,
        o.clients,
        Duration::from_millis(500),
    )
    .await;

    let lat = run_phase(
        &channels[..1],
        1,
        o.clients,
        Duration::from_secs(o.latency_secs),
    )
    .await;
    let cpu_before = cpu();
    let load = run_phase(
        &channels,
        o.concurrency,
        o.clients,
        Duration::from_secs(o.secs),
    )
    .await;
    let cpu_used = cpu().zip(cpu_before).map(|(a, b)| a - b);
    let _ = stop.send(());

    let rate = load.calls as f64 / load.elapsed.as_secs_f64();
    let per_cpu_sec = cpu_used
        .filter(|c| *c > 0.0)
        .map(|c| format!("{:.0}", load.calls as f64 / c))
        .unwrap_or_else(|| "n/a".to_owned());
    println!(
        "| {storage} | {:.0} | {per_cpu_sec} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
        rate,
        cpu_used.unwrap_or(0.0),
        percentile(&lat.latencies_us, 50.0),
        percentile(&lat.latencies_us, 99.0),
        percentile(&load.latencies_us, 50.0),
        percentile(&load.latencies_us, 99.0),
        lat.errors + load.errors,
        lat.calls + load.calls,
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The load generator gets one worker thread; the service has its own.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "ratelimit-bench: service on 1 thread; load {} in flight over {} connections, {} clients; latency phase {} s at 1 in flight, throughput phase {} s",
        o.concurrency, o.channels, o.clients, o.latency_secs, o.secs
    );
    println!("| storage | decisions/s (1 service thread) | decisions per service CPU-second | service CPU s | p50 ms idle | p99 ms idle | p50 ms loaded | p99 ms loaded | errors | calls |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let result = rt.block_on(async {
        bench("memory", None, &o).await?;
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() && !o.memory_only => bench("redis", Some(url), &o).await,
            _ => {
                println!("(REDIS_URL not set: Redis storage not measured)");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ratelimit-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
