//! What the public listener may show: the merged exposition without any
//! series that names a client.
//!
//! The gateway routes `/metrics` to the ops service's public port, where
//! anyone can read it. Series labelled with a client (the rate-limit
//! service's `rate_limit_client_utilization_ratio{client_id}`, its
//! `detailed_metric` hits by descriptor value, shadow-mode hits by limits
//! file node, which may name a client) are dropped there; the internal
//! port serves them unchanged. The filter works on the merged families
//! (the labels as parsed, not as written), before they are rendered.

use prometheus::proto::MetricFamily;

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

/// `families` without the series that carry a [`PRIVATE_LABELS`] label; a
/// family left without series is not rendered at all.
pub fn redact(mut families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    for family in &mut families {
        family.mut_metric().retain(|m| {
            !m.get_label()
                .iter()
                .any(|l| PRIVATE_LABELS.contains(&l.name()))
        });
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{parse, render};

    #[test]
    fn client_labelled_series_are_dropped_and_the_rest_kept() {
        let text = "# HELP rate_limit_client_utilization_ratio Share.\n\
            # TYPE rate_limit_client_utilization_ratio gauge\n\
            rate_limit_client_utilization_ratio{client_id=\"test123\"} 0.8\n\
            rate_limit_client_utilization_ratio{pool=\"shared\"} 0.1\n\
            # TYPE ratelimit_detailed_hits_total counter\n\
            ratelimit_detailed_hits_total{node=\"client_id\",descriptor=\"big_fund\",result=\"over_limit\"} 3\n\
            # TYPE http_requests_total counter\n\
            http_requests_total{endpoint=\"/api/v1/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 5\n\
            # TYPE jwt_tokens_issued_total counter\n\
            jwt_tokens_issued_total 7\n\
            # TYPE odd gauge\n\
            odd{a=\"x\\\"}\",client_id=\"we\\\"ird\"} 1\n";
        let families = parse(text).unwrap();
        assert!(render(families.clone()).contains("we\\\"ird"));
        let public = render(redact(families));
        assert!(!public.contains("test123"), "{public}");
        assert!(!public.contains("big_fund"), "{public}");
        assert!(!public.contains("we\\\"ird"), "{public}");
        assert!(
            !public.contains("ratelimit_detailed_hits_total"),
            "{public}"
        );
        assert!(public.contains("# TYPE rate_limit_client_utilization_ratio gauge\n"));
        assert!(public.contains("rate_limit_client_utilization_ratio{pool=\"shared\"} 0.1\n"));
        assert!(public.contains(
            "http_requests_total{endpoint=\"/api/v1/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 5\n"
        ));
        assert!(public.contains("jwt_tokens_issued_total 7\n"));
    }
}
