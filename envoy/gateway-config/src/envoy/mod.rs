//! The part of Envoy's v3 API the gateway uses, as serde types. Field names
//! are Envoy's (proto field names, as in a YAML bootstrap); a field left
//! `None` or empty is not written. Typed extension configurations carry
//! their `@type` through [`Typed`].

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// An extension configuration type with its `type.googleapis.com/...` URL.
pub trait TypeUrl {
    /// The `@type` written next to the configuration.
    const TYPE_URL: &'static str;
}

/// A `typed_config`: the configuration with its `@type` first.
#[derive(Debug, Clone, Serialize)]
pub struct Typed<T> {
    #[serde(rename = "@type")]
    type_url: &'static str,
    #[serde(flatten)]
    inner: T,
}

impl<T: TypeUrl> Typed<T> {
    pub fn new(inner: T) -> Self {
        Self {
            type_url: T::TYPE_URL,
            inner,
        }
    }
}

macro_rules! type_url {
    ($($ty:ty => $url:literal,)*) => {
        $(impl TypeUrl for $ty {
            const TYPE_URL: &'static str = concat!("type.googleapis.com/", $url);
        })*
    };
}

type_url! {
    DownstreamConnectionsConfig => "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
    HttpConnectionManager => "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    TlsInspector => "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    DownstreamTlsContext => "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    Router => "envoy.extensions.filters.http.router.v3.Router",
    Cors => "envoy.extensions.filters.http.cors.v3.Cors",
    CorsPolicy => "envoy.extensions.filters.http.cors.v3.CorsPolicy",
    HeaderMutation => "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
    Wasm => "envoy.extensions.filters.http.wasm.v3.Wasm",
    StringValue => "google.protobuf.StringValue",
    RateLimit => "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
    Buffer => "envoy.extensions.filters.http.buffer.v3.Buffer",
    PreviousHostsPredicate => "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
    HttpProtocolOptions => "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    OpenTelemetryConfig => "envoy.config.trace.v3.OpenTelemetryConfig",
    StdoutAccessLog => "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
    ExpressionFilter => "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
}

/// `{}`: a message whose presence is the setting.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Empty {}

/// A mapping that keeps its keys in the order given (Envoy's `json_format`
/// writes the access log's fields in this order).
#[derive(Debug, Clone, Default)]
pub struct Ordered(pub Vec<(&'static str, &'static str)>);

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

// ---------------------------------------------------------------- bootstrap

#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    pub node: Node,
    pub admin: Admin,
    pub stats_config: StatsConfig,
    pub overload_manager: OverloadManager,
    pub static_resources: StaticResources,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: String,
    pub cluster: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub address: Address,
}

/// A port number, or a `{{NAME}}` placeholder the e2e harness replaces
/// with a free port before starting Envoy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Port {
    Number(u16),
    Placeholder(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Address {
    pub socket_address: SocketAddress,
}

#[derive(Debug, Clone, Serialize)]
pub struct SocketAddress {
    pub address: String,
    pub port_value: Port,
}

impl Address {
    pub fn socket(address: impl Into<String>, port: Port) -> Self {
        Self {
            socket_address: SocketAddress {
                address: address.into(),
                port_value: port,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsConfig {
    pub stats_tags: Vec<StatsTag>,
    pub histogram_bucket_settings: Vec<HistogramBucketSettings>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsTag {
    pub tag_name: &'static str,
    pub regex: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistogramBucketSettings {
    #[serde(rename = "match")]
    pub match_: StringMatcher,
    pub buckets: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverloadManager {
    pub refresh_interval: &'static str,
    pub resource_monitors: Vec<ResourceMonitor>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceMonitor {
    pub name: &'static str,
    pub typed_config: Typed<DownstreamConnectionsConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownstreamConnectionsConfig {
    pub max_active_downstream_connections: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaticResources {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
}

// ---------------------------------------------------------------- matchers

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    SafeRegex(Regex),
}

impl StringMatcher {
    pub fn exact(s: impl Into<String>) -> Self {
        Self::Exact(s.into())
    }
    pub fn regex(s: impl Into<String>) -> Self {
        Self::SafeRegex(Regex { regex: s.into() })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Regex {
    pub regex: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatcher {
    pub name: &'static str,
    #[serde(flatten)]
    pub spec: HeaderMatch,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    StringMatch(StringMatcher),
    PresentMatch(bool),
}

impl HeaderMatcher {
    /// `:method` is exactly `method`.
    pub fn method(method: &str) -> Self {
        Self::string(":method", StringMatcher::exact(method))
    }
    pub fn string(name: &'static str, m: StringMatcher) -> Self {
        Self {
            name,
            spec: HeaderMatch::StringMatch(m),
        }
    }
    pub fn present(name: &'static str, present: bool) -> Self {
        Self {
            name,
            spec: HeaderMatch::PresentMatch(present),
        }
    }
}

// ---------------------------------------------------------------- listeners

#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub name: &'static str,
    pub address: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_filters: Vec<ListenerFilter>,
    pub filter_chains: Vec<FilterChain>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListenerFilter {
    pub name: &'static str,
    pub typed_config: Typed<TlsInspector>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsInspector {}

#[derive(Debug, Clone, Serialize)]
pub struct FilterChain {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TransportSocket>,
    pub filters: Vec<NetworkFilter>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransportSocket {
    pub name: &'static str,
    pub typed_config: Typed<DownstreamTlsContext>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownstreamTlsContext {
    pub common_tls_context: CommonTlsContext,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommonTlsContext {
    pub alpn_protocols: Vec<&'static str>,
    pub tls_params: TlsParams,
    pub tls_certificates: Vec<TlsCertificate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsParams {
    pub tls_minimum_protocol_version: &'static str,
    pub tls_maximum_protocol_version: &'static str,
    pub cipher_suites: Vec<&'static str>,
    pub ecdh_curves: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsCertificate {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Filename(String),
    InlineString(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkFilter {
    pub name: &'static str,
    pub typed_config: Typed<HttpConnectionManager>,
}

mod cluster;
mod http;

pub use cluster::*;
pub use http::*;
