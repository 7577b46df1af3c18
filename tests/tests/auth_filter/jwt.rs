//! Bearer tokens verified in the filter: HS256, and ES256 against algorithm
//! confusion and unknown key ids.

use super::*;

#[tokio::test]
async fn hs256_tokens_are_verified_in_the_filter() {
    let gw = Gateway::start("hs256", hs_plugin_config(), hs256()).await;
    let (key, _) = create_key(&gw.state, "test123", None).await;

    // A token from the exchange, through the gateway.
    let token = gw.exchange(&key).await;
    assert_eq!(gw.status_with_token(&token).await, 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen[0].header("x-client-id"), Some("test123"));
    assert_eq!(seen[0].header("x-auth-method"), Some("jwt"));
    assert_eq!(seen[0].header("x-client-rate-limit"), Some("90"));
    assert_eq!(seen[0].header("authorization"), None);

    // A JWT cannot buy another JWT.
    let resp = gw
        .client
        .post(gw.envoy.url("/api/v1/auth/token"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let expired = hs_token(&claims("test123", now() - 60));
    assert_eq!(gw.status_with_token(&expired).await, 401);

    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[5] ^= 0x40;
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(gw.status_with_token(&tampered).await, 401);

    let none_head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_body = URL_SAFE_NO_PAD.encode(claims("test123", now() + 600).to_string());
    assert_eq!(
        gw.status_with_token(&format!("{none_head}.{none_body}."))
            .await,
        401
    );

    let mut wrong_iss = claims("test123", now() + 600);
    wrong_iss["iss"] = json!("evil-issuer");
    assert_eq!(gw.status_with_token(&hs_token(&wrong_iss)).await, 401);

    let mut wrong_aud = claims("test123", now() + 600);
    wrong_aud["aud"] = json!("other-api");
    assert_eq!(gw.status_with_token(&hs_token(&wrong_aud)).await, 401);

    let mut string_exp = claims("test123", now() + 600);
    string_exp["exp"] = json!((now() + 600).to_string());
    let (status, _, body) = gw
        .get(
            "/api/v1/rates/AAPL",
            &[(
                "authorization",
                &format!("Bearer {}", hs_token(&string_exp)),
            )],
        )
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");

    assert_eq!(gw.upstream.count(), 1, "only the valid token got through");
    assert_eq!(gw.attempts("expired_token").await, 1);
    assert_eq!(gw.attempts("invalid_token").await, 5);
    assert!(!gw.envoy.log().contains(&token));
}

#[tokio::test]
async fn es256_gateway_rejects_algorithm_confusion_and_unknown_kid() {
    // The filter trusts exactly the JWKS the auth service publishes.
    let (probe, _) = start_auth_service("es256-probe", es256()).await;
    let jwks = jwks_of(&probe).await;
    probe.shutdown().await;
    let config = json!({"jwt": {"algorithm": "ES256", "jwks": jwks}});
    let gw = Gateway::start("es256", config, es256()).await;
    let (key, _) = create_key(&gw.state, "big_fund", None).await;

    let token = gw.exchange(&key).await;
    assert_eq!(gw.status_with_token(&token).await, 200);
    assert_eq!(
        gw.upstream.requests()[0].header("x-client-id"),
        Some("big_fund")
    );

    // HS256 "signed" with the public key: the classic confusion attack.
    let der = STANDARD.decode(EC_DER_B64).unwrap();
    let public_point = &der[der.len() - 65..];
    for public in [public_point.to_vec(), serde_json::to_vec(&jwks).unwrap()] {
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims("big_fund", now() + 600),
            &EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert_eq!(gw.status_with_token(&forged).await, 401);
    }

    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k-unknown".into());
    let unknown_kid = encode(
        &header,
        &claims("big_fund", now() + 600),
        &EncodingKey::from_ec_der(&der),
    )
    .unwrap();
    assert_eq!(gw.status_with_token(&unknown_kid).await, 401);
    assert_eq!(gw.upstream.count(), 1);
    assert_eq!(gw.attempts("invalid_token").await, 3);
}
