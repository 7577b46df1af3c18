//! The shared HTTP plumbing: JSON rejections, graceful shutdown, TCP_NODELAY.

use super::*;

#[tokio::test]
async fn api_json_rejections_are_envelopes_naming_the_field() {
    let server = services::common::serve(plumbing_app(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(server.addr.port(), 0);
    let http = reqwest::Client::new();
    let post = |body: &str, ct: &str| {
        http.post(server.url("/echo"))
            .header("content-type", ct.to_owned())
            .header("x-request-id", "plumbing-1")
            .body(body.to_owned())
            .send()
    };
    let ok = Answer::from(
        post(r#"{"client_id":"c1","ttl":5}"#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json,
        json!({"client_id": "c1", "request_id": "plumbing-1"})
    );
    assert_eq!(ok.request_id.as_deref(), Some("plumbing-1"));

    let malformed = Answer::from(post("{", "application/json").await.unwrap()).await;
    malformed.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(malformed.fields(), ["body"]);
    assert_eq!(malformed.json["error"]["request_id"], "plumbing-1");
    let missing = Answer::from(
        post(r#"{"client_id":"c1"}"#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    missing.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(missing.fields(), ["ttl"]);
    let unknown = Answer::from(
        post(r#"{"client_id":"c","ttl":1,"x":1}"#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.fields(), ["x"]);
    Answer::from(post("{}", "text/plain").await.unwrap())
        .await
        .assert_envelope(415, "UNSUPPORTED_MEDIA_TYPE");
    let charset = Answer::from(
        post(
            r#"{"client_id":"c1","ttl":5}"#,
            "application/json; charset=utf-8",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(charset.status, 200);
    let big = format!(r#"{{"client_id":"{}","ttl":1}}"#, "a".repeat(10_000));
    Answer::from(post(&big, "application/json").await.unwrap())
        .await
        .assert_envelope(413, "PAYLOAD_TOO_LARGE");

    let fail = Answer::from(http.get(server.url("/fail")).send().await.unwrap()).await;
    fail.assert_envelope(500, "INTERNAL_ERROR");
    assert!(!fail.text.contains("secret detail"), "{}", fail.text);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_then_refuses_connections() {
    let server = services::common::serve(plumbing_app(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = server.url("/slow");
    let addr = server.addr;
    let in_flight =
        tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shutdown().await;
    assert_eq!(in_flight.await.unwrap(), "done");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn accepted_connections_have_tcp_nodelay_so_no_response_waits_for_a_delayed_ack() {
    use axum::serve::Listener as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = TcpStream::connect(addr).await.unwrap();
    let (untapped, _) = listener.accept().await.unwrap();
    assert!(!untapped.nodelay().unwrap(), "the OS default is Nagle on");
    drop((plain, untapped));
    let mut listener = services::common::no_delay(listener);
    let _client = TcpStream::connect(addr).await.unwrap();
    let (accepted, _) = listener.accept().await;
    assert!(accepted.nodelay().unwrap());
}
