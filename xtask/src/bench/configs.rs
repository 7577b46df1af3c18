//! The Envoy configurations of the benchmarks that run the gateway's own
//! rendered config (BENCHMARKS.md), as edits of the local shape rendered on
//! :8100 / admin :9911 ([`render_local`]):
//!
//! * the filter-chain benchmark's variants ([`chain_documents`], `cargo
//!   xtask bench chain`): every API route goes to the same upstream, a
//!   second listener of this Envoy that answers with a direct response, so
//!   only the chain (and one fixed proxy hop, the same for every variant)
//!   is measured. A direct response on the route itself would not do:
//!   Envoy applies route rate limits only to routes with a cluster, so the
//!   global rate-limit filter would never call the rate-limit service;
//! * the end-to-end breakdown's variants ([`breakdown_variants`], `cargo
//!   xtask bench breakdown`): the full config minus one part each.
//!
//! xtask/tests/bench_configs.rs runs `envoy --mode validate` on every one.

use std::collections::BTreeMap;
use std::path::Path;

use gateway_config::envoy::Port;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

use crate::util::View;

/// The SPEC §4 checks as far as Lua patterns take them (no JSON parser in
/// Envoy's Lua: a weaker check than the wasm validator, which parses).
const LUA_CODE: &str = r#"
local function reject(h, status, code, message)
  h:respond({[":status"] = status, ["content-type"] = "application/json"},
    '{"status":"error","error":{"code":"' .. code .. '","message":"' .. message .. '"}}')
end
local function ticker_ok(t)
  return t ~= nil and (t:match("^%a%a?%a?%a?%a?$") or t:match("^%a%a?%a?%a?%a?%.%a%a?$")) ~= nil
end
function envoy_on_request(h)
  local path = h:headers():get(":path")
  if h:headers():get(":method") ~= "POST" or path ~= "/api/v1/calculate-locate" then
    local t = path:match("^/api/v1/rates/([^/?]*)")
    if path:find("^/api/v1/rates/") and not ticker_ok(t) then reject(h, "400", "VALIDATION_ERROR", "ticker") end
    return
  end
  local ct = h:headers():get("content-type") or ""
  if not ct:find("^application/json") then return reject(h, "415", "UNSUPPORTED_MEDIA_TYPE", "content type") end
  local b = h:body(8193)
  local n = b and b:length() or 0
  if n > 8192 then return reject(h, "413", "PAYLOAD_TOO_LARGE", "body") end
  local s = n > 0 and b:getBytes(0, n) or ""
  local bad = {}
  if not ticker_ok(s:match('"ticker"%s*:%s*"([^"]*)"')) then bad[#bad + 1] = "ticker" end
  local pv = tonumber(s:match('"position_value"%s*:%s*([%d%.]+)') or "")
  if pv == nil or pv <= 0 or pv > 1e12 then bad[#bad + 1] = "position_value" end
  local d = tonumber(s:match('"loan_days"%s*:%s*(%d+)') or "")
  if d == nil or d < 1 or d > 365 then bad[#bad + 1] = "loan_days" end
  local c = s:match('"client_id"%s*:%s*"([^"]*)"')
  if c == nil or #c < 1 or #c > 64 or c:find("[^%w_-]") then bad[#bad + 1] = "client_id" end
  if #bad > 0 then reject(h, "400", "VALIDATION_ERROR", table.concat(bad, ",")) end
end
"#;

/// The HTTP connection manager of the first listener.
fn hcm(doc: &mut Value) -> &mut Value {
    &mut doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

struct Chain {
    filters: Vec<Value>,
}

impl Chain {
    fn get(&self, name: &str) -> Result<Value> {
        self.filters
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .with_context(|| format!("the rendered chain has no {name}"))
    }
}

/// The auth filter's plugin settings, edited by `edit`.
fn auth_with(auth: &Value, edit: impl FnOnce(&mut Value)) -> Result<Value> {
    let mut auth = auth.clone();
    let cfg = &mut auth["typed_config"]["config"]["configuration"];
    let mut settings: Value =
        serde_json::from_str(cfg["value"].s()).context("auth filter settings")?;
    edit(&mut settings);
    cfg["value"] = Value::String(settings.to_string());
    Ok(auth)
}

fn remove(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
}

/// Every variant's filter list.
pub fn variants(
    full: &Value,
    key: &str,
    secret: &str,
    before_wasm: &str,
) -> Result<BTreeMap<String, Vec<Value>>> {
    let mut full = full.clone();
    let chain = Chain {
        filters: hcm(&mut full)["http_filters"].a().to_vec(),
    };
    let buffer = chain.get("envoy.filters.http.buffer")?;
    let router = chain.get("envoy.filters.http.router")?;
    let auth = chain.get("auth_filter")?;
    let validation = chain.get("validation_filter")?;
    let tail = vec![buffer.clone(), router.clone()];
    let api_key_auth = json!({"name": "envoy.filters.http.api_key_auth", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
        "credentials": [{"key": key, "client": "test123"}],
        "key_sources": [{"header": "x-api-key"}],
        "forwarding": {"header": "x-client-id", "hide_credentials": true}}});
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_bytes());
    let jwt_authn = json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"gateway": {
            "issuer": "borrow-rate-gateway", "audiences": ["borrow-rate-api"],
            "local_jwks": {"inline_string": format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","k":"{k}"}}]}}"#)},
            "claim_to_headers": [{"header_name": "x-client-id", "claim_name": "sub"}],
            "jwt_cache_config": {"jwt_cache_size": 1000}}},
        "rules": [{"match": {"prefix": "/api/"}, "requires": {"provider_name": "gateway"}}]}});
    let lua = json!({"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": LUA_CODE}}});
    let native = |auth_filter: &Value| -> Vec<Value> {
        chain
            .filters
            .iter()
            .filter(|f| f["name"] != "metrics_filter") // Envoy's own stats instead
            .map(|f| match f["name"].s() {
                "auth_filter" => auth_filter.clone(),
                "validation_filter" => lua.clone(),
                _ => f.clone(),
            })
            .collect()
    };
    let auth_without_metrics = auth_with(&auth, |s| remove(s, "metrics"))?;
    // The chain as it was before the auth filter recorded the metrics: a
    // separate metrics filter first, the auth filter without its `metrics`.
    let separate_metrics = {
        let settings: Value =
            serde_json::from_str(auth["typed_config"]["config"]["configuration"]["value"].s())?;
        let mut metrics: Value =
            serde_json::from_str(&auth.to_string().replace("auth_filter", "metrics_filter"))?;
        metrics["typed_config"]["config"]["configuration"]["value"] =
            Value::String(settings["metrics"].to_string());
        let mut out = vec![metrics];
        out.extend(chain.filters.iter().map(|f| {
            if f["name"] == "auth_filter" {
                auth_without_metrics.clone()
            } else {
                f.clone()
            }
        }));
        out
    };
    // Only the two rate-limit filters (what (b) and (c) share), with the
    // client id an auth filter would set: the floor of any chain that asks
    // the rate-limit service on every request.
    let set_header = |k: &str, v: &str| {
        json!({"append": {
        "header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}})
    };
    let identity = json!({"name": "envoy.filters.http.header_mutation", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        "mutations": {"request_mutations": [set_header("x-client-id", "test123")]}}});
    // Where the auth filter's cost goes: the request headers it sets, done
    // natively, and the auth filter keeping the key header.
    let mut identity_headers = identity.clone();
    if let Some(m) =
        identity_headers["typed_config"]["mutations"]["request_mutations"].as_array_mut()
    {
        for (k, v) in [
            ("x-client-scopes", ""),
            ("x-auth-method", "api_key"),
            ("x-client-rate-limit", "100000000"),
        ] {
            m.push(set_header(k, v));
        }
        m.push(json!({"remove": "x-api-key"}));
    }
    // Two validation filters in one chain, in a VM each or sharing one VM
    // (Envoy shares a VM between filters with the same vm_id and code).
    let validation_copy = |suffix: &str, vm_id: &str| -> Value {
        let mut f = validation.clone();
        f["name"] = Value::String(format!("{}{suffix}", f["name"].s()));
        let c = &mut f["typed_config"]["config"];
        c["name"] = Value::String(format!("{}{suffix}", c["name"].s()));
        c["root_id"] = Value::String(format!("{}{suffix}", c["root_id"].s()));
        c["vm_config"]["vm_id"] = Value::String(vm_id.into());
        f
    };
    let with_tail =
        |first: Vec<Value>| -> Vec<Value> { first.into_iter().chain(tail.clone()).collect() };
    let mut v: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // Buffering kept: without it the direct response goes out before the
    // body is read and Envoy closes the connection after every request.
    v.insert("bare".into(), tail.clone());
    v.insert(
        "rate-limits".into(),
        with_tail(vec![
            identity.clone(),
            chain.get("envoy.filters.http.ratelimit")?,
        ]),
    );
    v.insert("wasm-key".into(), chain.filters.clone());
    v.insert("wasm-key-separate-metrics".into(), separate_metrics);
    v.insert("native-key".into(), native(&api_key_auth));
    v.insert("wasm-jwt".into(), chain.filters.clone());
    v.insert("native-jwt".into(), native(&jwt_authn));
    v.insert("auth-only".into(), with_tail(vec![auth_without_metrics]));
    v.insert("auth-metrics".into(), with_tail(vec![auth.clone()]));
    v.insert(
        "validation-only".into(),
        with_tail(vec![validation.clone()]),
    );
    v.insert(
        "identity-headers-only".into(),
        with_tail(vec![identity_headers]),
    );
    v.insert(
        "auth-only-keep-key".into(),
        with_tail(vec![auth_with(&auth, |s| {
            remove(s, "metrics");
            s["strip_credential_header"] = Value::Bool(false);
        })?]),
    );
    v.insert(
        "validation-twice".into(),
        with_tail(vec![
            validation_copy("_a", "validation_a"),
            validation_copy("_b", "validation_b"),
        ]),
    );
    v.insert(
        "validation-twice-shared-vm".into(),
        with_tail(vec![
            validation_copy("_a", "validation"),
            validation_copy("_b", "validation"),
        ]),
    );
    if !before_wasm.is_empty() {
        // The filters with the auth filter's code taken from BEFORE_WASM.
        let built_before = |filters: &[Value]| -> Vec<Value> {
            filters
                .iter()
                .cloned()
                .map(|mut f| {
                    if f["name"] == "auth_filter" {
                        f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] =
                            Value::String(before_wasm.into());
                    }
                    f
                })
                .collect()
        };
        let am = built_before(&v["auth-metrics"]);
        v.insert("auth-metrics-before".into(), am);
        v.insert("wasm-key-before".into(), built_before(&chain.filters));
    }
    Ok(v)
}

/// `full` with every API route sent to the bench upstream listener.
pub fn with_bench_upstream(full: &Value) -> Result<Value> {
    let mut full = full.clone();
    let buffer = Chain {
        filters: hcm(&mut full)["http_filters"].a().to_vec(),
    }
    .get("envoy.filters.http.buffer")?;
    if let Some(vhs) = hcm(&mut full)["route_config"]["virtual_hosts"].as_array_mut() {
        for vh in vhs {
            if let Some(routes) = vh["routes"].as_array_mut() {
                for r in routes {
                    if ["data_service", "calculation_service"].contains(&r["route"]["cluster"].s())
                    {
                        r["route"] = json!({"cluster": "bench_upstream", "timeout": "3s"});
                    }
                }
            }
        }
    }
    let Some(clusters) = full["static_resources"]["clusters"].as_array_mut() else {
        bail!("the rendered config has no clusters");
    };
    clusters.push(json!({
        "name": "bench_upstream", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "bench_upstream", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8102}}}}]}]}}));
    let Some(listeners) = full["static_resources"]["listeners"].as_array_mut() else {
        bail!("the rendered config has no listeners");
    };
    listeners.push(json!({
        "name": "bench_upstream", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8102}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "bench_upstream",
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": r#"{"status":"success","data":{}}"#}}}]}]},
            // Buffered: a direct response sent before the request body is
            // read makes Envoy close the connection after every request.
            "http_filters": [buffer, {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}));
    Ok(full)
}

/// The local shape of the gateway's config as the benchmarks run it:
/// listener :8100, admin :9911, no TLS, the built filters; `env` over the
/// process environment (e.g. JWT_SECRET_KEY).
pub fn render_local(root: &Path, env: &[(&str, String)]) -> Result<Value> {
    let mut options = gateway_config::Options::new(gateway_config::Shape::Local);
    options.tls = false;
    options.listener_port = Port::Number(8100);
    options.admin_port = Port::Number(9911);
    options.wasm_dir = Some(super::common::wasm_dir(root).display().to_string());
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let (text, warnings) =
        gateway_config::render(&options, &vars).map_err(|e| anyhow::anyhow!("render: {e}"))?;
    for w in warnings {
        eprintln!("gateway-config: warning: {w}");
    }
    crate::util::yaml_docs_str(&text, "the rendered local config")?
        .into_iter()
        .next()
        .context("the rendered local config is empty")
}

/// Every chain variant's whole config, from the rendered `full`.
pub fn chain_documents(
    full: &Value,
    key: &str,
    secret: &str,
    before_wasm: &str,
) -> Result<BTreeMap<String, Value>> {
    let base = with_bench_upstream(full)?;
    Ok(variants(full, key, secret, before_wasm)?
        .into_iter()
        .map(|(name, filters)| {
            let mut d = base.clone();
            hcm(&mut d)["http_filters"] = Value::Array(filters);
            (name, d)
        })
        .collect())
}

fn write_all(work: &Path, docs: BTreeMap<String, Value>) -> Result<()> {
    for (name, d) in docs {
        let path = work.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_norway::to_string(&d)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Writes WORK/<variant>.yaml for every chain variant.
pub fn write_chain(
    work: &Path,
    full: &Value,
    key: &str,
    secret: &str,
    before_wasm: &str,
) -> Result<()> {
    write_all(work, chain_documents(full, key, secret, before_wasm)?)
}

/// Edits the auth filter's plugin settings wherever it is in `filters`.
fn edit_auth_settings(filters: &mut Value, edit: impl Fn(&mut Value)) -> Result<()> {
    if let Some(fs) = filters.as_array_mut() {
        for f in fs.iter_mut().filter(|f| f["name"] == "auth_filter") {
            let edited = auth_with(f, &edit)?;
            *f = edited;
        }
    }
    Ok(())
}

/// Envoy's local_ratelimit filter with one bucket size for every client
/// (far above the load, as the benchmarks ran it): the shape before the
/// per-client bucket moved into the auth filter.
fn envoy_local_bucket_filter() -> Value {
    json!({
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "client_local_rate_limit",
            "token_bucket": {"max_tokens": 1000000, "tokens_per_fill": 1000000, "fill_interval": "1s"},
            "always_consume_default_token_bucket": false,
            "filter_enabled": {"runtime_key": "client_local_rate_limit_enabled",
                               "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"runtime_key": "client_local_rate_limit_enforced",
                                "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "rate_limits": [{"actions": [{"request_headers": {"header_name": "x-client-id", "descriptor_key": "client_id"}}]}],
            "descriptors": [{"entries": [{"key": "client_id"}],
                             "token_bucket": {"max_tokens": 10000000, "tokens_per_fill": 10000000, "fill_interval": "1s"}}],
            "max_dynamic_descriptors": 10000,
        },
    })
}

/// The end-to-end breakdown's variants (`cargo xtask bench breakdown`):
/// the full config minus one part each.
pub fn breakdown_variants(full: &Value) -> Result<BTreeMap<String, Value>> {
    let drop_filter = |d: &mut Value, name: &str| {
        if let Some(fs) = hcm(d)["http_filters"].as_array_mut() {
            fs.retain(|f| f["name"] != name);
        }
    };
    let mut out = BTreeMap::new();
    for variant in [
        "no-metrics",
        "no-auth-wasm",
        "no-validation",
        "no-global-rl",
        "no-local-rl",
        "envoy-local-bucket",
        "no-access-log",
    ] {
        let mut d = full.clone();
        match variant {
            // The auth filter records the metrics (its `metrics` section).
            "no-metrics" => {
                edit_auth_settings(&mut hcm(&mut d)["http_filters"], |s| remove(s, "metrics"))?
            }
            "no-auth-wasm" => drop_filter(&mut d, "auth_filter"),
            "no-validation" => drop_filter(&mut d, "validation_filter"),
            "no-global-rl" => drop_filter(&mut d, "envoy.filters.http.ratelimit"),
            // The auth filter's per-client bucket (its `local_rate_limit`
            // section).
            "no-local-rl" => edit_auth_settings(&mut hcm(&mut d)["http_filters"], |s| {
                remove(s, "local_rate_limit")
            })?,
            "envoy-local-bucket" => {
                edit_auth_settings(&mut hcm(&mut d)["http_filters"], |s| {
                    remove(s, "local_rate_limit")
                })?;
                let fs = hcm(&mut d)["http_filters"]
                    .as_array_mut()
                    .context("the rendered config has no http_filters")?;
                let at = fs
                    .iter()
                    .position(|f| f["name"] == "envoy.filters.http.ratelimit")
                    .context("the rendered chain has no envoy.filters.http.ratelimit")?;
                fs.insert(at, envoy_local_bucket_filter());
            }
            _ => remove(hcm(&mut d), "access_log"),
        }
        out.insert(variant.to_owned(), d);
    }
    Ok(out)
}

/// Writes WORK/full.yaml and WORK/<variant>.yaml for every breakdown
/// variant.
pub fn write_breakdown(work: &Path, full: &Value) -> Result<()> {
    let mut docs = breakdown_variants(full)?;
    docs.insert("full".into(), full.clone());
    write_all(work, docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Value {
        let filter = |name: &str| json!({"name": name, "typed_config": {}});
        let auth = json!({"name": "auth_filter", "typed_config": {"config": {
            "name": "auth_filter", "vm_config": {"code": {"local": {"filename": "/w/auth_filter.wasm"}}},
            "configuration": {"value": r#"{"metrics":{"slow_request_ms":500},"strip_credential_header":true}"#}}}});
        let validation = json!({"name": "validation_filter", "typed_config": {"config": {
            "name": "validation_filter", "root_id": "validation", "vm_config": {"vm_id": "v"}}}});
        json!({"static_resources": {
            "listeners": [{"filter_chains": [{"filters": [{"typed_config": {
                "route_config": {"virtual_hosts": [{"routes": [
                    {"match": {"prefix": "/api/v1/rates"}, "route": {"cluster": "data_service"}},
                    {"match": {"prefix": "/health"}, "route": {"cluster": "ops_service"}}]}]},
                "http_filters": [auth, validation, filter("envoy.filters.http.ratelimit"),
                                 filter("envoy.filters.http.buffer"), filter("envoy.filters.http.router")]}}]}]}],
            "clusters": []}})
    }

    #[test]
    fn variants_swap_the_filters_they_name() {
        let v = variants(&full(), "k", "secret", "/old.wasm").unwrap();
        let names = |f: &[Value]| f.iter().map(|x| x["name"].text()).collect::<Vec<_>>();
        assert_eq!(
            names(&v["bare"]),
            ["envoy.filters.http.buffer", "envoy.filters.http.router"]
        );
        assert_eq!(
            names(&v["native-key"])[..2],
            ["envoy.filters.http.api_key_auth", "envoy.filters.http.lua"]
        );
        assert_eq!(
            names(&v["wasm-key-separate-metrics"])[..2],
            ["metrics_filter", "auth_filter"]
        );
        let metrics = &v["wasm-key-separate-metrics"][0]["typed_config"]["config"];
        assert_eq!(
            metrics["vm_config"]["code"]["local"]["filename"],
            "/w/metrics_filter.wasm"
        );
        assert_eq!(
            metrics["configuration"]["value"],
            r#"{"slow_request_ms":500}"#
        );
        let keep = &v["auth-only-keep-key"][0]["typed_config"]["config"]["configuration"]["value"];
        assert_eq!(keep, r#"{"strip_credential_header":false}"#);
        assert_eq!(
            v["auth-metrics-before"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]
                ["filename"],
            "/old.wasm"
        );
        assert_eq!(
            v["validation-twice-shared-vm"][1]["typed_config"]["config"]["root_id"],
            "validation_b"
        );
        assert!(!variants(&full(), "k", "s", "")
            .unwrap()
            .contains_key("wasm-key-before"));
    }

    #[test]
    fn api_routes_go_to_the_bench_upstream() {
        let d = with_bench_upstream(&full()).unwrap();
        let routes = &d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(routes[0]["route"]["cluster"], "bench_upstream");
        assert_eq!(routes[1]["route"]["cluster"], "ops_service");
        assert_eq!(
            d["static_resources"]["listeners"][1]["name"],
            "bench_upstream"
        );
        assert_eq!(
            d["static_resources"]["clusters"][0]["name"],
            "bench_upstream"
        );
    }

    #[test]
    fn breakdown_variants_take_out_one_part_each() {
        let mut f = full();
        hcm(&mut f)["access_log"] = json!([{}]);
        let v = breakdown_variants(&f).unwrap();
        let names = |d: &Value| -> Vec<String> {
            d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
                ["http_filters"]
                .a()
                .iter()
                .map(|x| x["name"].text())
                .collect()
        };
        assert!(!names(&v["no-auth-wasm"]).contains(&"auth_filter".to_owned()));
        assert!(!names(&v["no-global-rl"]).contains(&"envoy.filters.http.ratelimit".to_owned()));
        let bucket = names(&v["envoy-local-bucket"]);
        let at = bucket
            .iter()
            .position(|n| n == "envoy.filters.http.local_ratelimit")
            .unwrap();
        assert_eq!(bucket[at + 1], "envoy.filters.http.ratelimit");
        let settings = |d: &Value| {
            d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
                ["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
                .text()
        };
        assert_eq!(
            settings(&v["no-metrics"]),
            r#"{"strip_credential_header":true}"#
        );
        assert!(
            !v["no-access-log"]["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
                [0]["typed_config"]
                .has("access_log")
        );
        assert!(
            v["no-metrics"]["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]
                .has("access_log")
        );
    }
}
