//! The decision cache in a real Envoy: hits within the TTL, errors never
//! cached, eviction at max_entries, and under a flood of distinct denials a byte
//! budget that holds, the oldest decisions going first and the VM alive and small.

use super::{auth_service, plugin_envoy, wait_warnings, PLUGIN};
use harness::http::Connection;
use harness::{Envoy, Reply, Request, Server, Stack};
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

/// The denial page: close to the 8 KiB the cache stores at most.
const PAGE: usize = 8000;
/// Distinct paths sent: the old plugin, which kept every one of them, grew by
/// about 8.4 KB each, 40 MB in all.
const FLOOD: usize = 4800;
/// Keep-alive connections the flood is spread over.
const CONNECTIONS: usize = 4;
/// The flood gives up after this long, whatever it has sent: a bound, not a
/// speed requirement.
const FLOOD_LIMIT: Duration = Duration::from_secs(120);
/// How much the VM's memory may grow during the flood: the default budget
/// (8 MiB) plus room for the allocator and the hash table's growth. The old
/// plugin grew by five times that.
const GROWTH_BOUND: u64 = 16 << 20;

/// One of the plugin's own gauges (named after the plugin in either form; the
/// VM's memory gauge is the module's, see `Envoy::memory_gauge`).
fn gauge(envoy: &Envoy, name: &str) -> Option<u64> {
    envoy.stat(&format!("wasmcustom.{PLUGIN}.{name}"))
}

/// Sends `GET /deny/<i>` for every `i` in `paths` on one keep-alive connection;
/// returns how many were answered 403.
fn flood(envoy: &Envoy, paths: impl Iterator<Item = usize>, until: Instant) -> usize {
    let mut denied = 0;
    let mut conn = Connection::open(envoy.addr()).unwrap();
    for i in paths {
        if Instant::now() > until {
            break;
        }
        let request = Request::get(&format!("/deny/{i}"));
        let resp = match conn.send(&request) {
            Some(resp) => resp,
            // Envoy may close a connection; the flood goes on on a new one.
            None => {
                conn = Connection::open(envoy.addr()).unwrap();
                match conn.send(&request) {
                    Some(resp) => resp,
                    None => continue,
                }
            }
        };
        if resp.status == 403 && resp.body.len() == PAGE {
            denied += 1;
        }
    }
    denied
}

#[test]
fn a_flood_of_distinct_denials_stays_within_the_cache_budget() {
    let page = "d".repeat(PAGE);
    let auth = Server::start(move |req| {
        if req.path.starts_with("/check/allow") {
            Reply::status(200)
        } else {
            Reply::with(403, &[("content-type", "text/html")], &page)
        }
    });
    // A large TTL and max_entries, as the attacked gateway had; max_bytes is
    // left at its default.
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "cache": {"ttl_ms": 3_600_000, "max_entries": 1_000_000}}),
    );
    assert_eq!(envoy.get("/allow", &[]).status, 200);
    let memory = envoy.memory_gauge(PLUGIN);
    let before = envoy.stat(&memory).expect("the memory gauge");

    let until = Instant::now() + FLOOD_LIMIT;
    let started = Instant::now();
    let denied: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let envoy = &envoy;
                s.spawn(move || flood(envoy, (c..FLOOD).step_by(CONNECTIONS), until))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let took = started.elapsed();
    assert!(
        denied > FLOOD * 9 / 10,
        "only {denied} of {FLOOD} denied in {took:?}"
    );

    // The VM is alive: an allowed request still goes through, nothing trapped.
    let resp = envoy.get("/allow", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let log = envoy.log();
    for sign in ["Uncaught", "RuntimeError", "panicked", "Wasm VM failed"] {
        assert!(!log.contains(sign), "{sign} in Envoy's log");
    }
    // The gauge is refreshed as a stream starts; the request above started one.
    let after = envoy.stat(&memory).unwrap();
    let entries = gauge(&envoy, "cache_entries").unwrap_or_default();
    let bytes = gauge(&envoy, "cache_bytes").unwrap_or_default();
    let summary = format!(
        "{denied} denials in {took:?}: memory {before} -> {after} bytes (+{}), \
         cache {entries} entries, {bytes} bytes",
        after.saturating_sub(before)
    );
    println!("{summary}");
    let _ = std::fs::write(
        harness::envoy::target_dir().join("e2e/dispatch-auth-flood.txt"),
        &summary,
    );
    assert!(
        after.saturating_sub(before) < GROWTH_BOUND,
        "the VM's memory grew past the bound: {summary}"
    );
    // Within the default budget, and full of the newest decisions.
    assert!(bytes <= 8 << 20, "{summary}");
    assert!(bytes > 7 << 20, "{summary}");
    assert!((900..FLOOD as u64).contains(&entries), "{summary}");

    // The oldest decision was evicted: asking again makes a call. The newest
    // is still cached: no call.
    let calls = auth.count();
    assert_eq!(envoy.get("/deny/0", &[]).status, 403);
    assert_eq!(auth.count(), calls + 1, "the oldest entry was asked again");
    assert_eq!(envoy.get(&format!("/deny/{}", FLOOD - 1), &[]).status, 403);
    assert_eq!(auth.count(), calls + 1, "the newest entry is still cached");
}
