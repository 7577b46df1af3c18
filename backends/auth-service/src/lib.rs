//! The auth service.
//!
//! * `POST /internal/v1/keys/verify` — called only by the gateway's auth
//!   filter with the SHA-256 of an API key (`key_hash`), or with the public
//!   id of the key a bearer token was issued for (`key_id`); answers the
//!   key's id, client, status, expiry, rate limit and scopes, or 404 for an
//!   unknown key.
//!   No public route leads here. An active key's `last_used_at` is
//!   recorded at most once a minute per key, off the request path
//!   ([`usage`]).
//! * `POST /api/v1/auth/token` — exchanges the gateway-authenticated API
//!   key for a JWT. The identity comes from the `x-client-*` headers, which
//!   are trusted only with `x-auth-method: api_key` (the gateway filter sets
//!   them after removing client-supplied copies). The key's id
//!   (`x-api-key-id`) goes into the token as its `key_id` claim, so the
//!   filter stops the token once the key is revoked or expires.
//! * `GET /.well-known/jwks.json` (ES256 only), `GET /health`,
//!   `GET /health/live`, `GET /health/ready` (see [`service_http::probes`]),
//!   `GET /metrics` (`jwt_tokens_issued_total`, key verification counts and
//!   durations, `process_*`, `auth_build_info`).

pub mod config;
pub mod token;
pub mod usage;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pricing::{ErrorCode, ErrorEnvelope};
use serde::{Deserialize, Serialize};
use service_http::metrics::prometheus::{Histogram, IntCounter, IntCounterVec, Opts, Registry};
use service_http::metrics::{duration_histogram, register};
use service_http::{
    health_ok, health_unavailable, liveness, readiness, serve_with, ApiJson, AppError, RequestId,
    Server, REQUEST_ID_HEADER,
};
use store::{KeyStatus, Store};

pub use config::{Config, Signing};
pub use token::TokenIssuer;

/// Metrics exported on `/metrics`, in the service's own registry (see
/// [`service_http::metrics`]), with `process_*` and `auth_build_info`.
#[derive(Debug)]
pub struct AuthMetrics {
    registry: Registry,
    tokens_issued: IntCounter,
    verified_active: IntCounter,
    verified_revoked: IntCounter,
    verified_expired: IntCounter,
    verified_unknown: IntCounter,
    verify_duration: Histogram,
}

impl Default for AuthMetrics {
    fn default() -> Self {
        let registry =
            service_http::metrics::registry("auth_build_info", env!("CARGO_PKG_VERSION"), &[]);
        let tokens_issued = IntCounter::new(
            "jwt_tokens_issued_total",
            "JWTs issued by POST /api/v1/auth/token.",
        )
        .expect("valid metric options");
        let verifications = IntCounterVec::new(
            Opts::new(
                "auth_key_verifications_total",
                "API key verifications answered for the gateway.",
            ),
            &["result"],
        )
        .expect("valid metric options");
        let verify_duration = duration_histogram(
            &registry,
            "auth_key_verification_duration_seconds",
            "Time to answer one key verification call of the gateway.",
        );
        register(&registry, &tokens_issued);
        register(&registry, &verifications);
        Self {
            tokens_issued,
            verified_active: verifications.with_label_values(&["active"]),
            verified_revoked: verifications.with_label_values(&["revoked"]),
            verified_expired: verifications.with_label_values(&["expired"]),
            verified_unknown: verifications.with_label_values(&["unknown"]),
            verify_duration,
            registry,
        }
    }
}

impl AuthMetrics {
    /// `jwt_tokens_issued_total`.
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.get()
    }

    fn render(&self) -> String {
        service_http::metrics::encode(&self.registry)
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// API keys (hashes only).
    pub store: Store,
    /// Token signer.
    pub issuer: Arc<TokenIssuer>,
    /// Counters.
    pub metrics: Arc<AuthMetrics>,
    /// `last_used_at` of keys, written off the request path.
    pub usage: Arc<usage::KeyUsage>,
}

/// Why the service could not start: the pricing services' one type
/// ([`StartError::Config`] for the signing settings).
pub use services::StartError;

/// Validates the signing settings, opens (migrates, seeds) the database and
/// builds the state. The one startup path of `main` and the tests.
pub async fn build(config: &Config) -> Result<AppState, StartError> {
    let issuer = TokenIssuer::new(config).map_err(StartError::Config)?;
    let store = Store::connect_with(config.service.store_options())
        .await
        .map_err(StartError::Database)?;
    Ok(AppState {
        usage: Arc::new(usage::KeyUsage::start(
            store.clone(),
            config.key_use_interval,
        )),
        store,
        issuer: Arc::new(issuer),
        metrics: Arc::default(),
    })
}

/// [`build`] + [`serve_with`] on `config.service.listen_addr`.
pub async fn start(config: &Config) -> Result<(Server, AppState), StartError> {
    let state = build(config).await?;
    let server = serve_with(
        app(state.clone()),
        config.service.listen_addr,
        config.service.layers(),
    )
    .await
    .map_err(StartError::Listen)?;
    Ok((server, state))
}

/// The routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/internal/v1/keys/verify", post(verify_key))
        .route("/api/v1/auth/token", post(issue_token))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/health", get(health))
        .route("/health/live", liveness(env!("CARGO_PKG_VERSION")))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Body of the verification call: exactly one of the two fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Lower-case hex SHA-256 of the API key (a key presented to the
    /// gateway).
    #[serde(default)]
    pub key_hash: Option<String>,
    /// Public id of the key (`key_…`): the `key_id` claim of a bearer token.
    #[serde(default)]
    pub key_id: Option<String>,
}

/// What the gateway learns about a key.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    /// Public id of the key.
    pub key_id: String,
    /// Owner of the key.
    pub client_id: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    /// RFC 3339 expiry, `null` for never.
    pub expires_at: Option<String>,
    /// The key's own per-minute limit, `null` for the global default.
    pub rate_limit_per_minute: Option<u32>,
    /// Scopes (`admin`).
    pub scopes: Vec<String>,
}

async fn verify_key(
    State(state): State<AppState>,
    rid: RequestId,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let answer = verify(&state, &rid, req).await;
    state
        .metrics
        .verify_duration
        .observe(started.elapsed().as_secs_f64());
    answer
}

async fn verify(
    state: &AppState,
    rid: &RequestId,
    req: VerifyRequest,
) -> Result<Response, AppError> {
    let found = match (req.key_hash.as_deref(), req.key_id.as_deref()) {
        (Some(key_hash), None) => {
            if !store::keys::is_key_hash(key_hash) {
                return Err(AppError::invalid_field(
                    "key_hash",
                    "must be 64 lower-case hex digits",
                ));
            }
            state.store.api_key_by_hash(key_hash).await?
        }
        (None, Some(key_id)) => {
            if !is_key_id(key_id) {
                return Err(AppError::invalid_field(
                    "key_id",
                    "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
                ));
            }
            state.store.api_key(key_id).await?
        }
        (hash, id) => {
            let issue = if hash.is_some() && id.is_some() {
                "send key_hash or key_id, not both"
            } else {
                "send key_hash or key_id"
            };
            return Err(AppError::Validation {
                message: "Exactly one of key_hash and key_id is required".to_owned(),
                details: vec![
                    pricing::FieldError::new("key_hash", issue),
                    pricing::FieldError::new("key_id", issue),
                ],
            });
        }
    };
    let Some(key) = found else {
        state.metrics.verified_unknown.inc();
        // 404 with the UNAUTHORIZED envelope: the filter turns exactly this
        // into `invalid_key`.
        let envelope = ErrorEnvelope::new(ErrorCode::Unauthorized, "Unknown API key", rid.as_str());
        let mut resp = (StatusCode::NOT_FOUND, envelope.to_json()).into_response();
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(resp);
    };
    let status = key.status();
    let counter = match status {
        KeyStatus::Active => &state.metrics.verified_active,
        KeyStatus::Revoked => &state.metrics.verified_revoked,
        KeyStatus::Expired => &state.metrics.verified_expired,
    };
    counter.inc();
    if status == KeyStatus::Active {
        // Throttled per key and written by a background task: no await.
        state.usage.record(&key.key_id);
    }
    Ok(Json(VerifyResponse {
        key_id: key.key_id,
        client_id: key.client_id,
        status: status.as_str().to_owned(),
        expires_at: key.expires_at,
        rate_limit_per_minute: key
            .rate_limit_per_minute
            .and_then(|n| u32::try_from(n).ok()),
        scopes: key.scopes,
    })
    .into_response())
}

/// Body of a successful token exchange.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
    "token_type": "Bearer", "expires_in": 900}))]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(schema_with = bearer)]
    pub token_type: String,
    /// Lifetime in seconds.
    #[schema(minimum = 1)]
    pub expires_in: u64,
}

fn bearer() -> utoipa::openapi::schema::Schema {
    pricing::openapi::constant("Bearer")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The shape of a key id the filter may send (the store makes `key_` + 16
/// base62 characters): checked with the client-id rule, which admits it.
fn is_key_id(id: &str) -> bool {
    is_client_id(id)
}

/// SPEC §4's client-id rule, [`pricing::ClientId::parse`]'s.
fn is_client_id(id: &str) -> bool {
    pricing::ClientId::parse(id).is_ok()
}

/// Exchange an API key for a JWT.
///
/// Send the API key in `X-API-Key`; no body is needed. The token carries
/// `sub` (client id), `iss`, `aud`, `iat`, `exp`, `scope` and `key_id` (the
/// key's public id); it is refused once that key is revoked or expires.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    operation_id = "issueToken",
    tag = "Authentication",
    responses(
        (status = 200, description = "A short-lived token.", body = TokenResponse),
        (status = 401, response = pricing::openapi::responses::Unauthorized),
        (status = 413, response = pricing::openapi::responses::PayloadTooLarge),
        (status = 500, response = pricing::openapi::responses::InternalError),
    ),
    security(("ApiKeyAuth" = []))
)]
pub async fn issue_token(
    State(state): State<AppState>,
    rid: RequestId,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if header(&headers, "x-auth-method") != Some("api_key") {
        return Err(AppError::Unauthorized(
            "A token is issued only for a valid API key (X-API-Key)".to_owned(),
        ));
    }
    let Some(client_id) = header(&headers, "x-client-id").filter(|c| is_client_id(c)) else {
        return Err(AppError::Unauthorized(
            "A token is issued only for a valid API key (X-API-Key)".to_owned(),
        ));
    };
    let scopes: Vec<String> = header(&headers, "x-client-scopes")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let rate_limit = header(&headers, "x-client-rate-limit").and_then(|v| v.parse::<u32>().ok());
    // The gateway names the key; the token carries it so that it stops
    // working with the key (revoked, expired) instead of at its own `exp`.
    let key_id = header(&headers, "x-api-key-id").filter(|id| is_key_id(id));
    let token = state
        .issuer
        .issue(client_id, &scopes, rate_limit, key_id)
        .map_err(AppError::Internal)?;
    state.metrics.tokens_issued.inc();
    tracing::info!(client_id, request_id = %rid, "Token issued");
    let mut resp = Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".to_owned(),
        expires_in: state.issuer.ttl_seconds(),
    })
    .into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(rid.as_str()) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    Ok(resp)
}

async fn jwks(State(state): State<AppState>) -> Result<Response, AppError> {
    match state.issuer.jwks() {
        Some(jwks) => {
            let mut resp = Json(jwks.clone()).into_response();
            resp.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            Ok(resp)
        }
        None => Err(AppError::NotFound(
            "No public keys: tokens are signed with a shared secret (HS256)".to_owned(),
        )),
    }
}

/// The dependency check of `/health` and `/health/ready`: the database
/// (keys live there) answers a `SELECT 1`.
async fn database_reachable(state: &AppState) -> Result<(), AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|_| health_unavailable("database"))
}

async fn health(State(state): State<AppState>) -> Response {
    match database_reachable(&state).await {
        Ok(()) => health_ok(env!("CARGO_PKG_VERSION")),
        Err(e) => e.into_response(),
    }
}

/// `/health`'s answer, and 503 once the process is shutting down.
async fn ready(State(state): State<AppState>) -> Response {
    readiness(env!("CARGO_PKG_VERSION"), database_reachable(&state).await)
}

async fn metrics(State(state): State<AppState>) -> Response {
    service_http::metrics::metrics_response(state.metrics.render())
}
