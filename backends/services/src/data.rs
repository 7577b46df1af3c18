//! The data service: `GET /rates/{ticker}` (SPEC §6 rates shape).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use pricing::openapi::responses::{BadRequest, InternalError, ServiceUnavailable, TickerNotFound};
use pricing::{BorrowRate, BorrowStatus, Decimal, Ticker};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

use crate::common::AppError;
use crate::routes::AppState;

/// `GET /rates/{ticker}` success body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "success", "ticker": "GME", "current_rate": 0.6475,
    "borrow_status": "HARD", "volatility_index": 85.0, "event_risk_factor": 8,
    "last_updated": "2026-11-23T10:00:00Z"}))]
pub struct RateResponse {
    #[schema(schema_with = crate::routes::success)]
    pub status: &'static str,
    /// The ticker, upper case.
    #[schema(pattern = r"^[A-Z]{1,5}(\.[A-Z]{1,2})?$")]
    pub ticker: String,
    /// The current borrow rate.
    pub current_rate: BorrowRate,
    pub borrow_status: BorrowStatus,
    /// The stored digits (`85.0`), as a JSON number.
    #[serde(serialize_with = "stored_digits")]
    #[schema(value_type = f64)]
    pub volatility_index: Decimal,
    /// The stored digits (`8`), as a JSON number.
    #[serde(serialize_with = "stored_digits")]
    #[schema(value_type = f64)]
    pub event_risk_factor: Decimal,
    /// When the stock's inputs last changed (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub last_updated: String,
}

fn stored_digits<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    pricing::json::serialize_raw_number(d.to_string(), s)
}

/// The data service router: `/rates/{ticker}` and the routes every
/// pricing service has ([`crate::routes::router`]).
pub fn app(state: AppState) -> Router {
    crate::routes::router(state, Router::new().route("/rates/{ticker}", get(rate)))
}

/// Current borrow rate.
#[utoipa::path(
    get,
    path = "/api/v1/rates/{ticker}",
    operation_id = "getRate",
    tag = "Pricing",
    params(("ticker" = Ticker, Path, description = "1-5 letters, optionally `.` and a 1-2 letter class; case-insensitive.")),
    responses(
        (status = 200, description = "The current rate.", body = RateResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = TickerNotFound),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("ApiKeyAuth" = []), ("BearerAuth" = []))
)]
pub async fn rate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RateResponse>, AppError> {
    let ticker = Ticker::parse(&raw).map_err(|e| {
        tracing::info!(field = "ticker", "Validation error");
        AppError::validation(vec![e])
    })?;
    let stock = state
        .store
        .stock_cached(ticker.as_str())
        .await?
        .ok_or_else(|| AppError::TickerNotFound(ticker.to_string()))?;
    let rate = stock.borrow_rate()?;
    Ok(Json(RateResponse {
        status: "success",
        ticker: stock.ticker,
        current_rate: rate,
        borrow_status: rate.status(),
        volatility_index: stock.risk.volatility_index,
        event_risk_factor: stock.risk.event_risk_factor,
        last_updated: stock.updated_at,
    }))
}
