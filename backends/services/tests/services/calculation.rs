//! The calculation service: SPEC worked examples, validation, envelopes, request ids, 404s, authorization and audit rows.

use super::*;

#[tokio::test]
async fn spec_worked_examples_price_to_the_cent() {
    on_every_database(async |stack, _| {
        let a = stack
            .calculate(locate("AAPL", json!(100000), json!(30), "test123"))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.text,
            r#"{"status":"success","total_fee":58.75,"breakdown":{"borrow_cost":32.14,"markup":1.61,"transaction_fees":25.00},"borrow_rate_used":0.0039105}"#
        );
        assert!(a.request_id.is_some());
        let g = stack
            .calculate(locate("gme", json!("250000.00"), json!(7), "client123"))
            .await;
        assert_eq!(g.status, 200, "{}", g.text);
        assert!(g.text.contains(r#""total_fee":3462.28"#), "{}", g.text);
        assert!(g.text.contains(r#""borrow_cost":3104.45"#));
        assert!(g.text.contains(r#""markup":232.83"#));
        assert!(g.text.contains(r#""transaction_fees":125.00"#));
        assert!(g.text.contains(r#""borrow_rate_used":0.6475"#));
    })
    .await;
}

#[tokio::test]
async fn every_violated_field_is_listed_in_one_400() {
    on_every_database(async |stack, _| {
        let all_bad = stack
            .calculate(locate("TOOLONG", json!(0), json!(400), "a b"))
            .await;
        all_bad.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(
            all_bad.fields(),
            ["ticker", "position_value", "loan_days", "client_id"]
        );
        let cases: [(Value, &[&str]); 8] = [
            (
                locate("AAPL", json!(-5), json!(30), "test123"),
                &["position_value"],
            ),
            (
                locate("AAPL", json!(1.005), json!(30), "test123"),
                &["position_value"],
            ),
            (
                locate("AAPL", json!(1_000_000_000_001u64), json!(30), "test123"),
                &["position_value"],
            ),
            (
                locate("AAPL", json!(100), json!(0), "test123"),
                &["loan_days"],
            ),
            (
                locate("AAPL", json!(100), json!(366), "test123"),
                &["loan_days"],
            ),
            (
                locate("AAPL", json!(100), json!(1.5), "test123"),
                &["loan_days"],
            ),
            (
                locate("AAPL", json!(100), json!(30), &"x".repeat(65)),
                &["client_id"],
            ),
            (
                json!({}),
                &["ticker", "position_value", "loan_days", "client_id"],
            ),
        ];
        for (body, fields) in cases {
            let a = stack.calculate(body.clone()).await;
            a.assert_envelope(400, "VALIDATION_ERROR");
            assert_eq!(a.fields(), fields, "{body}");
        }
        let mut extra = locate("AAPL", json!(100), json!(30), "test123");
        extra["surprise"] = json!(1);
        let a = stack.calculate(extra).await;
        a.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(a.fields(), ["surprise"]);
        let a = stack.calculate_raw("{\"ticker\":", &[]).await;
        a.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(a.fields(), ["body"]);
        // Bounds that are valid.
        for (pv, days) in [
            (json!(0.01), json!(1)),
            (json!(1_000_000_000_000u64), json!(365)),
        ] {
            let a = stack.calculate(locate("KO", pv, days, "test123")).await;
            assert_eq!(a.status, 200, "{}", a.text);
        }
        assert_eq!(stack.calc_state.store.audit_count().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn transport_errors_are_envelopes_with_their_codes() {
    on_sqlite(async |stack| {
        let body = locate("AAPL", json!(100000), json!(30), "test123").to_string();
        let r = stack
            .http
            .post(stack.calc.url("/calculate-locate"))
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        Answer::from(r)
            .await
            .assert_envelope(415, "UNSUPPORTED_MEDIA_TYPE");
        let big = format!(r#"{{"ticker":"{}"}}"#, "A".repeat(9000));
        stack
            .calculate_raw(&big, &[])
            .await
            .assert_envelope(413, "PAYLOAD_TOO_LARGE");
        // Unknown paths and wrong methods, on either service.
        for (request, status, code) in [
            (stack.http.get(stack.calc.url("/nowhere")), 404, "NOT_FOUND"),
            (
                stack.http.get(stack.calc.url("/calculate-locate")),
                405,
                "METHOD_NOT_ALLOWED",
            ),
            (
                stack.http.delete(stack.data.url("/rates/AAPL")),
                405,
                "METHOD_NOT_ALLOWED",
            ),
        ] {
            Answer::from(request.send().await.unwrap())
                .await
                .assert_envelope(status, code);
        }
    })
    .await;
}

#[tokio::test]
async fn the_incoming_request_id_is_echoed_and_used_in_errors_and_audit() {
    on_every_database(async |stack, _| {
        let body = locate("AAPL", json!(100000), json!(30), "test123").to_string();
        let ok = stack
            .calculate_raw(
                &body,
                &[("x-request-id", "req-ok-1"), ("x-client-id", "test123")],
            )
            .await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.request_id.as_deref(), Some("req-ok-1"));
        let rows = stack
            .calc_state
            .store
            .audit_by_request_id("req-ok-1")
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.caller.as_deref(), Some("test123"));
        assert_eq!(row.client_id, "test123");
        assert_eq!(row.ticker, "AAPL");
        assert_eq!(row.position_value, "100000");
        assert_eq!(row.loan_days, 30);
        assert_eq!(row.borrow_rate_used, "0.0039105");
        assert_eq!(row.total_fee, "58.75");
        assert_eq!(row.transaction_fees, "25.00");

        let bad = stack
            .calculate_raw("{}", &[("x-request-id", "req-bad-2")])
            .await;
        bad.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(bad.json["error"]["request_id"], "req-bad-2");
        let generated = stack.calculate_raw("{}", &[]).await;
        generated.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(generated.request_id.as_deref().map(str::len), Some(36));
    })
    .await;
}

#[tokio::test]
async fn unknown_ticker_and_unknown_client_are_404_with_their_codes() {
    on_every_database(async |stack, _| {
        stack
            .calculate(locate("ZZZZ", json!(100), json!(30), "test123"))
            .await
            .assert_envelope(404, "TICKER_NOT_FOUND");
        stack
            .calculate(locate("AAPL", json!(100), json!(30), "nobody"))
            .await
            .assert_envelope(404, "CLIENT_NOT_FOUND");
        assert_eq!(stack.calc_state.store.audit_count().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn pricing_another_client_is_forbidden_unless_admin() {
    on_sqlite(async |stack| {
        let body = locate("AAPL", json!(100000), json!(30), "client123").to_string();
        stack
            .calculate_raw(
                &body,
                &[("x-client-id", "test123"), ("x-client-scopes", "")],
            )
            .await
            .assert_envelope(403, "FORBIDDEN");
        let admin = stack
            .calculate_raw(
                &body,
                &[
                    ("x-client-id", "test123"),
                    ("x-client-scopes", "read admin"),
                ],
            )
            .await;
        assert_eq!(admin.status, 200, "{}", admin.text);
        let own = stack
            .calculate_raw(&body, &[("x-client-id", "client123")])
            .await;
        assert_eq!(own.status, 200);
        let internal = stack.calculate_raw(&body, &[]).await;
        assert_eq!(internal.status, 200);
        assert_eq!(stack.calc_state.store.audit_count().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn two_hundred_concurrent_calculations_write_exactly_two_hundred_audit_rows() {
    for db in databases().await {
        let stack = Arc::new(Stack::start(&db.url).await);
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let stack = stack.clone();
            tasks.push(tokio::spawn(async move {
                let body = locate("GME", json!(1000 + i), json!(1 + i % 365), "client123");
                let rid = format!("concurrent-{i}");
                stack
                    .calculate_raw(&body.to_string(), &[("x-request-id", &rid)])
                    .await
                    .status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let store = &stack.calc_state.store;
        assert_eq!(store.audit_count().await.unwrap(), 200, "{}", db.engine);
        assert_eq!(
            store
                .audit_by_request_id("concurrent-199")
                .await
                .unwrap()
                .len(),
            1
        );
        let stack = Arc::into_inner(stack).unwrap();
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn health_and_metrics_answer() {
    on_sqlite(async |stack| {
        for server in [&stack.data, &stack.calc] {
            let r = stack.http.get(server.url("/health")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                v,
                json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")})
            );
        }
        stack
            .calculate(locate("AAPL", json!(100), json!(30), "test123"))
            .await;
        let text = stack
            .http
            .get(stack.calc.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains(r#"pricing_backend_requests_total{endpoint="/calculate-locate",method="POST",service="calculation_service",status_code="200"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"pricing_backend_audit_writes_total{result="success",service="calculation_service"} 1"#
        ));
        assert!(
            text.contains(r#"pricing_backend_request_duration_seconds_count{endpoint="/calculate-locate",service="calculation_service"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "pricing_backend_build_info{{service=\"calculation_service\",version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    })
    .await;
}
