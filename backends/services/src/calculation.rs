//! The calculation service: `POST /calculate-locate`.
//!
//! The body goes through [`pricing::parse_locate_request`], the same code
//! the validation filter runs. A caller identified by `x-client-id` may
//! only price its own `client_id` unless `x-client-scopes` holds `admin`;
//! without `x-client-id` (a direct internal call) any client is allowed.
//! Every success is written to the audit log before the response is sent.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use pricing::openapi::responses::{
    BadRequest, Forbidden, InternalError, LocateNotFound, PayloadTooLarge, ServiceUnavailable,
    UnsupportedMediaType,
};
use pricing::LocateRequest;
use pricing::{LocateFee, Money, PricingError};
use serde::Serialize;
use store::AuditEntry;
use utoipa::ToSchema;

use crate::common::{AppError, JsonBody, RequestId};
use crate::routes::AppState;

/// Header naming the authenticated caller (set by the gateway).
pub const CLIENT_ID_HEADER: &str = "x-client-id";
/// Header with the caller's space-separated scopes (set by the gateway).
pub const CLIENT_SCOPES_HEADER: &str = "x-client-scopes";

/// `POST /calculate-locate` success body (SPEC §6).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "success", "total_fee": 58.75,
    "breakdown": {"borrow_cost": 32.14, "markup": 1.61, "transaction_fees": 25.00},
    "borrow_rate_used": 0.0039105}))]
pub struct LocateResponse {
    #[schema(schema_with = crate::routes::success)]
    pub status: &'static str,
    /// Sum of the three rounded components.
    pub total_fee: Money,
    pub breakdown: Breakdown,
    /// The borrow rate the fee was computed with.
    pub borrow_rate_used: pricing::BorrowRate,
}

/// The three rounded components of a fee.
#[derive(Debug, Serialize, ToSchema)]
pub struct Breakdown {
    pub borrow_cost: Money,
    pub markup: Money,
    pub transaction_fees: Money,
}

impl From<&LocateFee> for LocateResponse {
    fn from(f: &LocateFee) -> Self {
        Self {
            status: "success",
            total_fee: f.total_fee,
            breakdown: Breakdown {
                borrow_cost: f.borrow_cost,
                markup: f.markup,
                transaction_fees: f.transaction_fees,
            },
            borrow_rate_used: f.borrow_rate_used,
        }
    }
}

/// The calculation service router: `/calculate-locate` and the routes
/// every pricing service has ([`crate::routes::router`]).
pub fn app(state: AppState) -> Router {
    crate::routes::router(
        state,
        Router::new().route("/calculate-locate", post(calculate)),
    )
}

/// The caller as the gateway identified it: `(client_id, is_admin)`, or
/// `None` for a direct internal call.
fn caller(headers: &HeaderMap) -> Option<(String, bool)> {
    let id = headers
        .get(CLIENT_ID_HEADER)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())?
        .to_owned();
    let admin = headers
        .get(CLIENT_SCOPES_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.split_whitespace().any(|scope| scope == "admin"));
    Some((id, admin))
}

/// Locate fee with breakdown.
///
/// Every calculation is recorded in the audit log before the answer.
#[utoipa::path(
    post,
    path = "/api/v1/calculate-locate",
    operation_id = "calculateLocate",
    tag = "Pricing",
    request_body = LocateRequest,
    responses(
        (status = 200, description = "The fee; every calculation is recorded in the audit log before this answer.", body = LocateResponse),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = LocateNotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("ApiKeyAuth" = []), ("BearerAuth" = []))
)]
pub async fn calculate(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<LocateResponse>, AppError> {
    let req = pricing::parse_locate_request(&body).map_err(|details| {
        let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
        tracing::info!(
            fields = %fields.join(","),
            request_id = %request_id,
            "Validation error"
        );
        AppError::validation(details)
    })?;
    let caller = caller(&headers);
    if let Some((id, admin)) = &caller {
        if id != req.client_id.as_str() && !admin {
            tracing::warn!(
                caller = %id,
                client_id = %req.client_id,
                request_id = %request_id,
                "Forbidden client_id"
            );
            return Err(AppError::Forbidden(
                "client_id must be your own client id".to_owned(),
            ));
        }
    }
    let stock = state
        .store
        .stock_cached(req.ticker.as_str())
        .await?
        .ok_or_else(|| AppError::TickerNotFound(req.ticker.to_string()))?;
    let client = state
        .store
        .client_cached(req.client_id.as_str())
        .await?
        .ok_or_else(|| AppError::ClientNotFound(req.client_id.to_string()))?;
    let rate = stock.borrow_rate()?;
    let fee = LocateFee::compute(req.position_value, rate, req.loan_days, &client.terms)
        .map_err(|e: PricingError| AppError::Internal(format!("{}: {e}", req.ticker)))?;
    let entry = AuditEntry {
        request_id: request_id.0.clone(),
        caller: caller.map(|(id, _)| id),
        client_id: req.client_id.to_string(),
        ticker: req.ticker.to_string(),
        position_value: req.position_value.value(),
        loan_days: req.loan_days.get(),
        fee,
    };
    match state.store.insert_audit(&entry).await {
        Ok(_) => state.metrics.audit_writes.inc(),
        Err(e) => {
            state.metrics.audit_failures.inc();
            tracing::error!(error = %e, request_id = %request_id, "Audit write failed");
            return Err(e.into());
        }
    };
    Ok(Json(LocateResponse::from(&fee)))
}
