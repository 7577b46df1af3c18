//! `dashboards`: every PromQL of the Grafana dashboards parses (promtool)
//! and names only exported metrics; data sources are provisioned; the logs
//! dashboard searches every SPEC §8 log message.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use regex::Regex;
use serde_json::{json, Value};

use super::promql::{metric_names, unexported};
use super::{Ctx, Errors, ALLOWED_METRICS};
use crate::util::{json_file, output, pylist, succeeded, yaml_file, View};

/// The SPEC §8 log messages the logs dashboard must search for.
const LOG_MESSAGES: [&str; 5] = [
    "Authentication error",
    "Rate limit exceeded",
    "Backend service error",
    "Validation error",
    "Slow request",
];

pub fn check(ctx: &Ctx) -> Result<&'static str> {
    let promtool = ctx.need("promtool", "apt-get install prometheus")?;
    let mut errors = Errors::default();
    let rules = collect(ctx, &mut errors)?;
    errors.finish("dashboards")?;
    let file = ctx.tmp("dashboard-rules.yml");
    let doc = json!({"groups": [{"name": "dashboards", "rules": rules}]});
    std::fs::write(&file, serde_norway::to_string(&doc)?)?;
    succeeded(
        output(ctx.cmd(&promtool).args(["check", "rules"]).arg(&file))?,
        "a dashboard PromQL expression does not parse (record name = dashboard:panel:refId)",
    )?;
    Ok("every PromQL parses and names only exported metrics")
}

/// Panels of a dashboard, the panels of its rows included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].a() {
        out.push(p);
        out.extend(p["panels"].a());
    }
    out
}

/// Checks every dashboard; returns the recording rules (one per PromQL
/// query) for promtool to parse.
fn collect(ctx: &Ctx, errors: &mut Errors) -> Result<Vec<Value>> {
    let allowed: BTreeSet<&str> = ALLOWED_METRICS.iter().copied().collect();
    let prov = yaml_file(&ctx.path("deploy/grafana/provisioning/datasources/datasources.yml"))?;
    let ds_types: BTreeMap<String, String> = prov["datasources"]
        .a()
        .iter()
        .map(|d| (d["uid"].text(), d["type"].text()))
        .collect();
    let mut files: Vec<_> = std::fs::read_dir(ctx.path("deploy/grafana/dashboards"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let present: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let missing: Vec<&str> = ["detailed", "logs", "overview", "resources"]
        .into_iter()
        .filter(|n| !present.contains(*n))
        .collect();
    if !missing.is_empty() {
        errors.push(format!("missing dashboards: {}", pylist(missing)));
    }
    let interval =
        Regex::new(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")?;
    let label_values = Regex::new(r"^label_values\((\w+),\s*(\w+)\)$")?;
    let (mut rules, mut uids, mut loki_exprs) = (Vec::new(), BTreeSet::new(), Vec::new());
    for f in &files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let d = json_file(f)?;
        let uid = d["uid"].text();
        if !uids.insert(uid.clone()) {
            errors.push(format!("{name}: duplicate uid {uid}"));
        }
        let ids: Vec<String> = panels(&d).iter().map(|p| p["id"].to_string()).collect();
        if ids.len() != ids.iter().collect::<BTreeSet<_>>().len() {
            errors.push(format!("{name}: duplicate panel ids"));
        }
        for v in d["templating"]["list"].a() {
            if v["type"] != "query" {
                continue;
            }
            let q = if v["query"].is_object() {
                v["query"]["query"].s()
            } else {
                v["query"].s()
            };
            match label_values.captures(q) {
                None => errors.push(format!(
                    "{name}: variable {}: only label_values(metric, label) is used, got '{q}'",
                    v["name"].text()
                )),
                Some(m) if !allowed.contains(&m[1]) => errors.push(format!(
                    "{name}: variable {} queries unknown metric {}",
                    v["name"].text(),
                    &m[1]
                )),
                Some(_) => {}
            }
        }
        let mut n_targets = 0;
        for p in panels(&d) {
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].text();
            for t in p["targets"].a() {
                n_targets += 1;
                let ds = if t["datasource"].truthy() {
                    &t["datasource"]["uid"]
                } else {
                    &p["datasource"]["uid"]
                };
                let Some(kind) = ds_types.get(&ds.text()).filter(|_| !ds.is_null()) else {
                    errors.push(format!(
                        "{name}: panel '{title}': data source uid {} is not provisioned",
                        ds.text()
                    ));
                    continue;
                };
                let expr = t["expr"].s();
                if expr.trim().is_empty() {
                    errors.push(format!("{name}: panel '{title}': empty query"));
                }
                if kind == "prometheus" {
                    let names = metric_names(expr);
                    let bad = unexported(&names, &allowed);
                    if !bad.is_empty() {
                        errors.push(format!(
                            "{name}: panel '{title}': metrics not exported by the gateway: {}",
                            pylist(bad)
                        ));
                    }
                    if names.is_empty() && !expr.contains("vector(") {
                        errors.push(format!("{name}: panel '{title}': query selects no metric"));
                    }
                    let ref_id = t.get("refId").map(View::text).unwrap_or_else(|| "A".into());
                    rules.push(json!({
                        "record": format!("dashboard:{name}:panel_{}:{ref_id}", p["id"]),
                        "expr": interval.replace_all(expr, "5m"),
                    }));
                } else if kind == "loki" {
                    loki_exprs.push(expr.to_owned());
                }
            }
        }
        if n_targets == 0 {
            errors.push(format!("{name}: no queries"));
        }
    }
    for msg in LOG_MESSAGES {
        if !loki_exprs.iter().any(|e| e.contains(msg)) {
            errors.push(format!("logs dashboard has no query for msg=\"{msg}\""));
        }
    }
    println!(
        "check-deploy: {} PromQL expressions from {} dashboards",
        rules.len(),
        files.len()
    );
    Ok(rules)
}
