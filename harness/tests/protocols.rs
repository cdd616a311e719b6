//! The harness's two clients against a real Envoy: each request is counted by
//! Envoy as the protocol it was meant to be, `Envoy::send` follows
//! `HARNESS_HTTP`, and the HTTP/2 client puts a request on the wire as an HTTP/2
//! client should (`:authority`, lowercase names, separate repeated fields, no
//! connection headers), failing with status 0 where the HTTP/1 client does, and
//! carries several streams on one connection.

use harness::{h2c, Protocol, Request, Response, Server, Stack};
use std::net::TcpListener;

/// Envoy's downstream request counters for the test listener, by protocol.
fn counts(envoy: &harness::Envoy) -> (u64, u64) {
    let stat = |name: &str| {
        envoy
            .stat(&format!("http.main.{name}"))
            .unwrap_or_else(|| panic!("no stat {name}"))
    };
    (
        stat("downstream_rq_http1_total"),
        stat("downstream_rq_http2_total"),
    )
}

/// Values of `name` the upstream received, one per field.
fn seen(resp: &Response, name: &str) -> Vec<String> {
    resp.echoed()
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn each_protocol_is_counted_as_itself_by_envoy() {
    let envoy = Stack::new().start();
    let before = counts(&envoy);
    let resp = envoy.send_over(Protocol::Http2, &Request::get("/two"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed().path, "/two");
    assert_eq!(counts(&envoy), (before.0, before.1 + 1), "after HTTP/2");
    let resp = envoy.send_over(Protocol::Http1, &Request::get("/one"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        counts(&envoy),
        (before.0 + 1, before.1 + 1),
        "after HTTP/1.1"
    );
}

/// The pass `cargo xtask test` runs with `HARNESS_HTTP=2` includes this test, so
/// that pass is shown to be HTTP/2 end to end, not just asked to be.
#[test]
fn envoy_send_and_get_speak_what_harness_http_names() {
    let protocol = Protocol::from_env();
    println!("HARNESS_HTTP: {protocol}");
    let envoy = Stack::new().start();
    let (h1, h2) = counts(&envoy);
    assert_eq!(envoy.get("/", &[]).status, 200);
    assert_eq!(envoy.send(&Request::new("POST", "/").body("b")).status, 200);
    let expected = match protocol {
        Protocol::Http1 => (h1 + 2, h2),
        Protocol::Http2 => (h1, h2 + 2),
    };
    assert_eq!(counts(&envoy), expected, "{protocol}");
}

#[test]
fn an_h2_request_looks_like_one_from_a_real_client() {
    let envoy = Stack::new().start();
    let request = Request::new("POST", "/p/a%20b?q=1&r=/x")
        .header("Host", "shop.example")
        .header("X-Mixed-Case", "kept")
        .header("x-rep", "a")
        .header("x-rep", "b")
        .header("x-rep", "c, d")
        .header("x-padded", " \t padded value\t ")
        .header("x-utf8", "déjà vu")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("upgrade", "websocket")
        .header("te", "gzip")
        .body("hello");
    let resp = envoy.send_over(Protocol::Http2, &request);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echoed = resp.echoed();
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.path, "/p/a%20b?q=1&r=/x");
    assert_eq!(echoed.body, b"hello");
    // Envoy turns `:authority` back into `host` for the HTTP/1 upstream.
    assert_eq!(seen(&resp, "host"), ["shop.example"]);
    assert_eq!(seen(&resp, "content-length"), ["5"]);
    assert_eq!(seen(&resp, "x-mixed-case"), ["kept"]);
    assert_eq!(seen(&resp, "x-rep"), ["a", "b", "c, d"], "one field each");
    assert_eq!(seen(&resp, "x-padded"), ["padded value"]);
    assert_eq!(seen(&resp, "x-utf8"), ["déjà vu"]);
    for name in ["keep-alive", "proxy-connection", "upgrade", "te"] {
        assert_eq!(seen(&resp, name), Vec::<String>::new(), "{name}");
    }
    // Response header names arrive as HTTP/2 sends them: lowercase.
    for (name, _) in &resp.headers {
        assert_eq!(*name, name.to_ascii_lowercase());
    }
    assert_eq!(resp.header("content-type"), Some("application/json"));
    // A response header the upstream repeats stays repeated.
    let resp = envoy.send_over(
        Protocol::Http2,
        &Request::get("/")
            .header("x-echo-header", "x-twice: 1")
            .header("x-echo-header", "x-twice: 2"),
    );
    assert_eq!(resp.headers_named("x-twice"), ["1", "2"]);
}

#[test]
fn streams_on_one_h2_connection_answer_in_request_order() {
    let envoy = Stack::new().start();
    let connections = || {
        envoy
            .stat("http.main.downstream_cx_http2_total")
            .expect("the h2 connection counter")
    };
    let before = connections();
    let mut connection = h2c::Connection::open(envoy.addr()).expect("an h2c connection");
    let requests: Vec<Request> = (0..4)
        .map(|n| Request::get(&format!("/status/{}", 200 + n)))
        .collect();
    let responses = connection.send_all(&requests);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 201, 202, 203]);
    assert_eq!(
        connection.send(&Request::get("/again")).echoed().path,
        "/again"
    );
    assert_eq!(connections(), before + 1, "all on one connection");
    assert_eq!(counts(&envoy).1, 5);
}

#[test]
fn without_a_host_both_clients_say_test_local() {
    let envoy = Stack::new().start();
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let resp = envoy.send_over(protocol, &Request::get("/"));
        assert_eq!(seen(&resp, "host"), ["test.local"], "{protocol}");
    }
}

#[test]
fn a_failed_connection_is_status_0_over_both() {
    // A loopback port with nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // A server that speaks only HTTP/1: the h2 handshake gets an HTTP/1 answer.
    let http1_only = Server::echo();
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let resp = Request::get("/").send_over(protocol, closed);
        assert_eq!(resp.status, 0, "{protocol}: {resp:?}");
    }
    assert_eq!(Request::get("/").send_h2(http1_only.addr()).status, 0);
    assert_eq!(Request::get("/").send(http1_only.addr()).status, 200);
}

/// Envoy resets a stream whose body is shorter than its `content-length` says
/// (a malformed HTTP/2 message): the test gets status 0, not a hang, and the next
/// request, on a new connection, is fine.
#[test]
fn a_reset_stream_is_status_0() {
    let envoy = Stack::new().start();
    let short = Request::new("POST", "/")
        .header("content-length", "10")
        .body("hello");
    let resp = envoy.send_over(Protocol::Http2, &short);
    assert_eq!(resp.status, 0, "{resp:?}");
    assert_eq!(envoy.echo().count(), 0);
    assert_eq!(
        envoy.send_over(Protocol::Http2, &Request::get("/")).status,
        200
    );
}
