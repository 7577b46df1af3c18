//! Reading the Prometheus text format into the `prometheus` crate's
//! [`MetricFamily`], for the merge in [`crate::exposition`].
//!
//! The grammar is the `prom_text_format_parser` crate's (MIT/Apache-2.0, a
//! winnow parser: quoted label values may hold braces, commas, `=` and
//! escaped quotes). `prometheus-parse` 0.2.5 does not fit: it reads a label
//! set with the regular expression `\{[^}]+\}` and splits it on `,` and
//! `=`, so a line with `endpoint="/api/v1/rates/{ticker}"` (a SPEC label
//! value) does not match and is dropped, and so is every line with Envoy's
//! empty label set `{}`. `openmetrics-parser` is LGPL-3.0. The Envoy admin
//! API has no other format with the tag-extracted labels.
//!
//! What this module adds around the parser, each for a documented gap:
//!
//! * Envoy writes unlabelled series with an empty label set
//!   (`rate_limit_exceeded_total{} 5`), which `prom_text_format_parser` 0.1
//!   refuses; [`parse`] removes a `{}` that directly follows a sample's
//!   name (the first `{` of a sample line always opens its label set).
//! * The parser keeps label values and `# HELP` text escaped as written;
//!   they are unescaped once, since the encoder escapes them again.
//! * The parser gives one sample per line; the samples of a series are
//!   grouped into one metric (a histogram's buckets, sum and count; a
//!   summary's quantiles, sum and count), the `+Inf` bucket left to the
//!   encoder, which writes it from the sample count.
//! * The encoder cannot write `untyped` families: they become gauges
//!   (Prometheus treats both alike).

use prom_text_format_parser::{ScrapeParseError, Type, ValueType};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary,
};

/// Parses an exposition into metric families, in order of appearance.
///
/// A text the parser refuses is an error (as for Prometheus, which drops a
/// whole scrape it cannot parse). `# HELP`/`# TYPE` lines without samples
/// (a family declared but not observed yet) are valid and left out.
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let (metrics, error) = prom_text_format_parser::parse_scrape(&without_empty_label_sets(text));
    if let Some(ScrapeParseError::Parse(e)) = error {
        return Err(e);
    }
    metrics.into_iter().map(family).collect()
}

/// `name{} 1` → `name 1` on sample lines; other lines unchanged.
fn without_empty_label_sets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.split_once('{') {
            Some((name, rest))
                if rest.starts_with('}')
                    && !name.trim_start().starts_with('#')
                    && !name.trim().contains(char::is_whitespace) =>
            {
                out.push_str(name);
                out.push_str(&rest[1..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The samples of one series (one label set) of a parsed metric.
#[derive(Default)]
struct Series {
    labels: Vec<(String, String)>,
    value: f64,
    /// Histogram `le` or summary `quantile` bounds with their values.
    bounds: Vec<(f64, f64)>,
    sum: f64,
    count: Option<f64>,
    timestamp: Option<i64>,
}

fn family(parsed: prom_text_format_parser::Metric) -> Result<MetricFamily, String> {
    let (kind, bound_label) = match parsed.kind {
        Type::Counter => (MetricType::COUNTER, None),
        Type::Gauge | Type::Untyped => (MetricType::GAUGE, None),
        Type::Histogram => (MetricType::HISTOGRAM, Some("le")),
        Type::Summary => (MetricType::SUMMARY, Some("quantile")),
    };
    let number = |text: &str| {
        text.parse::<f64>()
            .map_err(|_| format!("{}: not a number: {text}", parsed.name))
    };
    let mut series: Vec<Series> = Vec::new();
    for sample in &parsed.samples {
        let mut bound = None;
        let mut labels = Vec::new();
        for label in sample.labels.iter() {
            if Some(label.key.as_str()) == bound_label {
                bound = Some(number(&label.value)?);
            } else {
                labels.push((label.key.clone(), unescape(&label.value)));
            }
        }
        let index = match series.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                series.push(Series {
                    labels,
                    timestamp: sample.value.timestamp,
                    ..Series::default()
                });
                series.len() - 1
            }
        };
        let target = &mut series[index];
        let value = number(&sample.value.value)?;
        match (sample.value.value_type, bound) {
            (ValueType::Sum, _) => target.sum = value,
            (ValueType::Count, _) => target.count = Some(value),
            (ValueType::Sample, Some(bound)) => target.bounds.push((bound, value)),
            (ValueType::Sample, None) if bound_label.is_none() => target.value = value,
            (ValueType::Sample, None) => {
                return Err(format!("{}: sample without {bound_label:?}", parsed.name))
            }
        }
    }
    let mut family = MetricFamily::default();
    family.set_name(parsed.name);
    family.set_help(
        parsed
            .help_desc
            .as_deref()
            .map(unescape)
            .unwrap_or_default(),
    );
    family.set_field_type(kind);
    family.set_metric(series.into_iter().map(|s| metric(kind, s)).collect());
    Ok(family)
}

fn metric(kind: MetricType, series: Series) -> Metric {
    let mut metric = Metric::from_label(
        series
            .labels
            .into_iter()
            .map(|(name, value)| label_pair(name, value))
            .collect(),
    );
    if let Some(ts) = series.timestamp {
        metric.set_timestamp_ms(ts);
    }
    let is_inf = |bound: f64| bound.is_infinite() && bound.is_sign_positive();
    let count = series
        .count
        .or_else(|| series.bounds.iter().find(|(b, _)| is_inf(*b)).map(|b| b.1))
        .unwrap_or_default();
    match kind {
        MetricType::COUNTER => {
            let mut counter = Counter::default();
            counter.set_value(series.value);
            metric.set_counter(counter);
        }
        MetricType::HISTOGRAM => {
            let mut histogram = Histogram::default();
            histogram.set_bucket(
                series
                    .bounds
                    .iter()
                    .filter(|(bound, _)| !is_inf(*bound))
                    .map(|&(bound, count)| {
                        let mut bucket = Bucket::default();
                        bucket.set_upper_bound(bound);
                        bucket.set_cumulative_count(count as u64);
                        bucket
                    })
                    .collect(),
            );
            histogram.set_sample_sum(series.sum);
            histogram.set_sample_count(count as u64);
            metric.set_histogram(histogram);
        }
        MetricType::SUMMARY => {
            let mut summary = Summary::default();
            summary.set_quantile(
                series
                    .bounds
                    .iter()
                    .map(|&(q, value)| {
                        let mut quantile = Quantile::default();
                        quantile.set_quantile(q);
                        quantile.set_value(value);
                        quantile
                    })
                    .collect(),
            );
            summary.set_sample_sum(series.sum);
            summary.set_sample_count(count as u64);
            metric.set_summary(summary);
        }
        MetricType::GAUGE | MetricType::UNTYPED => {
            let mut gauge = Gauge::default();
            gauge.set_value(series.value);
            metric.set_gauge(gauge);
        }
    }
    metric
}

pub(crate) fn label_pair(name: String, value: String) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name);
    pair.set_value(value);
    pair
}

/// `\\`, `\"` and `\n` as the text format writes them → the characters.
fn unescape(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => out.push('\n'),
            ('\\', Some(next @ ('\\' | '"'))) => out.push(next),
            _ => {
                out.push(c);
                continue;
            }
        }
        chars.next();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::render;

    fn names(families: &[MetricFamily]) -> Vec<&str> {
        families.iter().map(|f| f.name()).collect()
    }

    fn parsed(text: &str) -> Vec<MetricFamily> {
        parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn infinity_and_nan_values_are_kept_and_garbage_is_refused() {
        let text = render(parsed("# TYPE g gauge\ng{a=\"x\"} NaN\ng{a=\"y\"} +Inf\n"));
        assert!(text.contains("g{a=\"x\"} NaN\n"), "{text}");
        assert!(text.contains("g{a=\"y\"} inf\n"), "{text}");
        assert!(parse("g 12a\n").is_err());
        assert!(parse("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n").is_err());
    }

    #[test]
    fn labels_with_braces_and_escaped_quotes_parse() {
        let line =
            r#"x_total{endpoint="/api/v1/rates/{ticker}",msg="a \"q\", b}=c\\d\ne"} 3 1700000000"#;
        let families = parsed(&format!("# TYPE x_total counter\n{line}\n"));
        let labels = families[0].get_metric()[0].get_label();
        assert_eq!(labels[0].value(), "/api/v1/rates/{ticker}");
        assert_eq!(labels[1].value(), "a \"q\", b}=c\\d\ne");
        assert_eq!(families[0].get_metric()[0].timestamp_ms(), 1700000000);
        assert_eq!(
            render(families),
            format!("# TYPE x_total counter\n{line}\n")
        );
    }

    #[test]
    fn empty_label_sets_and_bare_names_parse_and_broken_lines_refuse_the_scrape() {
        let families = parsed("a{} 1\nb 2\nc{v=\"{} x\"} 3\n");
        assert_eq!(names(&families), vec!["a", "b", "c"]);
        assert!(families[0].get_metric()[0].get_label().is_empty());
        assert_eq!(families[2].get_metric()[0].get_label()[0].value(), "{} x");
        assert!(parse("a{b=\"1\" 1\n").is_err());
        assert!(parse("{} 1\n").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn declared_families_without_samples_are_skipped_and_untyped_becomes_gauge() {
        let families = parsed(
            "# HELP empty_ratio Nothing yet.\n# TYPE empty_ratio gauge\n\
             # HELP up_total Ups.\n# TYPE up_total counter\nup_total 2\nloose 4\n",
        );
        assert_eq!(names(&families), vec!["up_total", "loose"]);
        assert_eq!(families[1].get_field_type(), MetricType::GAUGE);
        let text = render(families);
        assert!(text.contains("# HELP up_total Ups.\n# TYPE up_total counter\nup_total 2\n"));
        assert!(text.contains("# TYPE loose gauge\nloose 4\n"));
    }

    #[test]
    fn samples_are_grouped_under_their_histogram_family() {
        let families = parsed(
            "# TYPE d_seconds histogram\n\
             d_seconds_bucket{endpoint=\"/a/{x}\",le=\"5000\"} 1\n\
             d_seconds_bucket{endpoint=\"/a/{x}\",le=\"25000\"} 4\n\
             d_seconds_bucket{endpoint=\"/a/{x}\",le=\"+Inf\"} 5\n\
             d_seconds_sum{endpoint=\"/a/{x}\"} 61234.5\n\
             d_seconds_count{endpoint=\"/a/{x}\"} 5\n\
             d_seconds_bucket{endpoint=\"/b\",le=\"5000\"} 0\n\
             d_seconds_bucket{endpoint=\"/b\",le=\"25000\"} 0\n\
             d_seconds_bucket{endpoint=\"/b\",le=\"+Inf\"} 0\n\
             d_seconds_sum{endpoint=\"/b\"} 0\n\
             d_seconds_count{endpoint=\"/b\"} 0\n\
             # TYPE q summary\n\
             q{quantile=\"0.5\"} 2\n\
             q_sum 9\n\
             q_count 4\n",
        );
        assert_eq!(names(&families), vec!["d_seconds", "q"]);
        let h = &families[0];
        assert_eq!(h.get_field_type(), MetricType::HISTOGRAM);
        assert_eq!(h.get_metric().len(), 2);
        assert_eq!(h.get_metric()[0].get_label()[0].value(), "/a/{x}");
        let histogram = h.get_metric()[0].get_histogram();
        let bounds: Vec<(f64, u64)> = histogram
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(
            bounds,
            vec![(5000.0, 1), (25000.0, 4)],
            "+Inf is the encoder's"
        );
        assert_eq!(histogram.get_sample_count(), 5);
        assert_eq!(histogram.get_sample_sum(), 61234.5);
        let summary = families[1].get_metric()[0].get_summary();
        assert_eq!(summary.get_quantile()[0].value(), 2.0);
        assert_eq!((summary.sample_sum(), summary.sample_count()), (9.0, 4));
    }
}
