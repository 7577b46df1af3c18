//! References: ConfigMaps rendered, Secrets rendered or documented, images
//! built and documented.

use super::*;

impl Kube<'_> {
    // --- references: ConfigMaps rendered, Secrets rendered or documented,
    // images built and documented.
    pub(super) fn need_cm(&mut self, p: &str, cms: &ByName, ns: &str, cm: &str, who: &str) {
        if !cms.contains_key(&key(ns, cm)) {
            self.err(format!(
                "{p}{who}: ConfigMap {ns}/{cm} is not in the rendered output"
            ));
        }
    }

    pub(super) fn need_secret(
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

    pub(super) fn references(
        &mut self,
        p: &str,
        prod: bool,
        docs: &[Value],
        cms: &ByName,
        secrets: &ByName,
    ) {
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
}
