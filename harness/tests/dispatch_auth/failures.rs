//! Calls that produce no decision: 5xx, timeouts, closed connections, garbage,
//! unknown and unreachable clusters, clients that leave (over HTTP/1.1 and
//! HTTP/2); each answered by status_on_error or let through marked, with one
//! warn line, never a dead VM.

use super::{
    auth_service, dead_addr, garbage_service, plugin_envoy, wait_warnings, ERROR_BODY, MARGIN,
    PLUGIN, SLOW,
};
use harness::envoy::LOG_WAIT;
use harness::{h2c, Request, Stack};
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The failure cases: the auth-service path, and a word for the warn line.
const FAILURES: [(&str, &str); 3] = [
    ("/error500", "the auth service answered 500"),
    ("/slow", "504"),
    ("/close", "503"),
];

#[test]
fn failures_answer_status_on_error() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "timeout_ms": 300, "status_on_error": 503}),
    );
    for (n, (path, reason)) in FAILURES.iter().enumerate() {
        let resp = envoy.get(path, &[("authorization", "Bearer s3cr3t-token")]);
        assert_eq!(resp.status, 503, "{path}: {}", resp.text());
        assert_eq!(resp.text(), ERROR_BODY, "{path}");
        let lines = wait_warnings(&envoy, n + 1);
        assert_eq!(
            lines.len(),
            n + 1,
            "{path}: one warn line per failure: {lines:?}"
        );
        let line = &lines[n];
        assert!(
            line.contains("auth call to cluster 'auth' failed"),
            "{line}"
        );
        assert!(line.contains(reason), "{path}: {line}");
        assert!(line.contains("answered 503"), "{line}");
    }
    // Unparseable responses, from a server that does not speak HTTP.
    let garbage = garbage_service();
    let envoy = plugin_envoy(garbage.addr, json!({"timeout_ms": 1000}));
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.text(), ERROR_BODY);
    assert!(garbage.count.load(Ordering::SeqCst) >= 1);
    let lines = wait_warnings(&envoy, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("protocol error"), "{}", lines[0]);
    assert_eq!(envoy.echo().count(), 0);
    assert!(
        !envoy.log().contains("s3cr3t-token"),
        "a credential reached the log"
    );
}

#[test]
fn failures_with_failure_mode_allow_go_through_marked() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({
            "path_prefix": "/check", "timeout_ms": 300, "failure_mode_allow": true,
            "allowed_upstream_headers": ["x-user-id"],
        }),
    );
    for (n, (path, reason)) in FAILURES.iter().enumerate() {
        let resp = envoy.get(path, &[("x-user-id", "admin")]);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        let seen = resp.echoed();
        assert_eq!(
            seen.header_value("x-auth-failure-mode-allowed"),
            Some("true")
        );
        assert_eq!(
            seen.header_value("x-user-id"),
            None,
            "{path}: a client must not pre-set identity while auth is down"
        );
        let lines = wait_warnings(&envoy, n + 1);
        assert_eq!(lines.len(), n + 1, "{lines:?}");
        assert!(lines[n].contains(reason), "{path}: {}", lines[n]);
        assert!(lines[n].contains("request allowed (failure_mode_allow)"));
    }
    let garbage = garbage_service();
    let envoy = plugin_envoy(garbage.addr, json!({"failure_mode_allow": true}));
    let seen = envoy.get("/", &[]).echoed();
    assert_eq!(
        seen.header_value("x-auth-failure-mode-allowed"),
        Some("true")
    );
}

#[test]
fn no_request_waits_much_longer_than_the_timeout() {
    let auth = auth_service();
    let margin = MARGIN;
    for (timeout_ms, allow) in [(200u64, false), (800, false), (200, true)] {
        let envoy = plugin_envoy(
            auth.addr(),
            json!({"path_prefix": "/check", "timeout_ms": timeout_ms, "failure_mode_allow": allow}),
        );
        let timeout = Duration::from_millis(timeout_ms);
        let start = Instant::now();
        let resp = envoy.get("/slow", &[]);
        let took = start.elapsed();
        assert_eq!(
            resp.status,
            if allow { 200 } else { 403 },
            "{}",
            resp.text()
        );
        assert!(
            took < timeout + margin,
            "timeout {timeout:?}: answered after {took:?}, beyond the {margin:?} margin"
        );
        // It was the timeout that ended the wait (the service answers after 4 s).
        assert!(took + Duration::from_millis(20) >= timeout, "{took:?}");
        assert!(took < SLOW);
        let lines = wait_warnings(&envoy, 1);
        assert!(lines[0].contains("504"), "{}", lines[0]);
    }
}

#[test]
fn an_unknown_cluster_fails_at_once_without_killing_the_vm() {
    for allow in [false, true] {
        let envoy = Stack::new()
            .plugin(
                PLUGIN,
                json!({"cluster": "no-such-cluster", "failure_mode_allow": allow, "status_on_error": 502}),
            )
            .start();
        for _ in 0..3 {
            let resp = envoy.get("/", &[("x-user-id", "admin")]);
            if allow {
                assert_eq!(resp.status, 200, "{}", resp.text());
                let seen = resp.echoed();
                assert_eq!(
                    seen.header_value("x-auth-failure-mode-allowed"),
                    Some("true")
                );
            } else {
                assert_eq!(resp.status, 502, "{}", resp.text());
                assert_eq!(resp.text(), ERROR_BODY);
            }
        }
        let lines = wait_warnings(&envoy, 3);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains(
                "auth call to cluster 'no-such-cluster' failed: the call could not be sent"
            ),
            "{}",
            lines[0]
        );
        assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
    }
}

#[test]
fn a_client_that_leaves_while_the_call_is_out_harms_nothing() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "timeout_ms": 1000}),
    );
    for _ in 0..3 {
        let mut stream = TcpStream::connect(envoy.addr()).unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(stream);
    }
    // The answers (timeouts) arrive for streams that are gone.
    std::thread::sleep(Duration::from_millis(1300));
    let resp = envoy.get("/allow", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(envoy.echo().count(), 1);
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
}

/// The HTTP/2 form of a client that leaves: it resets its stream (RST_STREAM)
/// while the call is out and keeps the connection, which must go on serving.
#[test]
fn an_h2_stream_cancelled_while_the_call_is_out_harms_nothing() {
    let auth = auth_service();
    // The call's timeout and the wait before cancelling are generous so that, on
    // a busy machine, each call is surely out when its stream is cancelled.
    let timeout = Duration::from_millis(2500);
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "timeout_ms": timeout.as_millis() as u64}),
    );
    let mut connection = h2c::Connection::open(envoy.addr()).expect("an h2c connection");
    for n in 1..=3 {
        assert!(
            connection.cancel_after(&Request::get("/slow"), Duration::from_millis(500)),
            "answered before it was cancelled"
        );
        let start = Instant::now();
        while auth.count() < n && start.elapsed() < LOG_WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            auth.count(),
            n,
            "the call for cancelled stream {n} was made"
        );
    }
    // The same connection serves the next stream while the calls are still out...
    let resp = connection.send(&Request::get("/allow"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    // ...and after they ended for streams that are gone.
    std::thread::sleep(timeout + Duration::from_millis(300));
    let resp = connection.send(&Request::get("/allow"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(envoy.echo().count(), 2);
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
}

#[test]
fn an_unreachable_cluster_is_an_error() {
    let envoy = plugin_envoy(dead_addr(), json!({"timeout_ms": 1000}));
    let start = Instant::now();
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.text(), ERROR_BODY);
    assert!(start.elapsed() < Duration::from_millis(1000) + MARGIN);
    let lines = wait_warnings(&envoy, 1);
    assert!(lines[0].contains("503"), "{}", lines[0]);
}
