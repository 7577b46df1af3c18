//! `stocks …` and `clients …`: list and upsert.

use super::*;

pub(crate) fn stock_json(s: &store::Stock) -> Result<Value, Failure> {
    let rate = s.borrow_rate()?;
    Ok(json!({
        "ticker": s.ticker,
        "base_rate": s.risk.base_rate.to_string(),
        "volatility_index": s.risk.volatility_index.to_string(),
        "event_risk_factor": s.risk.event_risk_factor.to_string(),
        "min_rate": s.risk.min_rate.to_string(),
        "current_rate": rate.to_string(),
        "borrow_status": rate.status().as_str(),
        "updated_at": s.updated_at,
    }))
}

pub(crate) fn client_json(c: &store::Client) -> Value {
    json!({
        "client_id": c.client_id,
        "markup_percentage": c.terms.markup_percentage.to_string(),
        "fee_type": c.terms.fee_type.as_str(),
        "fee_amount": c.terms.fee_amount.to_string(),
        "updated_at": c.updated_at,
    })
}

pub(crate) async fn stocks(ctx: &Ctx, cmd: StocksCommand) -> Result<(), Failure> {
    match cmd {
        StocksCommand::List => {
            let store = ctx.open().await?;
            let list = store.list_stocks().await?;
            if !ctx.json {
                println!(
                    "{:<8} {:<10} {:<10} {:<8} {:<10} {:<14} {:<7} UPDATED_AT",
                    "TICKER", "BASE_RATE", "VOLATILITY", "EVENT", "MIN_RATE", "RATE", "STATUS"
                );
            }
            for s in &list {
                if ctx.json {
                    println!("{}", stock_json(s)?);
                } else {
                    let rate = s.borrow_rate()?;
                    println!(
                        "{:<8} {:<10} {:<10} {:<8} {:<10} {:<14} {:<7} {}",
                        s.ticker,
                        s.risk.base_rate,
                        s.risk.volatility_index,
                        s.risk.event_risk_factor,
                        s.risk.min_rate,
                        rate.to_string(),
                        rate.status().as_str(),
                        s.updated_at
                    );
                }
            }
        }
        StocksCommand::Upsert(a) => {
            let ticker = Ticker::parse(&a.ticker)
                .map_err(|e| Failure::usage(format!("ticker: {}", e.issue)))?;
            let risk = StockRisk {
                base_rate: non_negative("base-rate", &a.base_rate)?,
                volatility_index: non_negative("volatility-index", &a.volatility_index)?,
                event_risk_factor: non_negative("event-risk-factor", &a.event_risk_factor)?,
                min_rate: non_negative("min-rate", &a.min_rate)?,
            };
            let rate = risk
                .borrow_rate()
                .map_err(|_| Failure::usage("the risk inputs are too large to compute a rate"))?;
            let store = ctx.open().await?;
            let s = store.upsert_stock(ticker.as_str(), &risk).await?;
            if ctx.json {
                println!("{}", stock_json(&s)?);
            } else {
                println!(
                    "{} saved: rate {} ({}), served within 5 s",
                    s.ticker,
                    rate,
                    rate.status().as_str()
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn clients(ctx: &Ctx, cmd: ClientsCommand) -> Result<(), Failure> {
    match cmd {
        ClientsCommand::List => {
            let store = ctx.open().await?;
            let list = store.list_clients().await?;
            if !ctx.json {
                println!(
                    "{:<20} {:<8} {:<11} {:<10} UPDATED_AT",
                    "CLIENT_ID", "MARKUP%", "FEE_TYPE", "FEE_AMOUNT"
                );
            }
            for c in &list {
                if ctx.json {
                    println!("{}", client_json(c));
                } else {
                    println!(
                        "{:<20} {:<8} {:<11} {:<10} {}",
                        c.client_id,
                        c.terms.markup_percentage,
                        c.terms.fee_type.as_str(),
                        c.terms.fee_amount,
                        c.updated_at
                    );
                }
            }
        }
        ClientsCommand::Upsert(a) => {
            let id = client_id(&a.client_id)?;
            let fee_type: FeeType = a
                .fee_type
                .to_ascii_uppercase()
                .parse()
                .map_err(|e: String| Failure::usage(format!("fee-type: {e}")))?;
            let terms = ClientTerms {
                markup_percentage: non_negative("markup-percentage", &a.markup_percentage)?,
                fee_type,
                fee_amount: non_negative("fee-amount", &a.fee_amount)?,
            };
            let store = ctx.open().await?;
            let c = store.upsert_client(id.as_str(), &terms).await?;
            if ctx.json {
                println!("{}", client_json(&c));
            } else {
                println!(
                    "{} saved: markup {} %, {} {}",
                    c.client_id,
                    c.terms.markup_percentage,
                    c.terms.fee_type.as_str(),
                    c.terms.fee_amount
                );
            }
        }
    }
    Ok(())
}
