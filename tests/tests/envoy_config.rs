//! The rendered Envoy configuration: every shape and switch combination is
//! accepted by `envoy --mode validate`, and the properties the gateway
//! promises (filter order, safe retries, resilient clusters, loopback admin,
//! no drift between shapes) hold in the rendered text.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use e2e::{envoy_validate, repo_root, wasm_file};

const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// Variables the renderer reads from the environment; cleared so a
/// developer's shell cannot change what a test renders.
const RENDER_ENV: &[&str] = &[
    "ENABLE_AUTHENTICATION",
    "ENABLE_RATE_LIMITING",
    "CORS_ORIGINS",
    "SLOW_REQUEST_MS",
    "JWT_SECRET_KEY",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_FAILURE_MODE",
    "RATE_LIMIT_TIMEOUT_MS",
    "LOCAL_RATE_LIMIT_BURST",
    "LOCAL_RATE_LIMIT_PER_SECOND",
    "UPSTREAM_MAX_CONNECTIONS",
    "UPSTREAM_MAX_PENDING_REQUESTS",
    "UPSTREAM_MAX_REQUESTS",
    "UPSTREAM_MAX_RETRIES",
    "HEALTH_CHECK_INTERVAL_MS",
    "MAX_DOWNSTREAM_CONNECTIONS",
    "DATA_SERVICE_URL",
    "CALCULATION_SERVICE_URL",
];

fn render(args: &[&str], sets: &[(&str, &str)]) -> Result<String, String> {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("envoy/render.py"))
        .args(["--out", "-"])
        .args(args);
    for var in RENDER_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in sets {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out = cmd.output().map_err(|e| format!("python3: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn render_ok(args: &[&str], sets: &[(&str, &str)]) -> String {
    render(args, sets).unwrap_or_else(|e| panic!("render {args:?} {sets:?} failed: {e}"))
}

/// A self-signed certificate made by scripts/gen-cert.sh, once per run.
fn cert_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gateway-config-certs-{}", std::process::id()));
        let status = Command::new(repo_root().join("scripts/gen-cert.sh"))
            .arg(&dir)
            .status()
            .expect("scripts/gen-cert.sh runs");
        assert!(status.success(), "scripts/gen-cert.sh failed");
        dir
    })
    .clone()
}

fn wasm_dir() -> PathBuf {
    let auth = wasm_file("auth_filter");
    wasm_file("validation_filter");
    wasm_file("metrics_filter");
    auth.parent().expect("wasm dir").to_path_buf()
}

/// The names of the public listener's HTTP filters, in order.
fn http_filter_names(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "http_filters:")
        .expect("an http_filters list");
    let indent = lines[start].len() - lines[start].trim_start().len();
    let mut names = Vec::new();
    for l in &lines[start + 1..] {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let i = l.len() - t.len();
        if i < indent || (i == indent && !t.starts_with("- ")) {
            break;
        }
        if i == indent {
            if let Some(name) = t.strip_prefix("- name: ") {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

/// The text of the route whose `name:` line is `- name: <name>` and whose
/// block holds `needle` (the first such route).
fn route_block(yaml: &str, name: &str, needle: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() != format!("- name: {name}") {
            continue;
        }
        let indent = l.len() - l.trim_start().len();
        let mut block = vec![*l];
        for m in &lines[i + 1..] {
            let t = m.trim_start();
            let j = m.len() - t.len();
            if !t.is_empty() && j <= indent {
                break;
            }
            block.push(m);
        }
        let block = block.join("\n");
        if block.contains(needle) {
            return block;
        }
    }
    panic!("no route {name} containing {needle}");
}

/// The text of one cluster definition.
fn cluster_block(yaml: &str, name: &str) -> String {
    let clusters = &yaml[yaml.find("\n  clusters:").expect("clusters")..];
    let start = clusters
        .find(&format!("  - name: {name}\n"))
        .unwrap_or_else(|| panic!("no cluster {name}"));
    let rest = &clusters[start + 4..];
    let end = rest.find("\n  - name: ").unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn every_rendered_variant_passes_envoy_validate() {
    let wasm = wasm_dir().display().to_string();
    let certs = cert_dir().display().to_string();
    let mut variants = Vec::new();
    for shape in ["local", "compose"] {
        for tls in ["on", "off"] {
            for auth in ["true", "false"] {
                for rl in ["true", "false"] {
                    variants.push((shape, tls, auth, rl));
                }
            }
        }
    }
    assert_eq!(variants.len(), 16);
    // Loading the filters in V8 dominates: validate two variants at a time.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = variants
            .chunks(8)
            .map(|chunk| {
                let (wasm, certs) = (&wasm, &certs);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for &(shape, tls, auth, rl) in chunk {
                        let yaml = render_ok(
                            &[
                                "--shape",
                                shape,
                                "--tls",
                                tls,
                                "--wasm-dir",
                                wasm,
                                "--cert-dir",
                                certs,
                            ],
                            &[
                                ("ENABLE_AUTHENTICATION", auth),
                                ("ENABLE_RATE_LIMITING", rl),
                                ("JWT_SECRET_KEY", SECRET),
                                ("CORS_ORIGINS", "https://app.example.com"),
                            ],
                        );
                        assert!(!yaml.contains("/etc/envoy"), "paths overridden");
                        // The auth filter holds a request's body by pausing
                        // its headers (it has no body callback): a filter
                        // allowed to stop only the headers would let the
                        // body run ahead of the key's verification.
                        assert!(
                            !yaml.contains("allow_on_headers_stop_iteration"),
                            "a plugin may pause the headers alone"
                        );
                        if let Err(e) = envoy_validate(&yaml) {
                            failures.push(format!(
                                "shape={shape} tls={tls} auth={auth} ratelimit={rl} rejected:\n{e}"
                            ));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("validator thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_filter_chain_runs_cors_auth_with_metrics_rate_limits_validation_buffer_router() {
    let yaml = render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("CORS_ORIGINS", "https://app.example.com"),
        ],
    );
    let names = http_filter_names(&yaml);
    assert_eq!(
        names,
        [
            "envoy.filters.http.cors",
            "auth_filter",
            "envoy.filters.http.ratelimit",
            "validation_filter",
            "envoy.filters.http.buffer",
            "envoy.filters.http.router",
        ],
        "filter order"
    );
    // No separate metrics filter: the auth filter records the metrics.
    let auth = yaml
        .split("- name: auth_filter")
        .nth(1)
        .expect("auth filter rendered");
    assert!(
        auth.split("- name: ")
            .next()
            .unwrap_or_default()
            .contains(r#"\"metrics\":{\"slow_request_ms\":500}"#),
        "the auth filter's configuration has the metrics section"
    );
}

#[test]
fn authentication_off_keeps_the_metrics_filter_first() {
    let yaml = render_ok(&["--shape", "local"], &[("ENABLE_AUTHENTICATION", "false")]);
    let names = http_filter_names(&yaml);
    assert_eq!(
        names.first().map(String::as_str),
        Some("metrics_filter"),
        "{names:?}"
    );
    assert!(
        !yaml.contains(r#"\"metrics\":{"#),
        "no auth filter to carry a metrics section"
    );
}

#[test]
fn authentication_off_drops_the_auth_filter_but_still_strips_internal_headers() {
    let yaml = render_ok(&["--shape", "local"], &[("ENABLE_AUTHENTICATION", "false")]);
    let names = http_filter_names(&yaml);
    assert!(!names.iter().any(|n| n == "auth_filter"), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n == "envoy.filters.http.header_mutation"),
        "{names:?}"
    );
    for h in [
        "x-client-id",
        "x-client-scopes",
        "x-auth-method",
        "x-client-rate-limit",
        "x-client-tier",
        "x-api-key-id",
    ] {
        assert!(yaml.contains(&format!("- remove: {h}")), "{h} not stripped");
    }
    // No secret is needed (or rendered) when authentication is off.
    assert!(
        !yaml.contains("\\\"secret\\\""),
        "jwt secret rendered with auth off"
    );
}

#[test]
fn rate_limiting_off_drops_both_rate_limit_filters_and_the_rls_cluster() {
    let on = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    let off = render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("ENABLE_RATE_LIMITING", "false"),
        ],
    );
    assert!(on.contains("- name: rate_limit_service"));
    assert!(!off.contains("- name: rate_limit_service"));
    let names = http_filter_names(&off);
    assert!(!names.iter().any(|n| n.contains("ratelimit")), "{names:?}");
}

#[test]
fn cors_is_absent_unless_origins_are_configured_and_then_exact() {
    let none = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    assert!(!none.contains("envoy.filters.http.cors"));
    let some = render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            (
                "CORS_ORIGINS",
                "https://a.example.com, http://localhost:3000",
            ),
        ],
    );
    assert!(some.contains(r#"- { exact: "https://a.example.com" }"#));
    assert!(some.contains(r#"- { exact: "http://localhost:3000" }"#));
    assert!(
        !some.contains(r#"regex: ".*""#),
        "no wildcard unless asked for"
    );
}

#[test]
fn the_renderer_refuses_unsafe_or_malformed_settings() {
    let short = render(&["--shape", "local"], &[("JWT_SECRET_KEY", "short")]);
    assert!(
        short.as_ref().is_err_and(|e| e.contains("JWT_SECRET_KEY")),
        "{short:?}"
    );
    let cors = render(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("CORS_ORIGINS", "javascript:alert(1)"),
        ],
    );
    assert!(
        cors.as_ref().is_err_and(|e| e.contains("CORS_ORIGINS")),
        "{cors:?}"
    );
    let flag = render(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("ENABLE_RATE_LIMITING", "maybe"),
        ],
    );
    assert!(
        flag.as_ref()
            .is_err_and(|e| e.contains("ENABLE_RATE_LIMITING")),
        "{flag:?}"
    );
    let slow = render(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET), ("SLOW_REQUEST_MS", "-5")],
    );
    assert!(
        slow.as_ref().is_err_and(|e| e.contains("SLOW_REQUEST_MS")),
        "{slow:?}"
    );
}

#[test]
fn a_calculation_is_retried_only_when_it_never_reached_a_backend() {
    let yaml = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    let post = route_block(
        &yaml,
        "/api/v1/calculate-locate",
        "cluster: calculation_service",
    );
    assert!(
        post.contains("retry_on: connect-failure,refused-stream\n"),
        "{post}"
    );
    let get = route_block(&yaml, "/api/v1/rates/{ticker}", "cluster: data_service");
    assert!(
        get.contains("retry_on: connect-failure,refused-stream,reset,5xx"),
        "{get}"
    );
    assert!(get.contains("per_try_timeout"), "{get}");
    // No other route retries on 5xx: only the GET of rates does.
    assert_eq!(
        yaml.matches(",5xx").count(),
        2,
        "one 5xx retry per listener"
    );
}

#[test]
fn every_backend_cluster_has_timeouts_breakers_budget_outlier_detection_and_health_checks() {
    let yaml = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    for cluster in [
        "data_service",
        "calculation_service",
        "auth_service",
        "ops_service",
        "rate_limit_service",
    ] {
        let c = cluster_block(&yaml, cluster);
        for needle in [
            "connect_timeout:",
            "circuit_breakers:",
            "retry_budget:",
            "outlier_detection:",
            "http_health_check:",
            "path: /health",
            "per_connection_buffer_limit_bytes:",
        ] {
            assert!(c.contains(needle), "{cluster} lacks {needle}:\n{c}");
        }
    }
    let rls = cluster_block(&yaml, "rate_limit_service");
    assert!(rls.contains("http2_protocol_options"), "RLS speaks gRPC");
    assert!(
        rls.contains("health_check_config: { port_value: 8091 }"),
        "{rls}"
    );
}

#[test]
fn the_admin_interface_listens_on_loopback_in_every_shape() {
    for shape in ["local", "compose"] {
        let yaml = render_ok(&["--shape", shape], &[("JWT_SECRET_KEY", SECRET)]);
        let admin = &yaml[yaml.find("\nadmin:").expect("admin")..];
        let admin = &admin[..admin.find("\n\n").unwrap_or(admin.len())];
        assert!(admin.contains("address: 127.0.0.1"), "{shape}: {admin}");
    }
}

#[test]
fn edge_hardening_settings_are_in_every_listener() {
    let yaml = render_ok(
        &["--shape", "compose", "--tls", "on"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    for needle in [
        "use_remote_address: true",
        "xff_num_trusted_hops: 0",
        "normalize_path: true",
        "merge_slashes: true",
        "path_with_escaped_slashes_action: REJECT_REQUEST",
        "headers_with_underscores_action: REJECT_REQUEST",
        "max_request_headers_kb: 32",
        "request_headers_timeout:",
    ] {
        assert_eq!(
            yaml.matches(needle).count(),
            2,
            "{needle} on both public listeners"
        );
    }
    assert_eq!(
        yaml.matches("tls_minimum_protocol_version: TLSv1_2")
            .count(),
        1
    );
    assert_eq!(
        yaml.matches("key: strict-transport-security").count(),
        1,
        "HSTS on TLS only"
    );
    let plain = render_ok(
        &["--shape", "compose", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    assert!(!plain.contains("DownstreamTlsContext"));
}

#[test]
fn local_and_compose_shapes_differ_only_in_addresses_and_paths() {
    let local = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    let compose = render_ok(&["--shape", "compose"], &[("JWT_SECRET_KEY", SECRET)]);
    // Strip what legitimately differs: addresses, file paths, the cluster
    // type that follows from DNS names, the node id and the compose-only
    // stats listener. Everything else must be byte-identical.
    fn normalise(s: &str) -> String {
        let s: String = s
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let s = match (s.find("  - name: internal_admin"), s.find("\n  clusters:")) {
            (Some(a), Some(b)) => format!("{}{}", &s[..a], &s[b + 1..]),
            _ => s.to_string(),
        };
        let s = match s.find("  - name: envoy_admin\n") {
            Some(a) => s[..a].to_string(),
            None => s,
        };
        s.lines()
            .map(|l| {
                if l.contains("filename:") {
                    "FILENAME".to_string()
                } else if l.contains("socket_address:") {
                    let port = l.split("port_value: ").nth(1).unwrap_or("");
                    format!("ADDRESS {port}")
                } else if l.contains("type: STATIC") || l.contains("type: STRICT_DNS") {
                    "TYPE".to_string()
                } else if l.starts_with("  id: gateway-") {
                    "NODE".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
    let (l, c) = (normalise(&local), normalise(&compose));
    if l != c {
        let diff: Vec<String> = l
            .lines()
            .zip(c.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("local:   {a}\ncompose: {b}"))
            .collect();
        panic!("shapes drifted:\n{}", diff.join("\n"));
    }
    assert!(
        compose.contains("address: data-service"),
        "compose uses service names"
    );
    assert!(local.contains("address: 127.0.0.1, port_value: 8081"));
}

#[test]
fn plugin_configurations_follow_the_environment() {
    let yaml = render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET), ("SLOW_REQUEST_MS", "750")],
    );
    assert!(
        yaml.contains(r#"\"slow_request_ms\":750"#),
        "SLOW_REQUEST_MS reaches the metrics recording (in the auth filter)"
    );
    assert!(
        yaml.contains(&format!(r#"\"secret\":\"{SECRET}\""#)),
        "JWT_SECRET_KEY reaches the auth filter"
    );
}

#[test]
fn the_docs_page_files_are_routed_to_the_ops_service_and_exactly_they_are_public() {
    // One listener (TLS off), so one copy of the auth filter's settings.
    let yaml = render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    let route = route_block(&yaml, "/docs/{file}", "cluster: ops_service");
    assert!(route.contains("prefix: /docs/"), "{route}");
    for file in ops_service::docs_page::ASSETS {
        assert!(
            yaml.contains(&format!(r#"\"/docs/{file}\""#)),
            "/docs/{file} is not a public path of the auth filter"
        );
    }
    assert_eq!(
        yaml.matches(r#"\"/docs/"#).count(),
        ops_service::docs_page::ASSETS.len() + 1,
        "public: /docs/ and the page's files, nothing else under /docs/"
    );
}

#[test]
fn the_per_instance_bucket_is_the_auth_filters_own_sized_from_each_keys_limit() {
    let yaml = render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET), ("RATE_LIMIT_PER_MINUTE", "120")],
    );
    assert!(
        !yaml.contains("envoy.filters.http.local_ratelimit"),
        "no fixed-size Envoy bucket: it would cap every key above its size"
    );
    assert!(
        yaml.contains(r#"\"local_rate_limit\":{\"default_per_minute\":120}"#),
        "keys without their own limit get RATE_LIMIT_PER_MINUTE in the auth filter's bucket"
    );
    envoy_validate(&yaml).unwrap_or_else(|e| panic!("rejected: {e}"));
    // Rate limiting off: no bucket either.
    let off = render_ok(
        &["--shape", "local", "--tls", "off"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("ENABLE_RATE_LIMITING", "false"),
        ],
    );
    assert!(!off.contains("local_rate_limit"));
    // The variables of the fixed bucket are ignored with a warning, never
    // half-applied.
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("envoy/render.py"))
        .args(["--out", "-", "--shape", "local", "--tls", "off"])
        .args(["--set", &format!("JWT_SECRET_KEY={SECRET}")])
        .args(["--set", "LOCAL_RATE_LIMIT_BURST=600"]);
    for var in RENDER_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOCAL_RATE_LIMIT_BURST is ignored"),
        "{stderr}"
    );
    let plain = render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), plain);
}

#[test]
fn per_route_descriptors_name_each_api_route_with_the_client() {
    let yaml = render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    for (route, prefix) in [
        ("rates", "/api/v1/rates/"),
        ("calculate-locate", "/api/v1/calculate-locate"),
        ("auth-token", "/api/v1/auth/token"),
    ] {
        assert!(
            yaml.contains(&format!("descriptor_value: {route}")),
            "no route descriptor for {route}"
        );
        assert!(yaml.contains(&format!("prefix: {prefix} }}")), "{prefix}");
    }
    assert!(
        yaml.contains("header_name: x-client-tier, descriptor_key: tier"),
        "per-tier descriptor"
    );
}

#[test]
fn service_url_variables_move_the_data_and_calculation_clusters_in_the_local_shape() {
    let args = ["--shape", "local", "--no-wasm", "--tls", "off"];
    let default = render_ok(&args, &[]);
    assert!(
        cluster_block(&default, "data_service").contains("address: 127.0.0.1, port_value: 8081")
    );
    assert!(cluster_block(&default, "calculation_service")
        .contains("address: 127.0.0.1, port_value: 8082"));

    let moved = render_ok(
        &args,
        &[
            ("DATA_SERVICE_URL", "http://10.1.2.3:9081"),
            ("CALCULATION_SERVICE_URL", "http://10.1.2.4:9082/"),
        ],
    );
    assert!(cluster_block(&moved, "data_service").contains("address: 10.1.2.3, port_value: 9081"));
    assert!(cluster_block(&moved, "calculation_service")
        .contains("address: 10.1.2.4, port_value: 9082"));
    envoy_validate(&moved).unwrap_or_else(|e| panic!("moved services rejected: {e}"));

    // The compose shape keeps the compose service names (.env.example's
    // loopback URLs describe make run, not the compose network).
    let compose = render_ok(
        &["--shape", "compose", "--no-wasm", "--tls", "off"],
        &[("DATA_SERVICE_URL", "http://127.0.0.1:8081")],
    );
    assert!(
        cluster_block(&compose, "data_service").contains("address: data-service, port_value: 8081")
    );

    for bad in [
        "10.1.2.3:9081",
        "https://data:8081",
        "http://data:99999",
        "http://data:81/x",
    ] {
        let err = render(&args, &[("DATA_SERVICE_URL", bad)]).expect_err(bad);
        assert!(err.contains("DATA_SERVICE_URL"), "{bad}: {err}");
    }
}

/// The export names of a wasm module (its export section).
fn wasm_exports(module: &[u8]) -> Vec<String> {
    fn leb(data: &[u8], pos: &mut usize) -> usize {
        let (mut result, mut shift) = (0usize, 0);
        loop {
            let byte = data[*pos];
            *pos += 1;
            result |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return result;
            }
        }
    }
    assert_eq!(&module[..4], b"\0asm", "not a wasm module");
    let (mut pos, mut names) = (8, Vec::new());
    while pos < module.len() {
        let id = module[pos];
        pos += 1;
        let size = leb(module, &mut pos);
        let end = pos + size;
        if id == 7 {
            let mut p = pos;
            for _ in 0..leb(module, &mut p) {
                let len = leb(module, &mut p);
                names.push(String::from_utf8_lossy(&module[p..p + len]).into_owned());
                p += len + 1;
                leb(module, &mut p);
            }
        }
        pos = end;
    }
    names
}

/// The SDK trait methods behind each proxy-wasm callback export.
const CALLBACK_METHODS: &[(&str, &[&str])] = &[
    ("proxy_on_log", &["on_log"]),
    ("proxy_on_done", &["on_done"]),
    ("proxy_on_tick", &["on_tick"]),
    ("proxy_on_queue_ready", &["on_queue_ready"]),
    ("proxy_on_foreign_function", &["on_foreign_function"]),
    ("proxy_on_new_connection", &["on_new_connection"]),
    ("proxy_on_downstream_data", &["on_downstream_data"]),
    (
        "proxy_on_downstream_connection_close",
        &["on_downstream_close"],
    ),
    ("proxy_on_upstream_data", &["on_upstream_data"]),
    ("proxy_on_upstream_connection_close", &["on_upstream_close"]),
    ("proxy_on_request_body", &["on_http_request_body"]),
    ("proxy_on_request_trailers", &["on_http_request_trailers"]),
    ("proxy_on_response_headers", &["on_http_response_headers"]),
    ("proxy_on_response_body", &["on_http_response_body"]),
    ("proxy_on_response_trailers", &["on_http_response_trailers"]),
    ("proxy_on_http_call_response", &["on_http_call_response"]),
    (
        "proxy_on_grpc_receive_initial_metadata",
        &["on_grpc_stream_initial_metadata"],
    ),
    (
        "proxy_on_grpc_receive",
        &["on_grpc_call_response", "on_grpc_stream_message"],
    ),
    (
        "proxy_on_grpc_receive_trailing_metadata",
        &["on_grpc_stream_trailing_metadata"],
    ),
    ("proxy_on_grpc_close", &["on_grpc_stream_close"]),
];

/// `DROP_<filter>` of the Makefile, with `$(NOT_NETWORK)` expanded.
fn dropped_callbacks(filter: &str) -> Vec<String> {
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).unwrap();
    let joined = makefile.replace("\\\n", " ");
    let variable = |name: &str| -> String {
        joined
            .lines()
            .find_map(|l| {
                let (lhs, rhs) = l.split_once(":=")?;
                (lhs.trim() == name).then(|| rhs.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("Makefile has no {name}"))
    };
    variable(&format!("DROP_{filter}"))
        .replace("$(NOT_NETWORK)", &variable("NOT_NETWORK"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_built_filters_export_no_callback_they_leave_to_the_sdk_and_implement_every_one_they_keep() {
    for (filter, dir) in [
        ("auth_filter", "auth"),
        ("validation_filter", "validation"),
        ("metrics_filter", "metrics"),
    ] {
        let dropped = dropped_callbacks(filter);
        assert!(
            dropped.iter().any(|d| d == "proxy_on_response_headers"),
            "{filter}: the Makefile's drop list looks unparsed: {dropped:?}"
        );
        let glue =
            std::fs::read_to_string(repo_root().join(format!("filters/{dir}/src/lib.rs"))).unwrap();
        for export in &dropped {
            let methods = CALLBACK_METHODS
                .iter()
                .find(|(e, _)| e == export)
                .unwrap_or_else(|| panic!("{filter}: unknown callback {export} in the Makefile"))
                .1;
            for method in methods {
                assert!(
                    !glue.contains(&format!("fn {method}(")),
                    "{filter} implements {method}, but the Makefile drops {export}: \
                     Envoy would never call it"
                );
            }
        }
        let exports = wasm_exports(&std::fs::read(wasm_file(filter)).unwrap());
        for export in &dropped {
            assert!(
                !exports.contains(export),
                "{filter}.wasm still exports {export}: build it with `make wasm`"
            );
        }
        for kept in [
            "proxy_on_context_create",
            "proxy_on_request_headers",
            "proxy_on_delete",
        ] {
            assert!(
                exports.iter().any(|e| e == kept),
                "{filter}.wasm lost {kept}"
            );
        }
    }
}
