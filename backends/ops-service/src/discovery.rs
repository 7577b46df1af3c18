//! Service discovery from Envoy's admin API: which public routes lead to
//! which upstream cluster, and how many of each cluster's endpoints are
//! healthy. Pure parsing of the admin JSON, unit-tested on recorded output.

use serde::Serialize;
use serde_json::Value;

/// One upstream endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    /// Whether Envoy would route to it now.
    pub healthy: bool,
    /// The health flags Envoy reports as set (`failed_active_health_check`,
    /// `failed_outlier_check`, ...), empty when healthy.
    pub health_flags: Vec<String>,
}

/// One route of the gateway that targets a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RouteMatch {
    /// `prefix`, `path`, `regex`, `path_separated_prefix` or `template`.
    pub kind: String,
    /// The matched path, prefix, regex or template.
    pub pattern: String,
}

/// `GET /discovery/services`: every upstream cluster with its public
/// routes and healthy/total endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServiceList {
    #[schema(schema_with = success)]
    pub status: &'static str,
    pub services: Vec<Service>,
}

fn success() -> utoipa::openapi::schema::Schema {
    pricing::openapi::constant("success")
}

/// One routed service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Service {
    /// Service name (the cluster name, per the architecture contract).
    pub service: String,
    /// Upstream cluster in Envoy.
    pub cluster: String,
    /// Public routes leading to the cluster; empty for clusters only the
    /// gateway itself calls (auth verification, rate-limit service).
    pub routes: Vec<RouteMatch>,
    pub healthy_endpoints: usize,
    pub total_endpoints: usize,
    pub endpoints: Vec<Endpoint>,
}

const FAILURE_FLAGS: [&str; 8] = [
    "failed_active_health_check",
    "failed_outlier_check",
    "failed_active_degraded_check",
    "pending_dynamic_removal",
    "pending_active_hc",
    "excluded_via_immediate_hc_fail",
    "active_hc_timeout",
    "failed_eds_health",
];

/// Parses `/clusters?format=json` into `(cluster name, endpoints)`.
pub fn parse_clusters(json: &Value) -> Vec<(String, Vec<Endpoint>)> {
    let Some(statuses) = json.get("cluster_statuses").and_then(Value::as_array) else {
        return Vec::new();
    };
    statuses
        .iter()
        .filter_map(|cluster| {
            let name = cluster.get("name")?.as_str()?.to_owned();
            let endpoints = cluster
                .get("host_statuses")
                .and_then(Value::as_array)
                .map(|hosts| hosts.iter().map(parse_host).collect())
                .unwrap_or_default();
            Some((name, endpoints))
        })
        .collect()
}

fn parse_host(host: &Value) -> Endpoint {
    let socket = host.pointer("/address/socket_address");
    let address = match socket {
        Some(s) => format!(
            "{}:{}",
            s.get("address").and_then(Value::as_str).unwrap_or("?"),
            s.get("port_value").and_then(Value::as_u64).unwrap_or(0)
        ),
        None => host
            .pointer("/address/pipe/path")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    };
    let status = host.get("health_status");
    let mut health_flags: Vec<String> = FAILURE_FLAGS
        .iter()
        .filter(|flag| {
            status
                .and_then(|s| s.get(**flag))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .map(|f| (*f).to_owned())
        .collect();
    if let Some(eds) = status
        .and_then(|s| s.get("eds_health_status"))
        .and_then(Value::as_str)
    {
        if eds != "HEALTHY" {
            health_flags.push(format!("eds_{}", eds.to_ascii_lowercase()));
        }
    }
    Endpoint {
        address,
        healthy: health_flags.is_empty(),
        health_flags,
    }
}

/// Parses `/config_dump?resource=static_route_configs` (or the dynamic
/// ones) into `(cluster, route match)` pairs.
pub fn parse_routes(json: &Value) -> Vec<(String, RouteMatch)> {
    let mut out = Vec::new();
    let Some(configs) = json.get("configs").and_then(Value::as_array) else {
        return out;
    };
    for config in configs {
        let route_config = config
            .get("route_config")
            .or_else(|| {
                config
                    .get("active_state")
                    .and_then(|s| s.get("route_config"))
            })
            .or_else(|| config.pointer("/route_config_state/route_config"));
        let Some(hosts) = route_config
            .and_then(|rc| rc.get("virtual_hosts"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for route in hosts
            .iter()
            .filter_map(|vh| vh.get("routes").and_then(Value::as_array))
            .flatten()
        {
            let Some(matcher) = route.get("match").and_then(describe_match) else {
                continue;
            };
            let Some(action) = route.get("route") else {
                continue;
            };
            let mut clusters: Vec<String> = Vec::new();
            if let Some(c) = action.get("cluster").and_then(Value::as_str) {
                clusters.push(c.to_owned());
            }
            if let Some(weighted) = action
                .pointer("/weighted_clusters/clusters")
                .and_then(Value::as_array)
            {
                clusters.extend(
                    weighted
                        .iter()
                        .filter_map(|w| w.get("name").and_then(Value::as_str))
                        .map(str::to_owned),
                );
            }
            for cluster in clusters {
                out.push((cluster, matcher.clone()));
            }
        }
    }
    out
}

fn describe_match(m: &Value) -> Option<RouteMatch> {
    let pick = |kind: &str, pattern: Option<&str>| {
        pattern.map(|p| RouteMatch {
            kind: kind.to_owned(),
            pattern: p.to_owned(),
        })
    };
    pick("path", m.get("path").and_then(Value::as_str))
        .or_else(|| pick("prefix", m.get("prefix").and_then(Value::as_str)))
        .or_else(|| {
            pick(
                "path_separated_prefix",
                m.get("path_separated_prefix").and_then(Value::as_str),
            )
        })
        .or_else(|| {
            pick(
                "regex",
                m.pointer("/safe_regex/regex").and_then(Value::as_str),
            )
        })
        .or_else(|| {
            pick(
                "template",
                m.pointer("/path_match_policy/typed_config/path_template")
                    .and_then(Value::as_str),
            )
        })
}

/// Joins clusters and routes: every cluster, with the routes that lead to
/// it; routed clusters first, then the ones only the gateway calls.
pub fn services(
    clusters: Vec<(String, Vec<Endpoint>)>,
    routes: &[(String, RouteMatch)],
) -> Vec<Service> {
    let mut list: Vec<Service> = clusters
        .into_iter()
        .map(|(name, endpoints)| {
            let mut matched: Vec<RouteMatch> = Vec::new();
            for (_, m) in routes.iter().filter(|(c, _)| *c == name) {
                if !matched.contains(m) {
                    matched.push(m.clone());
                }
            }
            Service {
                service: name.clone(),
                cluster: name,
                routes: matched,
                healthy_endpoints: endpoints.iter().filter(|e| e.healthy).count(),
                total_endpoints: endpoints.len(),
                endpoints,
            }
        })
        .collect();
    list.sort_by(|a, b| {
        a.routes
            .is_empty()
            .cmp(&b.routes.is_empty())
            .then(a.service.cmp(&b.service))
    });
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTERS: &str = r#"{"cluster_statuses":[
      {"name":"data_service","host_statuses":[
        {"address":{"socket_address":{"address":"127.0.0.1","port_value":8081}},
         "health_status":{"eds_health_status":"HEALTHY"}},
        {"address":{"socket_address":{"address":"127.0.0.1","port_value":9081}},
         "health_status":{"failed_active_health_check":true,"eds_health_status":"HEALTHY"}}]},
      {"name":"rate_limit_service","host_statuses":[
        {"address":{"socket_address":{"address":"127.0.0.1","port_value":8090}},
         "health_status":{"failed_outlier_check":true}}]},
      {"name":"calculation_service","host_statuses":[]}
    ]}"#;

    const ROUTES: &str = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump.StaticRouteConfig",
      "route_config":{"name":"public","virtual_hosts":[{"name":"api","domains":["*"],"routes":[
        {"match":{"prefix":"/api/v1/rates/"},"route":{"cluster":"data_service","prefix_rewrite":"/rates/"}},
        {"match":{"path":"/api/v1/calculate-locate"},"route":{"cluster":"calculation_service"}},
        {"match":{"safe_regex":{"regex":"/api/v1/rates/[^/]+"}},"route":{"weighted_clusters":{"clusters":[{"name":"data_service","weight":1}]}}},
        {"match":{"path":"/health"},"direct_response":{"status":200}}
      ]}]}}]}"#;

    #[test]
    fn endpoint_health_follows_envoy_flags() {
        let clusters = parse_clusters(&serde_json::from_str(CLUSTERS).unwrap());
        assert_eq!(clusters.len(), 3);
        let (name, data) = &clusters[0];
        assert_eq!(name, "data_service");
        assert_eq!(data[0].address, "127.0.0.1:8081");
        assert!(data[0].healthy);
        assert!(!data[1].healthy);
        assert_eq!(data[1].health_flags, vec!["failed_active_health_check"]);
        assert_eq!(clusters[1].1[0].health_flags, vec!["failed_outlier_check"]);
    }

    #[test]
    fn routes_map_to_their_clusters_and_direct_responses_are_skipped() {
        let routes = parse_routes(&serde_json::from_str(ROUTES).unwrap());
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].0, "data_service");
        assert_eq!(routes[0].1.kind, "prefix");
        assert_eq!(routes[1].1.pattern, "/api/v1/calculate-locate");
        assert_eq!(routes[2].1.kind, "regex");
    }

    #[test]
    fn services_count_healthy_and_total_endpoints_and_list_routed_ones_first() {
        let clusters = parse_clusters(&serde_json::from_str(CLUSTERS).unwrap());
        let routes = parse_routes(&serde_json::from_str(ROUTES).unwrap());
        let list = services(clusters, &routes);
        let names: Vec<&str> = list.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(
            names,
            vec!["calculation_service", "data_service", "rate_limit_service"]
        );
        let data = &list[1];
        assert_eq!((data.healthy_endpoints, data.total_endpoints), (1, 2));
        assert_eq!(data.routes.len(), 2);
        assert_eq!(list[0].total_endpoints, 0);
        assert!(list[2].routes.is_empty());
    }

    #[test]
    fn unexpected_json_yields_nothing_rather_than_failing() {
        assert!(parse_clusters(&serde_json::json!({"x":1})).is_empty());
        assert!(parse_routes(&serde_json::json!([1, 2])).is_empty());
    }
}
