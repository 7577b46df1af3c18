//! What the public listener may show: the merged exposition without any
//! series that names a client.
//!
//! The gateway routes `/metrics` to the ops service's public port, where
//! anyone can read it. Series labelled with a client (the rate-limit
//! service's `rate_limit_client_utilization_ratio{client_id}`, its
//! `detailed_metric` hits by descriptor value, shadow-mode hits by limits
//! file node, which may name a client) are dropped there; the internal
//! port serves them unchanged. The filter works on the rendered text, so
//! it does not depend on how the exposition was merged.

/// Label names whose values identify a client, a key or a caller's
/// address. A sample carrying any of them is not shown on the public port.
pub const PRIVATE_LABELS: [&str; 7] = [
    "client_id",
    "descriptor",
    "node",
    "key_id",
    "api_key_id",
    "remote_address",
    "subject",
];

/// The exposition `text` without the samples that carry a
/// [`PRIVATE_LABELS`] label. A sample line whose labels cannot be read is
/// dropped too (nothing unread reaches a public caller); comments
/// (`# HELP`, `# TYPE`) and blank lines are kept.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let keep = line.is_empty()
            || line.starts_with('#')
            || label_names(line)
                .is_some_and(|names| !names.iter().any(|n| PRIVATE_LABELS.contains(&n.as_str())));
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The label names of one sample line (`name{a="x",b="y"} 1`), or `None`
/// when the label set is malformed.
pub fn label_names(line: &str) -> Option<Vec<String>> {
    let Some(open) = line.find(['{', ' ']) else {
        return Some(Vec::new());
    };
    if line.as_bytes()[open] == b' ' {
        return Some(Vec::new());
    }
    let mut names = Vec::new();
    let mut rest = line[open + 1..].trim_start();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return after.starts_with(' ').then_some(names);
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        names.push(name.to_owned());
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        // The value, with \\, \" and \n escapes.
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => {
                    chars.next()?;
                }
                (i, '"') => break i,
                _ => {}
            }
        };
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_labelled_series_are_dropped_and_the_rest_kept() {
        let text = "# HELP rate_limit_client_utilization_ratio Share.\n\
            # TYPE rate_limit_client_utilization_ratio gauge\n\
            rate_limit_client_utilization_ratio{client_id=\"test123\"} 0.8\n\
            ratelimit_detailed_hits_total{node=\"client_id\",descriptor=\"big_fund\",result=\"over_limit\"} 3\n\
            http_requests_total{endpoint=\"/api/v1/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 5\n\
            jwt_tokens_issued_total 7\n\
            odd{a=\"x\\\"}\",client_id=\"we\\\"ird\"} 1\n";
        let public = redact(text);
        assert!(!public.contains("test123"), "{public}");
        assert!(!public.contains("big_fund"), "{public}");
        assert!(!public.contains("we\\\"ird"), "{public}");
        assert!(public.contains("# TYPE rate_limit_client_utilization_ratio gauge\n"));
        assert!(public.contains(
            "http_requests_total{endpoint=\"/api/v1/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 5\n"
        ));
        assert!(public.contains("jwt_tokens_issued_total 7\n"));
    }

    #[test]
    fn label_names_reads_escaped_values_and_refuses_malformed_sets() {
        assert_eq!(label_names("up 1"), Some(vec![]));
        assert_eq!(
            label_names("x{a=\"1,b=\\\"\",le=\"0.5\"} 2"),
            Some(vec!["a".to_owned(), "le".to_owned()])
        );
        assert_eq!(label_names("x{a=\"1\",} 2"), Some(vec!["a".to_owned()]));
        assert_eq!(label_names("x{a=1} 2"), None);
        assert_eq!(label_names("x{a=\"1\" 2"), None);
        assert_eq!(redact("x{client_id=\"c\" 2\n"), "");
    }
}
