//! Istio resources: Gateway (HTTPS redirect), VirtualService (HSTS, CORS),
//! Telemetry access log, WasmPlugins (phases, pluginConfig, ES256 public keys).

use super::*;

impl Kube<'_> {
    pub(super) fn istio(
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
