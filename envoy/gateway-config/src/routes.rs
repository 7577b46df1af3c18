//! The public routes: the API, the operator endpoints, /health and the
//! catch-all 404, each known path with its 405 for other methods.

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
fn ops_route(endpoint: &str, path: PathMatch) -> [Route; 2] {
    api_route(
        endpoint,
        path,
        "GET",
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

pub fn routes(s: &Settings) -> Vec<Route> {
    let mut routes = Vec::new();
    if !s.cors_origins.is_empty() {
        // CORS preflight: answered by the CORS filter, which skips
        // direct-response routes and so needs a route entry here. No
        // preflight reaches the cluster (forward_not_matching_preflights).
        routes.push(Route {
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
        });
    }
    // Liveness of the gateway itself: answered by Envoy, no upstream.
    routes.push(direct(
        "/health",
        RouteMatch {
            path: PathMatch::Path("/health".into()),
            headers: vec![HeaderMatcher::method("GET")],
            query_parameters: Vec::new(),
        },
        200,
        format!(r#"{{"status":"healthy","version":"{VERSION}"}}"#),
        Vec::new(),
    ));
    routes.push(method_not_allowed(
        "/health",
        PathMatch::Path("/health".into()),
        "GET",
    ));

    // Business API. Route names are the metric `endpoint` templates.
    let rates = PathMatch::SafeRegex(Regex {
        regex: "/api/v1/rates/[^/]+".into(),
    });
    routes.extend(api_route(
        "/api/v1/rates/{ticker}",
        rates,
        "GET",
        RouteAction {
            cluster: "data_service",
            prefix_rewrite: None,
            regex_rewrite: Some(RegexRewrite {
                pattern: Regex {
                    regex: "^/api/v1/rates/".into(),
                },
                substitution: "/rates/",
            }),
            timeout: "3s",
            // A GET is idempotent: transport failures and 5xx are retried
            // on another host, within the cluster's retry budget.
            retry_policy: Some(RetryPolicy {
                retry_on: "connect-failure,refused-stream,reset,5xx",
                num_retries: 2,
                per_try_timeout: Some("1s"),
                retry_host_predicate: previous_hosts(),
                host_selection_retry_max_attempts: Some(3),
                retry_back_off: BACK_OFF,
            }),
        },
    ));
    routes.extend(api_route(
        "/api/v1/calculate-locate",
        PathMatch::Path("/api/v1/calculate-locate".into()),
        "POST",
        RouteAction {
            cluster: "calculation_service",
            prefix_rewrite: Some("/calculate-locate"),
            regex_rewrite: None,
            timeout: "5s",
            // A calculation writes an audit row: it is retried only when the
            // request provably never reached a backend (no connection, or
            // an HTTP/2 REFUSED_STREAM). A reset may come after the write.
            retry_policy: Some(RetryPolicy {
                retry_on: "connect-failure,refused-stream",
                num_retries: 2,
                per_try_timeout: None,
                retry_host_predicate: previous_hosts(),
                host_selection_retry_max_attempts: Some(3),
                retry_back_off: BACK_OFF,
            }),
        },
    ));
    routes.extend(api_route(
        "/api/v1/auth/token",
        PathMatch::Path("/api/v1/auth/token".into()),
        "POST",
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
    ));

    // Operator endpoints, served by the ops service under the same path.
    // `/docs/{file}`: the docs page's files (Swagger UI); the ops service
    // answers 404 for any other name, the auth filter lets only those files
    // through without a credential (plugins::DOCS_PAGE_PATHS).
    for (endpoint, path) in [
        ("/health/{service}", PathMatch::Prefix("/health/".into())),
        ("/metrics", PathMatch::Path("/metrics".into())),
        (
            "/monitoring/metrics",
            PathMatch::Path("/monitoring/metrics".into()),
        ),
        (
            "/discovery/services",
            PathMatch::Path("/discovery/services".into()),
        ),
        ("/docs", PathMatch::Path("/docs".into())),
        ("/docs/{file}", PathMatch::Prefix("/docs/".into())),
        ("/openapi.json", PathMatch::Path("/openapi.json".into())),
    ] {
        routes.extend(ops_route(endpoint, path));
    }

    // Anything else, including every /internal/ path of the backends.
    routes.push(direct(
        "unmatched",
        RouteMatch {
            path: PathMatch::Prefix("/".into()),
            headers: Vec::new(),
            query_parameters: Vec::new(),
        },
        404,
        r#"{"status":"error","error":{"code":"NOT_FOUND","message":"No such endpoint","request_id":""}}"#.to_owned(),
        Vec::new(),
    ));
    routes
}
