//! The metric names a PromQL expression selects, to hold dashboards and
//! alerts to the metrics the gateway exports.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
];

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("constant regex {pattern}: {e}"))
}

static DQ: LazyLock<Regex> = LazyLock::new(|| re(r#""(?:[^"\\]|\\.)*""#));
static SQ: LazyLock<Regex> = LazyLock::new(|| re(r"'(?:[^'\\]|\\.)*'"));
static BQ: LazyLock<Regex> = LazyLock::new(|| re(r"`[^`]*`"));
static BRACES: LazyLock<Regex> = LazyLock::new(|| re(r"\{[^}]*\}"));
static BRACKETS: LazyLock<Regex> = LazyLock::new(|| re(r"\[[^\]]*\]"));
static GROUPING: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"));
static TOKEN: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z_:][A-Za-z0-9_:]*|\d[\w.]*"));

/// Metric names an expression selects: functions, aggregations, keywords,
/// label names, strings and durations left out. A `__name__` matcher is
/// reported as the name `__name__` (not used here; forbidden to keep this
/// exact).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let s = DQ.replace_all(expr, "\"\"");
    let s = SQ.replace_all(&s, "''");
    let s = BQ.replace_all(&s, "``");
    let mut names = BTreeSet::new();
    if s.contains("__name__") {
        names.insert("__name__".to_owned());
    }
    let s = BRACES.replace_all(&s, " ");
    let s = BRACKETS.replace_all(&s, " ");
    let s = GROUPING.replace_all(&s, " ");
    for m in TOKEN.find_iter(&s) {
        let tok = m.as_str();
        if tok.starts_with(|c: char| c.is_ascii_digit()) || KEYWORDS.contains(&tok) {
            continue;
        }
        if s[m.end()..].trim_start().starts_with('(') {
            continue; // a function or an aggregation
        }
        names.insert(tok.to_owned());
    }
    names
}

/// The `names` (from [`metric_names`]) that are not in `allowed`, the
/// metrics the gateway exports.
pub fn unexported<'a>(names: &'a BTreeSet<String>, allowed: &BTreeSet<&str>) -> Vec<&'a String> {
    names
        .iter()
        .filter(|m| !allowed.contains(m.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::metric_names;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn functions_labels_and_durations_are_not_metrics() {
        assert_eq!(
            names(r#"sum by (le) (rate(http_request_duration_seconds_bucket{endpoint="/x"}[5m]))"#),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum(rate(a_bucket[1m])) by (le)) > 0.5 and on(job) b"#
            ),
            ["a_bucket", "b"]
        );
    }

    #[test]
    fn strings_and_name_matchers_are_handled() {
        assert_eq!(names(r#"up{job="by(x)"} == 0"#), ["up"]);
        assert_eq!(names(r#"{__name__="x"}"#), ["__name__"]);
        assert_eq!(names("vector(1)"), Vec::<String>::new());
        assert_eq!(names("absent(up{job=\"g\"}) offset 5m"), ["up"]);
    }
}
