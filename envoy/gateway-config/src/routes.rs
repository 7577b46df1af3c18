//! The public routes: one or two per entry of the endpoint table
//! (filters/core, `endpoint.rs`) — the route serving the entry's method,
//! named by its template (the metric `endpoint` label), and the 405 for any
//! other method — then the catch-all 404.

use filter_core::endpoint::Endpoint;

use crate::envoy::*;
use crate::settings::{Settings, VERSION};

const CONTENT_TYPE_JSON: (&str, &str) = ("content-type", "application/json");

/// A route that answers `status` with `body` itself.
fn direct(
    name: &str,
    match_: RouteMatch,
    status: u16,
    body: String,
    extra: Vec<HeaderValueOption>,
) -> Route {
    let mut headers = vec![HeaderValueOption::overwrite(
        CONTENT_TYPE_JSON.0,
        CONTENT_TYPE_JSON.1,
    )];
    headers.extend(extra);
    Route {
        name: Some(name.to_owned()),
        match_,
        route: None,
        direct_response: Some(DirectResponse {
            status,
            body: Some(DataSource::InlineString(body)),
        }),
        response_headers_to_add: headers,
    }
}

/// A known path with a method it does not serve: 405 in the error
/// envelope, with `allow`.
fn method_not_allowed(name: &str, path: PathMatch, allow: &str) -> Route {
    direct(
        name,
        RouteMatch {
            path,
            headers: Vec::new(),
            query_parameters: Vec::new(),
        },
        405,
        r#"{"status":"error","error":{"code":"METHOD_NOT_ALLOWED","message":"Method not allowed on this endpoint","request_id":""}}"#.to_owned(),
        vec![HeaderValueOption::overwrite("allow", allow)],
    )
}

fn previous_hosts() -> Vec<RetryHostPredicate> {
    vec![RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts",
        typed_config: Typed::new(PreviousHostsPredicate {}),
    }]
}

const BACK_OFF: RetryBackOff = RetryBackOff {
    base_interval: "0.025s",
    max_interval: "0.25s",
};

/// An API route served by `method` only, then the same path for any other
/// method (405).
fn api_route(name: &str, path: PathMatch, method: &str, action: RouteAction) -> [Route; 2] {
    [
        Route {
            name: Some(name.to_owned()),
            match_: RouteMatch {
                path: path.clone(),
                headers: vec![HeaderMatcher::method(method)],
                query_parameters: Vec::new(),
            },
            route: Some(action),
            direct_response: None,
            response_headers_to_add: Vec::new(),
        },
        method_not_allowed(name, path, method),
    ]
}

/// One read-only operator endpoint on the ops service, same path upstream.
/// A 503 from /health/detailed is an answer, not a failure: only transport
/// failures are retried.
fn ops_route(name: &str, path: PathMatch, method: &str) -> [Route; 2] {
    api_route(
        name,
        path,
        method,
        RouteAction {
            cluster: "ops_service",
            prefix_rewrite: None,
            regex_rewrite: None,
            timeout: "5s",
            retry_policy: Some(RetryPolicy {
                retry_on: "connect-failure,refused-stream,reset",
                num_retries: 1,
                per_try_timeout: None,
                retry_host_predicate: Vec::new(),
                host_selection_retry_max_attempts: None,
                retry_back_off: BACK_OFF,
            }),
        },
    )
}

/// The CORS preflight route: a route entry (the CORS filter skips
/// direct-response routes) to the ops service, which no preflight reaches.
pub(crate) fn cors_preflight() -> Route {
    Route {
        name: Some("cors_preflight".into()),
        match_: RouteMatch {
            path: PathMatch::Prefix("/".into()),
            headers: vec![
                HeaderMatcher::method("OPTIONS"),
                HeaderMatcher::present("origin", true),
                HeaderMatcher::present("access-control-request-method", true),
            ],
            query_parameters: Vec::new(),
        },
        route: Some(RouteAction {
            cluster: "ops_service",
            prefix_rewrite: None,
            regex_rewrite: None,
            timeout: "1s",
            retry_policy: None,
        }),
        direct_response: None,
        response_headers_to_add: Vec::new(),
    }
}

pub fn routes(s: &Settings) -> Vec<Route> {
    let mut routes = Vec::new();
    if !s.cors_origins.is_empty() {
        // CORS preflight: answered by the CORS filter, which skips
        // direct-response routes and so needs a route entry here. No
        // preflight reaches the cluster (forward_not_matching_preflights).
        routes.push(cors_preflight());
    }
    for endpoint in Endpoint::ALL {
        routes.extend(endpoint_routes(endpoint));
    }
    // Anything else, including every /internal/ path of the backends.
    routes.extend(endpoint_routes(Endpoint::Unmatched));
    routes
}

/// The routes of one entry of the endpoint table. Route names are the
/// metric `endpoint` templates; the match below is exhaustive, so an entry
/// added to the table without a route does not compile.
pub(crate) fn endpoint_routes(endpoint: Endpoint) -> Vec<Route> {
    let name = endpoint.template();
    let method = endpoint.method();
    let exact = || PathMatch::Path(name.into());
    match endpoint {
        // Liveness of the gateway itself: answered by Envoy, no upstream.
        Endpoint::Health => vec![
            direct(
                name,
                RouteMatch {
                    path: exact(),
                    headers: vec![HeaderMatcher::method(method)],
                    query_parameters: Vec::new(),
                },
                200,
                format!(r#"{{"status":"healthy","version":"{VERSION}"}}"#),
                Vec::new(),
            ),
            method_not_allowed(name, exact(), method),
        ],

        // Business API.
        Endpoint::Rates => api_route(
            name,
            PathMatch::SafeRegex(Regex {
                regex: format!("{}[^/]+", endpoint.prefix()),
            }),
            method,
            RouteAction {
                cluster: "data_service",
                prefix_rewrite: None,
                regex_rewrite: Some(RegexRewrite {
                    pattern: Regex {
                        regex: format!("^{}", endpoint.prefix()),
                    },
                    substitution: "/rates/",
                }),
                timeout: "3s",
                // A GET is idempotent: transport failures and 5xx are
                // retried on another host, within the cluster's retry
                // budget.
                retry_policy: Some(RetryPolicy {
                    retry_on: "connect-failure,refused-stream,reset,5xx",
                    num_retries: 2,
                    per_try_timeout: Some("1s"),
                    retry_host_predicate: previous_hosts(),
                    host_selection_retry_max_attempts: Some(3),
                    retry_back_off: BACK_OFF,
                }),
            },
        )
        .to_vec(),
        Endpoint::CalculateLocate => api_route(
            name,
            exact(),
            method,
            RouteAction {
                cluster: "calculation_service",
                prefix_rewrite: Some("/calculate-locate"),
                regex_rewrite: None,
                timeout: "5s",
                // A calculation writes an audit row: it is retried only
                // when the request provably never reached a backend (no
                // connection, or an HTTP/2 REFUSED_STREAM). A reset may
                // come after the write.
                retry_policy: Some(RetryPolicy {
                    retry_on: "connect-failure,refused-stream",
                    num_retries: 2,
                    per_try_timeout: None,
                    retry_host_predicate: previous_hosts(),
                    host_selection_retry_max_attempts: Some(3),
                    retry_back_off: BACK_OFF,
                }),
            },
        )
        .to_vec(),
        Endpoint::AuthToken => api_route(
            name,
            exact(),
            method,
            RouteAction {
                cluster: "auth_service",
                prefix_rewrite: None,
                regex_rewrite: None,
                timeout: "3s",
                // Issuing a token writes nothing: transport failures are
                // retried.
                retry_policy: Some(RetryPolicy {
                    retry_on: "connect-failure,refused-stream,reset",
                    num_retries: 2,
                    per_try_timeout: None,
                    retry_host_predicate: previous_hosts(),
                    host_selection_retry_max_attempts: None,
                    retry_back_off: BACK_OFF,
                }),
            },
        )
        .to_vec(),

        // Operator endpoints, served by the ops service under the same
        // path. /health/detailed is one of the /health/{service} paths
        // (prefix /health/, which also carries the ops service's own
        // /health/live and /health/ready).
        Endpoint::HealthDetailed => Vec::new(),
        Endpoint::HealthService => {
            ops_route(name, PathMatch::Prefix(endpoint.prefix().into()), method).to_vec()
        }
        Endpoint::Metrics
        | Endpoint::MonitoringMetrics
        | Endpoint::DiscoveryServices
        | Endpoint::OpenApi => ops_route(name, exact(), method).to_vec(),
        // `/docs/{file}`: the docs page's files (Swagger UI); the ops
        // service answers 404 for any other name, the auth filter lets only
        // those files through without a credential
        // (plugins::DOCS_PAGE_PATHS).
        Endpoint::Docs => [
            ops_route(name, exact(), method),
            ops_route("/docs/{file}", PathMatch::Prefix(format!("{name}/")), method),
        ]
        .concat(),

        Endpoint::Unmatched => vec![direct(
            name,
            RouteMatch {
                path: PathMatch::Prefix("/".into()),
                headers: Vec::new(),
                query_parameters: Vec::new(),
            },
            404,
            r#"{"status":"error","error":{"code":"NOT_FOUND","message":"No such endpoint","request_id":""}}"#.to_owned(),
            Vec::new(),
        )],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use filter_core::endpoint::UNMATCHED;

    use super::*;
    use crate::{Options, Shape};

    fn table_routes() -> Vec<Route> {
        let env = BTreeMap::from([
            (
                "JWT_SECRET_KEY".to_owned(),
                "0123456789abcdef0123456789abcdef".to_owned(),
            ),
            (
                "CORS_ORIGINS".to_owned(),
                "https://app.example.com".to_owned(),
            ),
        ]);
        let settings =
            Settings::new(&Options::new(Shape::Local), &env).unwrap_or_else(|e| panic!("{e}"));
        routes(&settings)
    }

    /// The route Envoy picks for a request with only `:method` and `:path`
    /// (query string left out): the first whose match holds.
    fn route_for<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
        routes.iter().find(|r| {
            let path_ok = match &r.match_.path {
                PathMatch::Path(p) => p == path,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                PathMatch::SafeRegex(re) => regex::Regex::new(&format!("^(?:{})$", re.regex))
                    .is_ok_and(|re| re.is_match(path)),
            };
            path_ok
                && r.match_.headers.iter().all(|h| match (h.name, &h.spec) {
                    (":method", HeaderMatch::StringMatch(StringMatcher::Exact(m))) => m == method,
                    (_, HeaderMatch::PresentMatch(present)) => !present,
                    _ => false,
                })
        })
    }

    fn status(r: &Route) -> Option<u16> {
        r.direct_response.as_ref().map(|d| d.status)
    }

    /// Every entry of the endpoint table is routed, with its method, to a
    /// route named by its template; any other method is a 405 naming it.
    #[test]
    fn every_endpoint_of_the_table_is_routed_with_its_method() {
        let routes = table_routes();
        for e in Endpoint::ALL {
            let path = e.example_path();
            let want = match e {
                Endpoint::HealthDetailed => Endpoint::HealthService.template(),
                _ => e.template(),
            };
            let r =
                route_for(&routes, e.method(), &path).unwrap_or_else(|| panic!("{path}: no route"));
            assert_eq!(r.name.as_deref(), Some(want), "{} {path}", e.method());
            assert!(
                r.route.is_some() || status(r) == Some(200),
                "{} {path} is not served",
                e.method()
            );
            let other = if e.method() == "GET" { "POST" } else { "GET" };
            let r = route_for(&routes, other, &path).unwrap_or_else(|| panic!("{path}: no route"));
            assert_eq!(status(r), Some(405), "{other} {path}");
            assert_eq!(r.name.as_deref(), Some(want), "{other} {path}");
            let allow = r
                .response_headers_to_add
                .iter()
                .find(|h| h.header.key == "allow")
                .map(|h| h.header.value.as_str());
            assert_eq!(allow, Some(e.method()), "{other} {path}");
        }
        for path in ["/", "/api/v1/rates/AAPL/x", "/internal/v1/keys/verify"] {
            let r = route_for(&routes, "GET", path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((r.name.as_deref(), status(r)), (Some(UNMATCHED), Some(404)));
        }
    }

    /// No route outside the table, but the CORS preflight and the docs
    /// page's files.
    #[test]
    fn every_route_is_named_by_the_table() {
        for r in table_routes() {
            let name = r.name.unwrap_or_default();
            assert!(
                Endpoint::ALL.iter().any(|e| e.template() == name)
                    || [UNMATCHED, "cors_preflight", "/docs/{file}"].contains(&name.as_str()),
                "{name}"
            );
        }
    }
}
