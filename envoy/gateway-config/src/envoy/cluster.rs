//! Clusters: backends, the rate-limit service, the trace collector.

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;

// ---------------------------------------------------------------- clusters

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_lookup_family: Option<&'static str>,
    pub connect_timeout: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub typed_extension_protocol_options: BTreeMap<&'static str, Typed<HttpProtocolOptions>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_lb_config: Option<CommonLbConfig>,
    pub load_assignment: ClusterLoadAssignment,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpProtocolOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_http_protocol_options: Option<CommonHttpProtocolOptions>,
    pub explicit_http_config: ExplicitHttpConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplicitHttpConfig {
    HttpProtocolOptions(Empty),
    Http2ProtocolOptions(Empty),
}

#[derive(Debug, Clone, Serialize)]
pub struct CircuitBreakers {
    pub thresholds: Vec<Thresholds>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub priority: &'static str,
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    pub retry_budget: RetryBudget,
    pub track_remaining: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryBudget {
    pub budget_percent: Percent,
    pub min_retry_concurrency: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub consecutive_local_origin_failure: u32,
    pub split_external_local_origin_errors: bool,
    pub interval: &'static str,
    pub base_ejection_time: &'static str,
    pub max_ejection_time: &'static str,
    pub max_ejection_percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    pub timeout: &'static str,
    pub interval: String,
    pub interval_jitter: &'static str,
    pub no_traffic_interval: String,
    pub unhealthy_interval: String,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub http_health_check: HttpHealthCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpHealthCheck {
    pub path: &'static str,
    pub codec_client_type: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommonLbConfig {
    pub healthy_panic_threshold: Percent,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterLoadAssignment {
    pub cluster_name: &'static str,
    pub endpoints: Vec<LocalityLbEndpoints>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalityLbEndpoints {
    pub lb_endpoints: Vec<LbEndpoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LbEndpoint {
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub address: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_config: Option<HealthCheckConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthCheckConfig {
    pub port_value: u16,
}

impl ClusterLoadAssignment {
    /// One locality with `hosts` (`(address, port)`).
    pub fn hosts(cluster_name: &'static str, hosts: impl IntoIterator<Item = Endpoint>) -> Self {
        Self {
            cluster_name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: hosts
                    .into_iter()
                    .map(|endpoint| LbEndpoint { endpoint })
                    .collect(),
            }],
        }
    }
}
