//! The gateway's endpoint table: the SPEC §2 routes as route templates,
//! with the method each serves and who may call it. The metrics filter's
//! `endpoint` label, the `endpoint` field of every filter log line (auth,
//! validation, metrics) and the validation filter's choice of what to check
//! all come from [`Endpoint::from_path`]; the auth filter's default public
//! paths from [`Endpoint::access`] ([`public_paths`]); the Envoy routes
//! (envoy/gateway-config, `routes.rs`) are built endpoint by endpoint from
//! [`Endpoint::ALL`], named by [`Endpoint::template`] and matching
//! [`Endpoint::method`]. Copies that cannot be derived (the OpenAPI
//! document of the ops service, the docs' route tables) are compared with
//! this table by `tests/tests/endpoint_table.rs`.

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

/// Who may call an endpoint: SPEC §2's "auth" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No credential needed.
    Public,
    /// An API key or a JWT.
    Credential,
    /// A credential with the `admin` scope (the ops service checks the
    /// scope; the auth filter only requires the credential).
    Admin,
}

impl Endpoint {
    /// Every SPEC §2 route (not [`Endpoint::Unmatched`]): the business API
    /// first, then the operator endpoints, the order of the Envoy routes.
    pub const ALL: [Self; 11] = [
        Self::Health,
        Self::Rates,
        Self::CalculateLocate,
        Self::AuthToken,
        Self::HealthDetailed,
        Self::HealthService,
        Self::Metrics,
        Self::MonitoringMetrics,
        Self::DiscoveryServices,
        Self::Docs,
        Self::OpenApi,
    ];

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

    /// The one method the route serves; any other is 405. `""` for
    /// [`Endpoint::Unmatched`].
    pub const fn method(self) -> &'static str {
        match self {
            Self::AuthToken | Self::CalculateLocate => "POST",
            Self::Unmatched => "",
            Self::Health
            | Self::HealthDetailed
            | Self::HealthService
            | Self::Metrics
            | Self::MonitoringMetrics
            | Self::DiscoveryServices
            | Self::Docs
            | Self::OpenApi
            | Self::Rates => "GET",
        }
    }

    /// Who may call the route ([`Endpoint::Unmatched`]: a path outside the
    /// table needs a credential, so a 404 tells nothing to a caller without
    /// one).
    pub const fn access(self) -> Access {
        match self {
            Self::Health
            | Self::HealthDetailed
            | Self::HealthService
            | Self::Metrics
            | Self::MonitoringMetrics
            | Self::Docs
            | Self::OpenApi => Access::Public,
            Self::DiscoveryServices => Access::Admin,
            Self::AuthToken | Self::Rates | Self::CalculateLocate | Self::Unmatched => {
                Access::Credential
            }
        }
    }

    /// The template up to its parameter (`/api/v1/rates/`), or the whole
    /// template when it has none: what a prefix match on the route uses.
    pub fn prefix(self) -> &'static str {
        let template = self.template();
        template.split('{').next().unwrap_or(template)
    }

    /// A path of the route: the template with a sample value for its
    /// parameter (`/api/v1/rates/AAPL`), for the tests that compare the
    /// table with its copies.
    pub fn example_path(self) -> String {
        self.template()
            .replace("{ticker}", "AAPL")
            .replace("{service}", "data_service")
    }

    /// The template as a public-path pattern of the auth filter: a final
    /// `{param}` segment becomes `*` (one segment of `[A-Za-z0-9_-]`).
    pub fn path_pattern(self) -> String {
        let template = self.template();
        match template.rsplit_once('/') {
            Some((head, last)) if last.starts_with('{') && last.ends_with('}') => {
                format!("{head}/*")
            }
            _ => template.to_owned(),
        }
    }
}

/// The auth filter's default public paths: the pattern of every
/// [`Access::Public`] endpoint, leaving out those another pattern already
/// covers (`/health/detailed` is one `/health/*` segment).
pub fn public_paths() -> Vec<String> {
    let patterns: Vec<String> = Endpoint::ALL
        .into_iter()
        .filter(|e| e.access() == Access::Public)
        .map(Endpoint::path_pattern)
        .collect();
    patterns
        .iter()
        .filter(|p| {
            !patterns
                .iter()
                .any(|other| other != *p && path_matches(other, p))
        })
        .cloned()
        .collect()
}

/// Whether `path` (without query string or fragment) matches the
/// public-path `pattern`: exactly, or for a pattern ending in `/*` with
/// exactly one further segment of `[A-Za-z0-9_-]`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }),
        None => path == pattern,
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
    fn the_table_maps_each_route_back_to_itself() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(&e.example_path()), e, "{e:?}");
            assert!(["GET", "POST"].contains(&e.method()), "{e:?}");
        }
        let mut templates: Vec<&str> = Endpoint::ALL.iter().map(|e| e.template()).collect();
        templates.sort_unstable();
        templates.dedup();
        assert_eq!(templates.len(), Endpoint::ALL.len());
        assert!(!templates.contains(&UNMATCHED));
    }

    #[test]
    fn the_public_paths_are_the_public_endpoints_and_nothing_else() {
        let public = public_paths();
        assert_eq!(
            public,
            [
                "/health",
                "/health/*",
                "/metrics",
                "/monitoring/metrics",
                "/docs",
                "/openapi.json"
            ]
        );
        for e in Endpoint::ALL {
            let is_public = public.iter().any(|p| path_matches(p, &e.example_path()));
            assert_eq!(is_public, e.access() == Access::Public, "{e:?}");
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
