//! /health and /metrics, and the database going down mid-test.

use super::*;

#[tokio::test]
async fn database_down_mid_test_is_503_in_the_envelope_and_recovers() {
    let Ok(admin) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL unset: database outage test skipped (needs PostgreSQL)");
        return;
    };
    let db = TestDb::postgres(&admin).await;
    // Point the services at the database through the relay.
    let host_port = db
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|auth| auth.rsplit('@').next())
        .unwrap()
        .to_owned();
    let target: SocketAddr = tokio::net::lookup_host(if host_port.contains(':') {
        host_port.clone()
    } else {
        format!("{host_port}:5432")
    })
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = CuttableProxy::start(target).await;
    let via_proxy = db.url.replacen(&host_port, &proxy.addr.to_string(), 1);
    let stack = Stack::start(&via_proxy).await;
    let body = locate("AAPL", json!(100000), json!(30), "test123").to_string();
    assert_eq!(stack.calculate_raw(&body, &[]).await.status, 200);

    proxy.cut();
    let health = wait_for_status(&stack.http, &stack.calc.url("/health"), 503).await;
    health.assert_envelope(503, "SERVICE_UNAVAILABLE");
    let calc = stack
        .calculate_raw(&body, &[("x-request-id", "during-outage")])
        .await;
    calc.assert_envelope(503, "SERVICE_UNAVAILABLE");
    let data = wait_for_status(&stack.http, &stack.data.url("/health"), 503).await;
    data.assert_envelope(503, "SERVICE_UNAVAILABLE");

    proxy.restore();
    let health = wait_for_status(&stack.http, &stack.calc.url("/health"), 200).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let calc = stack.calculate_raw(&body, &[]).await;
    assert_eq!(calc.status, 200, "{}", calc.text);
    // The failed calculation left no audit row; the two successes did.
    let store = &stack.calc_state.store;
    assert_eq!(store.audit_count().await.unwrap(), 2);
    assert!(store
        .audit_by_request_id("during-outage")
        .await
        .unwrap()
        .is_empty());
    stack.stop().await;
    drop(proxy);
    db.cleanup().await;
}
