//! What the benchmarks share: the tools they drive (wrk, curl, taskset,
//! Envoy), processes measured through /proc, wrk's output, medians and the
//! number formats the tables of BENCHMARKS.md are quoted in.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::setup::debian::{self, Need};
use crate::util::{cargo, is_executable, quiet_step, target_dir};

/// Installs the Debian packages of the commands of `needs` that are
/// missing (`cargo xtask setup`'s installer, as `cargo xtask run` does).
pub fn require(needs: &[Need]) -> Result<()> {
    let missing = debian::missing(needs);
    if missing.is_empty() {
        return Ok(());
    }
    debian::ensure(needs).with_context(|| {
        format!(
            "bench: installing the Debian package(s) {} failed (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        )
    })
}

/// A setting from the environment (empty counts as unset), else `default`.
pub fn setting<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}")),
        _ => Ok(default),
    }
}

/// A whitespace-separated list setting.
pub fn list_setting(name: &str, default: &str) -> Vec<String> {
    let v = std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());
    v.split_whitespace().map(str::to_owned).collect()
}

/// The native binaries (`$BIN_DIR`, default target/server).
pub fn bin_dir(root: &Path) -> PathBuf {
    std::env::var_os("BIN_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir(root).join("server"))
}

/// The built filters (`$WASM_DIR`, default target/wasm32-wasip1/release).
pub fn wasm_dir(root: &Path) -> PathBuf {
    std::env::var_os("WASM_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir(root).join("wasm32-wasip1/release"))
}

/// A binary of `bin_dir`, or a clear error naming the make target.
pub fn binary(root: &Path, name: &str) -> Result<PathBuf> {
    let p = bin_dir(root).join(name);
    if !is_executable(&p) {
        bail!("bench: {} missing (make build)", p.display());
    }
    Ok(p)
}

/// target/server/open_loop, built when missing.
pub fn open_loop(root: &Path) -> Result<PathBuf> {
    let p = bin_dir(root).join("open_loop");
    if !is_executable(&p) {
        quiet_step(cargo().current_dir(root).args([
            "build",
            "-q",
            "--profile",
            "server",
            "-p",
            "e2e",
            "--bin",
            "open_loop",
        ]))?;
    }
    Ok(p)
}

/// Envoy (`$ENVOY_BIN`, default .venv/bin/envoy).
pub fn envoy_bin(root: &Path) -> Result<PathBuf> {
    let p = std::env::var_os("ENVOY_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/envoy"));
    if !is_executable(&p) {
        bail!("bench: {} missing (make envoy)", p.display());
    }
    Ok(p)
}

/// `envoy --mode validate` on a file.
pub fn envoy_validate(envoy: &Path, config: &Path) -> Result<()> {
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(config)
        .output()
        .with_context(|| format!("cannot run {}", envoy.display()))?;
    if !out.status.success() {
        bail!(
            "{} does not validate:\n{}{}",
            config.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `ready` every 100 ms for at most `within`.
pub fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a GET on 127.0.0.1 answers 2xx.
pub fn answers(url: &str) -> bool {
    crate::run::http_get(url).is_some_and(|(s, _)| (200..300).contains(&s))
}

/// Clock ticks per second of /proc's CPU times.
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("/proc/<pid>/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .context("/proc/<pid>/stat")
    };
    Ok(n(11)? + n(12)?)
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// A process this run started: stopped (SIGTERM, then SIGKILL after 5 s)
/// when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr into `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Proc> {
        let f = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        Ok(Proc { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn ticks(&self) -> Result<u64> {
        cpu_ticks(self.pid())
    }

    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid())
    }

    /// Whether it has exited already.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it and waits for it.
    pub fn stop(self) {}
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        if !wait_until(Duration::from_secs(5), || self.exited()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a wrk run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrk {
    /// wrk's output as printed.
    pub text: String,
    /// Completed requests.
    pub requests: u64,
    pub rps: f64,
    /// "Non-2xx or 3xx responses" (0 when wrk prints none).
    pub non_2xx: u64,
}

impl Wrk {
    pub fn parse(text: &str) -> Result<Wrk> {
        let requests = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no request count in wrk's output:\n{text}"))?;
        let rps = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
        let non_2xx = text
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Wrk {
            text: text.to_owned(),
            requests,
            rps,
            non_2xx,
        })
    }
}

/// `[taskset -c CPUS] wrk OPTS [-s SCRIPT] URL`.
pub fn wrk_cmd(cpus: Option<&str>, opts: &str, script: Option<&Path>, url: &str) -> Command {
    let mut cmd = match cpus {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.args(["-c", c, "wrk"]);
            t
        }
        None => Command::new("wrk"),
    };
    cmd.args(opts.split_whitespace());
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url).stdin(Stdio::null());
    cmd
}

/// Runs wrk to completion and parses its report.
pub fn wrk(cpus: Option<&str>, opts: &str, script: Option<&Path>, url: &str) -> Result<Wrk> {
    let out = crate::util::run(&mut wrk_cmd(cpus, opts, script, url))?;
    Wrk::parse(&String::from_utf8_lossy(&out.stdout))
}

/// A wrk script sending `body` by POST as JSON, with `extra` Lua lines.
pub fn post_lua(body: &str, extra: &[String]) -> String {
    let mut s = format!(
        "wrk.method = \"POST\"\nwrk.body   = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    for l in extra {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// `wrk.headers["NAME"] = "VALUE"`.
pub fn lua_header(name: &str, value: &str) -> String {
    format!("wrk.headers[\"{name}\"] = \"{value}\"")
}

/// `body` (a JSON object) padded with insignificant spaces before its
/// closing brace to `n` bytes.
pub fn pad(body: &str, n: usize) -> String {
    let open = body.strip_suffix('}').unwrap_or(body);
    format!("{open}{}}}", " ".repeat(n.saturating_sub(open.len() + 1)))
}

/// `curl -sS [-f] -X POST URL -H … -d BODY`: the body of the answer.
pub fn curl_post(url: &str, headers: &[&str], body: Option<&str>, fail: bool) -> Result<String> {
    let mut cmd = Command::new("curl");
    cmd.arg(if fail { "-fsS" } else { "-sS" })
        .args(["-X", "POST", url]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = crate::util::run(&mut cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Python's `statistics.median`.
pub fn median(xs: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// A number rounded to an integer with thousands separators (`12,048`).
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && s != "0" {
        out.insert(0, '-');
    }
    out
}

/// The `key=value` pairs of a line (open_loop's report).
pub fn key_values(line: &str) -> std::collections::BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Labels in order of first appearance.
pub fn first_seen<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for l in labels {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:8100/api/v1/calculate-locate
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.06ms    1.27ms  18.46ms   83.77%
    Req/Sec     6.33k   386.45     6.83k    75.00%
  12600 requests in 2.00s, 2.31MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   6293.40
Transfer/sec:      1.15MB
";

    #[test]
    fn wrk_reports_are_parsed() {
        let w = Wrk::parse(WRK).unwrap();
        assert_eq!((w.requests, w.rps, w.non_2xx), (12600, 6293.4, 3));
        let ok = Wrk::parse(&WRK.replace("  Non-2xx or 3xx responses: 3\n", "")).unwrap();
        assert_eq!(ok.non_2xx, 0);
        assert!(Wrk::parse("nothing").is_err());
    }

    #[test]
    fn medians_and_numbers_read_as_python_printed_them() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(thousands(12048.4), "12,048");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(123.0), "123");
        assert_eq!(thousands(-1234567.0), "-1,234,567");
        assert_eq!(first_seen(["b", "a", "b", "c"]), ["b", "a", "c"]);
    }

    #[test]
    fn bodies_are_padded_inside_the_object() {
        let b = r#"{"a":1}"#;
        let p = pad(b, 20);
        assert_eq!(p.len(), 20);
        assert!(p.starts_with(r#"{"a":1 "#) && p.ends_with(" }"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&p).unwrap()["a"],
            1
        );
        let kv = key_values("offered_rps=1000 p99_ms=3.2");
        assert_eq!(kv["p99_ms"], "3.2");
    }
}
