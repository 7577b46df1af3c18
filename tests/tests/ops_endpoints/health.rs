//! `/health/detailed` and `/health/{dependency}`: every dependency with
//! its latency, degraded and unhealthy answers, and the envelope of unknown
//! paths.

use axum::http::StatusCode;
use serde_json::Value;

use super::{
    client, closed_addr, failing_backend, get_json, get_text, ops_all_up, ops_with, send_json,
};

#[tokio::test]
async fn detailed_health_reports_every_dependency_with_latency() {
    let ops = ops_with(|d| d.redis_url = Some("redis://127.0.0.1:6379/0".into())).await;
    let (status, v) = get_json(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "healthy", "{v}");
    let deps = v["dependencies"].as_object().unwrap();
    let mut names: Vec<&str> = deps.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "auth_service",
            "calculation_service",
            "data_service",
            "database",
            "rate_limit_service",
            "redis"
        ]
    );
    for (name, d) in deps {
        assert_eq!(d["status"], "healthy", "{name}: {d}");
        let latency = d["latency_ms"].as_f64().unwrap();
        assert!((0.0..1500.0).contains(&latency), "{name}: {latency}");
    }
    assert_eq!(deps["data_service"]["version"], "0.1.0");
    assert_eq!(deps["redis"]["critical"], false);
    assert_eq!(deps["database"]["critical"], true);
}

#[tokio::test]
async fn the_real_postgres_database_answers_the_ping() {
    let ops =
        ops_with(|d| d.database_url = Some("postgres://postgres@127.0.0.1:5432/test".into())).await;
    let (status, v) = get_json(&format!("{ops}/health/database")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["kind"], "database");
}

#[tokio::test]
async fn a_non_critical_dependency_down_is_degraded_with_200() {
    let ops = ops_with(|d| {
        d.rate_limit = closed_addr();
        d.redis_url = Some(format!("redis://{}", closed_addr()));
    })
    .await;
    let (status, v) = get_json(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "degraded");
    assert_eq!(
        v["dependencies"]["rate_limit_service"]["status"],
        "unhealthy"
    );
    assert_eq!(v["dependencies"]["redis"]["status"], "unhealthy");
    assert!(v["dependencies"]["redis"]["error"].is_string());
}

#[tokio::test]
async fn a_critical_dependency_down_is_unhealthy_with_503() {
    let calculation = failing_backend().await;
    let ops = ops_with(|d| d.calculation = calculation).await;
    let (status, v) = get_json(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "unhealthy");
    assert_eq!(
        v["dependencies"]["calculation_service"]["status"],
        "unhealthy"
    );
    assert_eq!(
        v["dependencies"]["calculation_service"]["error"],
        "/health answered 503"
    );
    assert_eq!(v["dependencies"]["data_service"]["status"], "healthy");
}

#[tokio::test]
async fn a_missing_sqlite_database_is_unhealthy() {
    let ops = ops_with(|d| d.database_url = Some("sqlite:///nonexistent-dir/none.db".into())).await;
    let (status, v) = get_json(&format!("{ops}/health/detailed")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["dependencies"]["database"]["status"], "unhealthy");
}

#[tokio::test]
async fn one_dependency_answers_200_when_healthy_and_503_when_not() {
    let auth = failing_backend().await;
    let ops = ops_with(|d| d.auth = auth).await;
    let (status, v) = get_json(&format!("{ops}/health/data_service")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("data_service"), Some("healthy"))
    );
    let (status, _, body) = get_text(&format!("{ops}/health/auth_service")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn an_unknown_dependency_is_a_404_envelope_with_the_request_id() {
    let ops = ops_all_up().await;
    let r = client()
        .get(format!("{ops}/health/mainframe"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["code"], "NOT_FOUND");
    assert_eq!(v["error"]["request_id"], "req-abc-123");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_envelope() {
    let ops = ops_all_up().await;
    let (status, headers, body) = get_text(&format!("{ops}/admin/clusters")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "NOT_FOUND");
    let rid = headers["x-request-id"].to_str().unwrap();
    assert!(!rid.is_empty());
    assert_eq!(v["error"]["request_id"], rid);

    let (status, v) = send_json(client().post(format!("{ops}/metrics"))).await;
    assert_eq!(status, 405);
    assert_eq!(v["error"]["code"], "METHOD_NOT_ALLOWED");
}
