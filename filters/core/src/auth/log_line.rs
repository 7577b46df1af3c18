//! The auth filter's log lines (logfmt, SPEC §8): `Authentication error`
//! and the stale-cache warning. Only hashes of credentials are ever at hand
//! when a line is built, never the secret.

use crate::endpoint::Endpoint;
use crate::logfmt::quote_bounded;

/// A logfmt quoted value of at most 128 characters.
fn quoted(value: &str) -> String {
    quote_bounded(value, 128)
}

/// The route template of `path` (never the raw path, to bound cardinality).
fn endpoint_template(path: &str) -> &'static str {
    Endpoint::from_path(path).template()
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
