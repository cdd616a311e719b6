//! The chain module against separate filters in a real Envoy: each stack below
//! runs once as separate wasm filters and once as one chain of the same
//! instances, and the same requests must get the same statuses, bodies and
//! response headers, the upstream the same request headers, and the auth
//! services the same calls (see `chain/compare.rs`). The stacks cover order
//! (requests in list order, responses in reverse), a denial at an instance (later
//! instances never see the request; earlier ones, and the denier, see the local
//! reply), dispatch-auth pausing in the middle, edits by one instance read by
//! another, and two dispatch-auth instances with caches of their own. Then a
//! client that leaves while the chain waits for an auth call.

#[path = "chain/compare.rs"]
mod compare;

use compare::{get, same_in_both_forms, same_in_both_forms_patched};
use harness::envoy::{hcm, static_cluster, LOG_WAIT};
use harness::{Envoy, Form, Reply, Server, Stack};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RH: &str = "response-headers";
const HA: &str = "header-authorization";
const BA: &str = "basic-auth";
const DA: &str = "dispatch-auth";

const FORBIDDEN: &str = "forbidden by policy\n";
const AUTH_ERROR: &str = "external authorization failed\n";

/// A response-headers instance that marks the request (appending `x-req: <mark>`)
/// and the response (appending `x-seen: <mark>`), so a test sees which instances
/// ran, and in which order, on either side.
fn mark(mark: &str) -> (&'static str, Value) {
    (
        RH,
        json!({
            "request_headers": [{"name": "x-req", "value": mark, "action": "append"}],
            "response_headers": [{"name": "x-seen", "value": mark, "action": "append"}],
        }),
    )
}

/// header-authorization accepting only `values` in `header`.
fn only(header: &str, values: &[&str]) -> (&'static str, Value) {
    (HA, json!({"header": header, "values": values}))
}

/// header-authorization's denial body for `header`.
fn not_allowed(header: &str) -> &'static str {
    match header {
        "x-team" => "denied: header 'x-team' is missing or not allowed\n",
        "x-by-a" => "denied: header 'x-by-a' is missing or not allowed\n",
        "x-user" => "denied: header 'x-user' is missing or not allowed\n",
        other => panic!("no denial body for {other}"),
    }
}

/// dispatch-auth asking service `name` (cluster `auth-<name>`), copying its
/// `x-by-<name>` to the upstream.
fn ask(name: &str) -> (&'static str, Value) {
    (
        DA,
        json!({"cluster": format!("auth-{name}"), "allowed_upstream_headers": [format!("x-by-{name}")]}),
    )
}

/// Requests go through the instances in list order, responses in reverse: the
/// second instance sets `x-order` first, then the first appends to it.
#[test]
fn requests_run_in_order_and_responses_in_reverse() {
    let first = json!({
        "request_headers": [{"name": "x-req", "value": "first", "action": "append"}],
        "response_headers": [{"name": "x-order", "value": "first", "action": "append"}],
    });
    let second = json!({
        "request_headers": [{"name": "x-req", "value": "second", "action": "append"}],
        "response_headers": [{"name": "x-order", "value": "second", "action": "set"}],
    });
    let sends = [
        get("passed", "/one", &[])
            .upstream("x-req", &["first", "second"])
            .header("x-order", &["second", "first"]),
        get("an upstream error", "/status/503", &[("x-req", "client")])
            .answered(503)
            .upstream("x-req", &["client", "first", "second"])
            .header("x-order", &["second", "first"]),
    ];
    same_in_both_forms("order", &[(RH, first), (RH, second)], &sends);
}

/// A denial at the second instance: the instances after it never see the
/// request (no mark on it, no auth call), the first one sees the local reply.
#[test]
fn a_denial_ends_the_request_side_and_earlier_instances_see_the_reply() {
    let plugins = [
        mark("first"),
        only("x-team", &["red"]),
        mark("later"),
        ask("a"),
    ];
    let sends = [
        get("no team", "/", &[])
            .denied(403, not_allowed("x-team"))
            .header("x-seen", &["first"]),
        get("another team", "/", &[("x-team", "blue")])
            .denied(403, not_allowed("x-team"))
            .header("x-seen", &["first"]),
        get(
            "team and user",
            "/",
            &[("x-team", "red"), ("authorization", "Bearer alice")],
        )
        .calls(1, 0)
        .upstream("x-req", &["first", "later"])
        .upstream("x-by-a", &["alice"])
        .header("x-seen", &["later", "first"]),
        get(
            "denied by the last",
            "/",
            &[("x-team", "red"), ("authorization", "Bearer deny")],
        )
        .calls(1, 0)
        .denied(403, FORBIDDEN)
        .header("x-seen", &["later", "first"]),
    ];
    same_in_both_forms("denial", &plugins, &sends);
}

/// dispatch-auth in the middle holds the request until its call is answered;
/// the next instance runs after an allow and reads the header it added; a
/// denial or a failed call answers, and the instances after it never run.
#[test]
fn dispatch_auth_in_the_middle_pauses_the_chain() {
    let plugins = [
        mark("first"),
        ask("a"),
        only("x-by-a", &["alice"]),
        mark("later"),
    ];
    let sends = [
        get(
            "allowed, then checked",
            "/",
            &[("authorization", "Bearer alice")],
        )
        .calls(1, 0)
        .upstream("x-by-a", &["alice"])
        .upstream("x-req", &["first", "later"])
        .header("x-seen", &["later", "first"]),
        get(
            "slowly allowed, its body held",
            "/",
            &[("authorization", "Bearer slow-alice")],
        )
        .post("the body")
        .calls(1, 0)
        .upstream("x-by-a", &["alice"])
        .upstream("x-req", &["first", "later"]),
        get(
            "allowed, then denied by the next",
            "/",
            &[("authorization", "Bearer bob")],
        )
        .calls(1, 0)
        .denied(403, not_allowed("x-by-a"))
        .header("x-seen", &["first"]),
        get(
            "a forged copy is removed first",
            "/",
            &[("authorization", "Bearer anon"), ("x-by-a", "alice")],
        )
        .calls(1, 0)
        .denied(403, not_allowed("x-by-a"))
        .header("x-seen", &["first"]),
        get(
            "denied by the auth service",
            "/",
            &[("authorization", "Bearer deny")],
        )
        .calls(1, 0)
        .denied(403, FORBIDDEN)
        .header("x-seen", &["first"]),
        get("challenged", "/", &[])
            .calls(1, 0)
            .denied(401, "who are you?\n")
            .header("www-authenticate", &["Bearer"])
            .header("x-seen", &["first"]),
        get("the call failed", "/", &[("authorization", "Bearer error")])
            .calls(1, 0)
            .denied(403, AUTH_ERROR)
            .header("x-seen", &["first"]),
    ];
    same_in_both_forms("dispatch-auth in the middle", &plugins, &sends);
}

/// A reply Envoy makes itself while the chain waits for an auth call (here its
/// stream idle timeout) reaches the waiting instance and those before it, not
/// the ones after, as with separate filters.
#[test]
fn a_reply_while_the_chain_waits_reaches_the_instances_that_saw_the_request() {
    let (plugin, mut patient) = ask("a");
    patient["timeout_ms"] = json!(5000);
    let plugins = [mark("first"), (plugin, patient), mark("later")];
    let sends = [
        get("timed out", "/", &[("authorization", "Bearer stalled")])
            .calls(1, 0)
            .denied(504, "stream timeout")
            .header("x-seen", &["first"]),
        get("the next one", "/", &[("authorization", "Bearer alice")])
            .calls(1, 0)
            .upstream("x-req", &["first", "later"])
            .header("x-seen", &["later", "first"]),
    ];
    same_in_both_forms_patched("a wait cut short", &plugins, &sends, |config| {
        // Well inside STALLED and the call's own timeout, so the idle timeout
        // is what ends the wait.
        hcm(config)["stream_idle_timeout"] = json!("1s");
    });
}

/// A request header one instance sets is what the next one checks; an instance
/// before it does not see the edit.
#[test]
fn an_edit_is_seen_by_later_instances_only() {
    let set_team = (
        RH,
        json!({"request_headers": [{"name": "x-team", "value": "red"}]}),
    );
    let sends = [
        get("no team", "/", &[]).upstream("x-team", &["red"]),
        get("another team", "/", &[("x-team", "blue")]).upstream("x-team", &["red"]),
    ];
    same_in_both_forms(
        "edit, then check",
        &[set_team.clone(), only("x-team", &["red"])],
        &sends,
    );
    let sends = [
        get("no team", "/", &[]).denied(403, not_allowed("x-team")),
        get("the team", "/", &[("x-team", "red")]).upstream("x-team", &["red"]),
    ];
    same_in_both_forms(
        "check, then edit",
        &[only("x-team", &["red"]), set_team],
        &sends,
    );
}

/// basic-auth forwards the user it authenticated in `x-user` (a client's copy
/// removed first), and header-authorization after it admits only alice.
#[test]
fn basic_auth_forwards_the_user_a_later_instance_checks() {
    let basic = (
        BA,
        json!({
            "basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["alice:a", "bob:b"]}],
            "forward_username_header": "x-user",
        }),
    );
    // base64 of alice:a and bob:b.
    let alice = ("authorization", "Basic YWxpY2U6YQ==");
    let bob = ("authorization", "Basic Ym9iOmI=");
    let missing = "Unauthorized: missing credentials\n";
    let sends = [
        get("alice", "/", &[alice]).upstream("x-user", &["alice"]),
        get("bob", "/", &[bob]).denied(403, not_allowed("x-user")),
        get("no credentials", "/", &[]).denied(401, missing),
        get("a forged user alone", "/", &[("x-user", "alice")]).denied(401, missing),
        get(
            "a forged user with bob's credentials",
            "/",
            &[("x-user", "alice"), bob],
        )
        .denied(403, not_allowed("x-user")),
    ];
    same_in_both_forms(
        "basic-auth, then header-authorization",
        &[basic, only("x-user", &["alice"])],
        &sends,
    );
}

/// Two dispatch-auth instances, each with a cache, asking two services that
/// disagree about bob: each instance keeps its own decisions.
#[test]
fn two_dispatch_auth_instances_keep_their_own_caches() {
    let cached = |name: &str| {
        let (plugin, mut config) = ask(name);
        config["cache"] = json!({"ttl_ms": 60_000, "key_headers": ["authorization"]});
        (plugin, config)
    };
    let sends = [
        get(
            "alice, asked of both",
            "/",
            &[("authorization", "Bearer alice")],
        )
        .calls(1, 1)
        .upstream("x-by-a", &["alice"])
        .upstream("x-by-b", &["alice"]),
        get(
            "alice, cached by both",
            "/",
            &[("authorization", "Bearer alice")],
        )
        .upstream("x-by-a", &["alice"])
        .upstream("x-by-b", &["alice"]),
        get("bob, denied by b", "/", &[("authorization", "Bearer bob")])
            .calls(1, 1)
            .denied(403, "b says no\n"),
        get(
            "bob, cached by both",
            "/",
            &[("authorization", "Bearer bob")],
        )
        .denied(403, "b says no\n"),
        get("denied by a", "/", &[("authorization", "Bearer deny")])
            .calls(1, 0)
            .denied(403, FORBIDDEN),
    ];
    same_in_both_forms("two dispatch-auth", &[cached("a"), cached("b")], &sends);
}

/// A client that hangs up while the chain waits for dispatch-auth's call: the
/// instance after dispatch-auth never runs for it, Envoy ends the stream, the
/// upstream never sees it, and the next request is served as usual. The same
/// holds for separate filters, checked alike.
#[test]
fn a_client_that_leaves_while_the_chain_waits_leaves_nothing_behind() {
    for form in [Form::Separate, Form::Chain] {
        // Answers /leave after the client has gone, everything else at once.
        let answered = Arc::new(AtomicUsize::new(0));
        let done = answered.clone();
        let auth = Server::start(move |req| {
            if req.path.starts_with("/leave") {
                std::thread::sleep(Duration::from_millis(800));
            }
            done.fetch_add(1, Ordering::SeqCst);
            Reply::status(200)
        });
        let envoy = Stack::new()
            .form(form)
            .cluster(static_cluster("auth", auth.addr()))
            .plugin(DA, json!({"cluster": "auth", "timeout_ms": 5000}))
            .plugin(HA, json!({"header": "x-team", "values": ["red"]}))
            .start();
        let decisions = |envoy: &Envoy| envoy.log().matches("header 'x-team' allowed").count();

        let mut client = TcpStream::connect(envoy.addr()).unwrap();
        client
            .write_all(b"GET /leave HTTP/1.1\r\nhost: shop\r\nx-team: red\r\n\r\n")
            .unwrap();
        wait_for(form, "the auth call", || auth.count() == 1);
        assert_eq!(active(&envoy), 1, "{form:?}: the request waits");
        drop(client);
        wait_for(form, "the stream to end", || active(&envoy) == 0);
        wait_for(form, "the auth service's answer", || {
            answered.load(Ordering::SeqCst) == 1
        });
        // Time for Envoy to have done whatever it does with the late answer.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(decisions(&envoy), 0, "{form:?}: the next instance ran");
        assert_eq!(envoy.echo().count(), 0, "{form:?}: the upstream saw it");
        let ended = envoy
            .stat("http.main.downstream_cx_destroy_remote_active_rq")
            .unwrap_or_default();
        assert_eq!(ended, 1, "{form:?}: Envoy counts a stream the client ended");

        let resp = envoy.get("/after", &[("x-team", "red")]);
        assert_eq!(resp.status, 200, "{form:?}: {}", resp.text());
        assert_eq!(resp.echoed().path, "/after");
        wait_for(form, "the next request's decision", || {
            decisions(&envoy) == 1
        });
        assert_eq!(active(&envoy), 0, "{form:?}");
        assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
    }
}

/// Requests Envoy has under way on the test listener.
fn active(envoy: &Envoy) -> u64 {
    envoy
        .stat("http.main.downstream_rq_active")
        .expect("the active requests gauge")
}

/// Waits, bounded by [`LOG_WAIT`], until `done`; fails naming `what`.
fn wait_for(form: Form, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < LOG_WAIT,
            "{form:?}: waited {LOG_WAIT:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
