//! The `Authentication error` log line (logfmt, SPEC §8). Only hashes of
//! credentials are ever at hand when a line is built, never the secret.

/// The route template of `path` (never the raw path, to bound cardinality).
pub fn endpoint_template(path: &str) -> &'static str {
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path {
        "/api/v1/calculate-locate" => "/api/v1/calculate-locate",
        "/api/v1/auth/token" => "/api/v1/auth/token",
        "/discovery/services" => "/discovery/services",
        _ => match path.strip_prefix("/api/v1/rates/") {
            Some(ticker) if !ticker.is_empty() && !ticker.contains('/') => "/api/v1/rates/{ticker}",
            _ => "unmatched",
        },
    }
}

/// A logfmt quoted value of at most 128 characters, escaped as every
/// logfmt value is ([`crate::metrics::logfmt_quote`]).
fn quoted(value: &str) -> String {
    let bounded: String = value.chars().take(128).collect();
    crate::metrics::logfmt_quote(&bounded)
}

/// Fields of one `Authentication error` line.
pub(crate) struct AuthErrorLine<'a> {
    pub reason: &'a str,
    pub detail: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub path: &'a str,
    pub request_id: &'a str,
}

impl AuthErrorLine<'_> {
    pub(crate) fn render(&self) -> String {
        let mut line = format!(
            "level=ERROR msg=\"Authentication error\" reason={}",
            self.reason
        );
        if let Some(detail) = self.detail {
            line.push_str(" detail=");
            line.push_str(detail);
        }
        line.push_str(" client_id=");
        line.push_str(&quoted(self.client_id.unwrap_or("")));
        line.push_str(" endpoint=");
        line.push_str(&quoted(endpoint_template(self.path)));
        line.push_str(" request_id=");
        line.push_str(&quoted(self.request_id));
        line
    }
}

/// A warning that a stale cached answer served because the auth service
/// could not be reached.
pub(crate) fn stale_served_line(client_id: &str, path: &str, request_id: &str) -> String {
    format!(
        "level=WARN msg=\"Auth service unavailable, serving cached key\" client_id={} endpoint={} request_id={}",
        quoted(client_id),
        quoted(endpoint_template(path)),
        quoted(request_id)
    )
}
