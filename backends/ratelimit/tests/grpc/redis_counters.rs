//! Counters in Redis: failure modes, replicas sharing one limit, losing Redis.

use super::*;

#[tokio::test]
async fn redis_down_allows_requests_by_default_and_health_reports_503() {
    let (rls, mut c) = start(Config {
        redis_url: Some(dead_redis()),
        ..config()
    })
    .await;
    let id = unique("down");
    for _ in 0..3 {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
        assert!(is_ok(&r), "fail-open: {r:?}");
    }
    assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 3);
    let (status, body) = health(&rls).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn redis_down_denies_requests_when_configured_to() {
    let (rls, mut c) = start(Config {
        redis_url: Some(dead_redis()),
        failure_mode: FailureMode::Deny,
        ..config()
    })
    .await;
    let r = ask(&mut c, &[("client_id", &unique("deny"))]).await;
    assert!(is_over(&r));
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(rls.shared.metrics().decisions("failure_denied"), 1);
}

#[tokio::test]
async fn two_service_replicas_sharing_redis_enforce_one_limit() {
    let Some(url) = redis_url() else { return };
    let shared_cfg = Config {
        redis_url: Some(url),
        ..config()
    };
    let one = ratelimit::spawn(shared_cfg.clone()).await.unwrap();
    let two = ratelimit::spawn(shared_cfg).await.unwrap();
    let (mut c1, mut c2) = (client(&one).await, client(&two).await);
    let id = unique("shared");
    let d = [("client_id", id.as_str()), ("client_limit", "4")];
    let mut ok = 0;
    for i in 0..8 {
        let c = if i % 2 == 0 { &mut c1 } else { &mut c2 };
        let r = ask(c, &d).await;
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("4"));
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        if is_ok(&r) {
            ok += 1;
            assert_eq!(
                header(&r, "x-ratelimit-remaining"),
                Some((4 - ok).to_string().as_str())
            );
        } else {
            assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
            assert_eq!(header(&r, "retry-after"), Some(reset.to_string().as_str()));
        }
    }
    assert_eq!(ok, 4, "4 allowed in total across both replicas");
    assert_eq!(one.shared.metrics().decisions("failure_allowed"), 0);
    assert_eq!(health(&one).await.0, 200);
    let metrics = metrics_text(&one).await;
    assert!(metrics.contains("ratelimit_storage_info{storage=\"redis\"} 1"));
}

#[tokio::test]
async fn losing_redis_fails_open_and_counting_resumes_when_it_returns() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = RedisProxy::start(&target, 0).await;
    let (rls, mut c) = start(Config {
        redis_url: Some(format!("redis://127.0.0.1:{}", proxy.port)),
        ..config()
    })
    .await;
    let id = unique("flaky");
    let d = [("client_id", id.as_str()), ("client_limit", "2")];
    let r = ask(&mut c, &d).await;
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("1"));

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = ask(&mut c, &d).await;
    assert!(is_ok(&r), "fail-open while Redis is away: {r:?}");
    assert!(header(&r, "x-ratelimit-remaining").is_none());
    assert!(rls.shared.metrics().decisions("failure_allowed") >= 1);
    assert_eq!(health(&rls).await.0, 503);

    let _back = RedisProxy::start(&proxy.target, proxy.port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if health(&rls).await.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not reconnect to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The counter kept in Redis survived: one hit before the cut, one now.
    let r = ask(&mut c, &d).await;
    assert!(is_ok(&r));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert!(is_over(&ask(&mut c, &d).await));
}
