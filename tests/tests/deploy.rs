//! Deployment artifacts, checked offline (no Docker engine, no cluster):
//! each check of `cargo xtask check-deploy` as one test (called through the
//! xtask library), and every Istio `WasmPlugin` configuration of every
//! rendered overlay (`kubectl kustomize deploy/overlays/<name>`) parsed by
//! the filters' own configuration code, so a typo in a manifest fails the
//! build; and the gateway pods' `gateway-metrics` container, as rendered,
//! run against a real Envoy.
//!
//! Tools: promtool and docker-compose (Debian packages `prometheus`,
//! `docker-compose`), kubectl (renders the overlays), kubernetes-validate
//! (PyPI, in `.venv`), Envoy
//! (`.venv/bin/envoy`); the Envoy check needs the filters built (`make wasm`).

use std::path::PathBuf;
use std::process::Command;

use e2e::config::{cluster, http_listener, router_config, ADMIN_PORT, LISTENER_PORT};
use e2e::{repo_root, wasm_dir};
use filter_core::auth::Settings;
use filter_core::metrics::MetricsConfig;
use filter_core::validation::ValidationConfig;
use serde_json::Value;
use xtask::check_deploy::{self, Check, Ctx};

fn check(section: Check) {
    let mut ctx = Ctx::new(&repo_root()).expect("scratch directory");
    ctx.wasm_dir = wasm_dir();
    if let Err(e) = check_deploy::run_in(&ctx, &[section]) {
        panic!("cargo xtask check-deploy {section:?} failed:\n{e:#}");
    }
}

/// One test for each named check of `cargo xtask check-deploy`.
macro_rules! check_deploy_tests {
    ($($test:ident: $section:ident,)*) => {$(
        #[test]
        fn $test() {
            check(Check::$section);
        }
    )*};
}

check_deploy_tests! {
    every_alert_fires_above_its_runbook_threshold_and_stays_silent_below_it: Alerts,
    every_dashboard_query_parses_and_names_only_metrics_the_gateway_exports: Dashboards,
    compose_file_is_accepted_and_agrees_with_the_rendered_envoy_config: Compose,
    envoy_accepts_the_compose_shaped_config: Envoy,
    kubernetes_manifests_validate_and_meet_the_deployment_requirements: Kubernetes,
    images_are_multi_stage_non_root_and_build_every_binary_the_manifests_run: Images,
}

/// The YAML documents of a manifest file, as JSON values.
fn yaml_documents(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            let doc: Value = serde_norway::from_str(&current)
                .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
            if !doc.is_null() {
                docs.push(doc);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

/// The overlays of deploy/overlays (dev, production, ...).
fn overlays() -> Vec<String> {
    let dir = repo_root().join("deploy/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.iter().any(|n| n == "production") && names.iter().any(|n| n == "dev"),
        "deploy/overlays must hold dev and production, found {names:?}"
    );
    names
}

/// The YAML documents `kubectl kustomize deploy/overlays/<overlay>`
/// renders, as JSON values (what `kubectl apply -k` would send).
fn rendered(overlay: &str) -> Vec<Value> {
    let root = repo_root();
    // kubectl on PATH, else the one `make pytools` installs into .venv.
    let on_path = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    let kubectl = if on_path {
        PathBuf::from("kubectl")
    } else {
        root.join(".venv/bin/kubectl")
    };
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(root.join("deploy/overlays").join(overlay))
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl kustomize (kubectl is needed): {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/overlays/{overlay} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::env::temp_dir().join(format!("deploy-rs-{}-{overlay}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    let docs = yaml_documents(&file);
    let _ = std::fs::remove_dir_all(&dir);
    docs
}

/// The gateway's Deployment (`borrow-rate-gateway`) as `overlay` renders it.
fn gateway_deployment(overlay: &str) -> Value {
    rendered(overlay)
        .into_iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "borrow-rate-gateway")
        .unwrap_or_else(|| panic!("{overlay}: no Deployment borrow-rate-gateway"))
}

/// (overlay/name, url, pluginConfig) of every WasmPlugin of every rendered
/// overlay.
fn wasm_plugins() -> Vec<(String, String, Value)> {
    let mut plugins = Vec::new();
    for overlay in overlays() {
        for d in rendered(&overlay) {
            if d["kind"] != "WasmPlugin" {
                continue;
            }
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            let url = d["spec"]["url"].as_str().unwrap_or_default().to_owned();
            plugins.push((
                format!("{overlay}/{name}"),
                url,
                d["spec"]["pluginConfig"].clone(),
            ));
        }
    }
    plugins
}

/// Runs the filter's own configuration parsing (what `on_configure` does)
/// on a plugin configuration; the filter is chosen by the image name.
fn configure(url: &str, config: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(config).map_err(|e| e.to_string())?;
    if url.contains("/auth-filter:") {
        Settings::from_json(&bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else if url.contains("/validation-filter:") {
        ValidationConfig::parse(&bytes).map(|_| ())
    } else if url.contains("/metrics-filter:") {
        MetricsConfig::parse(&bytes).map(|_| ())
    } else {
        Err(format!("{url} is not one of the gateway's filter images"))
    }
}

#[test]
fn every_wasm_plugin_config_is_accepted_by_its_filter() {
    let plugins = wasm_plugins();
    for image in ["/auth-filter:", "/validation-filter:", "/metrics-filter:"] {
        assert!(
            plugins.iter().any(|(_, url, _)| url.contains(image)),
            "no WasmPlugin loads {image}"
        );
    }
    for (name, url, config) in &plugins {
        assert!(
            config.as_object().is_some_and(|o| !o.is_empty()),
            "WasmPlugin {name}: pluginConfig is missing or empty"
        );
        if let Err(e) = configure(url, config) {
            panic!("WasmPlugin {name}: the filter rejects its pluginConfig: {e}");
        }
    }
}

#[test]
fn a_misspelled_field_in_a_wasm_plugin_config_is_rejected_naming_the_field() {
    for (name, url, config) in wasm_plugins() {
        let object = config.as_object().cloned().unwrap_or_default();
        for field in object.keys() {
            let mut typo = object.clone();
            let value = typo.remove(field).unwrap_or(Value::Null);
            let misspelled = format!("{field}_typo");
            typo.insert(misspelled.clone(), value);
            match configure(&url, &Value::Object(typo)) {
                Ok(()) => panic!("WasmPlugin {name}: `{misspelled}` was accepted"),
                Err(e) => assert!(
                    e.contains(&misspelled),
                    "WasmPlugin {name}: the error does not name `{misspelled}`: {e}"
                ),
            }
        }
    }
}

#[test]
fn rate_limit_files_of_compose_and_kubernetes_are_accepted_by_the_rate_limit_service() {
    let root = repo_root();
    let compose = root.join("deploy/compose/ratelimit-limits.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    if let Err(e) =
        ratelimit::limits::LimitsFile::parse(&text, "deploy/compose/ratelimit-limits.yaml")
    {
        panic!("{e}");
    }
    let config = root.join("deploy/base/kubernetes/config.yaml");
    let limits = yaml_documents(&config)
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "ratelimit-limits")
        .expect("ConfigMap ratelimit-limits in deploy/base/kubernetes/config.yaml");
    let text = limits["data"]["limits.yaml"]
        .as_str()
        .expect("ratelimit-limits has data.limits.yaml");
    if let Err(e) = ratelimit::limits::LimitsFile::parse(text, "ConfigMap ratelimit-limits") {
        panic!("{e}");
    }
    let typo = text.replace("requests_per_unit", "requests_per_units");
    assert_ne!(typo, text, "the ConfigMap carries a rate_limit");
    assert!(
        ratelimit::limits::LimitsFile::parse(&typo, "typo").is_err(),
        "a misspelled limits field must be rejected"
    );
}

#[test]
fn the_istio_shape_routes_the_docs_page_files_and_lets_exactly_them_through_without_a_credential() {
    let (_, _, config) = wasm_plugins()
        .into_iter()
        .find(|(_, url, _)| url.contains("/auth-filter:"))
        .expect("auth filter WasmPlugin");
    let settings = Settings::from_json(&serde_json::to_vec(&config).unwrap()).unwrap();
    let files = ops_service::docs_page::ASSETS.map(|f| format!("/docs/{f}"));
    for path in ["/docs", "/docs/"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
    {
        assert!(settings.is_public_path(path), "{path} should be public");
    }
    for path in ["/docs/nope.js", "/docs/index.html", "/docs/a/b"] {
        assert!(
            !settings.is_public_path(path),
            "{path} should need a credential"
        );
    }
    let gateway =
        std::fs::read_to_string(repo_root().join("deploy/base/istio/gateway.yaml")).unwrap();
    let docs_files_routed = gateway
        .split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .filter(|d| d["kind"] == "VirtualService")
        .flat_map(|d| d["spec"]["http"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["route"].is_array())
        .flat_map(|r| r["match"].as_array().cloned().unwrap_or_default())
        .any(|m| m["uri"]["prefix"] == "/docs/");
    assert!(docs_files_routed, "no VirtualService route for /docs/");
}

#[test]
fn the_istio_auth_plugin_verifies_es256_with_public_keys_only() {
    let mut seen = 0;
    for (name, url, config) in wasm_plugins() {
        if !url.contains("/auth-filter:") {
            continue;
        }
        seen += 1;
        let jwt = &config["jwt"];
        assert_eq!(
            jwt["algorithm"], "ES256",
            "{name}: the Kubernetes shape signs with ES256"
        );
        assert!(
            jwt.get("secret").is_none(),
            "{name}: no shared secret in a WasmPlugin"
        );
        let keys = jwt["jwks"]["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: jwt.jwks.keys missing"));
        assert!(!keys.is_empty(), "{name}: no public key");
        for key in keys {
            assert_eq!(key["kty"], "EC", "{name}: {key}");
            assert_eq!(key["crv"], "P-256", "{name}: {key}");
            assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(
                    key.get(private).is_none(),
                    "{name}: key {} carries the private member {private}",
                    key["kid"]
                );
            }
        }
    }
    assert!(
        seen >= 2,
        "an auth WasmPlugin in every overlay, found {seen}"
    );
}

/// Envoy standing in for a gateway pod's istio-proxy: Istio's Prometheus
/// listener (`:15090`, here `{{LISTENER_PORT}}`) forwards `/stats/prometheus`
/// to the admin interface, as Istio's bootstrap does.
fn istio_prometheus_listener() -> String {
    router_config(
        &http_listener("prometheus", LISTENER_PORT, "stats"),
        r#"              - match: { prefix: "/stats/prometheus" }
                route: { cluster: prometheus_stats }"#,
        &cluster("prometheus_stats", "1s", Some(ADMIN_PORT)),
    )
}

/// The gateway pods' `gateway-metrics` container, configured exactly as each
/// overlay renders it (read by the ops service's own configuration code;
/// only the pod-local port 15090 is replaced by this Envoy's and the
/// listener moved to a free port), run as the real ops service against a
/// real Envoy: its `/metrics` carries this Envoy's families, and with
/// `OPS_BACKENDS=none` it scrapes no backend (each backend pod is scraped on
/// its own), so Envoy is its only scrape target.
#[tokio::test]
async fn the_gateway_metrics_container_reads_its_own_envoy_and_merges_no_backend() {
    let envoy = e2e::Envoy::start(&istio_prometheus_listener()).await;
    let local = format!("127.0.0.1:{}", envoy.port);
    for overlay in overlays() {
        let gateway = gateway_deployment(&overlay);
        let container = gateway["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "gateway-metrics")
            .unwrap_or_else(|| panic!("{overlay}: no gateway-metrics container"));
        let env: std::collections::BTreeMap<String, String> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
        assert_eq!(
            env.get("OPS_BACKENDS").map(String::as_str),
            Some("none"),
            "{overlay}"
        );
        let mut config = ops_service::OpsConfig::from_vars(|name| {
            env.get(name).map(|v| v.replace("127.0.0.1:15090", &local))
        })
        .unwrap_or_else(|e| panic!("{overlay}: gateway-metrics configuration: {e}"));
        assert!(
            config.backends.is_empty(),
            "{overlay}: {:?}",
            config.backends
        );
        assert_eq!(
            config.envoy_admin_url,
            format!("http://{local}"),
            "{overlay}"
        );
        config.listen_addr = "127.0.0.1:0".parse().unwrap();
        let server = ops_service::build(config).await.unwrap();
        let addr = server.local_addr();
        tokio::spawn(server.serve(std::future::pending()));
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{overlay}");
        let body = response.text().await.unwrap();
        // This Envoy's cluster statistics came through, rescaled families and all.
        assert!(
            body.lines()
                .any(|l| l.starts_with("envoy_cluster_membership_total{")),
            "{overlay}: no Envoy family in the merged /metrics:\n{body}"
        );
        // Envoy is the only target, and its scrape did not fail.
        let errors: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("ops_scrape_errors_total{"))
            .collect();
        assert_eq!(
            errors,
            vec![r#"ops_scrape_errors_total{target="envoy"} 0"#],
            "{overlay}:\n{body}"
        );
    }
}

/// One HTTP/1.1 GET over `stream`, kept alive; the answer's status and
/// headers.
async fn keep_alive_get(
    stream: &mut tokio::net::TcpStream,
    path: &str,
) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The counting upstream answers a small JSON body with content-length.
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("no answer within 5 s")
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if n == 0 || text.contains("\"upstream\":\"counting\"}") {
            break;
        }
    }
    let (status, headers, _) = e2e::parse_response(&buf);
    (status, headers)
}

/// The gateway pods' preStop hook, as every overlay renders it, run against
/// a real Envoy: it is `pilot-agent request POST <admin path>` on the
/// istio-proxy container, and that admin call makes Envoy report DRAINING
/// (readiness 503) and close a keep-alive connection after the answer in
/// flight, before SIGTERM starts the listener drain. The grace period covers
/// the drain.
#[tokio::test]
async fn the_gateway_pods_pre_stop_fails_envoys_health_check_and_closes_keep_alive_connections() {
    let mut pre_stop_paths = std::collections::BTreeSet::new();
    for overlay in overlays() {
        let gateway = gateway_deployment(&overlay);
        let pod = &gateway["spec"]["template"];
        let proxy = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "istio-proxy")
            .unwrap_or_else(|| panic!("{overlay}: no istio-proxy container"));
        let command: Vec<&str> = proxy["lifecycle"]["preStop"]["exec"]["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{overlay}: istio-proxy has no preStop exec hook"))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            command[..command.len().min(3)],
            ["pilot-agent", "request", "POST"],
            "{overlay}: the preStop hook must call Envoy's admin API through pilot-agent: {command:?}"
        );
        assert_eq!(command.len(), 4, "{overlay}: {command:?}");
        pre_stop_paths.insert(command[3].to_owned());
        // The drain after the hook fits in the grace period, with room.
        let config = pod["metadata"]["annotations"]["proxy.istio.io/config"]
            .as_str()
            .unwrap_or_default();
        let drain: u64 = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationDrainDuration:"))
            .and_then(|v| v.trim().trim_end_matches('s').parse().ok())
            .unwrap_or_else(|| panic!("{overlay}: no terminationDrainDuration in {config:?}"));
        let grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace >= drain + 10,
            "{overlay}: grace {grace} s < drain {drain} s + 10"
        );
    }

    let upstream = e2e::CountingUpstream::start().await;
    let hooks = pre_stop_paths.len();
    for path in pre_stop_paths {
        let envoy = e2e::Envoy::start(&e2e::plain_proxy_config(upstream.port)).await;
        let ready = |envoy: &e2e::Envoy| {
            reqwest::get(format!("http://127.0.0.1:{}/ready", envoy.admin_port))
        };
        let before = ready(&envoy).await.unwrap();
        assert_eq!(before.status(), 200);
        assert_eq!(before.text().await.unwrap().trim(), "LIVE");

        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", envoy.port))
            .await
            .unwrap();
        let (status, headers) = keep_alive_get(&mut conn, "/first").await;
        assert_eq!(status, 200);
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k == "connection" && v == "close"),
            "a live Envoy kept the connection open: {headers:?}"
        );

        // What `pilot-agent request POST <path>` sends: a POST to the admin API.
        let hook = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/{}",
                envoy.admin_port,
                path.trim_start_matches('/')
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(hook.status(), 200, "POST {path} on Envoy's admin API");

        let after = ready(&envoy).await.unwrap();
        assert_eq!(after.status(), 503, "readiness after the preStop hook");
        assert_eq!(after.text().await.unwrap().trim(), "DRAINING");
        // The request in flight on the open connection is answered, and the
        // connection is closed after it.
        let (status, headers) = keep_alive_get(&mut conn, "/second").await;
        assert_eq!(status, 200, "the request after the hook is still served");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "connection" && v == "close"),
            "after the preStop hook Envoy must close keep-alive connections: {headers:?}"
        );
    }
    assert_eq!(upstream.count(), 2 * hooks);
}

/// deploy/schemas/generate.py (the CRD schema generator, Python because it
/// reads cloudcoil's models) is tested by its own unittest file, which needs
/// no cloudcoil: its strictness rule and that every vendored schema is what
/// the rule leaves.
#[test]
fn the_crd_schema_generator_s_own_tests_pass() {
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "deploy/schemas",
            "-p",
            "test_*.py",
        ])
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "deploy/schemas/test_generate.py:\n{stderr}"
    );
    assert!(
        stderr.contains("Ran ") && !stderr.contains("Ran 0 tests"),
        "no test found: {stderr}"
    );
}
