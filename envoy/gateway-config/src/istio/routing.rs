//! The Gateway, the VirtualService (the Envoy routes of routes.rs,
//! endpoint by endpoint) and the DestinationRule.

use super::*;

// ---------------------------------------------------------------- gateway and routes

pub(super) const GATEWAY_HEADER: &str = "\
# Public entry point in Kubernetes: our ingress gateway (ingress-gateway.yaml,
# an Envoy injected by Istio) with the gateway's three wasm filters
# (wasm-plugins.yaml) and the global rate limit (ratelimit.yaml).
#
# The VirtualService's routes are the Envoy shapes' (envoy/gateway-config,
# src/routes.rs), endpoint by endpoint of the endpoint table
# (filters/core/src/endpoint.rs; docs/architecture.md \"Routes\"): the same
# match, method, backend, rewrite, timeout and retries; a known path with
# another method is 405 with `Allow`, anything else 404; local-reply.yaml
# gives those replies their request id. The operator endpoints share one
# route to the ops service (which answers another method itself). CORS
# preflights are answered by Envoy's CORS filter from their route's policy
# (a direct-response route would not be), never forwarded
# (unmatchedPreflights IGNORE; an admitted preflight is answered too).
#
# As the Envoy shape's TLS listener does: HTTPS only (plain HTTP is
# redirected, 301), HSTS on every answer of a route (the Envoy shape sets it
# on its route configuration), and CORS for the origins of CORS_ORIGINS
# (borrow-rate-config; cargo xtask check-deploy holds the two equal; the
# overlays' cors.yaml patch the routes http[0, 3, 5, 7, 9]: cors-preflight,
# rates, calculate-locate, auth-token, ops) with the Envoy shape's methods,
# headers and max age. Access logs: telemetry.yaml.
#
# The HTTPS server's certificate: Secret borrow-rate-tls (tls.crt, tls.key)
# in this namespace, created out of band (docs/deploy.md); rotated by
# replacing it, no restart.
#
# The DestinationRule: circuit breakers and outlier detection per backend,
# matching the Envoy clusters of the compose and local shapes.
";

/// The VirtualService's name (the overlays patch it by name).
pub(super) const VIRTUAL_SERVICE: &str = "borrow-rate-api";
/// The Gateway's name, and the ingress gateway's.
pub(super) const GATEWAY: &str = "borrow-rate-gateway";
/// The HTTPS server's Secret.
pub(super) const TLS_SECRET: &str = "borrow-rate-tls";
/// The base's CORS_ORIGINS (deploy/base/kubernetes/config.yaml; the
/// overlays patch both).
pub(super) const BASE_CORS_ORIGINS: [&str; 1] = ["https://app.example.com"];

#[derive(Serialize)]
pub(super) struct GatewaySpec {
    pub(super) selector: Labels,
    pub(super) servers: Vec<Server>,
}

#[derive(Serialize)]
pub(super) struct Server {
    pub(super) port: ServerPort,
    pub(super) hosts: Vec<&'static str>,
    pub(super) tls: ServerTls,
}

#[derive(Serialize)]
pub(super) struct ServerPort {
    pub(super) number: u16,
    pub(super) name: &'static str,
    pub(super) protocol: &'static str,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServerTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) https_redirect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) credential_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) min_protocol_version: Option<&'static str>,
}

pub(super) fn gateway() -> Resource<GatewaySpec> {
    Resource {
        api_version: "networking.istio.io/v1",
        kind: "Gateway",
        metadata: Metadata::new(GATEWAY),
        spec: GatewaySpec {
            selector: Labels {
                istio: GATEWAY_LABEL,
            },
            servers: vec![
                Server {
                    port: ServerPort {
                        number: 80,
                        name: "http",
                        protocol: "HTTP",
                    },
                    hosts: vec!["*"],
                    tls: ServerTls {
                        https_redirect: Some(true),
                        ..ServerTls::default()
                    },
                },
                Server {
                    port: ServerPort {
                        number: 443,
                        name: "https",
                        protocol: "HTTPS",
                    },
                    hosts: vec!["*"],
                    tls: ServerTls {
                        mode: Some("SIMPLE"),
                        credential_name: Some(TLS_SECRET),
                        min_protocol_version: Some("TLSV1_2"),
                        ..ServerTls::default()
                    },
                },
            ],
        },
    }
}

#[derive(Serialize)]
pub(super) struct VirtualServiceSpec {
    pub(super) hosts: Vec<&'static str>,
    pub(super) gateways: Vec<&'static str>,
    pub(super) http: Vec<HttpRoute>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct HttpRoute {
    pub(super) name: String,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub(super) match_: Vec<HttpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rewrite: Option<Rewrite>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) route: Vec<RouteDestination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) direct_response: Option<IstioDirectResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) retries: Option<Retries>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cors_policy: Option<IstioCorsPolicy>,
    pub(super) headers: ResponseHeaders,
}

#[derive(Serialize, Default, PartialEq)]
pub(super) struct HttpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) uri: Option<IstioStringMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) method: Option<IstioStringMatch>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) headers: BTreeMap<&'static str, IstioStringMatch>,
}

#[derive(Serialize, Clone, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(super) enum IstioStringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) uri: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) uri_regex_rewrite: Option<UriRegexRewrite>,
}

#[derive(Serialize)]
pub(super) struct UriRegexRewrite {
    #[serde(rename = "match")]
    pub(super) match_: String,
    pub(super) rewrite: &'static str,
}

#[derive(Serialize)]
pub(super) struct RouteDestination {
    pub(super) destination: Destination,
}

#[derive(Serialize)]
pub(super) struct Destination {
    pub(super) host: String,
    pub(super) port: PortNumber,
}

#[derive(Serialize)]
pub(super) struct PortNumber {
    pub(super) number: u16,
}

#[derive(Serialize)]
pub(super) struct IstioDirectResponse {
    pub(super) status: u16,
    pub(super) body: DirectBody,
}

#[derive(Serialize)]
pub(super) struct DirectBody {
    pub(super) string: String,
}

#[derive(Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(super) struct Retries {
    pub(super) attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) per_try_timeout: Option<&'static str>,
    pub(super) retry_on: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IstioCorsPolicy {
    pub(super) allow_origins: Vec<IstioStringMatch>,
    pub(super) allow_methods: Vec<&'static str>,
    pub(super) allow_headers: Vec<&'static str>,
    pub(super) expose_headers: Vec<&'static str>,
    pub(super) max_age: String,
    pub(super) allow_credentials: bool,
    pub(super) unmatched_preflights: &'static str,
}

#[derive(Serialize)]
pub(super) struct ResponseHeaders {
    pub(super) response: HeaderSet,
}

#[derive(Serialize)]
pub(super) struct HeaderSet {
    pub(super) set: BTreeMap<&'static str, String>,
}

/// The Envoy shape's CORS policy (gateway.rs) for the base's origins.
pub(super) fn cors_policy() -> IstioCorsPolicy {
    let list = |s: &'static str| s.split(", ").collect();
    IstioCorsPolicy {
        allow_origins: BASE_CORS_ORIGINS
            .iter()
            .map(|o| IstioStringMatch::Exact((*o).to_owned()))
            .collect(),
        allow_methods: list(gateway::CORS_ALLOW_METHODS),
        allow_headers: list(gateway::CORS_ALLOW_HEADERS),
        expose_headers: list(gateway::CORS_EXPOSE_HEADERS),
        max_age: format!("{}s", gateway::CORS_MAX_AGE_SECONDS),
        allow_credentials: false,
        // A preflight from another origin is answered too (without CORS
        // headers), never forwarded: the Envoy shape's
        // forward_not_matching_preflights false.
        unmatched_preflights: "IGNORE",
    }
}

/// The Service of an Envoy cluster (settings::UPSTREAMS, the compose
/// shape's address: the Service name and port).
pub(super) fn destination(cluster: &str) -> Result<RouteDestination, Error> {
    let (name, port) = UPSTREAMS
        .iter()
        .find(|(c, _, _)| *c == cluster)
        .and_then(|(_, _, compose)| compose.split_once(':'))
        .ok_or_else(|| Error(format!("no upstream for the cluster {cluster}")))?;
    let number = port
        .parse()
        .map_err(|e| Error(format!("{cluster}: port {port}: {e}")))?;
    Ok(RouteDestination {
        destination: Destination {
            host: format!("{name}.{NAMESPACE}.svc.cluster.local"),
            port: PortNumber { number },
        },
    })
}

/// An Envoy route's match in Istio's terms (`None`: it matches any
/// request, as Istio's route without a match does).
pub(super) fn http_match(m: &crate::envoy::RouteMatch) -> Result<Option<HttpMatch>, Error> {
    let mut out = HttpMatch {
        uri: match &m.path {
            PathMatch::Prefix(p) if p == "/" => None,
            PathMatch::Prefix(p) => Some(IstioStringMatch::Prefix(p.clone())),
            PathMatch::Path(p) => Some(IstioStringMatch::Exact(p.clone())),
            PathMatch::SafeRegex(r) => Some(IstioStringMatch::Regex(r.regex.clone())),
        },
        ..HttpMatch::default()
    };
    for h in &m.headers {
        match (h.name, &h.spec) {
            (":method", HeaderMatch::StringMatch(StringMatcher::Exact(method))) => {
                out.method = Some(IstioStringMatch::Exact(method.clone()));
            }
            (name, HeaderMatch::PresentMatch(true)) => {
                out.headers
                    .insert(name, IstioStringMatch::Regex(".+".to_owned()));
            }
            (name, _) => return Err(Error(format!("no Istio match for the header {name}"))),
        }
    }
    if !m.query_parameters.is_empty() {
        return Err(Error("no Istio match for query parameters".to_owned()));
    }
    Ok((out != HttpMatch::default()).then_some(out))
}

/// An Envoy route in Istio's terms, named `name`.
pub(super) fn http_route(name: String, r: &Route) -> Result<HttpRoute, Error> {
    let mut set: BTreeMap<&'static str, String> = r
        .response_headers_to_add
        .iter()
        .map(|h| (h.header.key, h.header.value.clone()))
        .collect();
    set.insert(gateway::HSTS.0, gateway::HSTS.1.to_owned());
    let mut out = HttpRoute {
        name,
        match_: http_match(&r.match_)?.into_iter().collect(),
        rewrite: None,
        route: Vec::new(),
        direct_response: None,
        timeout: None,
        retries: None,
        cors_policy: None,
        headers: ResponseHeaders {
            response: HeaderSet { set },
        },
    };
    if let Some(action) = &r.route {
        out.route = vec![destination(action.cluster)?];
        out.rewrite = match (action.prefix_rewrite, &action.regex_rewrite) {
            (None, None) => None,
            (uri, regex) => Some(Rewrite {
                uri,
                uri_regex_rewrite: regex.as_ref().map(|r| UriRegexRewrite {
                    match_: r.pattern.regex.clone(),
                    rewrite: r.substitution,
                }),
            }),
        };
        out.timeout = Some(action.timeout);
        out.retries = action.retry_policy.as_ref().map(|p| Retries {
            attempts: p.num_retries,
            per_try_timeout: p.per_try_timeout,
            retry_on: p.retry_on,
        });
        out.cors_policy = Some(cors_policy());
    }
    if let Some(d) = &r.direct_response {
        let body = match &d.body {
            Some(DataSource::InlineString(s)) => s.clone(),
            _ => return Err(Error(format!("{}: no inline body", out.name))),
        };
        out.direct_response = Some(IstioDirectResponse {
            status: d.status,
            body: DirectBody { string: body },
        });
    }
    Ok(out)
}

/// The Istio route name of an endpoint: its template's literal segments
/// after /api/v1 (`/api/v1/auth/token` → `auth-token`).
pub(super) fn route_name(endpoint: Endpoint) -> String {
    if endpoint == Endpoint::Unmatched {
        return "not-found".to_owned();
    }
    let template = endpoint.template();
    template
        .strip_prefix("/api/v1")
        .unwrap_or(template)
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .collect::<Vec<_>>()
        .join("-")
}

pub(super) const OPS_CLUSTER: &str = "ops_service";

/// The VirtualService's routes: the CORS preflight, then the Envoy routes
/// of each endpoint of the table (routes.rs) in the table's order, the
/// operator endpoints' as one route `ops` (their 405s left to the ops
/// service), then the 404.
pub(super) fn virtual_service_routes() -> Result<Vec<HttpRoute>, Error> {
    let mut http = vec![http_route(
        "cors-preflight".to_owned(),
        &routes::cors_preflight(),
    )?];
    let mut ops: Option<usize> = None;
    for endpoint in Endpoint::ALL.into_iter().chain([Endpoint::Unmatched]) {
        let envoy = routes::endpoint_routes(endpoint);
        let to_ops = envoy
            .iter()
            .any(|r| r.route.as_ref().is_some_and(|a| a.cluster == OPS_CLUSTER));
        let name = route_name(endpoint);
        for r in &envoy {
            if !to_ops {
                // The served route, then the 405 of the same path.
                let name = match &r.direct_response {
                    Some(d) if d.status == 405 => format!("{name}-method-not-allowed"),
                    _ => name.clone(),
                };
                http.push(http_route(name, r)?);
                continue;
            }
            if r.route.is_none() {
                continue;
            }
            // One route for every operator endpoint, matching each path
            // with any method.
            let mut route = http_route("ops".to_owned(), r)?;
            let mut matches = std::mem::take(&mut route.match_);
            for m in &mut matches {
                m.method = None;
            }
            match ops {
                None => {
                    route.match_ = matches;
                    ops = Some(http.len());
                    http.push(route);
                }
                Some(i) => {
                    let first = &mut http[i];
                    if first.timeout != route.timeout || first.retries != route.retries {
                        return Err(Error(format!(
                            "{}: the operator endpoints' routes differ in timeout or retries",
                            endpoint.template()
                        )));
                    }
                    first.match_.extend(matches);
                }
            }
        }
    }
    Ok(http)
}

pub(super) fn virtual_service() -> Result<Resource<VirtualServiceSpec>, Error> {
    Ok(Resource {
        api_version: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: Metadata::new(VIRTUAL_SERVICE),
        spec: VirtualServiceSpec {
            hosts: vec!["*"],
            gateways: vec![GATEWAY],
            http: virtual_service_routes()?,
        },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DestinationRuleSpec {
    pub(super) host: String,
    pub(super) traffic_policy: TrafficPolicy,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TrafficPolicy {
    pub(super) connection_pool: ConnectionPool,
    pub(super) outlier_detection: OutlierDetection,
}

#[derive(Serialize)]
pub(super) struct ConnectionPool {
    pub(super) tcp: TcpPool,
    pub(super) http: HttpPool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TcpPool {
    pub(super) max_connections: u32,
    pub(super) connect_timeout: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct HttpPool {
    pub(super) http1_max_pending_requests: u32,
    pub(super) http2_max_requests: u32,
    pub(super) max_retries: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OutlierDetection {
    pub(super) consecutive_5xx_errors: u32,
    pub(super) interval: &'static str,
    pub(super) base_ejection_time: &'static str,
    pub(super) max_ejection_percent: u32,
}

pub(super) fn destination_rule() -> Resource<DestinationRuleSpec> {
    Resource {
        api_version: "networking.istio.io/v1",
        kind: "DestinationRule",
        metadata: Metadata::new("backends"),
        spec: DestinationRuleSpec {
            host: format!("*.{NAMESPACE}.svc.cluster.local"),
            traffic_policy: TrafficPolicy {
                connection_pool: ConnectionPool {
                    tcp: TcpPool {
                        max_connections: 512,
                        connect_timeout: "1s",
                    },
                    http: HttpPool {
                        http1_max_pending_requests: 256,
                        http2_max_requests: 512,
                        max_retries: 16,
                    },
                },
                outlier_detection: OutlierDetection {
                    consecutive_5xx_errors: 5,
                    interval: "10s",
                    base_ejection_time: "30s",
                    max_ejection_percent: 50,
                },
            },
        },
    }
}

pub(super) fn gateway_file() -> Result<String, Error> {
    Ok(super::generated(
        GATEWAY_HEADER,
        &[
            crate::to_yaml(&gateway())?,
            crate::to_yaml(&virtual_service()?)?,
            crate::to_yaml(&destination_rule())?,
        ],
    ))
}
