//! `/discovery/services`: who may call it, and what it lists.

use super::{client, closed_addr, ops_all_up, ops_with, send_json};
use serde_json::Value;

/// `GET /discovery/services`, as `identity` (client id, scopes) when given:
/// status and JSON body.
async fn discovery(ops: &str, identity: Option<(&str, &str)>) -> (u16, Value) {
    let mut request = client().get(format!("{ops}/discovery/services"));
    if let Some((client_id, scopes)) = identity {
        request = request
            .header("x-client-id", client_id)
            .header("x-client-scopes", scopes);
    }
    send_json(request).await
}

#[tokio::test]
async fn discovery_without_identity_is_401() {
    let ops = ops_all_up().await;
    let (status, v) = discovery(&ops, None).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn discovery_without_the_admin_scope_is_403() {
    let ops = ops_all_up().await;
    for scopes in ["", "read", "administrator"] {
        let (status, v) = discovery(&ops, Some(("test123", scopes))).await;
        assert_eq!(status, 403, "scopes {scopes:?}");
        assert_eq!(v["error"]["code"], "FORBIDDEN");
    }
}

#[tokio::test]
async fn discovery_lists_routed_services_with_healthy_and_total_endpoints() {
    let ops = ops_all_up().await;
    let (status, v) = discovery(&ops, Some(("ops-team", "read admin"))).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "success");
    let services = v["services"].as_array().unwrap();
    let data = services
        .iter()
        .find(|s| s["service"] == "data_service")
        .unwrap();
    assert_eq!(data["cluster"], "data_service");
    assert_eq!(data["healthy_endpoints"], 1);
    assert_eq!(data["total_endpoints"], 2);
    assert_eq!(data["routes"][0]["pattern"], "/api/v1/rates/[^/]+");
    assert_eq!(
        data["endpoints"][1]["health_flags"][0],
        "failed_active_health_check"
    );
    let calc = services
        .iter()
        .find(|s| s["service"] == "calculation_service")
        .unwrap();
    assert_eq!(calc["routes"][0]["pattern"], "/api/v1/calculate-locate");
    let rls = services.last().unwrap();
    assert_eq!(rls["service"], "rate_limit_service");
    assert_eq!(rls["routes"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn discovery_with_envoy_admin_down_is_a_503_envelope() {
    let ops = ops_with(|d| d.admin = closed_addr()).await;
    let (status, v) = discovery(&ops, Some(("ops-team", "admin"))).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["code"], "SERVICE_UNAVAILABLE");
}
