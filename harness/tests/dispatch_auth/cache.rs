//! The decision cache in a real Envoy: hits within the TTL, errors never
//! cached, eviction at max_entries.

use super::{auth_service, plugin_envoy, wait_warnings, PLUGIN};
use harness::Stack;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn the_cache_saves_calls_within_the_ttl() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({
            "path_prefix": "/check", "allowed_upstream_headers": ["x-user-id"],
            "cache": {"ttl_ms": TTL_MS, "key_headers": ["authorization"]},
        }),
    );
    // Generous, so a slow machine still sends the requests below within it.
    const TTL_MS: u64 = 4000;
    let alice = [("authorization", "Bearer good-alice")];
    let bob = [("authorization", "Bearer good-bob")];
    let eve = [("authorization", "Bearer eve")];
    // Alice's decision is cached at some moment between these two instants: the
    // hits below must come within the TTL of the first, the miss after the TTL of
    // the second (however slow that first request was).
    let first_call = Instant::now();
    let mut cached_by = None;
    for _ in 0..5 {
        let seen = envoy.get("/user/profile", &alice).echoed();
        cached_by.get_or_insert_with(Instant::now);
        assert_eq!(seen.header_value("x-user-id"), Some("good-alice"));
    }
    let cached_by = cached_by.unwrap();
    assert_eq!(auth.count(), 1, "5 identical requests, 1 call");
    // A cached allow still removes the client's copy.
    let seen = envoy
        .get(
            "/user/profile",
            &[
                ("authorization", "Bearer good-alice"),
                ("x-user-id", "root"),
            ],
        )
        .echoed();
    assert_eq!(seen.header_value("x-user-id"), Some("good-alice"));
    assert_eq!(auth.count(), 1);

    for _ in 0..3 {
        let seen = envoy.get("/user/profile", &bob).echoed();
        assert_eq!(seen.header_value("x-user-id"), Some("good-bob"));
    }
    assert_eq!(auth.count(), 2, "another authorization is another key");
    for _ in 0..3 {
        let resp = envoy.get("/user/profile", &eve);
        assert_eq!(resp.status, 401);
        assert_eq!(resp.text(), "bad token\n");
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(auth.count(), 3, "denials are cached too");
    envoy.get("/user/other", &alice);
    assert_eq!(auth.count(), 4, "another path is another key");

    let ttl = Duration::from_millis(TTL_MS);
    assert!(
        first_call.elapsed() < ttl,
        "the requests above took longer than the TTL"
    );
    // 200 ms past the TTL for the VM's clock, which is not this process's.
    let expired = ttl + Duration::from_millis(200);
    std::thread::sleep(expired.saturating_sub(cached_by.elapsed()));
    let seen = envoy.get("/user/profile", &alice).echoed();
    assert_eq!(seen.header_value("x-user-id"), Some("good-alice"));
    assert_eq!(auth.count(), 5, "asked again after the TTL");
    envoy.get("/user/profile", &alice);
    assert_eq!(auth.count(), 5);
}

#[test]
fn errors_are_never_cached() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "timeout_ms": 200, "cache": {"ttl_ms": 60000}}),
    );
    for path in ["/error500", "/close", "/slow"] {
        auth.clear();
        for _ in 0..3 {
            assert_eq!(envoy.get(path, &[]).status, 403, "{path}");
        }
        assert_eq!(auth.count(), 3, "{path}: every request asks again");
    }
    let unknown = Stack::new()
        .plugin(
            PLUGIN,
            json!({"cluster": "no-such-cluster", "cache": {"ttl_ms": 60000}, "failure_mode_allow": true}),
        )
        .start();
    for _ in 0..2 {
        assert_eq!(unknown.get("/", &[]).status, 200);
    }
    assert_eq!(
        wait_warnings(&unknown, 2).len(),
        2,
        "each request tried again"
    );
}

#[test]
fn the_cache_evicts_at_max_entries() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "cache": {"ttl_ms": 60000, "max_entries": 2}}),
    );
    let token = |n: u32| format!("Bearer good-{n}");
    for n in 0..3 {
        envoy.get("/user", &[("authorization", &token(n))]);
    }
    assert_eq!(auth.count(), 3);
    // 1 and 2 are cached; 0 was evicted when 2 came in.
    envoy.get("/user", &[("authorization", &token(2))]);
    envoy.get("/user", &[("authorization", &token(1))]);
    assert_eq!(auth.count(), 3);
    envoy.get("/user", &[("authorization", &token(0))]);
    assert_eq!(auth.count(), 4);
}
