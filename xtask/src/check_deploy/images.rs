//! `images`: the backends' Dockerfile (multi-stage, non-root, builds every
//! binary the manifests run) and deploy/wasm/Dockerfile (FROM scratch).

use std::collections::BTreeSet;

use anyhow::Result;
use regex::Regex;
use serde_json::Value;

use super::{Ctx, Errors};
use crate::util::{pylist, read, run, yaml_docs, View};

pub fn check(ctx: &Ctx) -> Result<&'static str> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(ctx
        .cmd(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"]))
    .map_err(|e| e.context("cargo metadata"))?;
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let targets = |kind: &str| -> BTreeSet<String> {
        meta["packages"]
            .a()
            .iter()
            .flat_map(|p| p["targets"].a())
            .filter(|t| t["kind"].a().iter().any(|k| k == kind))
            .map(|t| t["name"].text())
            .collect()
    };
    let mut manifests = vec![read(&ctx.path("docker-compose.yml"))?];
    for e in std::fs::read_dir(ctx.path("deploy/base/kubernetes"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            manifests.push(read(&p)?);
        }
    }
    let inputs = Inputs {
        bins: targets("bin"),
        cdylibs: targets("cdylib"),
        dockerfile: read(&ctx.path("Dockerfile"))?,
        wasm_dockerfile: read(&ctx.path("deploy/wasm/Dockerfile"))?,
        manifests,
        wasm_plugins: yaml_docs(&ctx.path("deploy/base/istio/wasm-plugins.yaml"))?,
    };
    let mut errors = Errors::default();
    check_images(&inputs, &|p| ctx.path(p).exists(), &mut errors)?;
    errors.finish("images")?;
    Ok("Dockerfile (multi-stage, non-root, every binary) and deploy/wasm/Dockerfile (FROM scratch)")
}

/// What the image check reads.
pub struct Inputs {
    /// Binary and cdylib targets of the workspace.
    pub bins: BTreeSet<String>,
    pub cdylibs: BTreeSet<String>,
    pub dockerfile: String,
    pub wasm_dockerfile: String,
    /// docker-compose.yml and the Kubernetes manifests, as text.
    pub manifests: Vec<String>,
    pub wasm_plugins: Vec<Value>,
}

pub fn check_images(i: &Inputs, exists: &dyn Fn(&str) -> bool, errors: &mut Errors) -> Result<()> {
    let df = &i.dockerfile;
    let stages: Vec<String> = Regex::new(r"(?mi)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?")?
        .captures_iter(df)
        .map(|c| c[1].to_owned())
        .collect();
    if stages.len() < 2 {
        errors.push("Dockerfile must be multi-stage (build, then a small runtime image)");
    }
    let final_stage = &df[df.rfind("\nFROM").unwrap_or(0)..];
    let last = stages.last().map(String::as_str).unwrap_or("");
    if !Regex::new(r"distroless|scratch|-slim|alpine")?.is_match(last) {
        errors.push(format!("final stage {last} is not a small base image"));
    }
    let users: Vec<String> = Regex::new(r"(?m)^USER\s+(\S+)")?
        .captures_iter(final_stage)
        .map(|c| c[1].to_owned())
        .collect();
    if users
        .last()
        .is_none_or(|u| ["0", "root"].contains(&u.split(':').next().unwrap_or("")))
    {
        errors.push("final stage must switch to a non-root USER");
    }
    let built: BTreeSet<String> = Regex::new(r"--bin\s+([\w-]+)")?
        .captures_iter(df)
        .map(|c| c[1].to_owned())
        .collect();
    let missing: Vec<&String> = built.difference(&i.bins).collect();
    if !missing.is_empty() {
        errors.push(format!(
            "Dockerfile builds {}, which are not binaries of the workspace",
            pylist(missing)
        ));
    }
    for c in Regex::new(r"(?m)^COPY\s+(.+)\s+\S+$")?.captures_iter(df) {
        if c[1].starts_with("--from") {
            continue;
        }
        for s in c[1].split_whitespace() {
            if !exists(s) {
                errors.push(format!("Dockerfile copies {s}, which does not exist"));
            }
        }
    }
    // Every binary the manifests run is built into the image.
    let bin_re = Regex::new(r"/usr/local/bin/([\w-]+)")?;
    let run: BTreeSet<String> = i
        .manifests
        .iter()
        .flat_map(|m| {
            bin_re
                .captures_iter(m)
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let unbuilt: Vec<&String> = run.difference(&built).collect();
    if !unbuilt.is_empty() {
        errors.push(format!(
            "manifests run {}, which the Dockerfile does not build",
            pylist(unbuilt)
        ));
    }
    if !built.contains("gatewayctl") {
        errors.push("the image must ship gatewayctl (key management from inside the cluster)");
    }
    let froms: Vec<String> = Regex::new(r"(?m)^FROM\s+(\S+)")?
        .captures_iter(&i.wasm_dockerfile)
        .map(|c| c[1].to_owned())
        .collect();
    if froms != ["scratch"] {
        errors.push(format!(
            "deploy/wasm/Dockerfile must be a single FROM scratch stage, got {}",
            pylist(&froms)
        ));
    }
    if !Regex::new(r"(?m)^COPY\s+\$\{?FILTER\}?\.wasm\s+/?plugin\.wasm\s*$")?
        .is_match(&i.wasm_dockerfile)
    {
        errors.push("deploy/wasm/Dockerfile must copy ${FILTER}.wasm to /plugin.wasm (Istio's oci:// layout)");
    }
    let url_re = Regex::new(r"/([a-z]+)-filter:")?;
    for d in &i.wasm_plugins {
        let ok = url_re
            .captures(d["spec"]["url"].s())
            .is_some_and(|m| i.cdylibs.contains(&format!("{}_filter", &m[1])));
        if !ok {
            errors.push(format!(
                "WasmPlugin {}: no filter crate builds the image's .wasm",
                d["metadata"]["name"].text()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            bins: ["services", "gatewayctl"].map(String::from).into(),
            cdylibs: ["auth_filter"].map(String::from).into(),
            dockerfile: "FROM rust:1 AS build\nCOPY Cargo.toml ./\nRUN cargo build --bin services --bin gatewayctl\n\
                         FROM gcr.io/distroless/cc\nCOPY --from=build /a /b\nUSER 65532:65532\n"
                .into(),
            wasm_dockerfile: "FROM scratch\nCOPY ${FILTER}.wasm /plugin.wasm\n".into(),
            manifests: vec!["command: [/usr/local/bin/services]".into()],
            wasm_plugins: vec![serde_json::json!({
                "metadata": {"name": "auth"},
                "spec": {"url": "oci://r.example/x/auth-filter:1"}
            })],
        }
    }

    fn errors_of(i: &Inputs) -> Vec<String> {
        let mut e = Errors::default();
        check_images(i, &|p| p == "Cargo.toml", &mut e).unwrap();
        e.0
    }

    #[test]
    fn a_good_pair_of_dockerfiles_passes() {
        assert_eq!(errors_of(&inputs()), Vec::<String>::new());
    }

    #[test]
    fn root_single_stage_and_unbuilt_binaries_fail() {
        let mut i = inputs();
        i.dockerfile = i.dockerfile.replace("USER 65532:65532", "USER root");
        i.manifests.push("/usr/local/bin/ratelimit".into());
        i.wasm_dockerfile = "FROM alpine\nCOPY x /plugin.wasm\n".into();
        let e = errors_of(&i);
        assert!(e.iter().any(|m| m.contains("non-root USER")), "{e:?}");
        assert!(
            e.iter().any(|m| m.contains("manifests run ['ratelimit']")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("single FROM scratch")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("${FILTER}.wasm")), "{e:?}");
    }
}
