//! dispatch-auth in a real Envoy against a scripted auth service on loopback:
//! the call it makes, allow/deny/error semantics both ways of failure_mode_allow,
//! the timeout bound, unknown and unreachable clusters, the decision cache, bad
//! configs, and the same cases through Envoy's native ext_authz for comparison.

use harness::envoy::{static_cluster, LOG_WAIT};
use harness::http::{read_response, send_raw};
use harness::{
    assert_config_refused, h2c, Envoy, Protocol, Reply, Request, Response, Server, Stack,
};
use serde_json::{json, Value};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PLUGIN: &str = "dispatch-auth";
const ERROR_BODY: &str = "external authorization failed\n";
/// How slow the "slow" case answers: far beyond every timeout used here.
const SLOW: Duration = Duration::from_secs(4);
/// How much later than its timeout an auth call may end the wait: Envoy's and the
/// client's scheduling on a busy two-core machine, not speed. Every timeout used
/// with the slow case plus this stays under [`SLOW`], so the bound still tells a
/// timeout from waiting for the answer.
const MARGIN: Duration = Duration::from_millis(2500);

/// The auth service. The original path (behind `/check`) picks its behaviour.
fn auth_service() -> Server {
    Server::start(|req| {
        let path = req.path.strip_prefix("/check").unwrap_or(&req.path);
        let case = path
            .trim_start_matches('/')
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        let token = req.header_value("authorization").unwrap_or_default();
        match case {
            "allow" => Reply::with(200, &[("x-user-id", "42"), ("x-internal", "no")], ""),
            "allow-anon" => Reply::status(200),
            "deny401" => Reply::with(
                401,
                &[
                    ("www-authenticate", "Bearer realm=\"test\""),
                    ("x-internal", "no"),
                ],
                "who are you?\n",
            ),
            "deny403" => Reply::with(403, &[("x-internal", "no")], "forbidden by policy\n"),
            "redirect" => Reply::with(302, &[("location", "https://login.example/")], ""),
            "error500" => Reply::with(500, &[], "database down\n"),
            "slow" => Reply::Delay(
                SLOW,
                Response {
                    status: 200,
                    ..Default::default()
                },
            ),
            "slow-deny" => Reply::Delay(
                Duration::from_millis(300),
                Response {
                    status: 403,
                    body: b"slowly denied\n".to_vec(),
                    ..Default::default()
                },
            ),
            "slow-allow" => Reply::Delay(
                Duration::from_millis(300),
                Response {
                    status: 200,
                    ..Default::default()
                },
            ),
            "close" => Reply::Close,
            "user" => match token.strip_prefix("Bearer ") {
                Some(user) if user.starts_with("good-") => {
                    Reply::with(200, &[("x-user-id", user)], "")
                }
                _ => Reply::with(401, &[("www-authenticate", "Bearer")], "bad token\n"),
            },
            _ => Reply::with(404, &[], "unknown auth case\n"),
        }
    })
}

/// A server that answers every connection with bytes that are not HTTP.
struct Garbage {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
}

fn garbage_service() -> Garbage {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 abc what\r\nbroken header line\r\n\r\n");
        }
    });
    Garbage { addr, count }
}

/// A loopback address nothing listens on.
fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// An Envoy running the plugin, with cluster `auth` (and its Istio-style alias)
/// pointing at `auth`.
fn plugin_envoy(auth: SocketAddr, mut config: Value) -> Envoy {
    if config.get("cluster").is_none() {
        config["cluster"] = json!("auth");
    }
    Stack::new()
        .cluster(static_cluster("auth", auth))
        .cluster(static_cluster(
            "outbound|9000||auth.test.svc.cluster.local",
            auth,
        ))
        .plugin(PLUGIN, config)
        .start()
}

/// Envoy's native ext_authz with the same semantics as [`comparison_config`].
fn native_envoy(auth: SocketAddr, failure_mode_allow: bool, timeout_ms: u64) -> Envoy {
    let filter = json!({
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "http_service": {
                "server_uri": {
                    "uri": "http://auth",
                    "cluster": "auth",
                    "timeout": format!("{}s", timeout_ms as f64 / 1000.0),
                },
                "path_prefix": "/check",
                "authorization_response": {
                    "allowed_upstream_headers": {"patterns": [{"exact": "x-user-id"}]},
                    "allowed_client_headers": {"patterns": [{"exact": "www-authenticate"}]}
                }
            },
            "allowed_headers": {"patterns": [{"exact": "authorization"}]},
            "failure_mode_allow": failure_mode_allow,
            "status_on_error": {"code": 403}
        }
    });
    Stack::new()
        .cluster(static_cluster("auth", auth))
        .filter(filter)
        .start()
}

fn comparison_config(failure_mode_allow: bool, timeout_ms: u64) -> Value {
    json!({
        "cluster": "auth",
        "path_prefix": "/check",
        "timeout_ms": timeout_ms,
        "allowed_headers": ["authorization"],
        "allowed_upstream_headers": ["x-user-id"],
        "allowed_client_headers": ["www-authenticate"],
        "failure_mode_allow": failure_mode_allow,
        "status_on_error": 403,
    })
}

/// The plugin's warn lines so far.
fn warnings(envoy: &Envoy) -> Vec<String> {
    envoy
        .log()
        .lines()
        .filter(|l| l.contains("wasm log") && l.contains("[warning]"))
        .map(str::to_string)
        .collect()
}

/// Waits until the plugin has logged `n` warn lines (logs are flushed
/// asynchronously), then returns them.
fn wait_warnings(envoy: &Envoy, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = warnings(envoy);
        if lines.len() >= n || start.elapsed() > LOG_WAIT {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn allow_copies_upstream_headers_and_removes_client_copies() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "allowed_upstream_headers": ["x-user-id"]}),
    );
    let resp = envoy.send(
        &Request::get("/allow/items")
            .header("authorization", "Bearer t")
            .header("x-user-id", "admin")
            .header("X-User-Id", "root"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.echoed();
    assert_eq!(seen.path, "/allow/items");
    let ids: Vec<_> = seen
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-user-id"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        ids,
        ["42"],
        "only the auth service's value reaches upstream"
    );
    assert_eq!(
        seen.header_value("x-internal"),
        None,
        "not an allowed upstream header"
    );
    // The auth service allows without naming a user: the client's claim is gone.
    let seen = envoy
        .send(&Request::get("/allow-anon").header("x-user-id", "admin"))
        .echoed();
    assert_eq!(seen.header_value("x-user-id"), None);
    assert_eq!(auth.count(), 2);
    assert_eq!(seen.header_value("x-auth-failure-mode-allowed"), None);
}

#[test]
fn the_call_carries_pseudo_headers_forwarded_headers_and_only_allowed_headers() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({
            "cluster": "outbound|9000||auth.test.svc.cluster.local",
            "path_prefix": "/check",
            "allowed_headers": ["Authorization", "cookie"],
            "headers_to_add": {"x-auth-source": "gateway"},
        }),
    );
    let resp = envoy.send(
        &Request::new("POST", "/allow/orders?id=7&x=%20")
            .header("host", "shop.example")
            .header("authorization", "Bearer abc")
            .header("cookie", "session=1")
            .header("x-secret", "not for the auth service")
            .header("x-auth-source", "client")
            .body("the request body"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The body still reaches the upstream after the pause.
    assert_eq!(resp.echoed().body, b"the request body");
    let calls = auth.received();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST", "default: the original method");
    assert_eq!(call.path, "/check/allow/orders?id=7&x=%20");
    assert_eq!(
        call.header_value("host"),
        Some("auth.test.svc.cluster.local"),
        "authority from the Istio cluster name"
    );
    assert_eq!(call.header_value("x-forwarded-host"), Some("shop.example"));
    assert_eq!(call.header_value("x-forwarded-method"), Some("POST"));
    assert_eq!(
        call.header_value("x-forwarded-uri"),
        Some("/allow/orders?id=7&x=%20")
    );
    assert_eq!(call.header_value("authorization"), Some("Bearer abc"));
    assert_eq!(call.header_value("cookie"), Some("session=1"));
    let sources: Vec<_> = call
        .headers
        .iter()
        .filter(|(n, _)| n == "x-auth-source")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(sources, ["gateway"], "the fixed value, not the client's");
    assert_eq!(call.header_value("x-secret"), None);
    assert!(
        call.body.is_empty(),
        "the body never goes to the auth service"
    );

    // A fixed path and method, an explicit authority, the default allowed headers.
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path": "/check/allow", "method": "GET", "authority": "auth.internal"}),
    );
    let resp = envoy.send(
        &Request::new("DELETE", "/anything")
            .header("authorization", "Bearer abc")
            .header("cookie", "session=1"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let call = &auth.received()[0];
    assert_eq!(call.method, "GET");
    assert_eq!(call.path, "/check/allow");
    assert_eq!(call.header_value("host"), Some("auth.internal"));
    assert_eq!(call.header_value("x-forwarded-method"), Some("DELETE"));
    assert_eq!(call.header_value("x-forwarded-uri"), Some("/anything"));
    assert_eq!(call.header_value("authorization"), Some("Bearer abc"));
    assert_eq!(call.header_value("cookie"), None, "not allowed by default");
}

#[test]
fn denials_are_forwarded_as_the_auth_service_sent_them() {
    let auth = auth_service();
    let envoy = plugin_envoy(auth.addr(), json!({"path_prefix": "/check"}));
    let resp = envoy.get("/deny401", &[("authorization", "Bearer x")]);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.text(), "who are you?\n");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"test\"")
    );
    assert_eq!(
        resp.header("x-internal"),
        None,
        "not an allowed client header"
    );

    let resp = envoy.get("/deny403", &[]);
    assert_eq!(resp.status, 403);
    assert_eq!(resp.text(), "forbidden by policy\n");

    let resp = envoy.get("/redirect", &[]);
    assert_eq!(resp.status, 302);
    assert_eq!(resp.header("location"), Some("https://login.example/"));

    assert_eq!(
        envoy.echo().count(),
        0,
        "a denied request never reaches upstream"
    );
    assert_eq!(auth.count(), 3);
    assert!(warnings(&envoy).is_empty(), "a denial is not an error");
}

#[test]
fn a_request_body_is_held_until_the_decision() {
    let auth = auth_service();
    let envoy = plugin_envoy(auth.addr(), json!({"path_prefix": "/check"}));
    // The body arrives while the call is out; it must not push the request on.
    let resp = envoy.send(&Request::new("POST", "/slow-deny").body("x".repeat(10_000)));
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.text(), "slowly denied\n");
    // The same with the body sent while the call is surely out.
    let mut stream = TcpStream::connect(envoy.addr()).unwrap();
    // A request held for ever fails the test rather than hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"POST /slow-deny HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nconnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(b"hello").unwrap();
    let resp = read_response(&mut BufReader::new(stream)).unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(envoy.echo().count(), 0);
    // Allowed, the held body reaches the upstream whole.
    let resp = envoy.send(&Request::new("POST", "/allow").body("y".repeat(10_000)));
    assert_eq!(resp.echoed().body, "y".repeat(10_000).as_bytes());
}

/// The HTTP/2 form of a held body: DATA frames with no content-length, and
/// trailers, arriving while the call is out, wait for the decision too.
#[test]
fn an_h2_body_and_trailers_are_held_until_the_decision() {
    let auth = auth_service();
    let envoy = plugin_envoy(auth.addr(), json!({"path_prefix": "/check"}));
    let mut connection = h2c::Connection::open(envoy.addr()).expect("an h2c connection");
    // Sent while the auth service (300 ms) has not answered yet.
    let delay = Duration::from_millis(100);
    for trailers in [&[][..], &[("x-checksum", "5")][..]] {
        let before = envoy.echo().count();
        let deny = Request::new("POST", "/slow-deny").body("hello");
        let resp = connection.send_streamed(&deny, delay, trailers);
        assert_eq!(resp.status, 403, "trailers {trailers:?}: {}", resp.text());
        assert_eq!(resp.text(), "slowly denied\n");
        assert_eq!(envoy.echo().count(), before, "trailers {trailers:?}");
        let allow = Request::new("POST", "/slow-allow").body("hello");
        let resp = connection.send_streamed(&allow, delay, trailers);
        assert_eq!(resp.status, 200, "trailers {trailers:?}: {}", resp.text());
        assert_eq!(resp.echoed().body, b"hello", "trailers {trailers:?}");
    }
    assert_eq!(auth.count(), 4);
}

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

/// Several streams on one HTTP/2 connection, their calls out at once and
/// answered in another order: each stream gets its own decision.
#[test]
fn concurrent_h2_streams_each_get_their_own_decision() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "allowed_upstream_headers": ["x-user-id"]}),
    );
    let mut connection = h2c::Connection::open(envoy.addr()).expect("an h2c connection");
    let responses = connection.send_all(&[
        // Denied last: its auth service answers after 300 ms.
        Request::new("POST", "/slow-deny").body("held"),
        Request::get("/allow/1").header("x-user-id", "root"),
        Request::get("/deny401"),
        Request::get("/allow-anon").header("x-user-id", "root"),
        Request::get("/deny403"),
    ]);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200, 401, 200, 403], "{responses:?}");
    assert_eq!(responses[0].text(), "slowly denied\n");
    assert_eq!(responses[2].text(), "who are you?\n");
    assert_eq!(responses[4].text(), "forbidden by policy\n");
    let first = responses[1].echoed();
    assert_eq!(first.path, "/allow/1");
    assert_eq!(first.header_value("x-user-id"), Some("42"));
    let anon = responses[3].echoed();
    assert_eq!(anon.path, "/allow-anon");
    assert_eq!(anon.header_value("x-user-id"), None);
    assert_eq!(envoy.echo().count(), 2);
    assert_eq!(auth.count(), 5);
}

/// Every occurrence of an allowed header reaches the auth service as Envoy holds
/// it, which depends on the protocol: over both, separate fields of an ordinary
/// header stay separate and `authorization` is joined with ','; `cookie` fields
/// are joined with "; " over HTTP/2 only (RFC 9113 8.2.3).
#[test]
fn every_occurrence_of_an_allowed_header_is_forwarded_over_both_protocols() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "allowed_headers": ["authorization", "x-team", "cookie"]}),
    );
    let request = Request::get("/allow")
        .header("authorization", "Bearer a")
        .header("x-team", "red")
        .header("cookie", "a=1")
        .header("authorization", "Bearer b")
        .header("x-team", "blue")
        .header("cookie", "b=2")
        .header("x-other", "not allowed");
    for (protocol, cookies) in [
        (Protocol::Http1, vec!["a=1", "b=2"]),
        (Protocol::Http2, vec!["a=1; b=2"]),
    ] {
        auth.clear();
        let resp = envoy.send_over(protocol, &request);
        assert_eq!(resp.status, 200, "{protocol}: {}", resp.text());
        let calls = auth.received();
        assert_eq!(calls.len(), 1, "{protocol}");
        let values = |name: &str| -> Vec<&str> {
            calls[0]
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(values("authorization"), ["Bearer a,Bearer b"], "{protocol}");
        assert_eq!(values("x-team"), ["red", "blue"], "{protocol}");
        assert_eq!(values("cookie"), cookies, "{protocol}");
        assert!(values("x-other").is_empty(), "{protocol}");
        // The call carries what the upstream gets.
        let seen = resp.echoed();
        let upstream: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(upstream, cookies, "{protocol}");
    }
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

#[test]
fn a_header_value_that_is_not_utf8_is_a_bad_request() {
    let auth = auth_service();
    let envoy = plugin_envoy(auth.addr(), json!({"path_prefix": "/check"}));
    let resp = send_raw(
        envoy.addr(),
        b"GET /allow HTTP/1.1\r\nhost: a\r\nconnection: close\r\nauthorization: Bearer \xff\xfe\r\n\r\n",
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.text(),
        "bad request: a header value is not valid UTF-8\n",
        "the plugin answered, not Envoy's codec"
    );
    assert_eq!(auth.count(), 0);
    assert_eq!(envoy.echo().count(), 0);
}

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

#[test]
fn invalid_configurations_are_refused_at_load_with_the_field_named() {
    let cases = [
        (json!({}), "cluster: is required"),
        (
            json!({"cluster": "a", "path": "/a", "path_prefix": "/b"}),
            "path: cannot be combined with path_prefix",
        ),
        (
            json!({"cluster": "a", "timeout_ms": 0}),
            "timeout_ms: must be 1..=60000, got 0",
        ),
        (
            json!({"cluster": "a", "timeout_ms": 90000}),
            "timeout_ms: must be 1..=60000, got 90000",
        ),
        (
            json!({"cluster": "a", "allowed_headers": ["bad header"]}),
            "allowed_headers[0]: 'bad header' is not a valid header name",
        ),
        (
            json!({"cluster": "a", "allowed_upstream_headers": ["x:y"]}),
            "allowed_upstream_headers[0]: 'x:y' is not a valid header name",
        ),
        (
            json!({"cluster": "a", "headers_to_add": {"x": "a\nb"}}),
            "headers_to_add.x: header value must not contain CR, LF or NUL",
        ),
        (
            json!({"cluster": "a", "cache": {"ttl_ms": 1, "size": 3}}),
            "cache.size: unknown field",
        ),
        (
            json!({"cluster": "a", "clutser": "b"}),
            "clutser: unknown field",
        ),
    ];
    for (config, expected) in cases {
        assert_config_refused(PLUGIN, &config.to_string(), expected);
    }
}

/// What a client sees, reduced to what the comparison checks.
fn outcome(resp: &Response) -> (u16, Option<String>, Option<String>) {
    let user = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|_| resp.echoed().header_value("x-user-id").map(str::to_string));
    let challenge = resp.header("www-authenticate").map(str::to_string);
    (resp.status, user, challenge)
}

#[test]
fn native_ext_authz_agrees_on_allow_deny_and_errors() {
    let auth = auth_service();
    // Long enough that a loopback answer makes it on a busy machine, short of SLOW.
    let timeout_ms = 1000;
    // (path, expected status without / with failure_mode_allow)
    let cases: [(&str, u16, u16); 7] = [
        ("/allow", 200, 200),
        ("/deny401", 401, 401),
        ("/deny403", 403, 403),
        ("/redirect", 302, 302),
        ("/error500", 403, 200),
        ("/slow", 403, 200),
        ("/close", 403, 200),
    ];
    for allow in [false, true] {
        let plugin = plugin_envoy(auth.addr(), comparison_config(allow, timeout_ms));
        let native = native_envoy(auth.addr(), allow, timeout_ms);
        for (path, status, status_allowed) in cases {
            let expected = if allow { status_allowed } else { status };
            let headers = [("authorization", "Bearer t")];
            let ours = plugin.get(path, &headers);
            let theirs = native.get(path, &headers);
            assert_eq!(
                ours.status,
                expected,
                "plugin {path} allow={allow}: {}",
                ours.text()
            );
            assert_eq!(
                theirs.status,
                expected,
                "ext_authz {path} allow={allow}: {}",
                theirs.text()
            );
            assert_eq!(outcome(&ours), outcome(&theirs), "{path} allow={allow}");
            if expected == 401 || path == "/deny403" {
                assert_eq!(ours.text(), theirs.text(), "{path}: the denial body");
            }
        }
        // The deliberate difference: a client-sent x-user-id the auth service
        // does not set. ext_authz lets it through; the plugin removes it.
        let spoof = [("authorization", "Bearer t"), ("x-user-id", "admin")];
        let ours = plugin.get("/allow-anon", &spoof).echoed();
        let theirs = native.get("/allow-anon", &spoof).echoed();
        assert_eq!(ours.header_value("x-user-id"), None);
        assert_eq!(theirs.header_value("x-user-id"), Some("admin"));
        // An unreachable auth service: both treat it as an error.
        let dead = dead_addr();
        let plugin = plugin_envoy(dead, comparison_config(allow, timeout_ms));
        let native = native_envoy(dead, allow, timeout_ms);
        let expected = if allow { 200 } else { 403 };
        assert_eq!(plugin.get("/", &[]).status, expected);
        assert_eq!(native.get("/", &[]).status, expected);
    }
}
