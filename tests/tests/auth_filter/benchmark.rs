//! The auth filter's added cost per request against bare Envoy (ignored
//! by default: minutes of saturated load).

use super::*;

/// The filter config rendered with a direct response instead of the
/// upstream, optionally without the wasm filter (bare Envoy).
fn bench_yaml(plugin_config: &Value, auth_port: u16, with_filter: bool) -> String {
    bench_yaml_with(
        plugin_config,
        auth_port,
        with_filter,
        &wasm_file("auth_filter"),
    )
}

/// [`bench_yaml`] with the filter loaded from `wasm`. With `BENCH_PROXIED=1`
/// the route goes to an upstream instead: a second listener of the same
/// Envoy answering with the direct response (every case pays the same
/// proxy hop, and the metrics record their backend series).
fn bench_yaml_with(
    plugin_config: &Value,
    auth_port: u16,
    with_filter: bool,
    wasm: &std::path::Path,
) -> String {
    let yaml = if std::env::var("BENCH_PROXIED").is_ok_and(|v| v == "1") {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        envoy_yaml_with(plugin_config, port, auth_port, wasm).replacen(
            "  clusters:\n",
            &format!("{}  clusters:\n", bench_upstream_listener(port)),
            1,
        )
    } else {
        envoy_yaml_with(plugin_config, auth_port, auth_port, wasm).replace(
            "route: { cluster: upstream }",
            r#"direct_response: { status: 200, body: { inline_string: "{\"status\":\"success\"}" } }"#,
        )
    };
    if with_filter {
        return yaml;
    }
    let start = yaml
        .find("          - name: envoy.filters.http.wasm")
        .unwrap();
    let end = yaml
        .find("          - name: envoy.filters.http.router")
        .unwrap();
    format!("{}{}", &yaml[..start], &yaml[end..])
}

/// A listener answering every request with the benchmark's direct response.
fn bench_upstream_listener(port: u16) -> String {
    format!(
        r#"{listener}
{virtual_host}
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "{{\"status\":\"success\"}}" }} }}
          http_filters:
{ROUTER}
"#,
        listener = http_listener("bench_upstream", &port.to_string(), "bench_upstream"),
        virtual_host = virtual_host("all")
    )
}

/// CPU time used so far by the process `pid` (all threads), nanoseconds
/// (kernel clock ticks of 10 ms: a run of a few seconds reads it to <1 %).
fn cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5).
    (ticks(11) + ticks(12)) * 10_000_000
}

/// One `wrk` run pinned to CPU 1 against the Envoy process `pid`: requests
/// per second, and Envoy CPU time per request in µs (unlike the rate, the
/// CPU time is barely moved by other processes competing for the core).
fn wrk(
    url: &str,
    pid: u32,
    header: Option<&str>,
    script: Option<&std::path::Path>,
    seconds: u32,
) -> (f64, f64) {
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1", "-c16", &format!("-d{seconds}s")]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let cpu_before = cpu_ns(pid);
    let out = cmd.arg(url).output().expect("wrk");
    let cpu = cpu_ns(pid) - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "errors during the run:\n{text}");
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in:\n{text}"));
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{text}"));
    (rps, cpu as f64 / 1000.0 / requests)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pin_to_cpu0(pid: u32) {
    let _ = std::process::Command::new("taskset")
        .args(["-cp", "0", &pid.to_string()])
        .output();
}

/// A wrk script sending a different bearer token from `tokens` each request,
/// so (with 16 cache slots) nearly every request verifies a signature.
fn token_script(tokens: &[String]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "auth-bench-{}-{}.lua",
        std::process::id(),
        tokens.len() + tokens[0].len()
    ));
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    let script = format!(
        "local tokens = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  return wrk.format(nil, nil, {{[\"Authorization\"] = \"Bearer \" .. tokens[i]}})\nend\n",
        list.join(",")
    );
    std::fs::write(&path, script).unwrap();
    path
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Added cost per request of the auth filter against bare Envoy: one Envoy
/// worker pinned to CPU 0, wrk on CPU 1, interleaved rounds, medians.
/// Run with `cargo test -p e2e --release --test auth_filter -- --ignored --nocapture`.
/// `BENCH_COMPARE_WASM=label=/path/a.wasm,label2=/path/b.wasm` adds other
/// builds of the filter (public path, cached key, cached JWT) to the same
/// interleaved rounds, for before/after figures under the same load.
/// `BENCH_METRICS=1` adds the filter recording the metrics (also for each
/// compared build); `BENCH_PROXIED=1` routes to an upstream instead of a
/// direct response (see [`bench_yaml_with`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes of saturated load"]
async fn benchmark_added_cost_per_request() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (auth, state) = start_auth_service("bench", hs256()).await;
    let (es_auth, _) = start_auth_service("bench-es", es256()).await;
    let jwks = jwks_of(&es_auth).await;
    let (key, _) = create_key(&state, "test123", None).await;
    let hs_config = json!({"cache": {"positive_ttl_seconds": 60, "slots": 16},
                           "jwt": {"algorithm": "HS256", "secret": SECRET}});
    let es_config = json!({"cache": {"slots": 16}, "jwt": {"algorithm": "ES256", "jwks": jwks}});
    let bare = Envoy::start(&bench_yaml(&hs_config, auth.addr.port(), false)).await;
    let hs = Envoy::start(&bench_yaml(&hs_config, auth.addr.port(), true)).await;
    let es = Envoy::start(&bench_yaml(&es_config, es_auth.addr.port(), true)).await;
    for e in [&bare, &hs, &es] {
        pin_to_cpu0(e.pid());
    }
    let mut others: Vec<(String, Envoy)> = Vec::new();
    let compare = std::env::var("BENCH_COMPARE_WASM").unwrap_or_default();
    let compare: Vec<(&str, &str)> = compare
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|spec| spec.split_once('=').unwrap_or((spec, spec)))
        .collect();
    for (label, file) in &compare {
        let yaml = bench_yaml_with(&hs_config, auth.addr.port(), true, file.as_ref());
        let envoy = Envoy::start(&yaml).await;
        pin_to_cpu0(envoy.pid());
        others.push(((*label).to_owned(), envoy));
    }
    // BENCH_METRICS=1: what recording the SPEC §8 metrics adds, in the auth
    // filter itself (its `metrics` section, as the gateway runs it) and as
    // a separate metrics filter in front of it.
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "1") {
        let mut with_metrics = hs_config.clone();
        with_metrics["metrics"] = json!({});
        let inside = Envoy::start(&bench_yaml(&with_metrics, auth.addr.port(), true)).await;
        let filter = bench_yaml(&hs_config, auth.addr.port(), true).replacen(
            "          - name: envoy.filters.http.wasm",
            &format!(
                "{}\n          - name: envoy.filters.http.wasm",
                wasm_filter("metrics_filter", "{}").trim_start_matches('\n')
            ),
            1,
        );
        let separate = Envoy::start(&filter).await;
        for (label, envoy) in [("metrics in auth", inside), ("+ metrics filter", separate)] {
            pin_to_cpu0(envoy.pid());
            others.push((label.to_owned(), envoy));
        }
        // The compared builds recording the metrics too.
        for (label, file) in &compare {
            let yaml = bench_yaml_with(&with_metrics, auth.addr.port(), true, file.as_ref());
            let envoy = Envoy::start(&yaml).await;
            pin_to_cpu0(envoy.pid());
            others.push((format!("{label}, metrics in auth"), envoy));
        }
    }
    let token = hs_token(&claims("test123", now() + 3600));
    let hs_tokens: Vec<String> = (0..500)
        .map(|i| hs_token(&claims(&format!("c{i}"), now() + 3600)))
        .collect();
    let der = STANDARD.decode(EC_DER_B64).unwrap();
    let es_key = EncodingKey::from_ec_der(&der);
    let mut es_header = Header::new(Algorithm::ES256);
    es_header.kid = Some("k1".into());
    let es_tokens: Vec<String> = (0..500)
        .map(|i| encode(&es_header, &claims(&format!("c{i}"), now() + 3600), &es_key).unwrap())
        .collect();
    let hs_script = token_script(&hs_tokens);
    let es_script = token_script(&es_tokens);
    let key_header = format!("x-api-key: {key}");
    let jwt_header = format!("authorization: Bearer {token}");
    let path = "/api/v1/rates/AAPL";
    // Warm the caches (and check every variant answers 200).
    let client = reqwest::Client::new();
    let mut warm = vec![&hs];
    warm.extend(others.iter().map(|(_, e)| e));
    for (e, h) in warm.iter().flat_map(|e| {
        [
            (*e, ("x-api-key", key.as_str())),
            (
                *e,
                ("authorization", jwt_header.split_once(": ").unwrap().1),
            ),
        ]
    }) {
        let status = client
            .get(e.url(path))
            .header(h.0, h.1)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    let rss_before = (rss_kib(bare.pid()), rss_kib(hs.pid()));
    // Each case is compared with bare Envoy serving the same request (a
    // long `Authorization` header costs Envoy's codec too).
    // (case, index of its bare baseline, (req/s, CPU µs/request) per round)
    type Case = (String, usize, Vec<(f64, f64)>);
    let mut results: Vec<Case> = [
        ("bare Envoy", 0),
        ("bare Envoy, X-API-Key header", 1),
        ("bare Envoy, bearer header", 2),
        ("filter, public path", 0),
        ("cached API key", 1),
        ("cached HS256 JWT", 2),
        ("uncached HS256 JWT", 2),
        ("uncached ES256 JWT", 2),
    ]
    .iter()
    .map(|(name, base)| ((*name).to_owned(), *base, vec![]))
    .collect();
    for (label, _) in &others {
        for (case, base) in [
            ("public path", 0),
            ("cached API key", 1),
            ("cached HS256 JWT", 2),
        ] {
            results.push((format!("[{label}] {case}"), base, vec![]));
        }
    }
    for _ in 0..rounds {
        let mut runs = vec![
            wrk(&bare.url(path), bare.pid(), None, None, seconds),
            wrk(
                &bare.url(path),
                bare.pid(),
                Some(&key_header),
                None,
                seconds,
            ),
            wrk(
                &bare.url(path),
                bare.pid(),
                Some(&jwt_header),
                None,
                seconds,
            ),
            wrk(&hs.url("/health"), hs.pid(), None, None, seconds),
            wrk(&hs.url(path), hs.pid(), Some(&key_header), None, seconds),
            wrk(&hs.url(path), hs.pid(), Some(&jwt_header), None, seconds),
            wrk(&hs.url(path), hs.pid(), None, Some(&hs_script), seconds),
            wrk(&es.url(path), es.pid(), None, Some(&es_script), seconds),
        ];
        for (_, e) in &others {
            runs.push(wrk(&e.url("/health"), e.pid(), None, None, seconds));
            runs.push(wrk(&e.url(path), e.pid(), Some(&key_header), None, seconds));
            runs.push(wrk(&e.url(path), e.pid(), Some(&jwt_header), None, seconds));
        }
        for (slot, rps) in results.iter_mut().zip(runs) {
            slot.2.push(rps);
        }
    }
    let rate = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.0).collect());
    let cpu = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.1).collect());
    let base: Vec<(f64, f64)> = results[..3]
        .iter()
        .map(|(_, _, runs)| (1e6 / rate(runs), cpu(runs)))
        .collect();
    println!("auth filter benchmark: {rounds} interleaved rounds of {seconds} s, medians");
    println!(
        "  {:<32} {:>9} {:>12} {:>8} {:>14} {:>8}",
        "case", "req/s", "µs/request", "added", "Envoy CPU µs", "added"
    );
    for (name, b, runs) in &results {
        let rps = rate(runs);
        let us = 1e6 / rps;
        let cpu_us = cpu(runs);
        println!(
            "  {name:<32} {rps:>9.0} {us:>12.1} {:>8.1} {cpu_us:>14.1} {:>8.1}",
            us - base[*b].0,
            cpu_us - base[*b].1
        );
    }
    println!(
        "  RSS after warm-up: bare {} KiB, with auth filter {} KiB; after load: bare {} KiB, with filter {} KiB",
        rss_before.0, rss_before.1, rss_kib(bare.pid()), rss_kib(hs.pid())
    );
    let _ = std::fs::remove_file(hs_script);
    let _ = std::fs::remove_file(es_script);
}
