//! NetworkPolicies and per-pod scraping.

use super::*;

impl Kube<'_> {
    // --- NetworkPolicies: default deny; each backend port open to the
    // ingress gateway.
    pub(super) fn network_policies(&mut self, p: &str, docs: &[Value], deps: &ByName) {
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

    // Per-pod scraping: every Deployment of the namespace is scraped pod by
    // pod, by a PodMonitor (prometheus-operator) and by its prometheus.io/*
    // annotations (plain Prometheus), on the same port; no Service is a
    // target; the Prometheus pods may reach that port.
    pub(super) fn scraping(&mut self, p: &str, docs: &[Value]) {
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
}
