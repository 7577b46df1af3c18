//! The HTTP connection manager: routes, local replies, access log,
//! tracing and the HTTP filters.

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;

// ---------------------------------------------------------------- HCM

#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_header_transformation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_remote_address: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xff_num_trusted_hops: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_request_id: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_external_request_id: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_set_request_id_in_response: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize_path: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_slashes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_with_escaped_slashes_action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_headers_kb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_http_protocol_options: Option<CommonHttpProtocolOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_protocol_options: Option<Http2ProtocolOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delayed_close_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<AccessLog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_reply_config: Option<LocalReplyConfig>,
    pub route_config: RouteConfiguration,
    pub http_filters: Vec<HttpFilter>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CommonHttpProtocolOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_with_underscores_action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_headers_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Http2ProtocolOptions {
    pub max_concurrent_streams: u32,
    pub initial_stream_window_size: u32,
    pub initial_connection_window_size: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tracing {
    pub random_sampling: Percent,
    pub spawn_upstream_span: bool,
    pub provider: TracingProvider,
}

#[derive(Debug, Clone, Serialize)]
pub struct TracingProvider {
    pub name: &'static str,
    pub typed_config: Typed<OpenTelemetryConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenTelemetryConfig {
    pub grpc_service: GrpcService,
    pub service_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrpcService {
    pub envoy_grpc: EnvoyGrpc,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvoyGrpc {
    pub cluster_name: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percent {
    pub value: f64,
}

// ---------------------------------------------------------------- access log, local replies

#[derive(Debug, Clone, Serialize)]
pub struct AccessLog {
    pub name: &'static str,
    pub typed_config: Typed<StdoutAccessLog>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StdoutAccessLog {
    pub log_format: SubstitutionFormat,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubstitutionFormat {
    pub json_format: Ordered,
    pub json_format_options: JsonFormatOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonFormatOptions {
    pub sort_properties: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalReplyConfig {
    pub mappers: Vec<ResponseMapper>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseMapper {
    pub filter: AccessLogFilter,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_add: Vec<HeaderValueOption>,
    pub body_format_override: BodyFormat,
}

/// A local reply body: the SPEC §6 error envelope.
#[derive(Debug, Clone, Serialize)]
pub struct BodyFormat {
    pub json_format: ErrorEnvelope,
    pub content_type: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorEnvelope {
    pub status: &'static str,
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: &'static str,
    pub request_id: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFilter {
    AndFilter {
        filters: Vec<AccessLogFilter>,
    },
    HeaderFilter {
        header: HeaderMatcher,
    },
    StatusCodeFilter {
        comparison: Comparison,
    },
    ExtensionFilter {
        name: &'static str,
        typed_config: Typed<ExpressionFilter>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub op: &'static str,
    pub value: RuntimeUInt32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeUInt32 {
    pub default_value: u32,
    pub runtime_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpressionFilter {
    pub expression: &'static str,
}

// ---------------------------------------------------------------- routes

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteConfiguration {
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate_clusters: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VirtualHost {
    pub name: &'static str,
    pub domains: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitPolicy>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub typed_per_filter_config: BTreeMap<&'static str, Typed<CorsPolicy>>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    pub append_action: &'static str,
}

impl HeaderValueOption {
    /// Set `key: value`, replacing a value already there.
    pub fn overwrite(key: &'static str, value: impl Into<String>) -> Self {
        Self {
            header: HeaderValue {
                key,
                value: value.into(),
            },
            append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    }
    /// Add `key: value` unless the header is there already.
    pub fn add_if_absent(key: &'static str, value: impl Into<String>) -> Self {
        Self {
            header: HeaderValue {
                key,
                value: value.into(),
            },
            append_action: "ADD_IF_ABSENT",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderValue {
    pub key: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub match_: RouteMatch,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteMatch {
    #[serde(flatten)]
    pub path: PathMatch,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<QueryParameterMatcher>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    Path(String),
    Prefix(String),
    SafeRegex(Regex),
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryParameterMatcher {
    pub name: &'static str,
    pub string_match: StringMatcher,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteAction {
    pub cluster: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
    pub timeout: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegexRewrite {
    pub pattern: Regex,
    pub substitution: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPolicy {
    pub retry_on: &'static str,
    pub num_retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retry_host_predicate: Vec<RetryHostPredicate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_selection_retry_max_attempts: Option<u32>,
    pub retry_back_off: RetryBackOff,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryHostPredicate {
    pub name: &'static str,
    pub typed_config: Typed<PreviousHostsPredicate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviousHostsPredicate {}

#[derive(Debug, Clone, Serialize)]
pub struct RetryBackOff {
    pub base_interval: &'static str,
    pub max_interval: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<DataSource>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorsPolicy {
    pub allow_origin_string_match: Vec<StringMatcher>,
    pub allow_methods: &'static str,
    pub allow_headers: &'static str,
    pub expose_headers: &'static str,
    pub max_age: &'static str,
    pub allow_credentials: bool,
    pub forward_not_matching_preflights: bool,
}

// ---------------------------------------------------------------- rate limit descriptors

#[derive(Debug, Clone, Serialize)]
pub struct RateLimitPolicy {
    pub stage: u32,
    pub actions: Vec<RateLimitAction>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitAction {
    RequestHeaders {
        header_name: &'static str,
        descriptor_key: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        skip_if_absent: Option<bool>,
    },
    HeaderValueMatch {
        descriptor_key: &'static str,
        descriptor_value: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        expect_match: Option<bool>,
        headers: Vec<HeaderMatcher>,
    },
    RemoteAddress(Empty),
}

// ---------------------------------------------------------------- HTTP filters

#[derive(Debug, Clone, Serialize)]
pub struct HttpFilter {
    pub name: &'static str,
    pub typed_config: HttpFilterConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum HttpFilterConfig {
    Wasm(Typed<Wasm>),
    Cors(Typed<Cors>),
    HeaderMutation(Typed<HeaderMutation>),
    RateLimit(Typed<RateLimit>),
    Buffer(Typed<Buffer>),
    Router(Typed<Router>),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Router {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppress_envoy_headers: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cors {}

#[derive(Debug, Clone, Serialize)]
pub struct Buffer {
    pub max_request_bytes: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderMutation {
    pub mutations: Mutations,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mutations {
    pub request_mutations: Vec<HeaderMutationOp>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMutationOp {
    Append(HeaderValueOption),
    Remove(&'static str),
}

#[derive(Debug, Clone, Serialize)]
pub struct Wasm {
    pub config: PluginConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginConfig {
    pub name: &'static str,
    pub root_id: &'static str,
    pub vm_config: VmConfig,
    pub configuration: Typed<StringValue>,
    pub failure_policy: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct VmConfig {
    pub vm_id: &'static str,
    pub runtime: &'static str,
    pub code: AsyncDataSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct AsyncDataSource {
    pub local: DataSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct StringValue {
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateLimit {
    pub domain: &'static str,
    pub stage: u32,
    pub request_type: &'static str,
    pub timeout: String,
    pub failure_mode_deny: bool,
    pub status_on_error: HttpStatus,
    pub stat_prefix: &'static str,
    pub disable_x_envoy_ratelimited_header: bool,
    pub rate_limit_service: RateLimitServiceConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpStatus {
    pub code: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateLimitServiceConfig {
    pub transport_api_version: &'static str,
    pub grpc_service: GrpcService,
}
