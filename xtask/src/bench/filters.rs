//! The filters one at a time (BENCHMARKS.md, "Filters, one at a time").
//!
//! * `cargo xtask bench validation [ROUNDS] [SECONDS] [NAME=FILE[,FILE…]]…`:
//!   per-request cost of the validation and metrics filters (or of the
//!   named chains of .wasm files, e.g. an old build against a new one in
//!   the same interleaved run) side by side with bare Envoy: one Envoy
//!   worker pinned to CPU 0, wrk pinned to CPU 1, a direct response (no
//!   upstream), interleaved rounds, medians. Besides wall-clock req/s,
//!   Envoy's own CPU time per request (utime + stime over the measured run
//!   / requests), which stays meaningful when other work shares the
//!   machine, and Envoy's RSS after the load (the memory of the one
//!   worker's VMs is the difference to bare).
//! * `cargo xtask bench memory [ROUNDS] [FILE.wasm…]`: memory of the wasm
//!   filter VMs per Envoy worker: Envoy's RSS with 1 and with 2 workers,
//!   bare and with the filter chain (default: auth, validation, metrics),
//!   each after 1 s of load. Per worker the filters cost
//!   (RSS(filters, 2) − RSS(filters, 1)) − (RSS(bare, 2) − RSS(bare, 1)).
//! * `cargo xtask bench callgrind [N]`: instructions per request of the
//!   filters' own Rust code (filter-core, native build, host test doubles)
//!   counted by valgrind's callgrind, which stay the same whatever else
//!   runs on the machine. Each case runs with N and 2N requests; the
//!   difference divided by N is the per-request count without the set-up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::common::{
    clk_tck, envoy_bin, free_port, median, require, wait_until, wasm_dir, wrk, Proc,
};
use super::stack::BODY;

/// A bench Envoy on `port` (admin `admin`) answering every request with a
/// direct response after the `wasm` filters (a VM each) and, when
/// `buffer`, the buffer filter.
pub fn filter_bench_config(port: u16, admin: u16, wasm: &[PathBuf], buffer: bool) -> String {
    let mut y = format!(
        r#"admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200, body: {{ inline_string: '{{"status":"success"}}' }} }}
          http_filters:
"#
    );
    for (i, f) in wasm.iter().enumerate() {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        y.push_str(&format!(
            r#"          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                vm_config: {{ vm_id: vm{n}_{name}, runtime: envoy.wasm.runtime.v8, code: {{ local: {{ filename: {file} }} }} }}
"#,
            n = i + 1,
            file = f.display()
        ));
    }
    if buffer {
        y.push_str(
            r#"          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536
"#,
        );
    }
    y.push_str(
        r#"          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
    );
    y
}

/// `NAME=FILE[,FILE…]` into the name and the (absolute) files, which
/// must exist.
fn variant(spec: &str) -> Result<(String, Vec<PathBuf>)> {
    let Some((name, files)) = spec.split_once('=') else {
        bail!("bench: a variant is NAME=FILE[,FILE...], got {spec}");
    };
    let files = files
        .split(',')
        .map(|f| std::fs::canonicalize(f).with_context(|| format!("missing {f}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((name.to_owned(), files))
}

/// Default filter files of `wasm_dir`.
fn built(root: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            wasm_dir(root)
                .join(format!("{n}.wasm"))
                .display()
                .to_string()
        })
        .collect()
}

struct Sample {
    rps: f64,
    cpu_us: f64,
    rss_kib: f64,
}

pub fn validation(root: &Path, rounds: u32, seconds: u32, specs: &[String]) -> Result<()> {
    require(&[("wrk", "wrk"), ("taskset", "util-linux")])?;
    let envoy = envoy_bin(root)?;
    let work = tempfile::Builder::new()
        .prefix("bench-filters.")
        .tempdir()?;
    let (port, admin) = (free_port()?, free_port()?);
    // A valid calculate-locate body padded with spaces to exactly 200 bytes.
    let body = work.path().join("body.json");
    std::fs::write(&body, format!("{BODY}{}", " ".repeat(200 - BODY.len())))?;
    let lua = work.path().join("post.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"content-type\"] = \"application/json\"\nlocal f = io.open(\"{}\", \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\n",
            body.display()
        ),
    )?;
    let specs: Vec<String> = if specs.is_empty() {
        let f = built(root, &["validation_filter", "metrics_filter"]);
        vec![format!("validation={}", f[0]), format!("metrics={}", f[1])]
    } else {
        specs.to_vec()
    };
    let mut variants = vec![("bare".to_owned(), Vec::new())];
    for s in &specs {
        variants.push(variant(s)?);
    }
    for (name, files) in &variants {
        std::fs::write(
            work.path().join(format!("{name}.yaml")),
            filter_bench_config(port, admin, files, true),
        )?;
    }
    let url = format!("http://127.0.0.1:{port}/api/v1/calculate-locate");
    let hz = clk_tck() as f64;
    let mut samples: Vec<(String, Sample)> = Vec::new();
    for r in 1..=rounds {
        for (v, _) in &variants {
            let p = Proc::spawn(
                Command::new("taskset")
                    .args(["-c", "0"])
                    .arg(&envoy)
                    .arg("-c")
                    .arg(work.path().join(format!("{v}.yaml")))
                    .args(["--concurrency", "1", "--base-id", "4242"])
                    .args(["--disable-hot-restart", "-l", "error"]),
                &work.path().join(format!("{v}.log")),
            )?;
            wait_until(Duration::from_secs(10), || {
                crate::run::http_get(&format!("http://127.0.0.1:{port}/health")).is_some()
            });
            wrk(Some("1"), "-t1 -c10 -d1s", Some(&lua), &url)?;
            let t0 = p.ticks()?;
            let out = wrk(
                Some("1"),
                &format!("-t1 -c10 -d{seconds}s"),
                Some(&lua),
                &url,
            )?;
            let t1 = p.ticks()?;
            // Envoy's own CPU time per request: unlike req/s, hardly
            // affected by other processes competing for the cores.
            let cpu_us = (t1 - t0) as f64 / hz * 1e6 / out.requests.max(1) as f64;
            let rss = p.rss_kib()?;
            p.stop();
            eprintln!(
                "round {r} {v} {:.2} req/s, envoy cpu {cpu_us:.2} us/request, rss {rss} KiB",
                out.rps
            );
            samples.push((
                v.clone(),
                Sample {
                    rps: out.rps,
                    cpu_us,
                    rss_kib: rss as f64,
                },
            ));
        }
    }
    print!("{}", validation_table(&samples));
    Ok(())
}

fn validation_table(samples: &[(String, Sample)]) -> String {
    let names = super::common::first_seen(samples.iter().map(|(v, _)| v.as_str()));
    let med = |v: &str, f: fn(&Sample) -> f64| {
        median(samples.iter().filter(|(n, _)| n == v).map(|(_, s)| f(s)))
    };
    let rows: Vec<(&str, f64, f64, f64)> = names
        .iter()
        .map(|v| {
            (
                *v,
                med(v, |s| s.rps),
                med(v, |s| s.cpu_us),
                med(v, |s| s.rss_kib),
            )
        })
        .collect();
    let Some(&(_, base_rps, base_cpu, base_rss)) = rows.first() else {
        return String::new();
    };
    let mut out = format!(
        "{:<14} {:>7} {:>7} {:>6} | {:>10} {:>6} | {:>7} {:>6}\n",
        "variant", "req/s", "us/req", "added", "cpu us/req", "added", "RSS MiB", "added"
    );
    for (name, rps, cpu, kib) in rows {
        let us = 1e6 / rps;
        out.push_str(&format!(
            "{name:<14} {rps:>7.0} {us:>7.1} {:>6.1} | {cpu:>10.1} {:>6.1} | {:>7.1} {:>6.1}\n",
            us - 1e6 / base_rps,
            cpu - base_cpu,
            kib / 1024.0,
            (kib - base_rss) / 1024.0
        ));
    }
    out
}

pub fn memory(root: &Path, rounds: u32, files: &[String]) -> Result<()> {
    require(&[("wrk", "wrk")])?;
    let envoy = envoy_bin(root)?;
    let files = if files.is_empty() {
        built(
            root,
            &["auth_filter", "validation_filter", "metrics_filter"],
        )
    } else {
        files.to_vec()
    };
    let files = files
        .iter()
        .map(|f| std::fs::canonicalize(f).with_context(|| format!("missing {f}")))
        .collect::<Result<Vec<_>>>()?;
    let work = tempfile::Builder::new().prefix("bench-memory.").tempdir()?;
    let (port, admin) = (free_port()?, free_port()?);
    for (name, wasm) in [("bare", &[][..]), ("filters", &files[..])] {
        std::fs::write(
            work.path().join(format!("{name}.yaml")),
            filter_bench_config(port, admin, wasm, false),
        )?;
    }
    let rss = |name: &str, workers: u32| -> Result<u64> {
        let p = Proc::spawn(
            Command::new(&envoy)
                .arg("-c")
                .arg(work.path().join(format!("{name}.yaml")))
                .args(["--concurrency", &workers.to_string(), "--base-id", "4243"])
                .args(["--disable-hot-restart", "-l", "error"]),
            &work.path().join(format!("{name}.log")),
        )?;
        wait_until(Duration::from_secs(10), || {
            crate::run::http_get(&format!("http://127.0.0.1:{port}/health")).is_some()
        });
        wrk(
            None,
            "-t2 -c16 -d1s",
            None,
            &format!("http://127.0.0.1:{port}/api/v1/rates/AAPL"),
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let k = p.rss_kib()?;
        p.stop();
        Ok(k)
    };
    let mut kib: Vec<(String, u32, f64)> = Vec::new();
    for r in 1..=rounds {
        for v in ["bare", "filters"] {
            for w in [1, 2] {
                let k = rss(v, w)?;
                eprintln!("round {r} {v} workers={w} rss {k} KiB");
                kib.push((v.to_owned(), w, k as f64));
            }
        }
    }
    let m = |v: &str, w: u32| {
        median(
            kib.iter()
                .filter(|(n, x, _)| n == v && *x == w)
                .map(|(_, _, k)| *k),
        ) / 1024.0
    };
    let (b1, b2, f1, f2) = (m("bare", 1), m("bare", 2), m("filters", 1), m("filters", 2));
    println!("RSS MiB (medians): bare 1 worker {b1:.1}, 2 workers {b2:.1}; filters 1 worker {f1:.1}, 2 workers {f2:.1}");
    println!("filters added to a 1-worker Envoy: {:.1} MiB", f1 - b1);
    println!(
        "filter VMs per additional worker:  {:.1} MiB",
        (f2 - f1) - (b2 - b1)
    );
    Ok(())
}

pub fn callgrind(root: &Path, n: u64) -> Result<()> {
    require(&[("valgrind", "valgrind")])?;
    let out = crate::util::run(
        crate::util::cargo()
            .current_dir(root)
            .args(["bench", "-q", "-p", "filter-core", "--bench", "hot_paths"])
            .args(["--no-run", "--message-format=json"]),
    )?;
    let bin = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "hot_paths")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo bench --no-run built no hot_paths executable")?;
    let work = tempfile::Builder::new()
        .prefix("bench-callgrind.")
        .tempdir()?;
    let irs = |case: &str, requests: u64| -> Result<u64> {
        let file = work.path().join("out");
        let mut arg = std::ffi::OsString::from("--callgrind-out-file=");
        arg.push(&file);
        crate::util::run(
            Command::new("valgrind")
                .arg("--tool=callgrind")
                .arg(arg)
                .arg(&bin)
                .args([case, &requests.to_string()]),
        )?;
        crate::util::read(&file)?
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .context("no summary in callgrind's output")
    };
    println!("{:<18} {:>14}", "case", "instr/request");
    for c in [
        "auth-cached-key",
        "auth-cached-jwt",
        "validation-200b",
        "metrics",
    ] {
        let one = irs(c, n)?;
        let two = irs(c, 2 * n)?;
        println!("{c:<18} {:>14}", two.saturating_sub(one) / n);
    }
    Ok(())
}

/// The validation and memory benchmarks' configs, for the test that runs
/// `envoy --mode validate` on them: (name, YAML) with the given filters.
pub fn filter_bench_configs(wasm: &[PathBuf]) -> Vec<(String, String)> {
    vec![
        ("bare".into(), filter_bench_config(18600, 18601, &[], true)),
        (
            "filters".into(),
            filter_bench_config(18600, 18601, wasm, true),
        ),
        (
            "memory-filters".into(),
            filter_bench_config(18610, 18611, wasm, false),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_adds_against_bare() {
        let s = |rps, cpu_us, rss_kib| Sample {
            rps,
            cpu_us,
            rss_kib,
        };
        let samples = vec![
            ("bare".to_owned(), s(40000.0, 20.0, 40960.0)),
            ("validation".to_owned(), s(20000.0, 30.0, 51200.0)),
        ];
        let t = validation_table(&samples);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "variant          req/s  us/req  added | cpu us/req  added | RSS MiB  added"
        );
        assert_eq!(
            lines[2],
            "validation       20000    50.0   25.0 |       30.0   10.0 |    50.0   10.0"
        );
    }

    #[test]
    fn configs_name_each_wasm_filter_after_its_file() {
        let y = filter_bench_config(1, 2, &[PathBuf::from("/w/metrics_filter.wasm")], true);
        let doc = crate::util::yaml_docs_str(&y, "t").unwrap();
        let filters = &doc[0]["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["http_filters"];
        assert_eq!(filters[0]["name"], "metrics_filter");
        assert_eq!(
            filters[0]["typed_config"]["config"]["vm_config"]["vm_id"],
            "vm1_metrics_filter"
        );
        assert_eq!(filters[1]["name"], "envoy.filters.http.buffer");
    }
}
