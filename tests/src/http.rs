//! HTTP/1.1 responses read off the wire.

/// An HTTP/1.1 response read off the wire: status (0 when there is no
/// status line), headers with lower-case names, and the body (de-chunked).
pub fn parse_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

/// The payload of a chunked HTTP/1.1 body.
pub fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Checks an answer against the one error envelope (SPEC §6): `status`
/// is `expected`, the content type is JSON, the body is
/// `{"status":"error","error":{"code":<code>,"message":…,"request_id":…}}`
/// with a message, and its request id is the (non-empty) `x-request-id`
/// header (`header` looks a header up by its lower-case name). The parsed
/// body, or what is amiss.
pub fn check_envelope<'a>(
    status: u16,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &str,
    expected: u16,
    code: &str,
) -> Result<serde_json::Value, String> {
    let content_type = header("content-type");
    let request_id = header("x-request-id");
    if status != expected {
        return Err(format!("status {status} (expected {expected}): {body}"));
    }
    if !content_type.is_some_and(|c| c.starts_with("application/json")) {
        return Err(format!("content-type {content_type:?}: {body}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body}"))?;
    if v["status"] != "error" || v["error"]["code"] != code {
        return Err(format!("expected a {code} envelope, got {body}"));
    }
    if v["error"]["message"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no message: {body}"));
    }
    match request_id {
        Some(rid) if !rid.is_empty() && v["error"]["request_id"] == rid => Ok(v),
        _ => Err(format!(
            "request_id {} is not the x-request-id header {request_id:?}",
            v["error"]["request_id"]
        )),
    }
}

/// A response read in full by reqwest, or a transport failure as status 0
/// with the error in the body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header that must be present and a number.
    pub fn number(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", self.headers))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number: {:?}", self.headers))
    }

    /// Asserts the error envelope of [`check_envelope`]: the parsed body.
    pub fn assert_envelope(&self, status: u16, code: &str) -> serde_json::Value {
        check_envelope(self.status, |h| self.header(h), &self.body, status, code)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `request` and reads the whole answer.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.text().await.unwrap_or_default();
            Answer {
                status,
                headers,
                body,
            }
        }
        Err(e) => Answer {
            status: 0,
            headers: Default::default(),
            body: e.to_string(),
        },
    }
}

/// Sends `request` and reads the body as text; panics on a transport
/// failure.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"));
    response
        .text()
        .await
        .unwrap_or_else(|e| panic!("reading the body: {e}"))
}
