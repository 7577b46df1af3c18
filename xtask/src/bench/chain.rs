//! `cargo xtask bench chain`: what the gateway's filters cost Envoy, against
//! bare Envoy and against the native filters a user could configure instead
//! (BENCHMARKS.md, "Filter chain: ours, native, bare").
//!
//! One Envoy worker pinned to CPU 0, the load pinned to CPU 1. Every API
//! route is answered by an upstream listener of the same Envoy (configs.rs),
//! so only the filter chain is measured (the make-run stack still serves
//! key verification and the gRPC rate-limit service). POST
//! /api/v1/calculate-locate with a 200-byte body. Variants, run interleaved
//! (A B C … A B C …) for CHAIN_ROUNDS rounds:
//!
//!   bare        routing only (the buffer filter and the router)
//!   rate-limits the two rate-limit filters alone (client id set by a
//!               header_mutation): what every variant below shares
//!   wasm-key    our chain: auth (cached API key, recording the metrics),
//!               local + global rate limit, validation
//!   wasm-key-separate-metrics  the same with a separate metrics filter (the
//!               chain before the auth filter recorded the metrics)
//!   native-key  api_key_auth, local + global rate limit (the same two
//!               filters), Lua checking the body; Envoy's own stats
//!   wasm-jwt    our chain with a cached HS256 JWT
//!   native-jwt  jwt_authn (with its JWT cache) instead of api_key_auth
//!
//! More variants, for CHAIN_VARIANTS (what the metrics cost on requests that
//! reach an upstream, without the rate-limit call's noise): auth-only,
//! auth-metrics, validation-only, validation-twice,
//! validation-twice-shared-vm, identity-headers-only, auth-only-keep-key,
//! and with CHAIN_BEFORE_WASM=path/to/auth_filter.wasm auth-metrics-before
//! and wasm-key-before (the auth filter built earlier).
//!
//! Part `plot`: latency against offered load (open loop,
//! latency-corrected) for bare, wasm-key and native-key, drawn into
//! docs/latency.png with gnuplot. Part `scale`: wasm-key with Envoy workers
//! 1 and 2, 1 / 100 / 10 000 distinct clients, bodies of 200 B / 2 KiB /
//! 8 KiB.
//!
//! Part `pairs` (not in the default CHAIN_PARTS): each pair A:B of
//! CHAIN_PAIRS ("wasm-key:native-key wasm-key:bare") run at the same time,
//! both Envoys on CPU 0, for PAIR_ROUNDS (5) rounds; reports the difference
//! of their Envoy CPU time per request, which the machine's swings cancel
//! out of.
//!
//! Settings: CHAIN_PARTS ("chain plot scale"), CHAIN_VARIANTS (the seven
//! above), CHAIN_BEFORE_WASM (unset), CHAIN_ROUNDS (5), CHAIN_SECONDS (4),
//! PLOT_RATES ("1000 2000 4000 6000 8000 10000"), PLOT_SECONDS (4, after a
//! 1 s warm-up on the same connections), SCALE_ROUNDS (3), PAIR_ROUNDS (5),
//! CHAIN_PAIRS, CHAIN_DEBUG (keep each run's bench_upstream stats in
//! WORK/stats-<label>.txt), PLOT_PNG (docs/latency.png). Loopback only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::common::{
    answers, clk_tck, curl_post, envoy_bin, envoy_validate, first_seen, key_values, list_setting,
    lua_header, median, open_loop, pad, post_lua, require, setting, thousands, wait_until, wrk,
    wrk_cmd, Proc, Wrk,
};
use super::configs;
use super::stack::{Stack, BODY};

const URL: &str = "http://127.0.0.1:8100/api/v1/calculate-locate";
const TWIN_URL: &str = "http://127.0.0.1:8200/api/v1/calculate-locate";

pub struct Settings {
    pub parts: Vec<String>,
    pub variants: Vec<String>,
    pub before_wasm: String,
    pub rounds: u32,
    pub seconds: u32,
    pub plot_rates: Vec<String>,
    pub plot_seconds: u32,
    pub scale_rounds: u32,
    pub pair_rounds: u32,
    pub pairs: Vec<String>,
}

impl Settings {
    /// The settings from the environment over `defaults` (`cargo xtask
    /// bench all` shortens the rounds).
    pub fn from_env(defaults: Settings) -> Result<Settings> {
        let plot_rates = defaults.plot_rates.join(" ");
        Ok(Settings {
            parts: list_setting("CHAIN_PARTS", "chain plot scale"),
            variants: list_setting(
                "CHAIN_VARIANTS",
                "bare rate-limits wasm-key wasm-key-separate-metrics native-key wasm-jwt native-jwt",
            ),
            before_wasm: setting("CHAIN_BEFORE_WASM", String::new())?,
            rounds: setting("CHAIN_ROUNDS", defaults.rounds)?,
            seconds: setting("CHAIN_SECONDS", defaults.seconds)?,
            plot_rates: list_setting("PLOT_RATES", &plot_rates),
            plot_seconds: setting("PLOT_SECONDS", defaults.plot_seconds)?,
            scale_rounds: setting("SCALE_ROUNDS", defaults.scale_rounds)?,
            pair_rounds: setting("PAIR_ROUNDS", defaults.pair_rounds)?,
            pairs: list_setting("CHAIN_PAIRS", "wasm-key:native-key wasm-key:bare"),
        })
    }

    pub fn defaults() -> Settings {
        Settings {
            parts: Vec::new(),
            variants: Vec::new(),
            before_wasm: String::new(),
            rounds: 5,
            seconds: 4,
            plot_rates: ["1000", "2000", "4000", "6000", "8000", "10000"]
                .map(String::from)
                .to_vec(),
            plot_seconds: 4,
            scale_rounds: 3,
            pair_rounds: 5,
            pairs: Vec::new(),
        }
    }

    fn part(&self, p: &str) -> bool {
        self.parts.iter().any(|x| x == p)
    }
}

struct Bench {
    root: PathBuf,
    envoy: PathBuf,
    work: PathBuf,
    key: String,
    seconds: u32,
    debug: bool,
}

/// One closed-loop run: label, req/s, non-2xx, requests, calls to the
/// rate-limit service.
struct Run {
    label: String,
    rps: f64,
    non_2xx: u64,
}

impl Bench {
    fn yaml(&self, v: &str) -> PathBuf {
        self.work.join(format!("{v}.yaml"))
    }

    fn script_for(&self, v: &str) -> PathBuf {
        self.work.join(if v.ends_with("jwt") {
            "jwt.lua"
        } else {
            "key.lua"
        })
    }

    fn spawn_envoy(
        &self,
        config: &Path,
        workers: u32,
        cpus: &str,
        base_id: u32,
        log: &str,
    ) -> Result<Proc> {
        Proc::spawn(
            Command::new("taskset")
                .args(["-c", cpus])
                .arg(&self.envoy)
                .arg("-c")
                .arg(config)
                .args(["--concurrency", &workers.to_string(), "-l", "warn"])
                .args(["--base-id", &base_id.to_string(), "--disable-hot-restart"]),
            &self.work.join(log),
        )
    }

    /// Envoy on :8100, ready and warmed (the key or token verified once,
    /// caches filled).
    fn start_envoy(&self, v: &str, workers: u32, cpus: &str) -> Result<Proc> {
        let p = self.spawn_envoy(&self.yaml(v), workers, cpus, 8, &format!("envoy-{v}.log"))?;
        wait_ready(8100, 9911);
        wrk(Some("1"), "-t1 -c4 -d1s", Some(&self.script_for(v)), URL)?;
        Ok(p)
    }

    /// One closed-loop wrk run on a fresh Envoy, printed as a TSV line.
    #[allow(clippy::too_many_arguments)]
    fn measure(
        &self,
        label: &str,
        v: &str,
        lua: &Path,
        workers: u32,
        envoy_cpus: &str,
        wrk_cpus: &str,
        warm_up: Option<&Path>,
    ) -> Result<Run> {
        let envoy = self.start_envoy(v, workers, envoy_cpus)?;
        if let Some(w) = warm_up {
            wrk(Some(wrk_cpus), "-t1 -c32 -d3s", Some(w), URL)?;
        }
        let out = wrk(
            Some(wrk_cpus),
            &format!("-t1 -c32 -d{}s", self.seconds),
            Some(lua),
            URL,
        )?;
        // Calls this Envoy made to the rate-limit service (warm-up
        // included).
        let rls = admin_stat(r"^cluster\.rate_limit_service\.upstream_rq_total$");
        if self.debug {
            if let Some((_, stats)) =
                crate::run::http_get("http://127.0.0.1:9911/stats?filter=bench_upstream")
            {
                std::fs::write(self.work.join(format!("stats-{label}.txt")), stats)?;
            }
        }
        envoy.stop();
        println!(
            "{label}\t{:.2}\t{}\t{}\t{rls}",
            out.rps, out.non_2xx, out.requests
        );
        Ok(Run {
            label: label.to_owned(),
            rps: out.rps,
            non_2xx: out.non_2xx,
        })
    }
}

/// The value of the one admin stat `filter` matches (0 when none).
fn admin_stat(filter: &str) -> u64 {
    crate::run::http_get(&format!("http://127.0.0.1:9911/stats?filter={filter}"))
        .and_then(|(_, body)| stat_value(&body))
        .unwrap_or(0)
}

/// The value of the first `name: value` line of an admin stats answer
/// (which may come chunked: the chunk sizes have no colon).
fn stat_value(body: &str) -> Option<u64> {
    body.lines()
        .filter_map(|l| l.trim().split_once(": "))
        .find_map(|(_, v)| v.trim().parse().ok())
}

/// The listener answers and every backend host is healthy (the first
/// health checks answered) before the warm-up.
fn wait_ready(listener: u16, admin: u16) {
    wait_until(Duration::from_secs(10), || {
        answers(&format!("http://127.0.0.1:{listener}/health"))
    });
    wait_until(Duration::from_secs(10), || {
        crate::run::http_get(&format!("http://127.0.0.1:{admin}/clusters"))
            .is_some_and(|(_, body)| !body.contains("health_flags::/"))
    });
}

pub fn run(root: &Path, s: &Settings) -> Result<()> {
    let mut tools = vec![("wrk", "wrk"), ("taskset", "util-linux"), ("curl", "curl")];
    if s.part("plot") {
        tools.push(("gnuplot", "gnuplot-nox"));
    }
    require(&tools)?;
    let envoy = envoy_bin(root)?;
    let gen = open_loop(root)?;
    let db_dir = tempfile::Builder::new()
        .prefix("bench-chain-db.")
        .tempdir()?;
    let db_url = format!("sqlite://{}/pricing.db", db_dir.path().display());
    // Per-key limit far above the load (the highest the render accepts):
    // the native variants carry none.
    let env = [
        ("RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
        ("DATABASE_URL", db_url.clone()),
    ];
    let stack = Stack::start(root, &env)?;
    let work = stack.run_dir.join("chain");
    std::fs::create_dir_all(&work)?;
    let secret = stack.jwt_secret()?;
    // A 200-byte body: the usual one padded with insignificant whitespace.
    let body = pad(BODY, 200);
    let token_answer = curl_post(
        "http://127.0.0.1:8000/api/v1/auth/token",
        &[&stack.key_header()],
        None,
        true,
    )?;
    let token: serde_json::Value =
        serde_json::from_str(&token_answer).context("the token answer")?;
    let token = token["access_token"]
        .as_str()
        .context("no access_token in the token answer")?;
    std::fs::write(
        work.join("key.lua"),
        post_lua(&body, &[lua_header("X-API-Key", &stack.key)]),
    )?;
    std::fs::write(
        work.join("jwt.lua"),
        post_lua(
            &body,
            &[lua_header("Authorization", &format!("Bearer {token}"))],
        ),
    )?;
    let mut render_env = env.to_vec();
    render_env.push(("JWT_SECRET_KEY", secret.clone()));
    let full = configs::render_local(root, &render_env)?;
    configs::write_chain(&work, &full, &stack.key, &secret, &s.before_wasm)?;
    for v in &s.variants {
        envoy_validate(&envoy, &work.join(format!("{v}.yaml")))
            .with_context(|| format!("bench: variant {v}"))?;
    }
    let b = Bench {
        root: root.to_owned(),
        envoy,
        work,
        key: stack.key.clone(),
        seconds: s.seconds,
        debug: std::env::var_os("CHAIN_DEBUG").is_some_and(|v| !v.is_empty()),
    };

    if s.part("chain") {
        println!(
            "== chain: {} interleaved rounds of {}s, one worker on CPU 0, wrk -c32 on CPU 1",
            s.rounds, s.seconds
        );
        let mut runs = Vec::new();
        for _ in 0..s.rounds {
            for v in &s.variants {
                runs.push(b.measure(v, v, &b.script_for(v), 1, "0", "1", None)?);
            }
        }
        print!("{}", chain_table(&runs));
    }
    if s.part("pairs") {
        pairs(&b, s)?;
    }
    if s.part("plot") {
        plot(&b, s, &gen, &body)?;
    }
    if s.part("scale") {
        scale(&b, s, &db_url)?;
    }
    Ok(())
}

fn chain_table(runs: &[Run]) -> String {
    let order = first_seen(runs.iter().map(|r| r.label.as_str()));
    let med = |v: &str| median(runs.iter().filter(|r| r.label == v).map(|r| r.rps));
    let bad = |v: &str| -> u64 {
        runs.iter()
            .filter(|r| r.label == v)
            .map(|r| r.non_2xx)
            .sum()
    };
    let has = |v: &str| order.contains(&v);
    let us = |v: &str| 1e6 / med(v);
    let bare = has("bare").then(|| med("bare"));
    let mut out = String::from(
        "\n| variant | req/s (median) | µs/request | added to bare, µs | share of bare's throughput | non-2xx |\n|---|---|---|---|---|---|\n",
    );
    for &v in &order {
        let (added, share) = match bare {
            Some(b) => (
                format!("{:.1}", us(v) - 1e6 / b),
                format!("{:.0}%", med(v) / b * 100.0),
            ),
            None => ("–".into(), "–".into()),
        };
        out.push_str(&format!(
            "| {v} | {} | {:.1} | {added} | {share} | {} |\n",
            thousands(med(v)),
            us(v),
            bad(v)
        ));
    }
    for kind in ["key", "jwt"] {
        let (w, n) = (format!("wasm-{kind}"), format!("native-{kind}"));
        if has(&w) && has(&n) {
            let bare_ratio = bare.map_or("–".into(), |b| format!("{:.2}", med(&w) / b));
            out.push_str(&format!(
                "\n{w} / {n} throughput: {:.2}  (target ≥ 1.00); {w} / bare: {bare_ratio} (target ≥ 0.60)\n",
                med(&w) / med(&n)
            ));
        }
    }
    if let (true, Some(b)) = (has("rate-limits"), bare) {
        out.push_str(&format!(
            "\nrate limits alone / bare: {:.2}\n",
            med("rate-limits") / b
        ));
    }
    for (a, b, what) in [
        (
            "wasm-key",
            "wasm-key-separate-metrics",
            "metrics in the auth filter, against a separate metrics filter",
        ),
        (
            "auth-metrics",
            "auth-only",
            "the metrics, recorded in the auth filter",
        ),
        (
            "auth-metrics-before",
            "auth-only",
            "the metrics, auth filter built earlier",
        ),
        (
            "wasm-key",
            "wasm-key-before",
            "the chain against the chain with the earlier auth filter",
        ),
    ] {
        if has(a) && has(b) {
            out.push_str(&format!(
                "{a} against {b} ({what}): {:+.1} µs per request, throughput {:.2}×\n",
                us(a) - us(b),
                med(a) / med(b)
            ));
        }
    }
    out
}

/// One pair round: A's and B's requests and Envoy CPU (µs), non-2xx.
struct PairRun {
    a: String,
    b: String,
    requests: (u64, u64),
    cpu_us: (u64, u64),
    non_2xx: u64,
}

/// Two variants at the same time, both Envoys pinned to CPU 0 (the
/// scheduler gives each half of it), one wrk each on CPU 1. What the
/// machine does meanwhile slows both alike, so the difference of their CPU
/// time per request (from /proc) holds when sequential runs swing by tens
/// of percent.
fn pairs(b: &Bench, s: &Settings) -> Result<()> {
    println!();
    println!(
        "== pairs: {} rounds of {}s, both Envoys on CPU 0 at once, one wrk each on CPU 1",
        s.pair_rounds, s.seconds
    );
    let tick_us = 1_000_000 / clk_tck();
    let mut runs = Vec::new();
    for _ in 0..s.pair_rounds {
        for pair in &s.pairs {
            let Some((va, vb)) = pair.split_once(':') else {
                bail!("bench: CHAIN_PAIRS takes A:B, got {pair}");
            };
            // B's config moved to listener 8200, admin 9921, upstream 8202.
            let twin = b.work.join(format!("{vb}-twin.yaml"));
            std::fs::write(&twin, twin_config(&crate::util::read(&b.yaml(vb))?))?;
            let pa = b.spawn_envoy(&b.yaml(va), 1, "0", 8, "envoy-pair-a.log")?;
            let pb = b.spawn_envoy(&twin, 1, "0", 9, "envoy-pair-b.log")?;
            wait_ready(8100, 9911);
            wait_ready(8200, 9921);
            wrk(Some("1"), "-t1 -c4 -d1s", Some(&b.script_for(va)), URL)?;
            wrk(Some("1"), "-t1 -c4 -d1s", Some(&b.script_for(vb)), TWIN_URL)?;
            let (ca, cb) = (pa.ticks()?, pb.ticks()?);
            let opts = format!("-t1 -c32 -d{}s", b.seconds);
            let spawn = |v: &str, url: &str| {
                wrk_cmd(Some("1"), &opts, Some(&b.script_for(v)), url)
                    .stdout(Stdio::piped())
                    .spawn()
            };
            let (wa, wb) = (spawn(va, URL)?, spawn(vb, TWIN_URL)?);
            let (oa, ob) = (wa.wait_with_output()?, wb.wait_with_output()?);
            let (ca, cb) = (pa.ticks()? - ca, pb.ticks()? - cb);
            drop((pa, pb));
            let ra = Wrk::parse(&String::from_utf8_lossy(&oa.stdout))?;
            let rb = Wrk::parse(&String::from_utf8_lossy(&ob.stdout))?;
            let run = PairRun {
                a: va.to_owned(),
                b: vb.to_owned(),
                requests: (ra.requests, rb.requests),
                cpu_us: (ca * tick_us, cb * tick_us),
                non_2xx: ra.non_2xx + rb.non_2xx,
            };
            println!(
                "{va}\t{vb}\t{}\t{}\t{}\t{}\t{}\t{tick_us}",
                run.requests.0, run.requests.1, run.cpu_us.0, run.cpu_us.1, run.non_2xx
            );
            runs.push(run);
        }
    }
    print!("{}", pairs_table(&runs));
    Ok(())
}

/// A config with its listener, admin and upstream ports moved from
/// 8100 / 9911 / 8102 to 8200 / 9921 / 8202.
fn twin_config(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.lines() {
        let mut l = line.to_owned();
        for (from, to) in [("8100", "8200"), ("9911", "9921"), ("8102", "8202")] {
            if let Some(head) = line.strip_suffix(&format!("port_value: {from}")) {
                l = format!("{head}port_value: {to}");
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn pairs_table(runs: &[PairRun]) -> String {
    let mut order: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        if !order.contains(&(r.a.as_str(), r.b.as_str())) {
            order.push((&r.a, &r.b));
        }
    }
    let mut out = String::from(
        "\n| A | B | A, Envoy CPU µs/request | B, Envoy CPU µs/request | A − B, µs (median of rounds) | B / A cost (A's throughput against B's) | non-2xx |\n|---|---|---|---|---|---|---|\n",
    );
    for (a, b) in order {
        let rs: Vec<&PairRun> = runs.iter().filter(|r| r.a == a && r.b == b).collect();
        let ua: Vec<f64> = rs
            .iter()
            .map(|r| r.cpu_us.0 as f64 / r.requests.0 as f64)
            .collect();
        let ub: Vec<f64> = rs
            .iter()
            .map(|r| r.cpu_us.1 as f64 / r.requests.1 as f64)
            .collect();
        let diff = median(ua.iter().zip(&ub).map(|(x, y)| x - y));
        let ratio = median(ua.iter().zip(&ub).map(|(x, y)| y / x));
        let bad: u64 = rs.iter().map(|r| r.non_2xx).sum();
        out.push_str(&format!(
            "| {a} | {b} | {:.1} | {:.1} | {diff:+.1} | {ratio:.2} | {bad} |\n",
            median(ua.iter().copied()),
            median(ub.iter().copied())
        ));
    }
    out
}

/// Latency against offered load, open loop, for bare, wasm-key and
/// native-key; drawn into docs/latency.png.
fn plot(b: &Bench, s: &Settings, gen: &Path, body: &str) -> Result<()> {
    println!();
    println!(
        "== latency against offered load (open loop, {}s per point, load on CPU 1)",
        s.plot_seconds
    );
    let variants = ["bare", "wasm-key", "native-key"];
    let mut points: Vec<(&str, String, String)> = Vec::new();
    let key_header = format!("x-api-key: {}", b.key);
    for rate in &s.plot_rates {
        for v in variants {
            let envoy = b.start_envoy(v, 1, "0")?;
            let out = crate::util::run(
                Command::new("taskset")
                    .args(["-c", "1"])
                    .arg(gen)
                    .args(["--url", URL, "--rate", rate])
                    .args(["--seconds", &s.plot_seconds.to_string(), "--warmup", "1"])
                    .args(["--method", "POST", "--body", body])
                    .args(["--header", &key_header])
                    .args(["--header", "content-type: application/json"]),
            )?;
            envoy.stop();
            let kv = key_values(&String::from_utf8_lossy(&out.stdout));
            let f = |k: &str| kv.get(k).cloned().unwrap_or_default();
            println!(
                "{v}\t{rate}\t{}\t{}\t{}",
                f("achieved_rps"),
                f("p50_ms"),
                f("p99_ms")
            );
            points.push((v, rate.clone(), f("p99_ms")));
        }
    }
    for v in variants {
        let dat: String = points
            .iter()
            .filter(|(pv, _, _)| *pv == v)
            .map(|(_, rate, p99)| format!("{rate} {p99}\n"))
            .collect();
        std::fs::write(b.work.join(format!("latency-{v}.dat")), dat)?;
    }
    let png = std::env::var_os("PLOT_PNG")
        .filter(|v| !v.is_empty())
        .map_or_else(|| b.root.join("docs/latency.png"), PathBuf::from);
    let w = |v: &str| {
        b.work
            .join(format!("latency-{v}.dat"))
            .display()
            .to_string()
    };
    let script = format!(
        r#"set terminal pngcairo size 900,560 font ",11"
set output "{png}"
set title "POST /api/v1/calculate-locate, direct response, one Envoy worker: p99 against offered load"
set xlabel "offered load (req/s, open loop)"
set ylabel "p99 latency (ms, log scale)"
set logscale y
set grid
set key top left
plot "{bare}" with linespoints lw 2 title "(a) bare Envoy", \
     "{wasm}" with linespoints lw 2 title "(b) wasm chain, cached key", \
     "{native}" with linespoints lw 2 title "(c) native filters + Lua"
"#,
        png = png.display(),
        bare = w("bare"),
        wasm = w("wasm-key"),
        native = w("native-key"),
    );
    let mut gp = Command::new("gnuplot")
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run gnuplot")?;
    std::io::Write::write_all(
        gp.stdin.as_mut().context("gnuplot stdin")?,
        script.as_bytes(),
    )?;
    if !gp.wait()?.success() {
        bail!("bench: gnuplot failed");
    }
    println!("wrote {}", png.display());
    Ok(())
}

/// A wrk script cycling through `clients` (key, body), one per request.
fn clients_lua(list: &Path) -> String {
    format!(
        r#"local clients = {{}}
for line in io.lines("{}") do
  local key, body = line:match("^(%S+)\t(.*)$")
  clients[#clients + 1] = {{ key, body }}
end
local i = 0
request = function()
  i = i % #clients + 1
  return wrk.format("POST", nil, {{ ["X-API-Key"] = clients[i][1], ["Content-Type"] = "application/json" }}, clients[i][2])
end
"#,
        list.display()
    )
}

/// Scaling of wasm-key: workers, distinct clients, body sizes.
fn scale(b: &Bench, s: &Settings, db_url: &str) -> Result<()> {
    println!();
    println!(
        "== scaling of wasm-key ({} interleaved rounds of {}s)",
        s.scale_rounds, s.seconds
    );
    // 100 and 10 000 distinct clients: keys written straight into the
    // stack's database, one body per client.
    for n in [100, 10_000] {
        let clients = super::db::insert_clients(db_url, n)?;
        let list: String = clients
            .iter()
            .map(|(key, client)| {
                let body = pad(&BODY.replace("\"test123\"", &format!("\"{client}\"")), 200);
                format!("{key}\t{body}\n")
            })
            .collect();
        let txt = b.work.join(format!("clients-{n}.txt"));
        std::fs::write(&txt, list)?;
        std::fs::write(b.work.join(format!("clients-{n}.lua")), clients_lua(&txt))?;
    }
    for size in [2048, 8192] {
        std::fs::write(
            b.work.join(format!("body-{size}.lua")),
            post_lua(&pad(BODY, size), &[lua_header("X-API-Key", &b.key)]),
        )?;
    }
    let key = b.work.join("key.lua");
    let c100 = b.work.join("clients-100.lua");
    let c10k = b.work.join("clients-10000.lua");
    let b2k = b.work.join("body-2048.lua");
    let b8k = b.work.join("body-8192.lua");
    let both = "workers={} (Envoy and wrk share both CPUs)";
    let mut runs = Vec::new();
    for _ in 0..s.scale_rounds {
        for w in [1, 2] {
            let label = both.replace("{}", &w.to_string());
            runs.push(b.measure(&label, "wasm-key", &key, w, "0,1", "0,1", None)?);
        }
        for (label, v, lua, warm) in [
            ("clients=1", "wasm-key", &key, None),
            ("clients=100", "wasm-key", &c100, Some(&c100)),
            ("clients=10000", "wasm-key", &c10k, Some(&c10k)),
            ("body=200 B", "wasm-key", &key, None),
            ("body=2 KiB", "wasm-key", &b2k, None),
            ("body=8 KiB", "wasm-key", &b8k, None),
            ("body=8 KiB, bare", "bare", &b8k, None),
        ] {
            runs.push(b.measure(label, v, lua, 1, "0", "1", warm.map(PathBuf::as_path))?);
        }
    }
    print!("{}", scale_table(&runs));
    Ok(())
}

fn scale_table(runs: &[Run]) -> String {
    let mut out = String::from(
        "\n| wasm-key, case | req/s (median) | µs/request | non-2xx |\n|---|---|---|---|\n",
    );
    for v in first_seen(runs.iter().map(|r| r.label.as_str())) {
        let m = median(runs.iter().filter(|r| r.label == v).map(|r| r.rps));
        let bad: u64 = runs
            .iter()
            .filter(|r| r.label == v)
            .map(|r| r.non_2xx)
            .sum();
        out.push_str(&format!(
            "| {v} | {} | {:.1} | {bad} |\n",
            thousands(m),
            1e6 / m
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, rps: f64) -> Run {
        Run {
            label: label.into(),
            rps,
            non_2xx: 0,
        }
    }

    #[test]
    fn the_chain_table_compares_with_bare_and_native() {
        let runs = [
            run("bare", 12000.0),
            run("wasm-key", 6000.0),
            run("native-key", 8000.0),
            run("bare", 12096.0),
            run("wasm-key", 6100.0),
            run("native-key", 8000.0),
        ];
        let t = chain_table(&runs);
        assert!(
            t.contains("| bare | 12,048 | 83.0 | 0.0 | 100% | 0 |"),
            "{t}"
        );
        assert!(
            t.contains("| wasm-key | 6,050 | 165.3 | 82.3 | 50% | 0 |"),
            "{t}"
        );
        assert!(t.contains("wasm-key / native-key throughput: 0.76  (target ≥ 1.00); wasm-key / bare: 0.50 (target ≥ 0.60)"), "{t}");
    }

    #[test]
    fn pairs_report_the_median_difference_per_request() {
        let r = |cpu_a, cpu_b| PairRun {
            a: "wasm-key".into(),
            b: "bare".into(),
            requests: (1000, 2000),
            cpu_us: (cpu_a, cpu_b),
            non_2xx: 1,
        };
        let t = pairs_table(&[
            r(100_000, 100_000),
            r(120_000, 100_000),
            r(110_000, 100_000),
        ]);
        assert!(
            t.contains("| wasm-key | bare | 110.0 | 50.0 | +60.0 | 0.45 | 3 |"),
            "{t}"
        );
    }

    #[test]
    fn stats_are_read_chunked_or_not() {
        assert_eq!(stat_value("cluster.x.upstream_rq_total: 12\n"), Some(12));
        assert_eq!(
            stat_value("31\r\ncluster.x.upstream_rq_total: 7\n\r\n0\r\n\r\n"),
            Some(7)
        );
        assert_eq!(stat_value(""), None);
    }

    #[test]
    fn the_twin_listens_on_other_ports() {
        let y = "a:\n  port_value: 8100\nb:\n  port_value: 9911\nc:\n  port_value: 8102\nd:\n  port_value: 81000\n";
        assert_eq!(
            twin_config(y),
            "a:\n  port_value: 8200\nb:\n  port_value: 9921\nc:\n  port_value: 8202\nd:\n  port_value: 81000\n"
        );
    }
}
