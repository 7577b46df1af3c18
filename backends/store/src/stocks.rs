//! The `stocks` aggregate: a stock's risk inputs, read (cached) and upserted.

use super::*;

/// One row of `stocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    /// Upper-case ticker (`BRK.B`).
    pub ticker: String,
    pub risk: StockRisk,
    /// When the row was last written (RFC 3339 UTC).
    pub updated_at: String,
}

impl Stock {
    /// The SPEC §5 borrow rate of this stock.
    pub fn borrow_rate(&self) -> Result<BorrowRate> {
        self.risk.borrow_rate().map_err(|_| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("stored risk inputs of {} overflow", self.ticker),
            )
        })
    }
}

impl Store {
    // --- stocks ----------------------------------------------------------

    /// A stock by (upper-case) ticker, straight from the database.
    pub async fn stock(&self, ticker: &str) -> Result<Option<Stock>> {
        self.fetch_row(
            "SELECT ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at \
             FROM stocks WHERE ticker = $1",
            ticker,
            stock_from_row,
        )
        .await
    }

    /// A stock through the in-process cache (entries at most
    /// [`StoreOptions::rate_cache_ttl`] old). Unknown tickers are not cached.
    pub async fn stock_cached(&self, ticker: &str) -> Result<Option<Stock>> {
        TtlCache::read_through(&self.stocks, ticker, self.cache_ttl, self.stock(ticker)).await
    }

    /// All stocks, by ticker.
    pub async fn list_stocks(&self) -> Result<Vec<Stock>> {
        self.fetch_rows(
            "SELECT ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at \
             FROM stocks ORDER BY ticker",
            None,
            stock_from_row,
        )
        .await
    }

    /// Inserts or replaces a stock (ticker upper-cased by the caller).
    pub async fn upsert_stock(&self, ticker: &str, risk: &StockRisk) -> Result<Stock> {
        let now = time::now_rfc3339();
        sqlx::query(
            "INSERT INTO stocks (ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (ticker) DO UPDATE SET base_rate = excluded.base_rate, \
             volatility_index = excluded.volatility_index, event_risk_factor = excluded.event_risk_factor, \
             min_rate = excluded.min_rate, updated_at = excluded.updated_at",
        )
        .bind(ticker)
        .bind(risk.base_rate.to_string())
        .bind(risk.volatility_index.to_string())
        .bind(risk.event_risk_factor.to_string())
        .bind(risk.min_rate.to_string())
        .bind(&now)
        .execute(&self.pool)
        .await?;
        TtlCache::forget(&self.stocks, ticker);
        Ok(Stock {
            ticker: ticker.to_owned(),
            risk: risk.clone(),
            updated_at: now,
        })
    }
}

pub(crate) fn stock_from_row(row: &AnyRow) -> Result<Stock> {
    let get = |c: &str| -> Result<Decimal> {
        let raw: String = row.try_get(c)?;
        decimal(c, &raw)
    };
    Ok(Stock {
        ticker: row.try_get("ticker")?,
        risk: StockRisk {
            base_rate: get("base_rate")?,
            volatility_index: get("volatility_index")?,
            event_risk_factor: get("event_risk_factor")?,
            min_rate: get("min_rate")?,
        },
        updated_at: row.try_get("updated_at")?,
    })
}
