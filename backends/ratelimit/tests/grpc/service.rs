//! The gRPC edge cases and the HTTP side (health, metrics).

use super::*;

#[tokio::test]
async fn health_and_metrics_answer_over_http() {
    let (rls, mut c) = start(config()).await;
    let id = unique("m");
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    let (status, body) = health(&rls).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], ratelimit::VERSION);
    let metrics = metrics_text(&rls).await;
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
    let (status, body) = get_json(&rls, "/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}
