//! Edge hardening: header names, escaped slashes, path normalisation,
//! header size.

use super::{data_gateway, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_with_an_underscore_is_rejected() {
    let (data, envoy) = data_gateway().await;
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("x_client_id", "big_fund")],
        "",
    );
    // Rejected before Envoy assigns a request id: the reply still carries
    // one of its own, the same in the header and the body.
    r.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(data.api_requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_slash_in_the_path_is_rejected() {
    let (data, envoy) = data_gateway().await;
    for target in [
        "/api/v1/rates/AAPL%2F..%2F..%2Finternal",
        "/api/v1/rates/A%2fB",
        "/api/v1%2Frates/AAPL",
    ] {
        let r = raw(envoy.port, "GET", target, &[], "");
        r.assert_envelope(400, "VALIDATION_ERROR");
    }
    assert_eq!(data.api_requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_slashes_and_dot_segments_are_normalised_before_routing() {
    let (data, envoy) = data_gateway().await;
    for target in [
        "//api/v1//rates/AAPL",
        "/api/v1/x/../rates/AAPL",
        "/api/v1/./rates/AAPL",
        "/api/v1/%72ates/AAPL",
    ] {
        let r = raw(envoy.port, "GET", target, &[], "");
        assert_eq!(r.status, 200, "{target}: {}", r.body);
    }
    // `/internal/...` reached through dot segments is still not routed.
    let r = raw(
        envoy.port,
        "POST",
        "/api/v1/../../internal/v1/keys/verify",
        &[],
        "",
    );
    r.assert_envelope(404, "NOT_FOUND");
    let paths: Vec<String> = data.api_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/rates/AAPL"; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused() {
    let (data, envoy) = data_gateway().await;
    let big = "a".repeat(40 * 1024);
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("x-padding", &big)],
        "",
    );
    assert_eq!(r.status, 431, "{}", r.body);
    assert_eq!(data.api_requests().len(), 0);
}
