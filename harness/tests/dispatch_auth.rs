//! dispatch-auth in a real Envoy against a scripted auth service on loopback:
//! here the call it makes, allows and denials, held bodies, HTTP/2 streams and
//! bad configs, with the helpers every theme shares; in `dispatch_auth/`
//! failures both ways of failure_mode_allow, the decision cache and its memory,
//! forged headers and 304s, overload under clients that hang up, and native
//! ext_authz compared.

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

// The tests by theme, in files of their own beside this one.
#[path = "dispatch_auth/cache.rs"]
mod cache;
#[path = "dispatch_auth/failures.rs"]
mod failures;
#[path = "dispatch_auth/headers.rs"]
mod headers;
#[path = "dispatch_auth/native.rs"]
mod native;
#[path = "dispatch_auth/overload.rs"]
mod overload;

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
            "not-modified" => Reply::with(
                304,
                &[("etag", "\"v1\""), ("www-authenticate", "Bearer")],
                "a body a 304 cannot have\n",
            ),
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
fn invalid_configurations_are_refused_at_load_with_the_field_named() {
    let cases = [
        (json!({}), "cluster: is required"),
        // Found by the fuzzer: the call's :authority derives from the cluster.
        (
            json!({"cluster": "outbound|8000||auth\r\nx: y"}),
            "cluster: must not contain spaces or control characters",
        ),
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
        (
            json!({"cluster": "a", "cache": {"max_bytes": 1u64 << 30}}),
            "cache.max_bytes: must be 65536..=268435456 (64 KiB to 256 MiB: a wasm VM stops at 1 GiB",
        ),
        (
            json!({"cluster": "a", "max_pending_calls": 0}),
            "max_pending_calls: must be 1..=10000, got 0",
        ),
        (
            json!({"cluster": "a", "allowed_headers": (0..33).map(|i| format!("x-{i}")).collect::<Vec<_>>()}),
            "allowed_headers: at most 32 items, got 33",
        ),
        (
            json!({"cluster": "a", "allowed_upstream_headers": (0..33).map(|i| format!("x-{i}")).collect::<Vec<_>>()}),
            "allowed_upstream_headers: at most 32 items, got 33",
        ),
        (
            json!({"cluster": "a", "allowed_client_headers": (0..33).map(|i| format!("x-{i}")).collect::<Vec<_>>()}),
            "allowed_client_headers: at most 32 items, got 33",
        ),
        (
            json!({"cluster": "a", "cache": {"key_headers": (0..33).map(|i| format!("x-{i}")).collect::<Vec<_>>()}}),
            "cache.key_headers: at most 32 items, got 33",
        ),
        (
            json!({"cluster": "a", "allowed_upstream_headers": ["x_auth_failure_mode_allowed"]}),
            "allowed_upstream_headers[0]: 'x_auth_failure_mode_allowed' is set by the plugin",
        ),
    ];
    for (config, expected) in cases {
        assert_config_refused(PLUGIN, &config.to_string(), expected);
    }
}

#[test]
fn a_refused_headers_to_add_value_never_reaches_the_log() {
    // A fixed header of the call may carry the auth service's API key.
    let secret = "api-key-marker-5e7c";
    let config =
        json!({"cluster": "a", "headers_to_add": {"x-api-key": format!("{secret}\r\nx: y")}});
    let log = assert_config_refused(
        PLUGIN,
        &config.to_string(),
        "headers_to_add.x-api-key: header value must not contain CR, LF or NUL",
    );
    assert!(!log.contains(secret), "the secret in the log");
}
