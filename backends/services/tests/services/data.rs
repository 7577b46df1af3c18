//! The data service: seed rates, ticker validation, a changed stock served within the cache TTL.

use super::*;

#[tokio::test]
async fn all_eight_seed_tickers_answer_with_their_exact_spec_rate() {
    let expected = [
        ("AAPL", "0.0039105", "EASY", "18.5", "2"),
        ("MSFT", "0.003045", "EASY", "16.0", "1"),
        ("NVDA", "0.006532", "EASY", "42.0", "3"),
        ("TSLA", "0.0279", "MEDIUM", "55.0", "4"),
        ("AMC", "0.4374", "HARD", "80.0", "7"),
        ("GME", "0.6475", "HARD", "85.0", "8"),
        ("BRK.B", "0.00224", "EASY", "12.0", "0"),
        ("KO", "0.0025", "EASY", "10.0", "0"),
    ];
    on_every_database(async |stack, db| {
        for (ticker, rate, status, vol, event) in expected {
            let r = stack
                .http
                .get(stack.data.url(&format!("/rates/{}", ticker.to_lowercase())))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{ticker} on {}", db.engine);
            assert!(r.headers().contains_key("x-request-id"));
            let text = r.text().await.unwrap();
            assert!(
                text.contains(&format!("\"current_rate\":{rate},")),
                "{ticker}: {text}"
            );
            assert!(
                text.contains(&format!("\"volatility_index\":{vol},")),
                "{text}"
            );
            assert!(
                text.contains(&format!("\"event_risk_factor\":{event},")),
                "{text}"
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["status"], "success");
            assert_eq!(v["ticker"], ticker);
            assert_eq!(v["borrow_status"], status, "{ticker}");
            let updated = v["last_updated"].as_str().unwrap();
            assert!(store::time::parse_rfc3339(updated).is_some(), "{updated}");
        }
    })
    .await;
}

#[tokio::test]
async fn rates_reject_a_bad_ticker_and_report_an_unknown_one() {
    on_every_database(async |stack, _| {
        let (status, body, headers) = stack.rate("ZZZZ").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "TICKER_NOT_FOUND");
        assert_eq!(
            headers.get("x-request-id").unwrap().to_str().unwrap(),
            body["error"]["request_id"]
        );
        let (status, body, _) = stack.rate("TOOLONG").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(body["error"]["details"][0]["field"], "ticker");
    })
    .await;
}

#[tokio::test]
async fn a_changed_stock_is_served_within_five_seconds() {
    on_every_database(async |stack, db| {
        let (_, before, _) = stack.rate("KO").await;
        assert_eq!(before["current_rate"], json!(0.0025));
        // Another process (gatewayctl) changes the row.
        let other = store::Store::connect(&db.url).await.unwrap();
        other
            .upsert_stock(
                "KO",
                &pricing::StockRisk {
                    base_rate: "0.0500".parse().unwrap(),
                    volatility_index: "0".parse().unwrap(),
                    event_risk_factor: "0".parse().unwrap(),
                    min_rate: "0.0010".parse().unwrap(),
                },
            )
            .await
            .unwrap();
        let changed_at = Instant::now();
        loop {
            let (_, now, _) = stack.rate("KO").await;
            if now["current_rate"] == json!(0.05) {
                assert_eq!(now["borrow_status"], "MEDIUM");
                break;
            }
            assert!(
                changed_at.elapsed() < Duration::from_millis(5500),
                "stale rate served for more than 5 s on {}",
                db.engine
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        other.close().await;
    })
    .await;
}
