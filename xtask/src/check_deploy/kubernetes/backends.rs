//! The backend Deployments: rollout, probes, drain, security context,
//! resources, spread, HPA, PDB.

use super::*;

impl Kube<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backends(
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
    pub(super) fn container_basics(&mut self, w: &str, c: &Value) {
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
}
