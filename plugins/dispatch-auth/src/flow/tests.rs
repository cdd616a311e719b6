//! The flow over a recording host: the call, every answer, failures both ways of
//! failure_mode_allow, refused header edits, the cache, and forged headers.
//! The cap on calls out and overload are in `overload_tests`.

use super::mock::{Effect, Mock};
use super::*;
use crate::config::Config;

pub const CONFIG: &str = r#"{
    "cluster": "outbound|8000||auth.ns.svc.cluster.local", "path_prefix": "/check",
    "timeout_ms": 300, "allowed_headers": ["authorization"],
    "allowed_upstream_headers": ["x-user-id"], "allowed_client_headers": ["www-authenticate"]
}"#;

/// `CONFIG` with `extra` fields added.
pub fn with(extra: &str) -> String {
    CONFIG.replace("\"timeout_ms\"", &format!("{extra}, \"timeout_ms\""))
}

pub fn shared(json: &str) -> Shared {
    Shared::standalone(Config::parse(json.as_bytes()).unwrap())
}

fn request(token: &str, extra: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    [
        (":method", "GET"),
        (":path", "/p"),
        (":authority", "shop"),
        ("authorization", token),
    ]
    .iter()
    .chain(extra)
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn start_with(shared: &Shared, host: &mut Mock, req: &[(Vec<u8>, Vec<u8>)]) -> (Stream, Action) {
    let mut stream = Stream::new(7);
    let action = stream.on_request_headers(
        shared,
        host,
        req.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
    );
    (stream, action)
}

pub fn start(shared: &Shared, host: &mut Mock, token: &str) -> (Stream, Action) {
    start_with(shared, host, &request(token, &[]))
}

pub fn answer(
    stream: &mut Stream,
    shared: &Shared,
    host: &mut Mock,
    headers: &[(&str, &str)],
    body: &str,
) {
    let headers: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    host.call_body = Some(body.as_bytes().to_vec());
    stream.on_call_response(shared, host, headers, body.len());
    host.call_body = None;
}

fn set(name: &str, value: Option<&str>) -> Effect {
    Effect::Set(name.into(), value.map(str::to_string))
}

pub fn error(status: u32, details: &str) -> Effect {
    Effect::Respond(status, details.into(), vec![], ERROR_BODY.into())
}

#[test]
fn the_call_and_the_pause() {
    let sh = shared(CONFIG);
    let mut host = Mock::new();
    let (stream, action) = start(&sh, &mut host, "Bearer a");
    assert_eq!(action, Action::Pause);
    assert!(stream.waiting());
    assert_eq!(stream.hold(), Action::Pause);
    let expected: Vec<(String, String)> = [
        (":method", "GET"),
        (":path", "/check/p"),
        (":authority", "auth.ns.svc.cluster.local"),
        ("x-forwarded-host", "shop"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/p"),
        ("authorization", "Bearer a"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        host.take(),
        [Effect::Dispatch(
            "outbound|8000||auth.ns.svc.cluster.local".into(),
            expected,
            300
        )],
        "an honest request costs no header edit"
    );
}

#[test]
fn answers_table() {
    let cluster = "outbound|8000||auth.ns.svc.cluster.local";
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        Vec<Effect>,
        usize,
    );
    let cases: Vec<Case> = vec![
        (
            "allow sets x-user-id",
            vec![(":status", "200"), ("x-user-id", "42"), ("x-other", "no")],
            "",
            vec![set("x-user-id", Some("42")), Effect::Resume],
            0,
        ),
        (
            "allow without x-user-id changes nothing",
            vec![(":status", "200")],
            "",
            vec![Effect::Resume],
            0,
        ),
        (
            "allow with a repeated header keeps each value",
            vec![(":status", "204"), ("x-user-id", "1"), ("x-user-id", "2")],
            "",
            vec![set("x-user-id", Some("1")), Effect::Add("x-user-id".into(), "2".into()), Effect::Resume],
            0,
        ),
        (
            "401 forwarded with www-authenticate and body",
            vec![(":status", "401"), ("www-authenticate", "Bearer realm=x"), ("x-user-id", "1")],
            "log in\n",
            vec![Effect::Respond(
                401,
                "dispatch_auth_denied".into(),
                vec![("www-authenticate".into(), "Bearer realm=x".into())],
                "log in\n".into(),
            )],
            0,
        ),
        (
            "304 forwarded without its body",
            vec![(":status", "304"), ("www-authenticate", "Bearer")],
            "a body a 304 cannot have",
            vec![Effect::Respond(
                304,
                "dispatch_auth_denied".into(),
                vec![("www-authenticate".into(), "Bearer".into())],
                "".into(),
            )],
            0,
        ),
        (
            "500 is an error",
            vec![(":status", "500")],
            "db down",
            vec![
                Effect::Warn(format!("#7 auth call to cluster '{cluster}' failed: the auth service answered 500; answered 403")),
                error(403, "dispatch_auth_error"),
            ],
            1,
        ),
        (
            "a reset is an error",
            vec![],
            "",
            vec![
                Effect::Warn(format!("#7 auth call to cluster '{cluster}' failed: no response (connection reset, or the response exceeded Envoy's buffer limit); answered 403")),
                error(403, "dispatch_auth_error"),
            ],
            1,
        ),
    ];
    for (name, headers, body, expected, warns) in cases {
        let sh = shared(CONFIG);
        let mut host = Mock::new();
        let (mut stream, _) = start(&sh, &mut host, "Bearer a");
        host.take();
        answer(&mut stream, &sh, &mut host, &headers, body);
        let got = host.take();
        assert_eq!(got, expected, "{name}");
        assert_eq!(
            got.iter().filter(|e| matches!(e, Effect::Warn(_))).count(),
            warns,
            "{name}"
        );
        assert!(!stream.waiting(), "{name}");
        assert_eq!(stream.hold(), Action::Continue, "{name}");
        // A second answer (never expected) changes nothing.
        answer(&mut stream, &sh, &mut host, &[(":status", "200")], "");
        assert!(host.take().is_empty(), "{name}");
    }
}

#[test]
fn failure_mode_allow_marks_the_request() {
    let sh = shared(&with("\"failure_mode_allow\": true"));
    let mut host = Mock::new();
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    host.take();
    answer(
        &mut stream,
        &sh,
        &mut host,
        &[(":status", "504")],
        "upstream request timeout",
    );
    assert_eq!(
        host.take(),
        [
            Effect::Warn("#7 auth call to cluster 'outbound|8000||auth.ns.svc.cluster.local' failed: status 504: upstream request timeout; request allowed (failure_mode_allow)".into()),
            set("x-auth-failure-mode-allowed", Some("true")),
            Effect::Resume,
        ]
    );
}

#[test]
fn a_refused_dispatch_fails_at_once() {
    for (allow, status_on_error) in [(false, 403), (false, 503), (true, 403)] {
        let sh = shared(&with(&format!(
            "\"failure_mode_allow\": {allow}, \"status_on_error\": {status_on_error}"
        )));
        let mut host = Mock::new();
        host.refuse = Some(Failure::Dispatch("unknown cluster"));
        let (stream, action) = start(&sh, &mut host, "Bearer a");
        assert!(!stream.waiting());
        let effects = host.take();
        let Some(Effect::Warn(line)) = effects.first() else {
            panic!("{effects:?}")
        };
        assert!(
            line.contains("the call could not be sent: unknown cluster"),
            "{line}"
        );
        if allow {
            assert_eq!(action, Action::Continue);
            assert_eq!(
                effects[1..],
                [set("x-auth-failure-mode-allowed", Some("true"))]
            );
        } else {
            assert_eq!(action, Action::Pause);
            assert_eq!(
                effects[1..],
                [error(status_on_error, "dispatch_auth_error")]
            );
        }
    }
}

/// When the host refuses to strip or set a header only the plugin may set, the
/// request is answered 500 instead of going on with whatever the client sent.
#[test]
fn a_refused_header_edit_fails_closed() {
    let refused = |name: &str| {
        [
            Effect::Warn(format!(
                "#7 cannot update request header '{name}': answered 500"
            )),
            Effect::Respond(
                500,
                "dispatch_auth_header_update_failed".into(),
                vec![],
                "Internal error\n".into(),
            ),
        ]
    };
    // The client's own copy cannot be removed: no call is made.
    let sh = shared(CONFIG);
    let mut host = Mock::new();
    host.refuse_edits = true;
    let forged = request("Bearer a", &[("x_user_id", "root")]);
    let (stream, action) = start_with(&sh, &mut host, &forged);
    assert_eq!(action, Action::Pause);
    assert!(!stream.waiting());
    let mut expected = vec![set("x_user_id", None)];
    expected.extend(refused("x_user_id"));
    assert_eq!(host.take(), expected);
    // An allow from the auth service.
    let mut host = Mock::new();
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    host.take();
    host.refuse_edits = true;
    answer(
        &mut stream,
        &sh,
        &mut host,
        &[(":status", "200"), ("x-user-id", "42")],
        "",
    );
    let mut expected = vec![set("x-user-id", Some("42"))];
    expected.extend(refused("x-user-id"));
    assert_eq!(host.take(), expected, "no resume after a refused edit");
    // A cached allow.
    let sh = cached_config(1000);
    let mut host = Mock::new();
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    answer(
        &mut stream,
        &sh,
        &mut host,
        &[(":status", "200"), ("x-user-id", "42")],
        "",
    );
    host.take();
    host.refuse_edits = true;
    let (_, action) = start(&sh, &mut host, "Bearer a");
    assert_eq!(action, Action::Pause);
    let mut expected = vec![set("x-user-id", Some("42"))];
    expected.extend(refused("x-user-id"));
    assert_eq!(host.take(), expected);
    // A failure let through by failure_mode_allow.
    let sh = shared(&with("\"failure_mode_allow\": true"));
    let mut host = Mock::new();
    host.refuse = Some(Failure::Dispatch("unknown cluster"));
    host.refuse_edits = true;
    let (_, action) = start(&sh, &mut host, "Bearer a");
    assert_eq!(action, Action::Pause);
    let effects = host.take();
    assert!(
        matches!(effects.first(), Some(Effect::Warn(_))),
        "{effects:?}"
    );
    let mut expected = vec![set("x-auth-failure-mode-allowed", Some("true"))];
    expected.extend(refused("x-auth-failure-mode-allowed"));
    assert_eq!(effects[1..], expected);
}

/// Every spelling of an upstream header and of the failure marker is removed
/// before anything else, so no path that forwards the request keeps one: an
/// allow, a cache hit, a failure let through.
#[test]
fn forged_headers_go_on_every_path_that_forwards() {
    let forged = [
        ("x-user-id", "admin"),
        ("x_user_id", "admin"),
        ("x-user_id", "admin"),
        ("x_auth_failure_mode_allowed", "true"),
        ("x-auth-failure-mode-allowed", "true"),
        ("x-user-idx", "kept: another name"),
    ];
    let removed = vec![
        set("x-user-id", None),
        set("x_user_id", None),
        set("x-user_id", None),
        set("x_auth_failure_mode_allowed", None),
        set("x-auth-failure-mode-allowed", None),
    ];
    let req = request("Bearer a", &forged);
    // An allow, then the same decision from the cache.
    let sh = cached_config(1000);
    let mut host = Mock::new();
    let (mut stream, _) = start_with(&sh, &mut host, &req);
    let effects = host.take();
    assert_eq!(effects[..5], removed[..], "before the call");
    assert!(matches!(effects[5], Effect::Dispatch(..)), "{effects:?}");
    answer(
        &mut stream,
        &sh,
        &mut host,
        &[(":status", "200"), ("x-user-id", "42")],
        "",
    );
    assert_eq!(host.take(), [set("x-user-id", Some("42")), Effect::Resume]);
    let (_, action) = start_with(&sh, &mut host, &req);
    assert_eq!(action, Action::Continue);
    let mut expected = removed.clone();
    expected.push(set("x-user-id", Some("42")));
    assert_eq!(host.take(), expected, "a cache hit");
    // A failure let through.
    let sh = shared(&with("\"failure_mode_allow\": true"));
    let mut host = Mock::new();
    host.refuse = Some(Failure::Dispatch("unknown cluster"));
    let (_, action) = start_with(&sh, &mut host, &req);
    assert_eq!(action, Action::Continue);
    let effects = host.take();
    assert_eq!(effects[..5], removed[..]);
    assert!(matches!(effects[5], Effect::Warn(_)), "{effects:?}");
    assert_eq!(
        effects[6..],
        [set("x-auth-failure-mode-allowed", Some("true"))]
    );
    // Denied requests lose them too (they never go anywhere, but the removal
    // comes first, before anything is known).
    let sh = shared(CONFIG);
    let mut host = Mock::new();
    let (mut stream, _) = start_with(&sh, &mut host, &req);
    host.take();
    answer(&mut stream, &sh, &mut host, &[(":status", "403")], "no");
    assert!(matches!(host.take()[..], [Effect::Respond(403, ..)]));
}

#[test]
fn a_value_that_is_not_utf8_is_a_bad_request() {
    let sh = shared(CONFIG);
    let mut host = Mock::new();
    let mut stream = Stream::new(1);
    let req: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":path", b"/"),
        (b"authorization", b"\xff"),
    ];
    assert_eq!(
        stream.on_request_headers(&sh, &mut host, req),
        Action::Pause
    );
    assert_eq!(host.calls(), 0);
    let effects = host.take();
    assert!(
        matches!(&effects[..], [Effect::Respond(400, _, _, _)]),
        "{effects:?}"
    );
}

fn cached_config(ttl: u64) -> Shared {
    shared(&with(&format!(
        "\"cache\": {{\"ttl_ms\": {ttl}, \"max_entries\": 2}}"
    )))
}

#[test]
fn cache_hits_make_no_call_and_replay_the_decision() {
    let sh = cached_config(1000);
    let mut host = Mock::new();
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    answer(
        &mut stream,
        &sh,
        &mut host,
        &[(":status", "200"), ("x-user-id", "42")],
        "",
    );
    host.take();
    for _ in 0..3 {
        host.now += 100;
        let (stream, action) = start(&sh, &mut host, "Bearer a");
        assert_eq!(action, Action::Continue);
        assert!(!stream.waiting());
        assert_eq!(host.take(), [set("x-user-id", Some("42"))]);
    }
    // Another token is another key.
    let (mut other, action) = start(&sh, &mut host, "Bearer b");
    assert_eq!(action, Action::Pause);
    assert_eq!(host.calls(), 1);
    answer(
        &mut other,
        &sh,
        &mut host,
        &[(":status", "401"), ("www-authenticate", "Bearer")],
        "no",
    );
    host.take();
    let (_, action) = start(&sh, &mut host, "Bearer b");
    assert_eq!(action, Action::Pause, "denials are cached and replayed");
    assert_eq!(
        host.take(),
        [Effect::Respond(
            401,
            "dispatch_auth_denied".into(),
            vec![("www-authenticate".into(), "Bearer".into())],
            "no".into()
        )]
    );
    // After the TTL the first decision is asked again.
    host.now += 1000;
    let (_, action) = start(&sh, &mut host, "Bearer a");
    assert_eq!(action, Action::Pause);
    assert_eq!(host.calls(), 1);
}

#[test]
fn errors_and_large_denials_are_not_cached() {
    let sh = cached_config(60_000);
    let mut host = Mock::new();
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    answer(&mut stream, &sh, &mut host, &[(":status", "503")], "");
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    answer(&mut stream, &sh, &mut host, &[], "");
    let big = "x".repeat(MAX_CACHED_BYTES + 1);
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    answer(&mut stream, &sh, &mut host, &[(":status", "403")], &big);
    assert_eq!(sh.cache_len(), 0);
    let (_, action) = start(&sh, &mut host, "Bearer a");
    assert_eq!(action, Action::Pause);
    assert_eq!(host.calls(), 4);
}

#[test]
fn without_a_cache_every_request_calls() {
    let sh = shared(CONFIG);
    let mut host = Mock::new();
    for _ in 0..3 {
        let (mut stream, _) = start(&sh, &mut host, "Bearer a");
        answer(&mut stream, &sh, &mut host, &[(":status", "200")], "");
    }
    assert_eq!(host.calls(), 3);
    assert_eq!(sh.cache_len(), 0);
}

#[test]
fn the_body_is_read_only_for_denials() {
    let sh = shared(CONFIG);
    let mut host = Mock::new();
    let (mut stream, _) = start(&sh, &mut host, "Bearer a");
    let headers: Vec<(&[u8], &[u8])> = vec![(b":status", b"200")];
    // The mock fails the test if the body is read.
    stream.on_call_response(&sh, &mut host, headers, 4096);
}
