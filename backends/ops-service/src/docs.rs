//! The OpenAPI document of the public API and the self-contained page that
//! renders it. Both are compiled into the binary: the page needs no network
//! access at all (no CDN, no fetch), its script reads the document embedded
//! in the page itself.

/// The OpenAPI 3 document (`assets/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

/// The page template (`assets/docs.html`); `__OPENAPI_DOCUMENT__` is
/// replaced by the document.
const PAGE_TEMPLATE: &str = include_str!("../assets/docs.html");

/// Only inline script and style, nothing fetched from anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The docs page with the document embedded as inert JSON data.
pub fn page() -> String {
    PAGE_TEMPLATE.replace("__OPENAPI_DOCUMENT__", &script_safe_json(OPENAPI_JSON))
}

/// JSON that cannot end or open markup inside a `<script>` element.
fn script_safe_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_with_the_api_title() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(doc["info"]["title"], "Borrow Rate & Locate Fee API");
    }

    #[test]
    fn every_public_endpoint_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        for (path, method) in [
            ("/health", "get"),
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
        assert_eq!(doc["paths"].as_object().unwrap().len(), 11);
    }

    #[test]
    fn the_locate_request_schema_carries_the_spec_rules() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let s = &doc["components"]["schemas"]["LocateRequest"];
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"].as_array().unwrap().len(), 4);
        let p = &s["properties"];
        assert_eq!(p["ticker"]["pattern"], r"^[A-Za-z]{1,5}(\.[A-Za-z]{1,2})?$");
        assert_eq!(p["client_id"]["pattern"], "^[A-Za-z0-9_-]{1,64}$");
        assert_eq!(p["loan_days"]["minimum"], 1);
        assert_eq!(p["loan_days"]["maximum"], 365);
        let number = &p["position_value"]["oneOf"][0];
        assert_eq!(number["maximum"], 1_000_000_000_000u64);
        assert_eq!(number["multipleOf"], 0.01);
        assert_eq!(number["exclusiveMinimum"], true);
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
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let pattern = doc["components"]["schemas"]["LocateRequest"]["properties"]["position_value"]
            ["oneOf"][1]["pattern"]
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
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
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

    #[test]
    fn the_page_embeds_the_document_without_breaking_out_of_its_script() {
        let page = page();
        assert!(!page.contains("__OPENAPI_DOCUMENT__"));
        assert!(page.contains("Borrow Rate \\u0026 Locate Fee API"));
        assert_eq!(page.matches("</script>").count(), 2);
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<link") && !page.contains(" src="));
    }
}
