//! Failures: a malformed plugin configuration, a flood of wrong keys from
//! one address, and a trapping filter.

use super::*;

#[tokio::test]
async fn malformed_plugin_config_is_rejected_by_envoy_naming_the_field() {
    let upstream = CountingUpstream::start().await;
    for (config, field) in [
        (
            json!({"cache": {"positive_ttl_seconds": 600}}),
            "cache.positive_ttl_seconds",
        ),
        (
            json!({"jwt": {"algorithm": "HS256", "secret": "short"}}),
            "jwt.secret",
        ),
        (json!({"unexpected": true}), "unexpected"),
    ] {
        let yaml = envoy_yaml(&config, upstream.port, upstream.port);
        let err = match Envoy::try_start(&yaml).await {
            Ok(_) => panic!("envoy accepted {config}"),
            Err(log) => log,
        };
        let expected = format!("invalid auth filter configuration: field `{field}`");
        assert!(err.contains(&expected), "{field} not named in:\n{err}");
    }
}

#[tokio::test]
async fn a_thousand_wrong_keys_from_one_address_are_throttled_without_blocking_another_address() {
    let gw = Gateway::start(
        "bruteforce",
        json!({"brute_force": {"max_failures": 20, "window_seconds": 60}}),
        hs256(),
    )
    .await;
    let (valid, _) = create_key(&gw.state, "test123", None).await;
    let attacker = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .build()
        .unwrap();
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut first_429 = None;
    for i in 0..1000 {
        let guess = format!("brl_{:0>40}", i);
        let resp = attacker
            .get(gw.envoy.url("/api/v1/rates/AAPL"))
            .header("x-api-key", &guess)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status == 429 && first_429.is_none() {
            assert!(resp.headers().contains_key("retry-after"));
            assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
            first_429 = Some(i);
        }
    }
    assert_eq!(statuses.get(&401), Some(&20), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&980), "{statuses:?}");
    assert_eq!(first_429, Some(20));
    // Only the 20 guesses before the throttle were looked at.
    assert_eq!(gw.attempts("invalid_key").await, 20);
    assert_eq!(gw.upstream.count(), 0);

    // A valid client on another address is not slowed down at all, and a
    // wrong key from there is still judged on its merits.
    for _ in 0..5 {
        let resp = other
            .get(gw.envoy.url("/api/v1/rates/AAPL"))
            .header("x-api-key", &valid)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let resp = other
        .get(gw.envoy.url("/api/v1/rates/AAPL"))
        .header("x-api-key", format!("brl_{:0>40}", 5000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(gw.upstream.count(), 5);
}

/// The test-only build of the auth filter that traps on a request carrying
/// `x-test-trap` (feature `trap-on-marked-request`, built by
/// `make wasm-test-variant` into a target directory of its own).
fn trap_variant_wasm() -> std::path::PathBuf {
    let p = e2e::target_dir().join("wasm-test-variant/wasm32-wasip1/release/auth_filter.wasm");
    assert!(
        p.exists(),
        "{} is missing: run `make wasm-test-variant`",
        p.display()
    );
    p
}

/// The failure policy the gateway ships for its wasm filters, as rendered
/// by gateway-config (the one source of every shape), as a YAML line.
fn shipped_failure_policy() -> String {
    let yaml = e2e::render_local_gateway(&[], 8091, &[format!("JWT_SECRET_KEY={SECRET}")]);
    let policies: std::collections::BTreeSet<&str> = yaml
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("failure_policy:"))
        .collect();
    assert_eq!(
        policies.len(),
        1,
        "one policy for every filter: {policies:?}"
    );
    policies
        .first()
        .map(|l| (*l).to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_trapping_auth_filter_fails_closed_and_is_reloaded_for_the_next_request() {
    let upstream = CountingUpstream::start().await;
    let (auth, state) = start_auth_service("trap", hs256()).await;
    let (key, _) = create_key(&state, "test123", None).await;
    let policy = shipped_failure_policy();
    let yaml = envoy_yaml_with(
        &hs_plugin_config(),
        upstream.port,
        auth.addr.port(),
        &trap_variant_wasm(),
    );
    assert!(yaml.contains("fail_open: false"));
    let yaml = yaml.replace("fail_open: false", &policy);
    let envoy = Envoy::start(&yaml).await;
    let client = reqwest::Client::new();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = client.get(envoy.url("/api/v1/rates/AAPL"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };

    let (status, body) = get(vec![("x-api-key", key.clone())]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.count(), 1);

    // The marked request kills the VM, with a valid key and without any
    // credential: neither may pass (never fail open for auth).
    for headers in [
        vec![("x-api-key", key.clone()), ("x-test-trap", "1".to_owned())],
        vec![("x-test-trap", "1".to_owned())],
    ] {
        let (status, body) = get(headers).await;
        assert_eq!(status, 503, "a trapped filter answered {status}: {body}");
        assert_eq!(
            upstream.count(),
            1,
            "a trapped filter let a request through"
        );
    }
    assert!(
        envoy
            .log()
            .contains("proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"),
        "the test variant did not trap:\n{}",
        envoy.log()
    );

    // The VM is reloaded: authentication works again (bounded wait for the
    // reload backoff), and still refuses requests without credentials.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(vec![("x-api-key", key.clone())]).await;
        if status == 200 {
            break;
        }
        assert!(
            (500..600).contains(&status),
            "while reloading: {status} {body}"
        );
        assert!(
            Instant::now() < deadline,
            "the auth filter was never reloaded:\n{}",
            envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(upstream.count(), 2);
    let (status, body) = get(vec![]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(upstream.count(), 2);
}
