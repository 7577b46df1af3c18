//! The rendered Envoy configuration (gateway-config): every shape and
//! switch combination is accepted by `envoy --mode validate`, and the
//! properties the gateway promises (filter order, safe retries, resilient
//! clusters, loopback admin, no drift between shapes) hold in the rendered
//! configuration, read back as YAML.

use std::path::PathBuf;

use e2e::{envoy_validate, repo_root, wasm_file};
use gateway_config::{Options, Shape};
use serde_json::Value;

mod filter_chain;
mod listeners_clusters;
mod routes_plugins;
mod wasm_exports;

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

/// The configuration for `args` with only the JWT secret set, parsed.
fn rendered(args: &[&str]) -> Value {
    parsed(&render_ok(args, &[("JWT_SECRET_KEY", SECRET)]))
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
    let certs = e2e::gateway_cert_dir().display().to_string();
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
