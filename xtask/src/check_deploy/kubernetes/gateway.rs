//! The ingress gateway workload and its metrics.

use super::*;

impl Kube<'_> {
    pub(super) fn gateway_metrics(&mut self, p: &str, name: &str, meta: &Value, pod: &Value) {
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

    pub(super) fn gateway_workload(
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
}
