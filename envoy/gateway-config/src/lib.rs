//! The gateway's Envoy configuration as typed data.
//!
//! One builder yields every deployment shape (local `make run`,
//! docker-compose, the e2e tests' variants, the benchmarks') from
//! [`Settings`], and the Istio resources that repeat gateway facts (the
//! Gateway and the VirtualService with the same routes, the
//! local-reply and rate-limit EnvoyFilters, the WasmPlugins' plugin
//! configurations, the bootstrap override's stats_config) come from the
//! same values, so the shapes cannot disagree. The wasm filters'
//! plugin configurations are the filters' own config types (filters/core),
//! serialised.

pub mod envoy;
pub mod gateway;
pub mod istio;
pub mod parts;
pub mod plugins;
mod routes;
pub mod settings;

use std::collections::BTreeMap;

pub use settings::{Error, Options, Settings, Shape};

/// Header of every rendered file.
pub const RENDERED_HEADER: &str = "# Rendered by gateway-config (envoy/gateway-config): do not edit; change the\n# crate and render again.\n";

/// The Envoy bootstrap for `options` and the variables in `env`, as YAML;
/// with the warnings about ignored settings.
pub fn render(
    options: &Options,
    env: &BTreeMap<String, String>,
) -> Result<(String, Vec<String>), Error> {
    let settings = Settings::new(options, env)?;
    let bootstrap = gateway::bootstrap(&settings)?;
    Ok((
        format!("{RENDERED_HEADER}{}", to_yaml(&bootstrap)?),
        settings.warnings,
    ))
}

/// A value as YAML; an enum variant is a one-key mapping
/// (`safe_regex: {regex: ...}`), as Envoy's oneof fields are written.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    let mut buf = Vec::new();
    let mut ser = serde_norway::Serializer::new(&mut buf);
    serde_norway::with::singleton_map_recursive::serialize(value, &mut ser)
        .map_err(|e| Error(format!("YAML: {e}")))?;
    String::from_utf8(buf).map_err(|e| Error(format!("YAML: {e}")))
}
