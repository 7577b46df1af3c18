//! `cargo xtask measure`: the resource figures of docs/deploy.md
//! ("Resources"). Drives a bounded load through a running `cargo xtask run`
//! stack on loopback and reads each process's CPU time and memory from
//! /proc.
//!
//! ```text
//! RATE_LIMIT_PER_MINUTE=1000000 cargo xtask run      # another shell
//! cargo xtask measure --seconds 45 --threads 8       # key: $RUN_DIR/demo_api_key
//! ```
//!
//! Load: one keep-alive connection per thread, each alternating
//! `GET /api/v1/rates/{ticker}` and `POST /api/v1/calculate-locate` (API
//! key), plus one `POST /api/v1/auth/token` per 50 requests. Figures per
//! process (pid files in `$RUN_DIR/pids`, default .run/pids): RSS when
//! idle, peak RSS (VmHWM), and the CPU used during the load in cores (CPU
//! seconds / wall seconds).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const TICKERS: [&str; 6] = ["AAPL", "MSFT", "NVDA", "GME", "KO", "BRK.B"];

/// `cargo xtask measure` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// API key of the load (default: the demo key `cargo xtask run` wrote
    /// to $RUN_DIR/demo_api_key).
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The gateway's address: loopback only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Length of the load, 1 to 60 s.
    #[arg(long, default_value_t = 45.0)]
    pub seconds: f64,
    /// Connections (one thread each), 1 to 64.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Where `cargo xtask run` keeps its pid files (default .run).
    #[arg(long, env = "RUN_DIR")]
    pub run_dir: Option<PathBuf>,
}

/// `cargo xtask measure`.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    if !(1.0..=60.0).contains(&args.seconds) {
        bail!("--seconds: 1 to 60 (a bounded load)");
    }
    let addr = loopback(&args.host, args.port)?;
    let run_dir = match &args.run_dir {
        Some(dir) if !dir.as_os_str().is_empty() => root.join(dir),
        _ => root.join(".run"),
    };
    let key = match &args.key {
        Some(key) => key.clone(),
        None => std::fs::read_to_string(run_dir.join("demo_api_key"))
            .with_context(|| {
                format!(
                    "no --key and no {}/demo_api_key: start the stack with cargo xtask run",
                    run_dir.display()
                )
            })?
            .trim()
            .to_owned(),
    };
    let procs = pids(&run_dir.join("pids"))?;
    if procs.is_empty() {
        bail!(
            "no running process in {}/pids: start the stack with cargo xtask run",
            run_dir.display()
        );
    }
    let tick = clock_ticks();
    let idle: BTreeMap<&str, u64> = procs
        .iter()
        .map(|(n, p)| Ok((n.as_str(), mem(*p)?.rss)))
        .collect::<Result<_>>()?;
    let cpu0: BTreeMap<&str, f64> = procs
        .iter()
        .map(|(n, p)| Ok((n.as_str(), cpu_seconds(*p, tick)?)))
        .collect::<Result<_>>()?;

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (stop, key) = (stop.clone(), key.clone());
            std::thread::spawn(move || worker(addr, &key, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut n, mut ok) = (0u64, 0u64);
    for w in workers {
        let (sent, answered) = w
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
        n += sent;
        ok += answered;
    }
    let wall = start.elapsed().as_secs_f64();

    let mut rows = Vec::new();
    for (name, pid) in &procs {
        let m = mem(*pid)?;
        let cores = (cpu_seconds(*pid, tick)? - cpu0[name.as_str()]) / wall;
        rows.push(Row {
            name: name.clone(),
            idle_rss: idle[name.as_str()],
            peak_rss: m.hwm,
            cores,
        });
    }
    print!("{}", report(n, ok, wall, args.threads, &rows));
    Ok(())
}

/// One process's figures.
struct Row {
    name: String,
    idle_rss: u64,
    peak_rss: u64,
    cores: f64,
}

/// The table docs/deploy.md quotes.
fn report(n: u64, ok: u64, wall: f64, threads: u32, rows: &[Row]) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let mut out = format!(
        "load: {n} requests in {wall:.1} s ({:.0}/s), {ok} answered 200, {threads} connections\n",
        n as f64 / wall
    );
    out.push_str(&format!(
        "{:22} {:>10} {:>10} {:>12} {:>18}\n",
        "process", "idle RSS", "peak RSS", "CPU (cores)", "CPU ms / 1000 req"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:22} {:8.1}Mi {:8.1}Mi {:12.3} {:18.1}\n",
            r.name,
            mib(r.idle_rss),
            mib(r.peak_rss),
            r.cores,
            r.cores * wall * 1e6 / n.max(1) as f64
        ));
    }
    out
}

/// `host:port`, refused unless every address it names is loopback.
fn loopback(host: &str, port: u16) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--host {host}"))?
        .collect();
    match addrs.first() {
        Some(a) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*a),
        _ => bail!("--host {host}: loopback only (127.0.0.0/8, ::1)"),
    }
}

/// Live processes of the pid files in `dir` (`<name>.pid`), the
/// supervisor left out.
fn pids(dir: &Path) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: no stack running", dir.display()))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for file in files {
        let (Some(name), Some("pid")) = (
            file.file_stem().and_then(|s| s.to_str()),
            file.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if name == "supervisor" {
            continue;
        }
        let pid = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|p| Path::new(&format!("/proc/{p}")).exists()) {
            out.push((name.to_owned(), pid));
        }
    }
    Ok(out)
}

/// Clock ticks per second of /proc/*/stat times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of `pid`.
fn cpu_seconds(pid: u32, tick: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|t| t as f64 / tick)
        .with_context(|| format!("/proc/{pid}/stat: unexpected format"))
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line; the command
/// name in parentheses may hold spaces, so fields count after its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Resident and peak resident memory, bytes.
struct Mem {
    rss: u64,
    hwm: u64,
}

fn mem(pid: u32) -> Result<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    parse_mem(&status).with_context(|| format!("/proc/{pid}/status: no VmRSS/VmHWM"))
}

fn parse_mem(status: &str) -> Option<Mem> {
    let kib = |key: &str| -> Option<u64> {
        status.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.split_whitespace().next()?.parse::<u64>().ok())?
        })
    };
    Some(Mem {
        rss: kib("VmRSS")? * 1024,
        hwm: kib("VmHWM")? * 1024,
    })
}

/// One connection's loop until `stop`: (requests sent, answered 200).
fn worker(addr: SocketAddr, key: &str, stop: &AtomicBool) -> (u64, u64) {
    let (mut n, mut ok) = (0u64, 0u64);
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        let ticker = TICKERS[(n % TICKERS.len() as u64) as usize];
        let (method, path, body) = if n % 50 == 49 {
            ("POST", "/api/v1/auth/token".to_owned(), String::new())
        } else if n % 2 == 1 {
            (
                "POST",
                "/api/v1/calculate-locate".to_owned(),
                format!(
                    r#"{{"ticker":"{ticker}","position_value":100000,"loan_days":30,"client_id":"test123"}}"#
                ),
            )
        } else {
            ("GET", format!("/api/v1/rates/{ticker}"), String::new())
        };
        let c = match conn.take().map_or_else(|| Conn::open(addr), Ok) {
            Ok(c) => c,
            Err(_) => {
                n += 1;
                // Not listening: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let mut c = c;
        match c.request(method, &path, key, &body) {
            Ok((status, keep)) => {
                ok += u64::from(status == 200);
                if keep {
                    conn = Some(c);
                }
            }
            Err(_) => conn = None,
        }
        n += 1;
    }
    (n, ok)
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
            IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        };
        Ok(Conn {
            stream: BufReader::new(s),
            host,
        })
    }

    /// Sends one request and reads the whole answer: (status, whether the
    /// connection may be reused).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
    ) -> std::io::Result<(u16, bool)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(req.as_bytes())?;
        read_response(&mut self.stream)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one HTTP/1.1 response (Content-Length or chunked body):
/// (status, whether the connection stays open).
fn read_response(r: &mut impl BufRead) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<u64>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("chunk size"))?;
            std::io::copy(&mut r.by_ref().take(size + 2), &mut std::io::sink())?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = length {
        let read = std::io::copy(&mut r.by_ref().take(len), &mut std::io::sink())?;
        if read != len {
            return Err(bad("body cut short"));
        }
    } else {
        // No length: the body runs to the end of the connection.
        std::io::copy(r, &mut std::io::sink())?;
        keep = false;
    }
    Ok((status, keep))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn proc_fields_are_read_after_the_command_name() {
        let stat = "42 (envoy (main) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        let status = "Name:\tenvoy\nVmHWM:\t  130000 kB\nVmRSS:\t  128000 kB\n";
        let m = parse_mem(status).unwrap();
        assert_eq!((m.rss, m.hwm), (128_000 * 1024, 130_000 * 1024));
        assert!(parse_mem("Name:\tx\n").is_none());
    }

    #[test]
    fn responses_with_length_chunks_or_close_are_read_whole() {
        let two = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 429 Too Many\r\n\
                   transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                   HTTP/1.1 503 x\r\nConnection: close\r\n\r\nrest";
        let mut r = BufReader::new(two.as_bytes());
        assert_eq!(read_response(&mut r).unwrap(), (200, true));
        assert_eq!(read_response(&mut r).unwrap(), (429, true));
        assert_eq!(read_response(&mut r).unwrap(), (503, false));
        assert!(read_response(&mut r).is_err());
    }

    #[test]
    fn only_loopback_is_a_target() {
        assert!(loopback("127.0.0.1", 8000).is_ok());
        assert!(loopback("::1", 8000).is_ok());
        assert!(loopback("10.0.0.1", 8000).is_err());
        assert!(loopback("192.168.1.1", 8000).is_err());
    }

    #[test]
    fn the_table_has_the_columns_docs_deploy_quotes() {
        let rows = [Row {
            name: "envoy".into(),
            idle_rss: 125 << 20,
            peak_rss: 126 << 20,
            cores: 0.5,
        }];
        let out = report(20_000, 19_990, 10.0, 4, &rows);
        assert_eq!(
            out,
            "load: 20000 requests in 10.0 s (2000/s), 19990 answered 200, 4 connections\n\
             process                  idle RSS   peak RSS  CPU (cores)  CPU ms / 1000 req\n\
             envoy                     125.0Mi    126.0Mi        0.500              250.0\n"
        );
    }
}
