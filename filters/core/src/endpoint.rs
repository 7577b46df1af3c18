//! The gateway's endpoint table: the SPEC §2 routes as route templates.
//! The metrics filter's `endpoint` label, the `endpoint` field of every
//! filter log line (auth, validation, metrics) and the validation filter's
//! choice of what to check all come from [`Endpoint::from_path`].

/// Endpoint label for any path that is not a SPEC §2 route, so that callers
/// cannot inflate label cardinality.
pub const UNMATCHED: &str = "unmatched";

/// The SPEC §2 routes, as route templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Health,
    HealthDetailed,
    HealthService,
    Metrics,
    MonitoringMetrics,
    DiscoveryServices,
    Docs,
    OpenApi,
    AuthToken,
    Rates,
    CalculateLocate,
    Unmatched,
}

impl Endpoint {
    /// Maps a request path (query string and fragment ignored) to its route.
    pub fn from_path(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        match path {
            "/health" => Self::Health,
            "/health/detailed" => Self::HealthDetailed,
            "/metrics" => Self::Metrics,
            "/monitoring/metrics" => Self::MonitoringMetrics,
            "/discovery/services" => Self::DiscoveryServices,
            "/docs" => Self::Docs,
            "/openapi.json" => Self::OpenApi,
            "/api/v1/auth/token" => Self::AuthToken,
            "/api/v1/calculate-locate" => Self::CalculateLocate,
            _ => {
                if one_segment_after(path, "/api/v1/rates/").is_some() {
                    Self::Rates
                } else if one_segment_after(path, "/health/").is_some() {
                    Self::HealthService
                } else {
                    Self::Unmatched
                }
            }
        }
    }

    /// The label value: the route template, or [`UNMATCHED`].
    pub const fn template(self) -> &'static str {
        match self {
            Self::Health => "/health",
            Self::HealthDetailed => "/health/detailed",
            Self::HealthService => "/health/{service}",
            Self::Metrics => "/metrics",
            Self::MonitoringMetrics => "/monitoring/metrics",
            Self::DiscoveryServices => "/discovery/services",
            Self::Docs => "/docs",
            Self::OpenApi => "/openapi.json",
            Self::AuthToken => "/api/v1/auth/token",
            Self::Rates => "/api/v1/rates/{ticker}",
            Self::CalculateLocate => "/api/v1/calculate-locate",
            Self::Unmatched => UNMATCHED,
        }
    }
}

/// The single non-empty path segment after `prefix` (`/api/v1/rates/AAPL`
/// → `AAPL`), ignoring query string and fragment; `None` when the path has
/// another shape.
pub fn one_segment_after<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let rest = path.strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_map_to_their_route_templates() {
        let cases = [
            ("/api/v1/rates/AAPL", "/api/v1/rates/{ticker}"),
            ("/api/v1/rates/BRK.B?x=1", "/api/v1/rates/{ticker}"),
            ("/api/v1/calculate-locate", "/api/v1/calculate-locate"),
            ("/api/v1/calculate-locate?debug", "/api/v1/calculate-locate"),
            ("/api/v1/auth/token", "/api/v1/auth/token"),
            ("/health", "/health"),
            ("/health/detailed", "/health/detailed"),
            ("/health/data_service", "/health/{service}"),
            ("/metrics", "/metrics"),
            ("/monitoring/metrics", "/monitoring/metrics"),
            ("/discovery/services", "/discovery/services"),
            ("/docs", "/docs"),
            ("/openapi.json", "/openapi.json"),
        ];
        for (path, template) in cases {
            assert_eq!(Endpoint::from_path(path).template(), template, "{path}");
        }
    }

    #[test]
    fn unknown_paths_fold_into_unmatched() {
        for path in [
            "/",
            "",
            "/api/v1/rates/",
            "/api/v1/rates/AAPL/extra",
            "/api/v1/rates",
            "/health/",
            "/wp-admin.php",
            "/API/V1/RATES/AAPL",
            "/internal/v1/keys/verify",
        ] {
            assert_eq!(Endpoint::from_path(path).template(), UNMATCHED, "{path}");
        }
    }
}
