//! `alerts`: the Prometheus alert rules, their tests, annotations, runbook
//! anchors, the per-job availability alerts and the generated
//! PrometheusRule.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use regex::Regex;
use serde_json::Value;

use super::promql::{metric_names, unexported};
use super::{Ctx, Errors, ALLOWED_METRICS};
use crate::util::{output, pylist, read, run, yaml_docs, yaml_file, View};

pub fn check(ctx: &Ctx) -> Result<&'static str> {
    let promtool = ctx.need("promtool", "apt-get install prometheus")?;
    let rules_ok =
        output(
            ctx.cmd(&promtool)
                .args(["check", "rules", "deploy/prometheus/alerts.yml"]),
        )?;
    if !rules_ok.status.success() {
        bail!(
            "promtool check rules deploy/prometheus/alerts.yml\n{}",
            String::from_utf8_lossy(&rules_ok.stdout)
        );
    }
    run(ctx
        .cmd(&promtool)
        .current_dir(ctx.path("deploy/prometheus"))
        .args(["test", "rules", "alerts.test.yml"]))
    .map_err(|e| e.context("promtool test rules deploy/prometheus/alerts.test.yml"))?;
    run(ctx
        .cmd(&promtool)
        .args(["check", "config", "deploy/prometheus/prometheus.yml"]))
    .map_err(|e| e.context("promtool check config deploy/prometheus/prometheus.yml"))?;
    // The PrometheusRule is generated from alerts.yml: a fresh generation
    // must equal the committed file.
    crate::prometheus_rule::check(&ctx.root)?;
    let mut errors = Errors::default();
    check_rules(ctx, &mut errors)?;
    errors.finish("alerts")?;
    Ok("promtool check/test rules, metric names, annotations and runbook anchors, up/absent per scrape job, PrometheusRule = alerts.yml")
}

/// Anchors of a markdown file's headings, as GitHub makes them.
pub fn anchors(markdown: &str) -> BTreeSet<String> {
    let heading = Regex::new(r"(?m)^#+\s+(.*)$").unwrap_or_else(|e| unreachable!("{e}"));
    let strip = Regex::new(r"[^a-z0-9 -]").unwrap_or_else(|e| unreachable!("{e}"));
    heading
        .captures_iter(markdown)
        .map(|c| {
            strip
                .replace_all(&c[1].trim().to_lowercase(), "")
                .replace(' ', "-")
        })
        .collect()
}

fn norm(expr: &str) -> String {
    expr.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_rules(ctx: &Ctx, errors: &mut Errors) -> Result<()> {
    let rules = yaml_file(&ctx.path("deploy/prometheus/alerts.yml"))?;
    let tests = yaml_file(&ctx.path("deploy/prometheus/alerts.test.yml"))?;
    let runbook = read(&ctx.path("docs/operations.md")).unwrap_or_default();
    let anchors = anchors(&runbook);
    let alerts: Vec<&Value> = rules["groups"]
        .a()
        .iter()
        .flat_map(|g| g["rules"].a())
        .filter(|r| r.has("alert"))
        .collect();
    if alerts.is_empty() {
        errors.push("no alert rules");
    }
    let pr = yaml_docs(&ctx.path("deploy/prometheus/prometheus-rule.yaml"))?;
    if pr.len() != 1
        || pr[0]["kind"] != "PrometheusRule"
        || pr[0]["spec"]["groups"] != rules["groups"]
    {
        errors.push("deploy/prometheus/prometheus-rule.yaml must be one PrometheusRule whose groups are alerts.yml's");
    }
    let allowed: BTreeSet<&str> = ALLOWED_METRICS.iter().copied().chain(["up"]).collect();
    let runbook_re = Regex::new(r"^(https://[^\s#]+/)docs/operations\.md#([a-z0-9-]+)$")
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut bases = BTreeSet::new();
    for r in &alerts {
        let name = r["alert"].text();
        let names = metric_names(r["expr"].s());
        let bad = unexported(&names, &allowed);
        if !bad.is_empty() {
            errors.push(format!(
                "{name}: expression uses metrics the gateway does not export: {}",
                pylist(&bad)
            ));
        }
        if !["warning", "critical"].contains(&r["labels"]["severity"].s()) {
            errors.push(format!(
                "{name}: severity label must be warning or critical"
            ));
        }
        let ann = &r["annotations"];
        for a in ["summary", "description"] {
            if ann
                .get(a)
                .map(|v| v.text())
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                errors.push(format!("{name}: no {a} annotation"));
            }
        }
        let extra: Vec<String> = ann
            .keys()
            .into_iter()
            .filter(|k| !["summary", "description", "runbook_url"].contains(&k.as_str()))
            .collect();
        if !extra.is_empty() {
            errors.push(format!("{name}: unexpected annotations {}", pylist(&extra)));
        }
        let rb = ann["runbook_url"].s();
        match runbook_re.captures(rb) {
            None => errors.push(format!(
                "{name}: runbook_url must be https://<repository>/docs/operations.md#<anchor>, got '{rb}'"
            )),
            Some(m) => {
                bases.insert(m[1].to_owned());
                if !anchors.contains(&m[2]) {
                    errors.push(format!("{name}: docs/operations.md has no heading for #{}", &m[2]));
                }
            }
        }
    }
    if bases.len() > 1 {
        errors.push(format!("runbook_url bases differ: {}", pylist(&bases)));
    }
    // Every scrape job (docker-compose's prometheus.yml; the Kubernetes
    // PodMonitors, named by their job relabeling) has an `up == 0` and an
    // `absent(up)` alert, and nothing else is alerted on as a job.
    let prom = yaml_file(&ctx.path("deploy/prometheus/prometheus.yml"))?;
    let jobs: BTreeSet<String> = prom["scrape_configs"]
        .a()
        .iter()
        .map(|j| j["job_name"].text())
        .filter(|j| j != "prometheus")
        .collect();
    let mut k8s_jobs = BTreeSet::new();
    for d in yaml_docs(&ctx.path("deploy/prometheus/monitors.yaml"))? {
        let spec = &d["spec"];
        for ep in spec["podMetricsEndpoints"]
            .a()
            .iter()
            .chain(spec["endpoints"].a())
        {
            for rl in ep["relabelings"].a() {
                if rl["targetLabel"] == "job" {
                    k8s_jobs.insert(rl["replacement"].text());
                }
            }
        }
    }
    if jobs != k8s_jobs {
        errors.push(format!(
            "scrape jobs differ: docker-compose {}, Kubernetes PodMonitors {}",
            pylist(&jobs),
            pylist(&k8s_jobs)
        ));
    }
    let exprs: BTreeMap<String, String> = alerts
        .iter()
        .map(|r| (norm(r["expr"].s()), r["alert"].text()))
        .collect();
    let all_jobs: BTreeSet<&String> = jobs.iter().chain(&k8s_jobs).collect();
    for j in &all_jobs {
        if !exprs.contains_key(&norm(&format!("up{{job=\"{j}\"}} == 0"))) {
            errors.push(format!(
                "scrape job {j}: no alert on up{{job=\"{j}\"}} == 0"
            ));
        }
        if !exprs.contains_key(&norm(&format!("absent(up{{job=\"{j}\"}})"))) {
            errors.push(format!(
                "scrape job {j}: no alert on absent(up{{job=\"{j}\"}})"
            ));
        }
    }
    let job_re = Regex::new(r#"up\{job="([^"]+)"\}"#).unwrap_or_else(|e| unreachable!("{e}"));
    for (e, n) in &exprs {
        if let Some(m) = job_re.captures(e) {
            if !all_jobs.iter().any(|j| j.as_str() == &m[1]) {
                errors.push(format!("{n}: job {} is not a scrape job", &m[1]));
            }
        }
    }
    // Every alert is asserted in every test scenario (silent below, firing
    // above).
    let names: BTreeSet<String> = alerts.iter().map(|r| r["alert"].text()).collect();
    let groups = tests["tests"].a();
    if groups.len() < 2 {
        errors.push("alerts.test.yml needs scenarios below and above the thresholds");
    }
    let (mut fired, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for (i, t) in groups.iter().enumerate() {
        let asserted = t["alert_rule_test"].a();
        let tested: BTreeSet<String> = asserted.iter().map(|a| a["alertname"].text()).collect();
        let missing: Vec<&String> = names.difference(&tested).collect();
        if !missing.is_empty() {
            errors.push(format!(
                "test scenario {i} does not assert {}",
                pylist(missing)
            ));
        }
        for a in asserted {
            let name = a["alertname"].text();
            if a["exp_alerts"].truthy() {
                fired.insert(name.clone());
            } else {
                silent.insert(name.clone());
            }
            for x in a["exp_alerts"].a() {
                if x["exp_annotations"].keys()
                    != BTreeSet::from(["summary", "description", "runbook_url"].map(String::from))
                {
                    errors.push(format!(
                        "{name}: the test must assert summary, description and runbook_url"
                    ));
                }
            }
        }
    }
    for n in &names {
        if !fired.contains(n) {
            errors.push(format!("{n}: no test shows it firing"));
        }
        if !silent.contains(n) {
            errors.push(format!("{n}: no test shows it silent"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::anchors;

    #[test]
    fn anchors_follow_the_github_rule() {
        let a = anchors("# Title\n\n## Rate limit: exceeded (429)\ntext # not a heading\n");
        assert!(a.contains("title"));
        assert!(a.contains("rate-limit-exceeded-429"));
        assert!(!a.contains("not-a-heading"));
    }
}
