//! Prometheus text exposition: parsing into metric families, the gateway's
//! allowlist, the microsecond → second rescaling of the filters' histograms,
//! and merging several scrapes into one valid exposition.
//!
//! Everything here is pure text transformation, so it is unit-tested without
//! any server. The one exception is [`own_families`], this service's own
//! `process_*` and `ops_build_info`, which come from the `prometheus` crate
//! (see [`service_http::metrics`]).
//!
//! The input parser is this module's own: the maintained Rust parsers of the
//! text format were checked and do not fit (`prometheus-parse` cuts a label
//! value at its first `}`, which breaks every `endpoint="/api/v1/rates/{ticker}"`
//! series; `openmetrics-parser` is LGPL-3.0), and the Envoy admin API has no
//! other format with the tag-extracted labels. The unit tests below cover
//! Envoy's output (`# TYPE` lines, escaped label values, braces inside
//! values, `+Inf`, exponents).

/// The SPEC §8 metric families the operators' dashboards query.
pub const SPEC_FAMILIES: [&str; 7] = [
    "http_requests_total",
    "http_request_duration_seconds",
    "authentication_attempts_total",
    "rate_limit_exceeded_total",
    "backend_request_duration_seconds",
    "backend_requests_total",
    "jwt_tokens_issued_total",
];

/// Envoy cluster resilience statistics kept from the admin API: circuit
/// breaker overflows, timeouts, retries, outlier ejections and health-checked
/// membership. Entries ending in `_` or `retry` are prefixes.
pub const CLUSTER_RESILIENCE_FAMILIES: [&str; 10] = [
    "envoy_cluster_upstream_rq_pending_overflow",
    "envoy_cluster_upstream_cx_overflow",
    "envoy_cluster_upstream_rq_active_overflow",
    "envoy_cluster_circuit_breakers_",
    "envoy_cluster_upstream_rq_timeout",
    "envoy_cluster_upstream_rq_retry",
    "envoy_cluster_outlier_detection_ejections_",
    "envoy_cluster_membership_healthy",
    "envoy_cluster_membership_total",
    "envoy_cluster_membership_degraded",
];

/// Whether a family from Envoy's `/stats/prometheus` may be exposed.
pub fn is_exposed_envoy_family(name: &str) -> bool {
    if SPEC_FAMILIES.contains(&name) {
        return true;
    }
    CLUSTER_RESILIENCE_FAMILIES.iter().any(|allowed| {
        if allowed.ends_with('_') || allowed.ends_with("retry") {
            name.starts_with(allowed)
        } else {
            name == *allowed
        }
    })
}

/// One sample line, split into its parts; label values stay escaped as in
/// the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Metric name of the line (`x_bucket`, `x_sum`, ...).
    pub name: String,
    /// Label pairs in source order, values still escaped.
    pub labels: Vec<(String, String)>,
    /// The value text.
    pub value: String,
    /// Optional timestamp text.
    pub timestamp: Option<String>,
}

impl Sample {
    /// Parses `name{a="b",...} value [timestamp]`.
    pub fn parse(line: &str) -> Option<Sample> {
        let line = line.trim();
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return None;
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after_brace) = rest.strip_prefix('{') {
            let (parsed, consumed) = parse_labels(after_brace)?;
            labels = parsed;
            rest = &after_brace[consumed..];
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next()?.to_owned();
        let timestamp = fields.next().map(str::to_owned);
        if fields.next().is_some() {
            return None;
        }
        Some(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp,
        })
    }

    /// The value of one label (escaped form).
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `name{labels}`: identifies the series within one exposition.
    pub fn series_key(&self) -> String {
        let mut key = self.name.clone();
        key.push('{');
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(k);
            key.push_str("=\"");
            key.push_str(v);
            key.push('"');
        }
        key.push('}');
        key
    }

    /// The sample as an exposition line (without newline).
    pub fn render(&self) -> String {
        let mut line = if self.labels.is_empty() {
            self.name.clone()
        } else {
            self.series_key()
        };
        line.push(' ');
        line.push_str(&self.value);
        if let Some(ts) = &self.timestamp {
            line.push(' ');
            line.push_str(ts);
        }
        line
    }
}

/// Parses the inside of `{...}` up to and including the closing brace.
/// Returns the pairs and the number of bytes consumed.
fn parse_labels(text: &str) -> Option<(Vec<(String, String)>, usize)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut labels = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'}' {
            return Some((labels, i + 1));
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b'}' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return None;
        }
        let key = text[key_start..i].trim().to_owned();
        i += 1;
        if i >= bytes.len() || bytes[i] != b'"' {
            return None;
        }
        i += 1;
        let value_start = i;
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        labels.push((key, text[value_start..i].to_owned()));
        i += 1;
    }
}

/// One metric family: its `# HELP`, `# TYPE` and sample lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    pub kind: Option<String>,
    pub samples: Vec<Sample>,
}

impl Family {
    fn new(name: &str) -> Self {
        Family {
            name: name.to_owned(),
            help: None,
            kind: None,
            samples: Vec::new(),
        }
    }

    /// Whether a sample line with this metric name belongs to the family.
    fn owns(&self, sample_name: &str) -> bool {
        if sample_name == self.name {
            return true;
        }
        let Some(suffix) = sample_name.strip_prefix(self.name.as_str()) else {
            return false;
        };
        match self.kind.as_deref() {
            Some("histogram") => matches!(suffix, "_bucket" | "_sum" | "_count"),
            Some("summary") => matches!(suffix, "_sum" | "_count"),
            _ => false,
        }
    }
}

/// Splits an exposition into families, in order of first appearance.
/// Unparsable lines are dropped.
pub fn parse(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let (Some(name), rest) = (parts.next(), parts.next()) else {
                continue;
            };
            let rest = rest.unwrap_or_default().trim().to_owned();
            let index = match families.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    families.push(Family::new(name));
                    families.len() - 1
                }
            };
            let family = &mut families[index];
            match keyword {
                "TYPE" if family.kind.is_none() => family.kind = Some(rest),
                "HELP" if family.help.is_none() => family.help = Some(rest),
                _ => {}
            }
            continue;
        }
        let Some(sample) = Sample::parse(line) else {
            continue;
        };
        match families.iter_mut().rev().find(|f| f.owns(&sample.name)) {
            Some(family) => family.samples.push(sample),
            None => {
                let mut family = Family::new(&sample.name);
                family.samples.push(sample);
                families.push(family);
            }
        }
    }
    families
}

/// Merges families from several scrapes: one group per family name (first
/// `# HELP`/`# TYPE` wins), a series already present is not repeated.
pub fn merge(sources: Vec<Vec<Family>>) -> Vec<Family> {
    let mut merged: Vec<Family> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for family in sources.into_iter().flatten() {
        let index = match merged.iter().position(|f| f.name == family.name) {
            Some(i) => i,
            None => {
                merged.push(Family::new(&family.name));
                merged.len() - 1
            }
        };
        let target = &mut merged[index];
        if target.help.is_none() {
            target.help = family.help;
        }
        if target.kind.is_none() {
            target.kind = family.kind;
        }
        for sample in family.samples {
            if seen.insert(sample.series_key()) {
                target.samples.push(sample);
            }
        }
    }
    merged
}

/// Renders families as exposition text, ending with a newline. Families
/// without samples are left out.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        if let Some(help) = &family.help {
            out.push_str(&format!("# HELP {} {}\n", family.name, help));
        }
        if let Some(kind) = &family.kind {
            out.push_str(&format!("# TYPE {} {}\n", family.name, kind));
        }
        for sample in &family.samples {
            out.push_str(&sample.render());
            out.push('\n');
        }
    }
    out
}

/// Envoy's `/stats/prometheus` reduced to the exposed families, with the
/// filters' `*_seconds` histograms (recorded in microseconds) converted to
/// seconds.
pub fn gateway_families(envoy_text: &str) -> Vec<Family> {
    parse(envoy_text)
        .into_iter()
        .filter(|f| is_exposed_envoy_family(&f.name))
        .map(rescale_microsecond_histogram)
        .collect()
}

/// Families a backend's own `/metrics` may contribute: everything except
/// the gateway-owned SPEC §8 families (only the gateway measures requests,
/// so a backend cannot double-count them), this service's own
/// `ops_scrape_errors_total` and `ops_build_info`, and the `process_*`
/// families (every backend has the same unlabelled series; they describe
/// that backend's process and are read from its own scrape, while the merged
/// answer carries this service's). `jwt_tokens_issued_total` is the auth
/// service's and passes.
pub fn backend_families(text: &str) -> Vec<Family> {
    parse(text)
        .into_iter()
        .filter(|f| {
            f.name == "jwt_tokens_issued_total"
                || !(SPEC_FAMILIES.contains(&f.name.as_str())
                    || f.name == "ops_scrape_errors_total"
                    || f.name == OWN_BUILD_INFO
                    || f.name.starts_with("process_"))
        })
        .collect()
}

/// This service's build info family.
pub const OWN_BUILD_INFO: &str = "ops_build_info";

/// This service's own families: `process_*` (its process collector, Linux)
/// and `ops_build_info{version}` = 1. Both describe the process, so one
/// registry serves every instance in it.
pub fn own_families() -> Vec<Family> {
    static REGISTRY: std::sync::OnceLock<service_http::metrics::prometheus::Registry> =
        std::sync::OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        service_http::metrics::registry(OWN_BUILD_INFO, env!("CARGO_PKG_VERSION"), &[])
    });
    parse(&service_http::metrics::encode(registry))
}

/// Divides every `le` bound and the `_sum` of a `*_seconds` histogram by
/// 10^6. Other families are returned unchanged.
pub fn rescale_microsecond_histogram(mut family: Family) -> Family {
    if family.kind.as_deref() != Some("histogram") || !family.name.ends_with("_seconds") {
        return family;
    }
    let bucket = format!("{}_bucket", family.name);
    let sum = format!("{}_sum", family.name);
    for sample in &mut family.samples {
        if sample.name == bucket {
            for (key, value) in &mut sample.labels {
                if key == "le" {
                    if let Some(scaled) = divide_by_million(value) {
                        *value = scaled;
                    }
                }
            }
        } else if sample.name == sum {
            if let Some(scaled) = divide_by_million(&sample.value) {
                sample.value = scaled;
            }
        }
    }
    family
}

/// Exact decimal division of a number written as text by 10^6, answered as
/// plain decimal text (`"5000"` → `"0.005"`, `"2.5e+06"` → `"2.5"`).
/// `+Inf`, `-Inf` and `NaN` are kept; anything unparsable gives `None`.
pub fn divide_by_million(text: &str) -> Option<String> {
    shift_decimal(text, -6)
}

fn shift_decimal(text: &str, shift: i64) -> Option<String> {
    let text = text.trim();
    if matches!(text, "+Inf" | "-Inf" | "Inf" | "NaN") {
        return Some(text.to_owned());
    }
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], unsigned[i + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || !(-400..=400).contains(&exponent)
    {
        return None;
    }
    // value = digits × 10^point
    let digits = format!("{int_part}{frac_part}");
    let point = exponent - frac_part.len() as i64 + shift;
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".to_owned());
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if point >= 0 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', point as usize));
        return Some(out);
    }
    let int_len = digits.len() as i64 + point;
    let (int_digits, frac_digits) = if int_len > 0 {
        let (i, f) = digits.split_at(int_len as usize);
        (i.to_owned(), f.to_owned())
    } else {
        ("0".to_owned(), "0".repeat((-int_len) as usize) + digits)
    };
    let frac_digits = frac_digits.trim_end_matches('0');
    out.push_str(&int_digits);
    if !frac_digits.is_empty() {
        out.push('.');
        out.push_str(frac_digits);
    }
    Some(out)
}

/// The `ops_scrape_errors_total` family: failed scrapes per target, so a
/// backend that is down is visible instead of failing the whole scrape.
pub fn scrape_errors_family(counts: &[(String, u64)]) -> Family {
    Family {
        name: "ops_scrape_errors_total".to_owned(),
        help: Some("Scrapes of a metrics target that failed and were skipped.".to_owned()),
        kind: Some("counter".to_owned()),
        samples: counts
            .iter()
            .map(|(target, count)| Sample {
                name: "ops_scrape_errors_total".to_owned(),
                labels: vec![("target".to_owned(), escape_label_value(target))],
                value: count.to_string(),
                timestamp: None,
            })
            .collect(),
    }
}

/// Escapes a label value for the text format.
pub fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVOY: &str = r#"# TYPE envoy_cluster_upstream_cx_overflow counter
envoy_cluster_upstream_cx_overflow{envoy_cluster_name="data_service"} 3
# TYPE envoy_cluster_upstream_rq_pending_overflow counter
envoy_cluster_upstream_rq_pending_overflow{envoy_cluster_name="data_service"} 7
# TYPE envoy_cluster_upstream_rq_retry counter
envoy_cluster_upstream_rq_retry{envoy_cluster_name="data_service"} 2
# TYPE envoy_cluster_upstream_rq_retry_overflow counter
envoy_cluster_upstream_rq_retry_overflow{envoy_cluster_name="data_service"} 1
# TYPE envoy_cluster_outlier_detection_ejections_enforced_total counter
envoy_cluster_outlier_detection_ejections_enforced_total{envoy_cluster_name="data_service"} 4
# TYPE envoy_server_memory_allocated gauge
envoy_server_memory_allocated{} 12345
# TYPE envoy_listener_admin_downstream_cx_total counter
envoy_listener_admin_downstream_cx_total{} 9
# TYPE http_requests_total counter
http_requests_total{endpoint="/api/v1/rates/{ticker}",method="GET",status_code="200"} 5
# TYPE envoy_cluster_membership_healthy gauge
envoy_cluster_membership_healthy{envoy_cluster_name="data_service"} 1
# TYPE envoy_cluster_membership_total gauge
envoy_cluster_membership_total{envoy_cluster_name="data_service"} 2
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="5000"} 1
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="25000"} 4
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="10000000"} 5
http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="+Inf"} 5
http_request_duration_seconds_sum{endpoint="/api/v1/rates/{ticker}"} 61234.5
http_request_duration_seconds_count{endpoint="/api/v1/rates/{ticker}"} 5
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="data_service",le="0.5"} 1
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="data_service"} 3
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="data_service"} 1
"#;

    fn names(families: &[Family]) -> Vec<&str> {
        families.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn microseconds_divide_into_exact_decimal_seconds() {
        assert_eq!(divide_by_million("5000").unwrap(), "0.005");
        assert_eq!(divide_by_million("10000000").unwrap(), "10");
        assert_eq!(divide_by_million("25000").unwrap(), "0.025");
        assert_eq!(divide_by_million("61234.5").unwrap(), "0.0612345");
        assert_eq!(divide_by_million("1").unwrap(), "0.000001");
        assert_eq!(divide_by_million("0").unwrap(), "0");
        assert_eq!(divide_by_million("0.5").unwrap(), "0.0000005");
        assert_eq!(divide_by_million("2.5e+06").unwrap(), "2.5");
        assert_eq!(divide_by_million("1.2345e+08").unwrap(), "123.45");
        assert_eq!(divide_by_million("-3000").unwrap(), "-0.003");
        assert_eq!(
            divide_by_million("1234567890123").unwrap(),
            "1234567.890123"
        );
    }

    #[test]
    fn infinity_and_nan_are_kept_and_garbage_is_refused() {
        assert_eq!(divide_by_million("+Inf").unwrap(), "+Inf");
        assert_eq!(divide_by_million("NaN").unwrap(), "NaN");
        assert_eq!(divide_by_million("12a"), None);
        assert_eq!(divide_by_million(""), None);
        assert_eq!(divide_by_million("."), None);
        assert_eq!(divide_by_million("1e999"), None);
    }

    #[test]
    fn labels_with_braces_and_escaped_quotes_parse() {
        let s = Sample::parse(
            r#"x_total{endpoint="/api/v1/rates/{ticker}",msg="a \"q\", b}"} 3 1700000000"#,
        )
        .unwrap();
        assert_eq!(s.name, "x_total");
        assert_eq!(s.label("endpoint"), Some("/api/v1/rates/{ticker}"));
        assert_eq!(s.label("msg"), Some(r#"a \"q\", b}"#));
        assert_eq!(s.value, "3");
        assert_eq!(s.timestamp.as_deref(), Some("1700000000"));
        assert_eq!(
            s.render(),
            r#"x_total{endpoint="/api/v1/rates/{ticker}",msg="a \"q\", b}"} 3 1700000000"#
        );
    }

    #[test]
    fn empty_label_braces_and_bare_names_parse() {
        assert_eq!(Sample::parse("a{} 1").unwrap().labels, vec![]);
        assert_eq!(Sample::parse("a 1").unwrap().value, "1");
        assert!(Sample::parse("a{b=\"1\" 1").is_none());
        assert!(Sample::parse("{} 1").is_none());
    }

    #[test]
    fn only_spec_families_and_cluster_resilience_stats_are_exposed() {
        let kept = gateway_families(ENVOY);
        assert_eq!(
            names(&kept),
            vec![
                "envoy_cluster_upstream_cx_overflow",
                "envoy_cluster_upstream_rq_pending_overflow",
                "envoy_cluster_upstream_rq_retry",
                "envoy_cluster_upstream_rq_retry_overflow",
                "envoy_cluster_outlier_detection_ejections_enforced_total",
                "http_requests_total",
                "envoy_cluster_membership_healthy",
                "envoy_cluster_membership_total",
                "http_request_duration_seconds",
            ]
        );
        let text = render(&kept);
        assert!(!text.contains("envoy_server_memory_allocated"));
        assert!(!text.contains("admin"));
        assert!(!text.contains("upstream_rq_time"));
    }

    #[test]
    fn seconds_histograms_from_the_gateway_are_rescaled() {
        let text = render(&gateway_families(ENVOY));
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.005"} 1"#
        ));
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="0.025"} 4"#
        ));
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="10"} 5"#
        ));
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{endpoint="/api/v1/rates/{ticker}",le="+Inf"} 5"#
        ));
        assert!(text.contains(
            r#"http_request_duration_seconds_sum{endpoint="/api/v1/rates/{ticker}"} 0.0612345"#
        ));
        assert!(text.contains(
            r#"http_request_duration_seconds_count{endpoint="/api/v1/rates/{ticker}"} 5"#
        ));
    }

    #[test]
    fn histograms_not_in_seconds_are_left_alone() {
        let family = parse(
            "# TYPE size_bytes histogram\nsize_bytes_bucket{le=\"5000\"} 1\nsize_bytes_sum 5000\n",
        )
        .remove(0);
        let same = rescale_microsecond_histogram(family.clone());
        assert_eq!(same, family);
    }

    #[test]
    fn samples_are_grouped_under_their_histogram_family() {
        let families = parse(ENVOY);
        let h = families
            .iter()
            .find(|f| f.name == "http_request_duration_seconds")
            .unwrap();
        assert_eq!(h.kind.as_deref(), Some("histogram"));
        assert_eq!(h.samples.len(), 6);
    }

    #[test]
    fn merging_keeps_one_type_line_per_family_and_drops_repeated_series() {
        let envoy = gateway_families(ENVOY);
        let auth = parse(
            "# HELP jwt_tokens_issued_total Tokens issued.\n# TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 4\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 17\n",
        );
        let data = parse(
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 18\n# TYPE http_requests_total counter\nhttp_requests_total{endpoint=\"/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 9\n",
        );
        let text = render(&merge(vec![envoy, auth, data]));
        assert_eq!(text.matches("# TYPE process_start_time_seconds").count(), 1);
        assert_eq!(text.matches("# TYPE http_requests_total").count(), 1);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("process_start_time_seconds "))
                .count(),
            1
        );
        assert!(text.contains("process_start_time_seconds 17\n"));
        assert!(text.contains("# HELP jwt_tokens_issued_total Tokens issued.\n"));
        assert!(text.contains("jwt_tokens_issued_total 4\n"));
        // both http_requests_total series sit in one contiguous group
        let lines: Vec<&str> = text.lines().collect();
        let first = lines
            .iter()
            .position(|l| l.starts_with("http_requests_total{"))
            .unwrap();
        assert!(lines[first + 1].starts_with("http_requests_total{endpoint=\"/rates/{ticker}\""));
    }

    #[test]
    fn backends_cannot_contribute_gateway_owned_families() {
        let kept = backend_families(
            "# TYPE http_requests_total counter\nhttp_requests_total{endpoint=\"/rates/{ticker}\"} 9\n\
             # TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 2\n\
             # TYPE ops_scrape_errors_total counter\nops_scrape_errors_total{target=\"x\"} 1\n\
             # TYPE pricing_backend_requests_total counter\npricing_backend_requests_total 4\n",
        );
        assert_eq!(
            names(&kept),
            vec!["jwt_tokens_issued_total", "pricing_backend_requests_total"]
        );
    }

    #[test]
    fn backends_process_metrics_and_build_info_of_this_service_are_left_out() {
        let kept = backend_families(
            "# TYPE process_open_fds gauge\nprocess_open_fds 9\n\
             # TYPE ops_build_info gauge\nops_build_info{version=\"0\"} 1\n\
             # TYPE auth_build_info gauge\nauth_build_info{version=\"0\"} 1\n",
        );
        assert_eq!(names(&kept), vec!["auth_build_info"]);
    }

    #[test]
    fn own_families_are_build_info_and_process_metrics() {
        let own = own_families();
        let text = render(&own);
        assert!(
            text.contains(&format!(
                "ops_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(names(&own).contains(&name), "{name}: {text}");
        }
    }

    #[test]
    fn scrape_errors_are_a_counter_per_target() {
        let text = render(&[scrape_errors_family(&[
            ("auth_service".to_owned(), 2),
            ("data_service".to_owned(), 0),
        ])]);
        assert!(text.contains("# TYPE ops_scrape_errors_total counter\n"));
        assert!(text.contains("ops_scrape_errors_total{target=\"auth_service\"} 2\n"));
        assert!(text.contains("ops_scrape_errors_total{target=\"data_service\"} 0\n"));
    }

    #[test]
    fn rendering_and_reparsing_is_stable() {
        let once = render(&parse(ENVOY));
        assert_eq!(render(&parse(&once)), once);
    }
}
