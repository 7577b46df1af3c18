//! Per-client limits: a key's own limit, the default, separate counters.

use super::*;

#[tokio::test]
async fn a_key_with_limit_n_gets_n_ok_answers_then_over_limit() {
    let (rls, mut c) = start(config()).await;
    let id = unique("client");
    for expected_remaining in (0..3).rev() {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "3")]).await;
        assert!(is_ok(&r), "{r:?}");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert!(header(&r, "retry-after").is_none());
        let st = &r.statuses[0];
        assert_eq!(st.current_limit.as_ref().unwrap().requests_per_unit, 3);
        assert_eq!(st.limit_remaining, expected_remaining);
        assert!(st.duration_until_reset.as_ref().unwrap().seconds >= 1);
    }
    let r = ask(&mut c, &[("client_id", &id), ("client_limit", "3")]).await;
    assert!(is_over(&r), "{r:?}");
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&r, "x-ratelimit-reset"),
        header(&r, "retry-after"),
        "Retry-After and X-RateLimit-Reset agree"
    );
    assert_eq!(rls.shared.metrics().decisions("ok"), 3);
    assert_eq!(rls.shared.metrics().decisions("over_limit"), 1);
}

#[tokio::test]
async fn clients_are_counted_separately() {
    let (_rls, mut c) = start(config()).await;
    let (a, b) = (unique("a"), unique("b"));
    assert!(is_ok(
        &ask(&mut c, &[("client_id", &a), ("client_limit", "1")]).await
    ));
    assert!(is_over(
        &ask(&mut c, &[("client_id", &a), ("client_limit", "1")]).await
    ));
    assert!(is_ok(
        &ask(&mut c, &[("client_id", &b), ("client_limit", "1")]).await
    ));
}

#[tokio::test]
async fn the_default_limit_applies_when_the_key_has_none_and_its_own_limit_overrides_it() {
    let (_rls, mut c) = start(Config {
        default_per_minute: 2,
        ..config()
    })
    .await;
    let plain = unique("plain");
    for _ in 0..2 {
        let r = ask(&mut c, &[("client_id", &plain)]).await;
        assert!(is_ok(&r));
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    }
    assert!(is_over(&ask(&mut c, &[("client_id", &plain)]).await));

    let generous = unique("generous");
    for _ in 0..4 {
        let r = ask(&mut c, &[("client_id", &generous), ("client_limit", "4")]).await;
        assert!(is_ok(&r), "own limit 4 beats default 2");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("4"));
    }
    assert!(is_over(
        &ask(&mut c, &[("client_id", &generous), ("client_limit", "4")]).await
    ));
}
