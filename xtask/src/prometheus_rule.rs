//! `cargo xtask prometheus-rule [--check]`: deploy/prometheus/prometheus-rule.yaml,
//! the PrometheusRule (prometheus-operator, monitoring.coreos.com/v1) that
//! carries the groups of deploy/prometheus/alerts.yml unchanged.
//!
//! alerts.yml is the one source: edit it, then run `cargo xtask
//! prometheus-rule`. `--check` (and `cargo xtask check-deploy alerts`,
//! through [`check`]) fails when the committed file differs from a fresh
//! [`render`], so the two cannot drift.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_norway::{Mapping, Value};

/// The source, relative to the repository.
pub const ALERTS: &str = "deploy/prometheus/alerts.yml";
/// The generated file, relative to the repository.
pub const RULE: &str = "deploy/prometheus/prometheus-rule.yaml";

const HEAD: &str = "\
# GENERATED from alerts.yml by `cargo xtask prometheus-rule`: do not edit,
# edit alerts.yml and run it. cargo xtask check-deploy alerts fails when this
# file differs from a fresh generation.
";

/// The PrometheusRule for the text of alerts.yml: its `groups` (order,
/// values and multi-line PromQL blocks kept) under `spec`.
pub fn render(alerts_yml: &str) -> Result<String> {
    let rules: Value = serde_norway::from_str(alerts_yml).context("alerts.yml")?;
    let Some(groups) = rules.get("groups").filter(|g| g.is_sequence()) else {
        bail!("alerts.yml: no `groups` list");
    };
    let map = |pairs: Vec<(&str, Value)>| {
        Value::Mapping(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect::<Mapping>(),
        )
    };
    let doc = map(vec![
        ("apiVersion", "monitoring.coreos.com/v1".into()),
        ("kind", "PrometheusRule".into()),
        (
            "metadata",
            map(vec![
                ("name", "borrow-rate-alerts".into()),
                ("namespace", "monitoring".into()),
                (
                    "labels",
                    map(vec![
                        ("app.kubernetes.io/name", "borrow-rate-alerts".into()),
                        ("app.kubernetes.io/part-of", "borrow-rate-gateway".into()),
                    ]),
                ),
            ]),
        ),
        ("spec", map(vec![("groups", groups.clone())])),
    ]);
    Ok(format!("{HEAD}{}", serde_norway::to_string(&doc)?))
}

/// Fails when the committed PrometheusRule is not a fresh [`render`] of
/// alerts.yml.
pub fn check(root: &Path) -> Result<()> {
    let fresh = render(&read(root, ALERTS)?)?;
    if read(root, RULE)? != fresh {
        bail!("{RULE} differs from a fresh generation from alerts.yml: run cargo xtask prometheus-rule");
    }
    Ok(())
}

/// `cargo xtask prometheus-rule [--check]`.
pub fn run(root: &Path, check_only: bool) -> Result<()> {
    if check_only {
        return check(root);
    }
    let fresh = render(&read(root, ALERTS)?)?;
    std::fs::write(root.join(RULE), fresh).with_context(|| format!("writing {RULE}"))?;
    println!("{RULE} written from {ALERTS}");
    Ok(())
}

fn read(root: &Path, rel: &str) -> Result<String> {
    std::fs::read_to_string(root.join(rel)).with_context(|| format!("reading {rel}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn groups_go_under_spec_unchanged_with_promql_blocks_kept() {
        let alerts = "\
# a comment, not carried over
groups:
- name: g
  rules:
  - alert: A
    expr: |
      sum(rate(x[5m]))
        / sum(rate(y[5m])) > 0.01
    for: 5m
    labels: { severity: warning }
    annotations:
      summary: 'Quoted: yes'
";
        let out = render(alerts).unwrap();
        assert!(out.starts_with(HEAD), "{out}");
        let body = &out[HEAD.len()..];
        assert_eq!(
            body,
            "\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: borrow-rate-alerts
  namespace: monitoring
  labels:
    app.kubernetes.io/name: borrow-rate-alerts
    app.kubernetes.io/part-of: borrow-rate-gateway
spec:
  groups:
  - name: g
    rules:
    - alert: A
      expr: |
        sum(rate(x[5m]))
          / sum(rate(y[5m])) > 0.01
      for: 5m
      labels:
        severity: warning
      annotations:
        summary: 'Quoted: yes'
"
        );
        assert!(render("rules: []\n").is_err());
    }

    #[test]
    fn run_writes_and_check_catches_a_stale_rule() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("deploy/prometheus")).unwrap();
        let alerts = root.path().join(ALERTS);
        std::fs::write(&alerts, "groups:\n- name: g\n  rules: []\n").unwrap();
        assert!(run(root.path(), true).is_err(), "no rule file yet");
        run(root.path(), false).unwrap();
        run(root.path(), true).unwrap();
        std::fs::write(&alerts, "groups:\n- name: h\n  rules: []\n").unwrap();
        let err = run(root.path(), true).unwrap_err().to_string();
        assert!(err.contains("cargo xtask prometheus-rule"), "{err}");
    }

    #[test]
    fn the_committed_rule_is_fresh() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        check(&root).unwrap();
    }
}
