//! The gRPC edge cases and the HTTP side (health, metrics).

use super::*;

#[tokio::test]
async fn health_and_metrics_answer_over_http() {
    let (rls, mut c) = start(config()).await;
    let id = unique("m");
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], ratelimit::VERSION);
    let metrics = reqwest::get(format!("http://{}/metrics", rls.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ratelimit_decisions_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ratelimit_decisions_total{result=\"over_limit\"} 1"));
    assert!(metrics.contains("ratelimit_storage_info{storage=\"memory\"} 1"));
    assert!(
        metrics.contains(&format!(
            "rate_limit_client_utilization_ratio{{client_id=\"{id}\"}} 1\n"
        )),
        "{metrics}"
    );
    let missing = reqwest::get(format!("http://{}/nope", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}
