//! The rendered Envoy configuration (gateway-config): every shape and
//! switch combination is accepted by `envoy --mode validate`, and the
//! properties the gateway promises (filter order, safe retries, resilient
//! clusters, loopback admin, no drift between shapes) hold in the rendered
//! configuration, read back as YAML.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use e2e::{envoy_validate, repo_root, wasm_file};
use gateway_config::{Options, Shape};
use serde_json::Value;

const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// Renders with the command line's options (`--shape`, `--tls`, `--wasm-dir`,
/// `--cert-dir`, `--no-wasm`) and exactly the variables in `sets` (never
/// the test process's own environment); the YAML, or the error.
fn render(args: &[&str], sets: &[(&str, &str)]) -> Result<String, String> {
    let mut options = Options::new(Shape::Local);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().map(|v| v.to_string()).unwrap_or_default();
        match *arg {
            "--shape" => {
                options.shape = match value().as_str() {
                    "compose" => Shape::Compose,
                    _ => Shape::Local,
                };
            }
            "--tls" => options.tls = value() == "on",
            "--wasm-dir" => options.wasm_dir = Some(value()),
            "--cert-dir" => options.cert_dir = Some(value()),
            "--no-wasm" => options.no_wasm = true,
            other => panic!("render: unknown option {other}"),
        }
    }
    let env = sets
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    gateway_config::render(&options, &env)
        .map(|(yaml, _)| yaml)
        .map_err(|e| e.to_string())
}

fn render_ok(args: &[&str], sets: &[(&str, &str)]) -> String {
    render(args, sets).unwrap_or_else(|e| panic!("render {args:?} {sets:?} failed: {e}"))
}

/// The rendered configuration, parsed.
fn parsed(yaml: &str) -> Value {
    serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("rendered YAML: {e}"))
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

/// The public listeners' HTTP connection managers (plain, then TLS).
fn public_hcms(v: &Value) -> Vec<&Value> {
    v["static_resources"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["name"].as_str().is_some_and(|n| n.starts_with("public_")))
        .map(|l| &l["filter_chains"][0]["filters"][0]["typed_config"])
        .collect()
}

/// The names of the public listener's HTTP filters, in order.
fn http_filter_names(v: &Value) -> Vec<String> {
    public_hcms(v)[0]["http_filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect()
}

/// The plugin configuration (JSON) of the wasm filter `name`, if rendered.
fn plugin_config(v: &Value, name: &str) -> Option<Value> {
    public_hcms(v)[0]["http_filters"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["typed_config"]["config"]["configuration"]["value"].as_str())
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// The public routes (of the first public listener).
fn routes(v: &Value) -> Vec<Value> {
    public_hcms(v)[0]["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The route named `name` that goes to `cluster`.
fn route(v: &Value, name: &str, cluster: &str) -> Value {
    routes(v)
        .into_iter()
        .find(|r| r["name"] == name && r["route"]["cluster"] == cluster)
        .unwrap_or_else(|| panic!("no route {name} to {cluster}"))
}

/// One cluster definition.
fn cluster(v: &Value, name: &str) -> Value {
    v["static_resources"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

/// `address:port` of each endpoint of a cluster.
fn endpoints(c: &Value) -> Vec<String> {
    c["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let a = &e["endpoint"]["address"]["socket_address"];
            format!(
                "{}:{}",
                a["address"].as_str().unwrap_or_default(),
                a["port_value"]
            )
        })
        .collect()
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
                    for tracing in ["", "http://127.0.0.1:4317"] {
                        variants.push((shape, tls, auth, rl, tracing));
                    }
                }
            }
        }
    }
    assert_eq!(variants.len(), 32);
    // Loading the filters in V8 dominates: validate two variants at a time.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = variants
            .chunks(16)
            .map(|chunk| {
                let (wasm, certs) = (&wasm, &certs);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for &(shape, tls, auth, rl, tracing) in chunk {
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
                                ("OTEL_EXPORTER_OTLP_ENDPOINT", tracing),
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
                                "shape={shape} tls={tls} auth={auth} ratelimit={rl} tracing={tracing:?} rejected:\n{e}"
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
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("CORS_ORIGINS", "https://app.example.com"),
        ],
    ));
    assert_eq!(
        http_filter_names(&v),
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
    let auth = plugin_config(&v, "auth_filter").expect("auth filter rendered");
    assert_eq!(
        auth["metrics"],
        serde_json::json!({"slow_request_ms": 500}),
        "the auth filter's configuration has the metrics section"
    );
}

#[test]
fn authentication_off_keeps_the_metrics_filter_first() {
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[("ENABLE_AUTHENTICATION", "false")],
    ));
    let names = http_filter_names(&v);
    assert_eq!(
        names.first().map(String::as_str),
        Some("metrics_filter"),
        "{names:?}"
    );
    assert_eq!(
        plugin_config(&v, "metrics_filter"),
        Some(serde_json::json!({"slow_request_ms": 500}))
    );
    assert!(plugin_config(&v, "auth_filter").is_none());
}

#[test]
fn authentication_off_drops_the_auth_filter_but_still_strips_internal_headers() {
    let yaml = render_ok(&["--shape", "local"], &[("ENABLE_AUTHENTICATION", "false")]);
    let v = parsed(&yaml);
    let names = http_filter_names(&v);
    assert!(!names.iter().any(|n| n == "auth_filter"), "{names:?}");
    let mutation = public_hcms(&v)[0]["http_filters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "envoy.filters.http.header_mutation")
        .cloned()
        .unwrap_or_else(|| panic!("{names:?}"));
    let removed: Vec<&str> = mutation["typed_config"]["mutations"]["request_mutations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["remove"].as_str())
        .collect();
    assert_eq!(
        removed,
        [
            "x-client-id",
            "x-client-scopes",
            "x-auth-method",
            "x-client-rate-limit",
            "x-client-tier",
            "x-api-key-id",
        ]
    );
    // No secret is needed (or rendered) when authentication is off.
    assert!(
        !yaml.contains("secret"),
        "jwt secret rendered with auth off"
    );
}

#[test]
fn rate_limiting_off_drops_both_rate_limit_filters_and_the_rls_cluster() {
    let on = parsed(&render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    let off = parsed(&render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("ENABLE_RATE_LIMITING", "false"),
        ],
    ));
    let cluster_names = |v: &Value| -> Vec<String> {
        v["static_resources"]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(cluster_names(&on).iter().any(|n| n == "rate_limit_service"));
    assert!(!cluster_names(&off)
        .iter()
        .any(|n| n == "rate_limit_service"));
    let names = http_filter_names(&off);
    assert!(!names.iter().any(|n| n.contains("ratelimit")), "{names:?}");
    assert!(plugin_config(&off, "auth_filter").is_some_and(|c| c.get("local_rate_limit").is_none()));
}

#[test]
fn cors_is_absent_unless_origins_are_configured_and_then_exact() {
    let none = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    assert!(!none.contains("envoy.filters.http.cors"));
    let some = parsed(&render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            (
                "CORS_ORIGINS",
                "https://a.example.com, http://localhost:3000",
            ),
        ],
    ));
    let policy = &public_hcms(&some)[0]["route_config"]["virtual_hosts"][0]
        ["typed_per_filter_config"]["envoy.filters.http.cors"];
    assert_eq!(
        policy["allow_origin_string_match"],
        serde_json::json!([{"exact": "https://a.example.com"}, {"exact": "http://localhost:3000"}]),
        "exact origins, no wildcard unless asked for"
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
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    let post = route(&v, "/api/v1/calculate-locate", "calculation_service");
    assert_eq!(
        post["route"]["retry_policy"]["retry_on"],
        "connect-failure,refused-stream"
    );
    let get = route(&v, "/api/v1/rates/{ticker}", "data_service");
    let policy = &get["route"]["retry_policy"];
    assert_eq!(
        policy["retry_on"],
        "connect-failure,refused-stream,reset,5xx"
    );
    assert!(policy.get("per_try_timeout").is_some(), "{get}");
    // No other route retries on 5xx: only the GET of rates does.
    let on_5xx: Vec<String> = routes(&v)
        .iter()
        .filter(|r| {
            r["route"]["retry_policy"]["retry_on"]
                .as_str()
                .is_some_and(|s| s.contains("5xx"))
        })
        .map(|r| r["name"].to_string())
        .collect();
    assert_eq!(on_5xx, [r#""/api/v1/rates/{ticker}""#]);
}

#[test]
fn every_backend_cluster_has_timeouts_breakers_budget_outlier_detection_and_health_checks() {
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    for name in [
        "data_service",
        "calculation_service",
        "auth_service",
        "ops_service",
        "rate_limit_service",
    ] {
        let c = cluster(&v, name);
        for present in [
            &c["connect_timeout"],
            &c["circuit_breakers"]["thresholds"][0]["retry_budget"],
            &c["outlier_detection"],
            &c["per_connection_buffer_limit_bytes"],
        ] {
            assert!(!present.is_null(), "{name} lacks a setting:\n{c}");
        }
        assert_eq!(
            c["health_checks"][0]["http_health_check"]["path"],
            "/health"
        );
    }
    let rls = cluster(&v, "rate_limit_service");
    assert!(
        rls.to_string().contains("http2_protocol_options"),
        "RLS speaks gRPC"
    );
    assert_eq!(
        rls["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["health_check_config"]["port_value"],
        8091
    );
}

#[test]
fn the_admin_interface_listens_on_loopback_in_every_shape() {
    for shape in ["local", "compose"] {
        let v = parsed(&render_ok(
            &["--shape", shape],
            &[("JWT_SECRET_KEY", SECRET)],
        ));
        assert_eq!(
            v["admin"]["address"]["socket_address"]["address"], "127.0.0.1",
            "{shape}"
        );
    }
}

#[test]
fn edge_hardening_settings_are_in_every_listener() {
    let v = parsed(&render_ok(
        &["--shape", "compose", "--tls", "on"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    let hcms = public_hcms(&v);
    assert_eq!(hcms.len(), 2, "plain and TLS listeners");
    for hcm in &hcms {
        assert_eq!(hcm["use_remote_address"], true);
        assert_eq!(hcm["xff_num_trusted_hops"], 0);
        assert_eq!(hcm["normalize_path"], true);
        assert_eq!(hcm["merge_slashes"], true);
        assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
        assert_eq!(
            hcm["common_http_protocol_options"]["headers_with_underscores_action"],
            "REJECT_REQUEST"
        );
        assert_eq!(hcm["max_request_headers_kb"], 32);
        assert!(hcm["request_headers_timeout"].is_string());
    }
    let hsts = |hcm: &Value| {
        hcm["route_config"]["response_headers_to_add"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["header"]["key"] == "strict-transport-security")
    };
    assert!(!hsts(hcms[0]) && hsts(hcms[1]), "HSTS on TLS only");
    let tls = &v["static_resources"]["listeners"][1]["filter_chains"][0]["transport_socket"]
        ["typed_config"]["common_tls_context"]["tls_params"];
    assert_eq!(tls["tls_minimum_protocol_version"], "TLSv1_2");
    let plain = render_ok(
        &["--shape", "compose", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    assert!(!plain.contains("DownstreamTlsContext"));
}

#[test]
fn local_and_compose_shapes_differ_only_in_addresses_and_paths() {
    let local = parsed(&render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    let compose = parsed(&render_ok(
        &["--shape", "compose"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    // Blank out what legitimately differs: addresses, file paths, the
    // cluster type that follows from DNS names, the node id and the
    // compose-only admin listener and cluster. Everything else must be
    // equal.
    fn normalise(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, x)| x["name"] != "internal_admin" && x["name"] != "envoy_admin")
                    .map(|(k, x)| {
                        let x = match k.as_str() {
                            "address" if x.is_string() => Value::Null,
                            "filename" | "type" | "id" if x.is_string() => Value::Null,
                            _ => normalise(x),
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .filter(|x| x["name"] != "internal_admin" && x["name"] != "envoy_admin")
                    .map(normalise)
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    assert_eq!(normalise(&local), normalise(&compose), "shapes drifted");
    assert_eq!(
        endpoints(&cluster(&compose, "data_service")),
        ["data-service:8081"]
    );
    assert_eq!(
        endpoints(&cluster(&local, "data_service")),
        ["127.0.0.1:8081"]
    );
}

#[test]
fn plugin_configurations_follow_the_environment() {
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET), ("SLOW_REQUEST_MS", "750")],
    ));
    let auth = plugin_config(&v, "auth_filter").expect("auth filter");
    assert_eq!(
        auth["metrics"]["slow_request_ms"], 750,
        "SLOW_REQUEST_MS reaches the metrics recording (in the auth filter)"
    );
    assert_eq!(
        auth["jwt"]["secret"], SECRET,
        "JWT_SECRET_KEY reaches the auth filter"
    );
}

#[test]
fn the_docs_page_files_are_routed_to_the_ops_service_and_exactly_they_are_public() {
    let v = parsed(&render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    let docs = route(&v, "/docs/{file}", "ops_service");
    assert_eq!(docs["match"]["prefix"], "/docs/");
    let public: Vec<String> = plugin_config(&v, "auth_filter").expect("auth filter")
        ["public_paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .filter(|p| p.starts_with("/docs/"))
        .collect();
    let mut want = vec!["/docs/".to_owned()];
    want.extend(
        ops_service::docs_page::ASSETS
            .iter()
            .map(|f| format!("/docs/{f}")),
    );
    assert_eq!(
        public, want,
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
    assert_eq!(
        plugin_config(&parsed(&yaml), "auth_filter").expect("auth filter")["local_rate_limit"],
        serde_json::json!({"default_per_minute": 120}),
        "keys without their own limit get RATE_LIMIT_PER_MINUTE in the auth filter's bucket"
    );
    envoy_validate(&yaml).unwrap_or_else(|e| panic!("rejected: {e}"));
    // The variables of the fixed bucket are ignored with a warning, never
    // half-applied.
    let mut env: std::collections::BTreeMap<String, String> = [
        ("JWT_SECRET_KEY", SECRET),
        ("LOCAL_RATE_LIMIT_BURST", "600"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let mut options = Options::new(Shape::Local);
    options.tls = false;
    let (with, warnings) = gateway_config::render(&options, &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("LOCAL_RATE_LIMIT_BURST is ignored")),
        "{warnings:?}"
    );
    env.remove("LOCAL_RATE_LIMIT_BURST");
    let (plain, _) = gateway_config::render(&options, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(with, plain);
}

#[test]
fn per_route_descriptors_name_each_api_route_with_the_client() {
    let v = parsed(&render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    ));
    let limits = public_hcms(&v)[0]["route_config"]["virtual_hosts"][0]["rate_limits"].clone();
    let actions: Vec<Value> = limits
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["actions"].clone())
        .collect();
    for (route, prefix) in [
        ("rates", "/api/v1/rates/"),
        ("calculate-locate", "/api/v1/calculate-locate"),
        ("auth-token", "/api/v1/auth/token"),
    ] {
        assert!(
            actions.iter().any(|a| {
                let m = &a[0]["header_value_match"];
                m["descriptor_value"] == route
                    && m["headers"][0]["string_match"]["prefix"] == prefix
                    && a[1]["request_headers"]["descriptor_key"] == "client_id"
            }),
            "no route descriptor for {route}: {limits}"
        );
    }
    assert!(
        actions.iter().any(|a| {
            a[0]["request_headers"]
                == serde_json::json!({"header_name": "x-client-tier", "descriptor_key": "tier"})
        }),
        "per-tier descriptor"
    );
}

#[test]
fn service_url_variables_move_the_data_and_calculation_clusters_in_the_local_shape() {
    let args = ["--shape", "local", "--no-wasm", "--tls", "off"];
    let default = parsed(&render_ok(&args, &[]));
    assert_eq!(
        endpoints(&cluster(&default, "data_service")),
        ["127.0.0.1:8081"]
    );
    assert_eq!(
        endpoints(&cluster(&default, "calculation_service")),
        ["127.0.0.1:8082"]
    );

    let moved_yaml = render_ok(
        &args,
        &[
            ("DATA_SERVICE_URL", "http://10.1.2.3:9081"),
            ("CALCULATION_SERVICE_URL", "http://10.1.2.4:9082/"),
        ],
    );
    let moved = parsed(&moved_yaml);
    assert_eq!(
        endpoints(&cluster(&moved, "data_service")),
        ["10.1.2.3:9081"]
    );
    assert_eq!(
        endpoints(&cluster(&moved, "calculation_service")),
        ["10.1.2.4:9082"]
    );
    envoy_validate(&moved_yaml).unwrap_or_else(|e| panic!("moved services rejected: {e}"));

    // The compose shape keeps the compose service names (.env.example's
    // loopback URLs describe make run, not the compose network).
    let compose = parsed(&render_ok(
        &["--shape", "compose", "--no-wasm", "--tls", "off"],
        &[("DATA_SERVICE_URL", "http://127.0.0.1:8081")],
    ));
    assert_eq!(
        endpoints(&cluster(&compose, "data_service")),
        ["data-service:8081"]
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
