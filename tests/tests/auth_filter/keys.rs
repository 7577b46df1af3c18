//! API keys: the verified client forwarded upstream, 401 envelopes, the
//! request body held until the decision, revocation within the cache TTL,
//! and an auth service outage.

use super::*;

#[tokio::test]
async fn valid_key_reaches_upstream_as_its_client_with_spoofed_headers_and_key_removed() {
    let gw = Gateway::start("valid", hs_plugin_config(), hs256()).await;
    let (key, _) = create_key(&gw.state, "test123", Some("2099-01-01T00:00:00Z")).await;
    let (status, _, body) = gw
        .get(
            "/api/v1/rates/AAPL",
            &[
                ("x-api-key", &key),
                ("x-client-id", "someone_else"),
                ("x-client-scopes", "admin superuser"),
                ("x-auth-method", "jwt"),
                ("x-client-rate-limit", "1000000"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    let ids: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n == "x-client-id")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        ids,
        vec!["test123"],
        "exactly the gateway's own x-client-id"
    );
    assert_eq!(seen[0].header("x-client-scopes"), Some("admin"));
    assert_eq!(seen[0].header("x-auth-method"), Some("api_key"));
    assert_eq!(seen[0].header("x-client-rate-limit"), Some("90"));
    assert_eq!(
        seen[0].header("x-api-key"),
        None,
        "the key does not travel upstream"
    );

    // The second request is answered from the cache: the auth service is
    // asked once.
    assert_eq!(gw.status_with_key(&key).await, 200);
    let verifications = e2e::text(gw.client.get(gw.auth.as_ref().unwrap().url("/metrics"))).await;
    assert!(
        verifications.contains("auth_key_verifications_total{result=\"active\"} 1\n"),
        "{verifications}"
    );
    assert_eq!(gw.attempts("success").await, 2);

    // Public paths need no credential.
    let (status, _, _) = gw.get("/health", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(gw.upstream.count(), 3);
}

#[tokio::test]
async fn bad_keys_and_missing_credentials_get_401_envelopes_metrics_and_log_lines() {
    let gw = Gateway::start("bad", hs_plugin_config(), hs256()).await;
    let (expired, _) = create_key(&gw.state, "big_fund", Some("2020-01-01T00:00:00Z")).await;
    let unknown = "brl_0123456789abcdefghijABCDEFGHIJklmnopqrst";

    let (status, headers, body) = gw
        .get(
            "/api/v1/rates/AAPL",
            &[("x-api-key", unknown), ("x-request-id", "req-unknown-1")],
        )
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");
    assert_eq!(body["error"]["message"], "Invalid API key");
    assert_eq!(body["error"]["request_id"], "req-unknown-1");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");

    let (status, _, body) = gw
        .get("/api/v1/rates/AAPL", &[("x-api-key", &expired)])
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");
    assert_eq!(body["error"]["message"], "API key has expired");

    let (status, _, body) = gw.get("/api/v1/calculate-locate", &[]).await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");

    let (status, _, body) = gw
        .get("/api/v1/rates/AAPL", &[("x-api-key", "brl_short")])
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");

    // A credential that is not even UTF-8 is refused without harming the VM.
    let raw = reqwest::header::HeaderValue::from_bytes(b"brl_\xff\xfe").unwrap();
    let resp = gw
        .client
        .get(gw.envoy.url("/api/v1/rates/AAPL"))
        .header("x-api-key", raw.clone())
        .header("x-request-id", raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, _, _) = gw.get("/api/v1/rates/AAPL", &[]).await;
    assert_eq!(status, 401, "the filter still answers afterwards");

    assert_eq!(
        gw.upstream.count(),
        0,
        "nothing unauthenticated reaches the upstream"
    );
    assert_eq!(gw.attempts("invalid_key").await, 3);
    assert_eq!(gw.attempts("expired_key").await, 1);
    assert_eq!(gw.attempts("missing_credentials").await, 2);

    let log = gw.envoy.log();
    assert!(
        log.contains("msg=\"Authentication error\" reason=invalid_key")
            && log.contains("request_id=\"req-unknown-1\""),
        "{log}"
    );
    assert!(log.contains("reason=expired_key"), "{log}");
    assert!(
        !log.contains(unknown) && !log.contains(&expired),
        "no key in the log"
    );
}

#[tokio::test]
async fn request_body_waits_for_the_key_verification() {
    let gw = Gateway::start("body", hs_plugin_config(), hs256()).await;
    let (key, _) = create_key(&gw.state, "test123", None).await;
    let unknown = "brl_ZYXWVUTSRQPONMLKJIHGfedcbazyxwvutsrqpo99";
    let body = r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    for (credential, expected) in [(unknown, 401), (key.as_str(), 200)] {
        let resp = gw
            .client
            .post(gw.envoy.url("/api/v1/calculate-locate"))
            .header("x-api-key", credential)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), expected);
    }
    let seen = gw.upstream.requests();
    assert_eq!(
        seen.len(),
        1,
        "the unknown key's body must not slip through"
    );
    assert_eq!(seen[0].header("x-client-id"), Some("test123"));
    assert_eq!(seen[0].body, body.as_bytes());
}

/// A TCP relay to `target` that holds every chunk of the answers for
/// `delay`: a slow auth service.
async fn slow_relay(target: SocketAddr, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = server_rx.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if client_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// One HTTP/1.1 POST written by hand: the headers and the first part of
/// the body at once, the rest of the body `pause` later. Returns the
/// response status (0 without a status line).
async fn post_in_two_parts(port: u16, key: &str, body: &str, pause: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /api/v1/calculate-locate HTTP/1.1\r\nhost: gateway\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(pause).await;
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    e2e::parse_response(&answer).0
}

#[tokio::test]
async fn a_body_arriving_while_the_key_is_verified_moves_on_only_with_the_decision() {
    // The auth filter has no body callback: pausing in the request headers
    // holds the body too. Verification answers take 400 ms here, and the
    // second half of each body arrives 150 ms into the verification.
    let upstream = CountingUpstream::start().await;
    let (auth, state) = start_auth_service("slowverify", hs256()).await;
    let relay = slow_relay(auth.addr, Duration::from_millis(400)).await;
    let mut config = hs_plugin_config();
    config["verify_timeout_ms"] = json!(3000);
    let envoy = Envoy::start(&envoy_yaml(&config, upstream.port, relay)).await;
    let (key, _) = create_key(&state, "test123", None).await;
    let unknown = "brl_ZYXWVUTSRQPONMLKJIHGfedcbazyxwvutsrqpo99";
    let body = r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    let pause = Duration::from_millis(150);

    let started = Instant::now();
    assert_eq!(
        post_in_two_parts(envoy.port, unknown, body, pause).await,
        401
    );
    assert!(started.elapsed() >= Duration::from_millis(400), "verified");
    assert!(
        upstream.requests().is_empty(),
        "nothing of a refused request reaches the upstream"
    );

    assert_eq!(post_in_two_parts(envoy.port, &key, body, pause).await, 200);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "the request went upstream once");
    assert_eq!(seen[0].header("x-client-id"), Some("test123"));
    assert_eq!(
        seen[0].body,
        body.as_bytes(),
        "both parts of the body, in order"
    );
    drop(auth);
}

#[tokio::test]
async fn revoked_key_stops_working_within_the_configured_ttl() {
    let config = json!({"strip_credential_header": false,
                        "cache": {"positive_ttl_seconds": 2, "negative_ttl_seconds": 1}});
    let gw = Gateway::start("revoke", config, hs256()).await;
    let (key, key_id) = create_key(&gw.state, "client123", None).await;
    assert_eq!(gw.status_with_key(&key).await, 200);
    assert_eq!(
        gw.upstream.requests()[0].header("x-api-key"),
        Some(key.as_str()),
        "kept when strip_credential_header is false"
    );
    gw.state.store.revoke_api_key(&key_id).await.unwrap();
    let revoked_at = Instant::now();
    let refused_after = loop {
        let status = gw.status_with_key(&key).await;
        if status == 401 {
            break revoked_at.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still accepted 5 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused_after <= Duration::from_millis(2_500),
        "{refused_after:?}"
    );
    let (_, _, body) = gw.get("/api/v1/rates/AAPL", &[("x-api-key", &key)]).await;
    assert_eq!(body["error"]["message"], "API key has been revoked");
    assert!(gw.attempts("revoked_key").await >= 1);
}

#[tokio::test]
async fn auth_service_outage_keeps_cached_keys_and_fails_closed_for_unknown_ones() {
    let config = json!({"cache": {"positive_ttl_seconds": 1, "stale_on_error_seconds": 60}});
    let mut gw = Gateway::start("outage", config, hs256()).await;
    let (known, _) = create_key(&gw.state, "test123", None).await;
    let (never_seen, _) = create_key(&gw.state, "retail_broker", None).await;
    assert_eq!(gw.status_with_key(&known).await, 200);

    gw.auth.take().unwrap().shutdown().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the positive TTL

    let (status, _, body) = gw.get("/api/v1/rates/AAPL", &[("x-api-key", &known)]).await;
    assert_eq!(status, 200, "a key verified before keeps working: {body}");
    assert_eq!(
        gw.upstream.requests()[1].header("x-client-id"),
        Some("test123")
    );

    let (status, headers, body) = gw
        .get("/api/v1/rates/AAPL", &[("x-api-key", &never_seen)])
        .await;
    assert_envelope(status, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(gw.upstream.count(), 2);
    assert!(gw.envoy.log().contains("serving cached key"));
}
