//! `compose`: docker-compose config accepts docker-compose.yml; every file,
//! port and variable it references exists and agrees with the
//! compose-shaped Envoy config.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde_json::Value;

use super::{Ctx, Errors, BACKENDS, SPEC_VARS};
use crate::util::{env_file, output, pylist, read, walk, yaml_docs_str, yaml_file, View};

pub fn check(ctx: &Ctx) -> Result<&'static str> {
    let compose_bin = ctx.need("docker-compose", "apt-get install docker-compose")?;
    // The compose file as shipped (WASM_DIR here is where the checks find
    // the built filters, not a compose setting).
    let out = output(ctx.cmd(&compose_bin).env_remove("WASM_DIR").args([
        "-f",
        "docker-compose.yml",
        "config",
    ]))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{stderr}\ndocker-compose config rejects docker-compose.yml");
    }
    if !stderr.trim().is_empty() {
        bail!("{stderr}\ndocker-compose config warns (a variable without a default?)");
    }
    let compose = yaml_docs_str(
        &String::from_utf8_lossy(&out.stdout),
        "docker-compose config",
    )?
    .into_iter()
    .next()
    .unwrap_or(Value::Null);
    let rendered = ctx.tmp("envoy-compose.yaml");
    ctx.render_compose(&rendered)?;
    let version = envoy_version(ctx)?;
    let mut errors = Errors::default();
    check_compose(ctx, &compose, &rendered, &version, &mut errors)?;
    errors.finish("compose")?;
    Ok("docker-compose config, mounts, ports, variables, rendered Envoy config agree")
}

/// The release of the Envoy the tests use (`1.36.2`).
fn envoy_version(ctx: &Ctx) -> Result<String> {
    let out = output(ctx.cmd(&ctx.envoy).arg("--version"))
        .with_context(|| format!("cannot read the version of {}", ctx.envoy.display()))?;
    let re = Regex::new(r"version: [0-9a-f]*/([0-9.]*)/")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match re.captures(&text) {
        Some(m) if !m[1].is_empty() => Ok(m[1].to_owned()),
        _ => bail!("cannot read the version of {}", ctx.envoy.display()),
    }
}

fn truthy_setting(v: &str) -> bool {
    ["1", "true", "yes", "on"].contains(&v.to_lowercase().as_str())
}

/// `path` relative to `root`, or None when it is outside.
fn relative(path: &Path, root: &Path) -> Option<String> {
    path.strip_prefix(root).ok().map(|p| {
        let s = p.to_string_lossy().into_owned();
        if s.is_empty() {
            ".".into()
        } else {
            s
        }
    })
}

struct Compose<'a> {
    svcs: &'a serde_json::Map<String, Value>,
}

impl Compose<'_> {
    fn svc(&self, name: &str) -> &Value {
        self.svcs.get(name).unwrap_or(&Value::Null)
    }

    /// The port a service listens on by its `var` (`0.0.0.0:8081`), which
    /// must be all interfaces.
    fn listen_port(&self, svc: &str, var: &str, errors: &mut Errors) -> Option<u64> {
        let v = self.svc(svc)["environment"][var].text();
        if !self.svc(svc)["environment"][var].truthy() {
            return None;
        }
        let (host, port) = v.rsplit_once(':').unwrap_or(("", &v));
        if host != "0.0.0.0" && host != "[::]" {
            errors.push(format!(
                "{svc}: {var}={v} must listen on all interfaces inside its container"
            ));
        }
        match port.parse() {
            Ok(p) => Some(p),
            Err(_) => {
                errors.push(format!("{svc}: {var}={v} has no port"));
                None
            }
        }
    }

    fn exposed(&self, svc: &str) -> BTreeSet<u64> {
        self.svc(svc)["expose"]
            .a()
            .iter()
            .filter_map(|p| p.text().split('/').next().and_then(|s| s.parse().ok()))
            .collect()
    }
}

fn port_of(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn check_compose(
    ctx: &Ctx,
    compose: &Value,
    rendered_path: &Path,
    envoy_version: &str,
    errors: &mut Errors,
) -> Result<()> {
    let root = &ctx.root;
    let envoy = yaml_file(rendered_path)?;
    let raw = yaml_file(&ctx.path("docker-compose.yml"))?;
    let svcs = compose["services"].o();
    let c = Compose { svcs };
    for b in BACKENDS
        .iter()
        .chain(&["envoy", "postgres", "redis", "prometheus", "grafana"])
    {
        if !svcs.contains_key(*b) {
            errors.push(format!("service {b} missing"));
        }
    }
    if !errors.is_empty() {
        return Ok(());
    }

    // --- the env file: every SPEC §9 variable.
    let env_name =
        relative(&ctx.env_file, root).unwrap_or_else(|| ctx.env_file.display().to_string());
    let env: BTreeMap<String, String> = env_file(&ctx.env_file)?.into_iter().collect();
    for v in SPEC_VARS {
        if !env.contains_key(*v) {
            errors.push(format!("{env_name} does not define {v} (SPEC §9)"));
        }
    }
    for b in BACKENDS {
        if !raw["services"][b]["env_file"].truthy() && !raw["x-backend"]["env_file"].truthy() {
            errors.push(format!("{b}: does not read the env file"));
        }
    }

    // --- files referenced by bind mounts exist (or are produced by a
    // make target).
    let generated: BTreeMap<&str, &str> = [
        ("envoy/rendered/compose.yaml", "envoy/gateway-config"),
        ("certs", "xtask/src/cert.rs"),
        ("target/wasm32-wasip1/release", "filters"),
    ]
    .into_iter()
    .collect();
    let mut mounts: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (name, s) in svcs {
        let m = mounts.entry(name.clone()).or_default();
        for v in s["volumes"].a() {
            let (src, dst, typ) = if v.is_object() {
                (v["source"].text(), v["target"].text(), v["type"].text())
            } else {
                let text = v.text();
                let mut parts = text.split(':');
                let src = parts.next().unwrap_or_default().to_owned();
                let dst = parts.next().unwrap_or_default().to_owned();
                let typ = if src.starts_with('/') || src.starts_with('.') {
                    "bind"
                } else {
                    "volume"
                };
                (src, dst, typ.to_owned())
            };
            if typ != "bind" {
                continue;
            }
            m.insert(dst, src.clone());
            if src == "/var/run/docker.sock" {
                continue;
            }
            let src_path = root.join(&src);
            match relative(&src_path, root) {
                None => errors.push(format!("{name}: mounts {src}, outside the repository")),
                Some(rel) if !src_path.exists() => match generated.get(rel.as_str()) {
                    None => errors.push(format!("{name}: mounts {rel}, which does not exist")),
                    Some(producer) if !ctx.path(producer).exists() => errors.push(format!(
                        "{name}: mounts {rel}, generated by {producer}, which does not exist"
                    )),
                    Some(_) => {}
                },
                Some(_) => {}
            }
        }
        let b = &s["build"];
        if b.truthy() {
            let df = if b.is_object() {
                PathBuf::from(b["context"].text()).join(
                    b.get("dockerfile")
                        .map(View::text)
                        .unwrap_or_else(|| "Dockerfile".into()),
                )
            } else {
                PathBuf::from(b.text()).join("Dockerfile")
            };
            if !root.join(&df).is_file() {
                errors.push(format!("{name}: Dockerfile {} missing", df.display()));
            }
        }
    }

    // --- scaling: no fixed host port or container name on a backend.
    for b in BACKENDS {
        let s = c.svc(b);
        if s["ports"].truthy() {
            errors.push(format!(
                "{b}: publishes host ports, so `docker-compose up --scale {b}=N` would clash"
            ));
        }
        if s["container_name"].truthy() {
            errors.push(format!("{b}: container_name prevents scaling"));
        }
        let cmd = s["command"].a();
        if cmd.is_empty() || !cmd[0].text().starts_with("/usr/local/bin/") {
            errors.push(format!(
                "{b}: command must run a binary from the backends image (/usr/local/bin/...)"
            ));
        }
    }

    // --- Envoy image version = the Envoy the tests use.
    let img = c.svc("envoy")["image"].text();
    let want = format!("envoyproxy/envoy:v{envoy_version}");
    if img != want {
        errors.push(format!("envoy image is {img}, the tests use {want}"));
    }

    // --- The rendered config's clusters name compose services on the
    // ports they listen on.
    for cl in envoy["static_resources"]["clusters"].a() {
        let cname = cl["name"].text();
        if cname == "envoy_admin" {
            continue;
        }
        let eps = cl["load_assignment"]["endpoints"][0]["lb_endpoints"].a();
        if cname == "otel_collector" {
            // the trace receiver: a compose service exposing its OTLP port
            for ep in eps {
                let sa = &ep["endpoint"]["address"]["socket_address"];
                let host = sa["address"].text();
                if !svcs.contains_key(&host)
                    || !c.exposed(&host).contains(&port_of(&sa["port_value"]))
                {
                    errors.push(format!(
                        "cluster otel_collector: {host}:{} is not an exposed compose service port",
                        sa["port_value"].text()
                    ));
                }
            }
            continue;
        }
        for ep in eps {
            let sa = &ep["endpoint"]["address"]["socket_address"];
            let host = sa["address"].text();
            let port = port_of(&sa["port_value"]);
            if !svcs.contains_key(&host) {
                errors.push(format!(
                    "cluster {cname}: endpoint host {host} is not a compose service"
                ));
                continue;
            }
            let var = if cname == "rate_limit_service" {
                "GRPC_LISTEN_ADDR"
            } else {
                "LISTEN_ADDR"
            };
            let lp = c.listen_port(&host, var, errors);
            if lp != Some(port) {
                errors.push(format!(
                    "cluster {cname}: Envoy sends to {host}:{port}, but {host} listens on {} ({var})",
                    lp.map(|p| p.to_string()).unwrap_or_else(|| "None".into())
                ));
            }
            if !c.exposed(&host).contains(&port) {
                errors.push(format!(
                    "cluster {cname}: port {port} is not in {host}'s expose list"
                ));
            }
            let hc = &ep["endpoint"]["health_check_config"]["port_value"];
            if !hc.is_null() {
                let hp = c.listen_port(&host, "LISTEN_ADDR", errors);
                if Some(port_of(hc)) != hp {
                    errors.push(format!(
                        "cluster {cname}: health checks go to port {}, {host} serves /health on {}",
                        hc.text(),
                        hp.map(|p| p.to_string()).unwrap_or_else(|| "None".into())
                    ));
                }
            }
        }
        if !["STRICT_DNS", "LOGICAL_DNS"].contains(&cl["type"].s()) {
            errors.push(format!(
                "cluster {cname}: type {}: compose needs DNS so scaled replicas are found",
                cl["type"].text()
            ));
        }
    }

    // --- Listeners: published ports and the stats listener the ops
    // service reads.
    let published: BTreeSet<u64> = c.svc("envoy")["ports"]
        .a()
        .iter()
        .map(|p| {
            if p.is_object() {
                port_of(&p["target"])
            } else {
                let t = p.text();
                let last = t.rsplit(':').next().unwrap_or_default();
                last.split('/')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or(0)
            }
        })
        .collect();
    let mut internal = Vec::new();
    let listeners = envoy["static_resources"]["listeners"].a();
    for l in listeners {
        let lname = l["name"].text();
        let sa = &l["address"]["socket_address"];
        if sa["address"] != "0.0.0.0" {
            errors.push(format!(
                "listener {lname} binds {}: unreachable from other containers",
                sa["address"].text()
            ));
        }
        let port = port_of(&sa["port_value"]);
        if lname.starts_with("public_") {
            if !published.contains(&port) {
                errors.push(format!(
                    "listener {lname} on {port} is not published by the envoy service"
                ));
            }
        } else {
            // The listener that exposes Envoy's /stats/prometheus to the
            // ops service.
            if published.contains(&port) {
                errors.push(format!(
                    "listener {lname} (internal) must not be published on the host"
                ));
            }
            internal.push((lname, port));
        }
    }
    let url = c.svc("ops-service")["environment"]["ENVOY_ADMIN_URL"].text();
    if internal.is_empty() {
        errors.push("the compose-shaped config has no internal listener for the ops service's ENVOY_ADMIN_URL");
    } else if !internal
        .iter()
        .any(|(_, p)| url == format!("http://envoy:{p}"))
    {
        errors.push(format!(
            "ops-service ENVOY_ADMIN_URL={url}, Envoy's internal listener is {internal:?}"
        ));
    }
    if !listeners.iter().any(|l| l["name"] == "public_http") {
        errors.push("the compose-shaped config has no public_http listener");
    }

    // --- Files the rendered config reads are inside the envoy service's
    // mounts.
    let text = read(rendered_path)?;
    let lib_re = Regex::new(r#"(?s)\[lib\][^\[]*?name\s*=\s*"([^"]+)""#)?;
    let mut lib_names = BTreeSet::new();
    for dir in std::fs::read_dir(ctx.path("filters"))? {
        let cargo = dir?.path().join("Cargo.toml");
        if let Ok(t) = std::fs::read_to_string(&cargo) {
            if let Some(m) = lib_re.captures(&t) {
                lib_names.insert(m[1].to_owned());
            }
        }
    }
    let envoy_mounts = mounts.get("envoy").cloned().unwrap_or_default();
    let filename_re = Regex::new(r#"filename:\s*"?([^\s"}]+)"#)?;
    let paths: BTreeSet<&str> = filename_re
        .captures_iter(&text)
        .filter_map(|m| m.get(1).map(|g| g.as_str()))
        .collect();
    let cert_producer = read(&ctx.path("xtask/src/cert.rs")).unwrap_or_default();
    for path in paths {
        let (d, f) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(host) = envoy_mounts.get(d) else {
            errors.push(format!(
                "Envoy reads {path}, but {d} is not mounted into the envoy service"
            ));
            continue;
        };
        let host = root.join(host);
        if let Some(stem) = f.strip_suffix(".wasm") {
            if !lib_names.contains(stem) {
                errors.push(format!(
                    "Envoy loads {f}, which no filters/*/Cargo.toml builds"
                ));
            }
        } else if host.is_dir() && !host.join(f).exists() {
            errors.push(format!(
                "Envoy reads {path}, missing in {}",
                relative(&host, root).unwrap_or_else(|| host.display().to_string())
            ));
        } else if !host.is_dir() && !cert_producer.contains(f) {
            errors.push(format!(
                "Envoy reads {path}; nothing in the repository produces {f}"
            ));
        }
    }
    match envoy_mounts.get("/etc/envoy/envoy.yaml") {
        None => errors.push("the rendered Envoy config is not mounted at /etc/envoy/envoy.yaml"),
        Some(src) if relative(&root.join(src), root).as_deref() != Some("envoy/rendered/compose.yaml") => {
            errors.push("the envoy service must mount envoy/rendered/compose.yaml (the gateway-config compose output)")
        }
        Some(_) => {}
    }
    if !c.svc("envoy")["command"]
        .a()
        .iter()
        .any(|a| a == "/etc/envoy/envoy.yaml")
    {
        errors.push("envoy command does not load /etc/envoy/envoy.yaml");
    }

    // --- Settings agree between the rendered config and the containers.
    let auth_env = &c.svc("auth-service")["environment"];
    let secret_re = Regex::new(r#""secret":"([^"\\]*)""#)?;
    if env
        .get("ENABLE_AUTHENTICATION")
        .is_some_and(|v| truthy_setting(v))
    {
        match secret_re.captures(&text) {
            None => errors.push("the rendered auth filter config carries no JWT secret"),
            Some(m) if auth_env["JWT_SECRET_KEY"].as_str() != Some(&m[1]) => errors.push(
                "the JWT secret in the rendered Envoy config differs from auth-service's JWT_SECRET_KEY",
            ),
            Some(_) => {}
        }
    }
    let slow_re = Regex::new(r#""slow_request_ms":(\d+)"#)?;
    if let Some(m) = slow_re.captures(&text) {
        let want = env
            .get("SLOW_REQUEST_MS")
            .map(String::as_str)
            .unwrap_or("500");
        if &m[1] != want {
            errors.push(format!(
                "rendered slow_request_ms {} differs from SLOW_REQUEST_MS {}",
                &m[1],
                env.get("SLOW_REQUEST_MS")
                    .map(String::as_str)
                    .unwrap_or("None")
            ));
        }
    }
    let url_re = Regex::new(r"^http://([a-z-]+):(\d+)$")?;
    for b in BACKENDS {
        let e = &c.svc(b)["environment"];
        for var in [
            "DATA_SERVICE_URL",
            "CALCULATION_SERVICE_URL",
            "AUTH_SERVICE_URL",
            "RATELIMIT_SERVICE_URL",
        ] {
            let u = e[var].s();
            let Some(m) = url_re.captures(u) else {
                errors.push(format!(
                    "{b}: {var}='{u}' is not http://<compose service>:<port>"
                ));
                continue;
            };
            let (h, p) = (&m[1], m[2].parse::<u64>().ok());
            if !svcs.contains_key(h) || c.listen_port(h, "LISTEN_ADDR", errors) != p {
                errors.push(format!(
                    "{b}: {var}={u} does not point at where {h} listens"
                ));
            }
        }
    }

    // --- Prometheus scrapes what exists, and loads the rules it is given.
    let pmounts = mounts.get("prometheus").cloned().unwrap_or_default();
    match pmounts.get("/etc/prometheus/prometheus.yml") {
        None => errors.push("prometheus.yml is not mounted at /etc/prometheus/prometheus.yml"),
        Some(host) => {
            let pcfg = yaml_file(&root.join(host))?;
            for rf in pcfg["rule_files"].a() {
                let inside = format!("/etc/prometheus/{}", rf.text());
                if !pmounts.contains_key(&inside) {
                    errors.push(format!("Prometheus rule file {} is not mounted", rf.text()));
                }
            }
            let jobs = pcfg["scrape_configs"].a();
            for j in jobs {
                let jname = j["job_name"].text();
                for sc in j["static_configs"].a() {
                    for t in sc["targets"].a() {
                        let t = t.text();
                        let (h, p) = t.rsplit_once(':').unwrap_or((&t, ""));
                        if h == "localhost" {
                            continue;
                        }
                        let p = p.parse::<u64>().ok();
                        let listens = svcs.contains_key(h)
                            && p.is_some()
                            && (c.listen_port(h, "LISTEN_ADDR", errors) == p
                                || c.listen_port(h, "INTERNAL_LISTEN_ADDR", errors) == p);
                        if !listens {
                            errors.push(format!(
                                "Prometheus job {jname} scrapes {t}, where nothing listens"
                            ));
                        }
                    }
                }
                for sd in j["dns_sd_configs"].a() {
                    for h in sd["names"].a() {
                        let h = h.text();
                        if !svcs.contains_key(&h)
                            || c.listen_port(&h, "LISTEN_ADDR", errors)
                                != Some(port_of(&sd["port"]))
                        {
                            errors.push(format!(
                                "Prometheus job {jname} scrapes {h}:{}, where nothing listens",
                                sd["port"].text()
                            ));
                        }
                    }
                }
            }
            if !jobs.iter().any(|j| j["job_name"] == "gateway") {
                errors.push("Prometheus has no `gateway` job (the ops service's /metrics)");
            }
        }
    }

    check_rendered_filters(&envoy, &env, errors)?;

    // --- Grafana: provisioning and dashboards mounted where the provider
    // looks.
    let gm = mounts.get("grafana").cloned().unwrap_or_default();
    match gm.get("/etc/grafana/provisioning") {
        None => errors.push("Grafana provisioning is not mounted"),
        Some(prov_dir) => {
            let prov_dir = root.join(prov_dir);
            let prov = yaml_file(&prov_dir.join("dashboards/dashboards.yml"))?;
            for p in prov["providers"].a() {
                let path = p["options"]["path"].text();
                match gm.get(&path) {
                    None => errors.push(format!(
                        "Grafana dashboard provider reads {path}, which is not mounted"
                    )),
                    Some(dir) => {
                        let any_json = std::fs::read_dir(root.join(dir))
                            .map(|rd| {
                                rd.filter_map(|e| e.ok())
                                    .any(|e| e.path().extension().is_some_and(|x| x == "json"))
                            })
                            .unwrap_or(false);
                        if !any_json {
                            errors.push(format!("no dashboards in {dir}"));
                        }
                    }
                }
            }
            let ds = yaml_file(&prov_dir.join("datasources/datasources.yml"))?;
            let host_re = Regex::new(r"^http://([a-z-]+):(\d+)")?;
            for d in ds["datasources"].a() {
                let h = host_re
                    .captures(d["url"].s())
                    .map(|m| m[1].to_owned())
                    .unwrap_or_default();
                if !svcs.contains_key(&h) {
                    errors.push(format!(
                        "Grafana data source {} points at {h}, not a compose service",
                        d["name"].text()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The rendered config hands each wasm filter a JSON configuration, and
/// has the filters the switches in `env` call for. (The Istio resources that
/// repeat the rendered config's facts — the rate-limit and local-reply
/// EnvoyFilters, the bootstrap override's stats_config, the WasmPlugins'
/// pluginConfig — are generated from the same values by
/// envoy/gateway-config, whose tests and `gateway-config istio --check`
/// fail when the checked-in files differ, so they are not compared here.)
fn check_rendered_filters(
    envoy: &Value,
    env: &BTreeMap<String, String>,
    errors: &mut Errors,
) -> Result<()> {
    let mut rendered_cfg: BTreeMap<String, Value> = BTreeMap::new();
    for n in walk(envoy) {
        let cfg = &n["typed_config"]["config"];
        if cfg.is_object() && cfg["name"].text().ends_with("_filter") && cfg.has("configuration") {
            let parsed: Value = serde_json::from_str(cfg["configuration"]["value"].s())
                .with_context(|| format!("{}: configuration is not JSON", cfg["name"].text()))?;
            rendered_cfg.insert(cfg["name"].text(), parsed);
        }
    }
    // With authentication on, the auth filter records the metrics itself
    // (its `metrics` section); the metrics filter is rendered only without
    // it.
    let mut expected = vec!["validation_filter"];
    if truthy_setting(
        env.get("ENABLE_AUTHENTICATION")
            .map(String::as_str)
            .unwrap_or("true"),
    ) {
        expected.push("auth_filter");
        if !rendered_cfg
            .get("auth_filter")
            .is_some_and(|a| a.has("metrics"))
        {
            errors.push("the rendered auth filter has no metrics section");
        }
    } else {
        expected.push("metrics_filter");
    }
    let mut lacking: Vec<&str> = expected
        .into_iter()
        .filter(|f| !rendered_cfg.contains_key(*f))
        .collect();
    lacking.sort();
    if !lacking.is_empty() {
        errors.push(format!(
            "the rendered config lacks the filters {}",
            pylist(lacking)
        ));
    }
    Ok(())
}
