//! The OpenAPI document of the public API, generated from the handlers'
//! own annotations and types (`utoipa`): the request and answer types are
//! the ones the handlers (de)serialise and the validation crate parses, so
//! a field added to them appears here without editing the document. The
//! page that renders it is [`crate::docs_page`].
//!
//! The handlers document what they answer themselves. What the gateway
//! adds in front of every route is added here, once, by [`Gateway`]:
//! `x-request-id` on every answer, the `X-RateLimit-*` headers on the
//! rate-limited `/api/` routes, the 401 of the auth filter on routes that
//! need credentials, and Envoy's own answers (malformed request, wrong
//! method, rate limited, no healthy backend, backend error or timeout).

use std::sync::LazyLock;

use pricing::openapi::responses;
use pricing::openapi::ErrorResponse;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::OneOfBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

/// The public API: every route of the gateway.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Borrow Rate & Locate Fee API",
        description = "Borrow rates and locate fees for securities lending. Every request passes the gateway: authentication (API key or JWT), rate limiting (per client, `X-RateLimit-*` headers) and validation. Every error uses one JSON envelope, and every response carries `x-request-id`.",
    ),
    servers((url = "/", description = "This gateway")),
    tags((name = "Pricing"), (name = "Authentication"), (name = "Operations")),
    paths(
        services::data::rate,
        services::calculation::calculate,
        auth_service::issue_token,
        crate::liveness,
        crate::live,
        crate::ready,
        crate::health_detailed,
        crate::health_one,
        crate::metrics,
        crate::monitoring_metrics,
        crate::discovery_services,
        crate::docs_page::page,
        crate::openapi,
    ),
    components(schemas(pricing::ErrorEnvelope)),
    modifiers(&Gateway),
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as served at `/openapi.json` (built once).
pub fn openapi_json() -> &'static str {
    static JSON: LazyLock<String> =
        LazyLock::new(|| document().to_pretty_json().unwrap_or_default());
    JSON.as_str()
}

/// Operations Envoy answers itself, never proxied: no backend failure
/// applies to them.
const ANSWERED_BY_THE_GATEWAY: [&str; 1] = ["/health"];

/// What the gateway adds to every route (see the module documentation).
pub struct Gateway;

impl Modify for Gateway {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "ApiKeyAuth".into(),
            RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(
                ApiKeyValue::with_description(
                    "X-API-Key",
                    "`brl_` followed by 40 letters and digits.",
                ),
            ))),
        );
        components.security_schemes.insert(
            "BearerAuth".into(),
            RefOr::T(SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("From `POST /api/v1/auth/token`; 15 minutes."))
                    .build(),
            )),
        );
        for (name, header) in pricing::openapi::header_components() {
            components.headers.insert(name, header.into());
        }
        for r in responses::ALL {
            components
                .responses
                .insert(r.name.to_owned(), r.response().into());
        }

        for (path, item) in doc.paths.paths.iter_mut() {
            let rate_limited = path.starts_with("/api/");
            let proxied = !ANSWERED_BY_THE_GATEWAY.contains(&path.as_str());
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                if op.security.is_none() {
                    // Public: say so explicitly, so no global default applies.
                    op.security = Some(Vec::new());
                }
                let responses = &mut op.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        add_headers(response, rate_limited && status.starts_with('2'));
                        if proxied && status == "503" {
                            or_the_envelope(response);
                        }
                    }
                }
                let mut add = |status: &str, r: ErrorResponse| {
                    responses
                        .entry(status.into())
                        .or_insert_with(|| r.reference());
                };
                add("400", responses::MalformedRequest::SPEC);
                if secured {
                    add("401", responses::Unauthorized::SPEC);
                }
                add("405", responses::MethodNotAllowed::SPEC);
                add("429", responses::RateLimited::SPEC);
                add("500", responses::InternalError::SPEC);
                if proxied {
                    add("502", responses::BackendError::SPEC);
                    add("503", responses::ServiceUnavailable::SPEC);
                    add("504", responses::BackendTimeout::SPEC);
                }
            }
        }
    }
}

/// A route's own 503 body, or the envelope when Envoy answers the 503
/// itself (no healthy backend).
fn or_the_envelope(response: &mut Response) {
    use utoipa::ToSchema;
    let envelope = Ref::from_schema_name(pricing::ErrorEnvelope::name());
    for content in response.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(own) = content.schema.take() {
            let either = OneOfBuilder::new().item(own).item(envelope.clone());
            content.schema = Some(RefOr::T(either.into()));
        }
    }
}

/// `x-request-id` on every answer the handlers document, and the
/// `X-RateLimit-*` headers when `rate_limited`.
fn add_headers(response: &mut Response, rate_limited: bool) {
    let builder: utoipa::openapi::response::ResponseBuilder = response.clone().into();
    *response = pricing::openapi::with_headers(builder, rate_limited, false).build();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The served document, as JSON.
    fn doc() -> serde_json::Value {
        serde_json::from_str(openapi_json()).unwrap()
    }

    /// A schema of the document, following one `$ref`.
    fn resolve<'a>(
        doc: &'a serde_json::Value,
        schema: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                &doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    #[test]
    fn the_document_is_openapi_3_with_the_api_title() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(doc["info"]["title"], "Borrow Rate & Locate Fee API");
    }

    #[test]
    fn every_public_endpoint_is_documented() {
        let doc = doc();
        for (path, method) in [
            ("/health", "get"),
            ("/health/live", "get"),
            ("/health/ready", "get"),
            ("/health/detailed", "get"),
            ("/health/{service}", "get"),
            ("/metrics", "get"),
            ("/monitoring/metrics", "get"),
            ("/discovery/services", "get"),
            ("/docs", "get"),
            ("/openapi.json", "get"),
            ("/api/v1/auth/token", "post"),
            ("/api/v1/rates/{ticker}", "get"),
            ("/api/v1/calculate-locate", "post"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), 13);
    }

    #[test]
    fn the_locate_request_schema_carries_the_spec_rules() {
        let doc = doc();
        let s = &doc["components"]["schemas"]["LocateRequest"];
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"].as_array().unwrap().len(), 4);
        let p = |name: &str| resolve(&doc, &s["properties"][name]);
        assert_eq!(p("ticker")["pattern"], r"^[A-Za-z]{1,5}(\.[A-Za-z]{1,2})?$");
        assert_eq!(p("client_id")["pattern"], "^[A-Za-z0-9_-]{1,64}$");
        assert_eq!(p("loan_days")["minimum"], 1);
        assert_eq!(p("loan_days")["maximum"], 365);
        let number = &p("position_value")["oneOf"][0];
        assert_eq!(number["maximum"], 1_000_000_000_000u64);
        assert_eq!(number["multipleOf"], 0.01);
        assert_eq!(number["exclusiveMinimum"], 0);
    }

    #[test]
    fn the_decimal_string_pattern_matches_what_the_validator_accepts() {
        // The documented string form must be a subset of what the shared
        // validator accepts, so schema-valid data is never rejected.
        let accepted = [
            "0.01",
            "0.1",
            "1",
            "100000",
            "999999999999.99",
            "1000000000000",
            "12.5",
        ];
        let refused = ["0", "0.00", "1000000000000.01", "1.234", "-1", "01", "1e3"];
        for s in accepted {
            assert!(documented_position_string(s), "{s} should match");
            assert!(
                pricing::PositionValue::parse(s).is_ok(),
                "{s} should validate"
            );
        }
        for s in refused {
            assert!(!documented_position_string(s), "{s} should not match");
        }
    }

    /// The `position_value` string pattern of the document, spelled out.
    fn documented_position_string(s: &str) -> bool {
        let doc = doc();
        let pattern = doc["components"]["schemas"]["PositionValue"]["oneOf"][1]["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            pattern,
            r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,11}(\.[0-9]{1,2})?|1000000000000(\.0{1,2})?)$"
        );
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || !digits(frac) || int.is_empty() || frac.len() > 2 || s.ends_with('.') {
            return false;
        }
        if int == "0" {
            return !frac.is_empty() && frac.bytes().any(|b| b != b'0');
        }
        if int == "1000000000000" {
            return frac.bytes().all(|b| b == b'0');
        }
        !int.starts_with('0') && int.len() <= 12
    }

    #[test]
    fn every_error_response_uses_the_envelope_and_carries_the_request_id() {
        let doc = doc();
        for (name, r) in doc["components"]["responses"].as_object().unwrap() {
            let schema = r["content"]["application/json"]["schema"].to_string();
            assert!(
                schema.contains("#/components/schemas/ErrorEnvelope"),
                "{name}"
            );
            assert!(r["headers"]["x-request-id"].is_object(), "{name}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    let has_header = r["headers"]["x-request-id"].is_object()
                        || r["$ref"]
                            .as_str()
                            .is_some_and(|s| s.starts_with("#/components/responses/"));
                    assert!(has_header, "{method} {path} {status}");
                }
            }
        }
    }

    /// Every documented operation, with its path parameters filled in.
    fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let concrete = path
                    .replace("{ticker}", "AAPL")
                    .replace("{service}", "database");
                ops.push((method.to_uppercase(), concrete));
            }
        }
        ops
    }

    /// What a router answers to `method path` with an empty body.
    async fn answer(router: &axum::Router, method: &str, path: &str) -> (u16, String) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The answer of a router for a route it does not have.
    fn unrouted(status: u16, body: &str) -> bool {
        status == 405
            || (status == 404
                && !body.contains("TICKER_NOT_FOUND")
                && !body.contains("Unknown dependency"))
    }

    #[tokio::test]
    async fn every_documented_operation_is_routed_by_the_service_behind_it() {
        let doc = doc();
        let dir = std::env::temp_dir().join(format!("ops-docs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = format!("sqlite://{}/pricing.db", dir.display());
        let service = services::Config::new("127.0.0.1:0".parse().unwrap(), db.clone());
        let data = services::state::build(&service, "data_service")
            .await
            .unwrap();
        let calculation = services::state::build(&service, "calculation_service")
            .await
            .unwrap();
        let auth = auth_service::build(&auth_service::config::Config::hs256(
            service.clone(),
            "a-secret-of-at-least-32-characters-long",
        ))
        .await
        .unwrap();
        let ops = crate::AppState::new(crate::config::OpsConfig {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            envoy_admin_url: "http://127.0.0.1:9".into(),
            backends: Vec::new(),
            database_url: None,
            redis_url: None,
            probe_timeout: std::time::Duration::from_millis(200),
        })
        .unwrap();
        // Where the gateway sends each public path (docs/architecture.md):
        // `/api/v1/rates/` and `/api/v1/calculate-locate` to the data and
        // calculation services without the `/api/v1` prefix, the token
        // exchange to the auth service as is, the rest to the ops service.
        let routers = [
            ("/api/v1/rates/", "/api/v1", services::data::app(data)),
            (
                "/api/v1/calculate-locate",
                "/api/v1",
                services::calculation::app(calculation),
            ),
            ("/api/v1/auth/", "", auth_service::app(auth)),
            ("/", "", crate::app(ops)),
        ];
        let documented = operations(&doc);
        assert_eq!(documented.len(), 13, "{documented:?}");
        for (method, path) in documented {
            let (_, strip, router) = routers
                .iter()
                .find(|(prefix, _, _)| path.starts_with(prefix))
                .unwrap();
            let upstream_path = &path[strip.len()..];
            let (status, body) = answer(router, &method, upstream_path).await;
            assert!(
                !unrouted(status, &body),
                "{method} {path} is documented but {upstream_path} is not routed: {status} {body}"
            );
            // And a method the document does not list is not answered.
            let other = if method == "GET" { "DELETE" } else { "GET" };
            let (status, body) = answer(router, other, upstream_path).await;
            assert!(
                unrouted(status, &body),
                "{other} {path} is answered but undocumented: {status}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
