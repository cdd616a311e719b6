//! response-headers in a real Envoy: the seed's `hello: world`, each action against
//! none, one and two existing values, removals (and what Envoy does with `server`),
//! request-side changes seen by the upstream, error responses and local replies,
//! ordering with header-authorization, and configs Envoy must refuse.

use harness::envoy::{hcm, static_cluster};
use harness::{assert_config_refused, Envoy, Form, Protocol, Request, Response, Stack};
use serde_json::{json, Value};
use std::net::TcpListener;

const PLUGIN: &str = "response-headers";

/// `x-echo-header` request headers asking the echo upstream to answer with `pairs`.
fn echo_asks(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ("x-echo-header".to_string(), format!("{n}: {v}")))
        .collect()
}

fn get(envoy: &Envoy, path: &str, headers: &[(String, String)]) -> Response {
    let mut req = Request::get(path);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    envoy.send(&req)
}

/// Starts Envoy with the given wasm `filters` (plugin, configuration) and an echo
/// upstream, after `patch` has edited the bootstrap: for connection-manager options
/// the shared `Stack` does not expose (`server_header_transformation`), or an
/// upstream that is down.
fn start_patched(filters: &[(&str, Value)], patch: impl FnOnce(&mut Value) + 'static) -> Envoy {
    let stack = filters
        .iter()
        .fold(Stack::new(), |stack, (plugin, config)| {
            stack.plugin(plugin, config.clone())
        });
    stack.patch(patch).start()
}

#[test]
fn seed_hello_world_on_every_response() {
    let envoy = Stack::new()
        .plugin(
            PLUGIN,
            json!({"response_headers": [{"name": "hello", "value": "world"}]}),
        )
        .start();
    for path in ["/", "/a/b?c=d", "/status/404"] {
        let resp = envoy.get(path, &[]);
        assert_eq!(resp.headers_named("hello"), ["world"], "{path}: {resp:?}");
    }
    let resp = envoy.get("/x", &[]);
    assert_eq!(resp.status, 200);
    // The body is the upstream's, untouched; the request was not changed.
    let seen = resp.echoed();
    assert_eq!(seen.path, "/x");
    assert_eq!(seen.header_value("hello"), None);
    // Nothing is logged per request, at any level.
    let lines: Vec<_> = envoy
        .log()
        .lines()
        .filter(|l| l.contains("wasm log") && !l.contains("configuration loaded"))
        .map(str::to_string)
        .collect();
    assert!(lines.is_empty(), "{lines:?}");
    let loaded = format!("{}: configuration loaded", envoy.form().module(PLUGIN));
    assert!(envoy.log().contains(&loaded), "{loaded}");
}

/// Each action, on its own header, against an upstream response carrying none, one
/// and two values of that header. Names are configured in mixed case and sent by
/// the upstream in mixed case: both match, and what goes out is lowercase.
#[test]
fn each_action_against_none_one_and_two_existing_values() {
    let config = json!({"response_headers": [
        {"name": "X-Set", "value": "new"},
        {"name": "x-append", "value": "new", "action": "append"},
        {"name": "x-add", "value": "new", "action": "add_if_absent"},
        {"name": "x-over", "value": "new", "action": "overwrite_if_exists"},
        {"name": "x-set-explicit", "value": "new", "action": "set"},
    ]});
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let names = ["X-SET", "x-append", "X-Add", "x-over", "x-set-explicit"];
    let existing: [&[&str]; 3] = [&[], &["old"], &["old1", "old2"]];
    // For each header: the values after, against none, one and two existing values.
    let expected: [[&[&str]; 3]; 5] = [
        [&["new"], &["new"], &["new"]],
        [&["new"], &["old", "new"], &["old1", "old2", "new"]],
        [&["new"], &["old"], &["old1", "old2"]],
        [&[], &["new"], &["new"]],
        [&["new"], &["new"], &["new"]],
    ];
    for (i, before) in existing.iter().enumerate() {
        let mut pairs = Vec::new();
        for name in names {
            for value in before.iter() {
                pairs.push((name, *value));
            }
        }
        let resp = get(&envoy, "/", &echo_asks(&pairs));
        assert_eq!(resp.status, 200, "{resp:?}");
        for (name, after) in names.iter().zip(&expected) {
            assert_eq!(
                resp.headers_named(name),
                after[i],
                "{name} with existing {before:?}: {:?}",
                resp.headers
            );
        }
        for (name, _) in &resp.headers {
            assert_eq!(
                *name,
                name.to_ascii_lowercase(),
                "not lowercase on the wire"
            );
        }
    }
}

#[test]
fn entries_apply_in_order_and_empty_values_are_kept() {
    let config = json!({"response_headers": [
        {"name": "x-multi", "value": "1"},
        {"name": "x-multi", "value": "2", "action": "append"},
        {"name": "x-multi", "value": "3", "action": "append"},
        {"name": "x-empty", "value": ""},
        {"name": "x-utf8", "value": "déjà vu"},
    ]});
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let resp = get(&envoy, "/", &echo_asks(&[("x-multi", "upstream")]));
    assert_eq!(
        resp.headers_named("x-multi"),
        ["1", "2", "3"],
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.headers_named("x-empty"), [""], "{:?}", resp.headers);
    // The harness reads header bytes as lossy UTF-8: the value arrives intact.
    assert_eq!(
        resp.headers_named("x-utf8"),
        ["déjà vu"],
        "{:?}",
        resp.headers
    );
}

#[test]
fn removals_run_before_additions() {
    let config = json!({
        "remove_response_headers": ["X-Powered-By", "x-cache", "x-gone", "x-gone"],
        "response_headers": [
            {"name": "x-cache", "value": "fresh", "action": "add_if_absent"},
            {"name": "x-hops", "value": "mesh", "action": "append"},
        ]
    });
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let upstream = [
        ("x-powered-by", "php"),
        ("x-powered-by", "asp"),
        ("x-cache", "stale"),
        ("x-gone", "1"),
        ("x-kept", "yes"),
        ("x-hops", "upstream"),
    ];
    let resp = get(&envoy, "/", &echo_asks(&upstream));
    assert!(
        resp.headers_named("x-powered-by").is_empty(),
        "{:?}",
        resp.headers
    );
    assert!(
        resp.headers_named("x-gone").is_empty(),
        "{:?}",
        resp.headers
    );
    // Removed first, so add_if_absent always adds.
    assert_eq!(resp.headers_named("x-cache"), ["fresh"]);
    assert_eq!(resp.headers_named("x-hops"), ["upstream", "mesh"]);
    assert_eq!(resp.headers_named("x-kept"), ["yes"]);
    // Removing a header that is not there is fine.
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers_named("x-cache"), ["fresh"]);
}

/// Envoy keeps some headers "inline" (`via`, `content-type`, `connection`, ...) and
/// joins every added value of those into one comma-separated line, as HTTP allows
/// for list-valued fields. Others, `set-cookie` among them, stay separate lines.
#[test]
fn append_on_an_inline_header_joins_with_a_comma() {
    let config = json!({"response_headers": [
        {"name": "via", "value": "mesh", "action": "append"},
        {"name": "set-cookie", "value": "b=2", "action": "append"},
    ]});
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let upstream = echo_asks(&[("via", "1.1 upstream"), ("set-cookie", "a=1")]);
    let resp = get(&envoy, "/", &upstream);
    assert_eq!(
        resp.headers_named("via"),
        ["1.1 upstream,mesh"],
        "{:?}",
        resp.headers
    );
    assert_eq!(
        resp.headers_named("set-cookie"),
        ["a=1", "b=2"],
        "{:?}",
        resp.headers
    );
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.headers_named("via"), ["mesh"]);
    assert_eq!(resp.headers_named("set-cookie"), ["b=2"]);
}

/// Envoy writes `server` itself, after every filter has run, as the connection
/// manager's `server_header_transformation` says. So the plugin's removal (or set)
/// of `server` only shows with `PASS_THROUGH`.
#[test]
fn server_header_depends_on_the_connection_manager() {
    let remove = json!({"remove_response_headers": ["server", "x-powered-by"]});
    let set = json!({"response_headers": [{"name": "server", "value": "mesh"}]});
    let upstream = echo_asks(&[("server", "upstream/1.0"), ("x-powered-by", "php")]);
    let cases: &[(Option<&str>, &Value, &[&str])] = &[
        // OVERWRITE, the default: always `server: envoy`, whatever the plugin does.
        (None, &remove, &["envoy"]),
        (None, &set, &["envoy"]),
        (Some("OVERWRITE"), &remove, &["envoy"]),
        // APPEND_IF_ABSENT: removed by the plugin, so Envoy adds its own.
        (Some("APPEND_IF_ABSENT"), &remove, &["envoy"]),
        (Some("APPEND_IF_ABSENT"), &set, &["mesh"]),
        // PASS_THROUGH: the plugin has the last word.
        (Some("PASS_THROUGH"), &remove, &[]),
        (Some("PASS_THROUGH"), &set, &["mesh"]),
    ];
    for (mode, config, server) in cases {
        let patched = mode.map(str::to_string);
        let envoy = start_patched(&[(PLUGIN, (*config).clone())], move |c| {
            if let Some(mode) = patched {
                hcm(c)["server_header_transformation"] = json!(mode);
            }
        });
        let resp = get(&envoy, "/", &upstream);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.headers_named("server"),
            *server,
            "{mode:?} with {config}: {:?}",
            resp.headers
        );
        if *config == &remove {
            // Other headers are removed whatever the mode.
            assert!(resp.headers_named("x-powered-by").is_empty());
        }
    }
    // Without the plugin, PASS_THROUGH shows the upstream's own server header: the
    // removal above is the plugin's doing.
    let envoy = start_patched(&[], |c| {
        hcm(c)["server_header_transformation"] = json!("PASS_THROUGH")
    });
    assert_eq!(
        get(&envoy, "/", &upstream).headers_named("server"),
        ["upstream/1.0"]
    );
}

#[test]
fn request_side_changes_are_seen_by_the_upstream() {
    let config = json!({
        "request_headers": [
            {"name": "X-From", "value": "gateway"},
            {"name": "x-tags", "value": "mesh", "action": "append"},
            {"name": "x-tenant", "value": "default", "action": "add_if_absent"},
            {"name": "x-trace", "value": "redacted", "action": "overwrite_if_exists"},
        ],
        "remove_request_headers": ["x-internal", "cookie"]
    });
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let seen = envoy
        .get(
            "/r",
            &[
                ("x-from", "client"),
                ("x-from", "client2"),
                ("x-tags", "a"),
                ("x-internal", "secret"),
                ("cookie", "a=1"),
                ("x-other", "kept"),
            ],
        )
        .echoed();
    let values = |name: &str| -> Vec<String> {
        seen.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(values("x-from"), ["gateway"], "{:?}", seen.headers);
    assert_eq!(values("x-tags"), ["a", "mesh"], "{:?}", seen.headers);
    assert_eq!(values("x-tenant"), ["default"], "{:?}", seen.headers);
    assert!(values("x-trace").is_empty(), "{:?}", seen.headers);
    assert!(values("x-internal").is_empty(), "{:?}", seen.headers);
    assert!(values("cookie").is_empty(), "{:?}", seen.headers);
    assert_eq!(values("x-other"), ["kept"]);

    let seen = envoy
        .get(
            "/r",
            &[("x-tenant", "acme"), ("x-trace", "t1"), ("x-trace", "t2")],
        )
        .echoed();
    let values = |name: &str| -> Vec<String> {
        seen.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(values("x-tenant"), ["acme"]);
    assert_eq!(values("x-trace"), ["redacted"]);
    assert_eq!(values("x-from"), ["gateway"]);
    // Request changes do not leak into the response.
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.header("x-from"), None);
}

/// The existence check reads the header as bytes: a value that is not UTF-8 (the
/// SDK's `get_http_request_header` would panic on it, killing the VM) is just a
/// value that exists.
#[test]
fn values_that_are_not_utf8_do_not_break_the_check() {
    let config = json!({"request_headers": [
        {"name": "x-over", "value": "clean", "action": "overwrite_if_exists"},
        {"name": "x-add", "value": "default", "action": "add_if_absent"},
    ]});
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let raw = b"GET /raw HTTP/1.1\r\nhost: test.local\r\nconnection: close\r\n\
                x-over: \xff\xfe\r\nx-add: caf\xe9\r\n\r\n";
    let resp = harness::http::send_raw(envoy.addr(), raw);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.echoed();
    assert_eq!(seen.header_value("x-over"), Some("clean"));
    // Kept as it was (the harness shows it as lossy UTF-8).
    assert_eq!(seen.header_value("x-add"), Some("caf\u{fffd}"));
    // The VM is alive for the next request.
    let seen = envoy.get("/", &[]).echoed();
    assert_eq!(seen.header_value("x-add"), Some("default"));
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
}

#[test]
fn upstream_errors_get_the_headers_too() {
    let config = json!({
        "response_headers": [{"name": "x-frame-options", "value": "DENY"}],
        "remove_response_headers": ["x-debug"]
    });
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    for status in [301, 404, 500, 503] {
        let resp = get(
            &envoy,
            &format!("/status/{status}"),
            &echo_asks(&[("x-debug", "stack trace")]),
        );
        assert_eq!(resp.status, status);
        assert_eq!(resp.headers_named("x-frame-options"), ["DENY"], "{status}");
        assert!(resp.headers_named("x-debug").is_empty(), "{status}");
    }
}

/// A local reply from a filter after the plugin (here the router: its upstream is
/// down, or no route matches) passes through the plugin on its way out; a reply
/// Envoy makes before any filter saw the request does not.
#[test]
fn local_replies_from_later_filters_get_the_headers() {
    let config = json!({"response_headers": [{"name": "x-frame-options", "value": "DENY"}]});
    // A loopback port with nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let envoy = start_patched(&[(PLUGIN, config)], move |c| {
        c["static_resources"]["clusters"] = json!([static_cluster("echo", closed)]);
    });
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        resp.text().contains("upstream connect error"),
        "{}",
        resp.text()
    );
    assert_eq!(
        resp.headers_named("x-frame-options"),
        ["DENY"],
        "{:?}",
        resp.headers
    );

    // No route matches: the router's own 404, also after the plugin.
    let config = json!({"response_headers": [{"name": "x-frame-options", "value": "DENY"}]});
    let envoy = start_patched(&[(PLUGIN, config)], |c| {
        hcm(c)["route_config"]["virtual_hosts"][0]["routes"][0]["match"] =
            json!({"prefix": "/only-this"});
    });
    let resp = envoy.get("/", &[]);
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert_eq!(
        resp.headers_named("x-frame-options"),
        ["DENY"],
        "{:?}",
        resp.headers
    );
    assert_eq!(envoy.echo().count(), 0);

    // A request Envoy's codec refuses never reaches the filter chain, so the plugin
    // never sees that 400.
    let raw = b"GET / HTTP/1.1\r\nhost: test.local\r\nno colon here\r\n\r\n";
    let resp = harness::http::send_raw(envoy.addr(), raw);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.headers_named("x-frame-options").is_empty(),
        "{:?}",
        resp.headers
    );
}

/// header-authorization's local 403 gets the headers when response-headers comes
/// first in the chain, and not when it comes after. Envoy passes a local reply
/// through every response filter (the native header_mutation after the denier still
/// adds its header), but the Wasm runtime skips a plugin whose request callback never
/// ran: its stream context inside the VM was never created. The chain module does
/// the same with its instances (`HARNESS_FORM=chain`).
#[test]
fn ordering_with_header_authorization() {
    let headers = json!({"response_headers": [{"name": "x-frame-options", "value": "DENY"}]});
    let auth = json!({});
    let native = json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"response_mutations": [{"append": {
                "header": {"key": "x-native", "value": "yes"},
                "append_action": "APPEND_IF_EXISTS_OR_ADD"
            }}]}
        }
    });
    let first = Stack::new()
        .plugin(PLUGIN, headers.clone())
        .plugin("header-authorization", auth.clone())
        .filter(native.clone())
        .start();
    let after = Stack::new()
        .plugin("header-authorization", auth)
        .plugin(PLUGIN, headers)
        .filter(native)
        .start();
    for (order, envoy, on_denial) in [
        ("response-headers first", &first, vec!["DENY"]),
        ("header-authorization first", &after, vec![]),
    ] {
        let denied = envoy.get("/", &[]);
        assert_eq!(denied.status, 403, "{order}");
        assert_eq!(
            denied.headers_named("x-frame-options"),
            on_denial,
            "{order}: {:?}",
            denied.headers
        );
        assert_eq!(denied.headers_named("x-native"), ["yes"], "{order}");
        let allowed = envoy.get("/", &[("allow", "true")]);
        assert_eq!(allowed.status, 200, "{order}");
        assert_eq!(
            allowed.headers_named("x-frame-options"),
            ["DENY"],
            "{order}"
        );
        assert_eq!(allowed.headers_named("x-native"), ["yes"], "{order}");
    }
}

/// `te` belongs to requests only and is hop-by-hop: in an HTTP/2 response it
/// makes the response malformed (RFC 9113 8.2.2). Envoy 1.40 passes it on to an
/// HTTP/2 client as it is (it strips `connection`, `keep-alive`, `upgrade` and
/// `proxy-connection`, not `te`), so the client gets a stream error instead of
/// the response: status 0 here, `PROTOCOL_ERROR` from curl. HTTP/1.1 clients are
/// unaffected, so nothing shows until the first HTTP/2 client. The config should
/// be refused at load, naming the field, as `content-length` is; failing that,
/// the response must still reach an HTTP/2 client. Either passes this test.
#[test]
fn a_te_response_header_is_refused_or_harmless_over_http2() {
    for action in ["set", "append", "add_if_absent"] {
        let config =
            json!({"response_headers": [{"name": "te", "value": "gzip", "action": action}]});
        let refusal =
            Form::from_env().refusal(PLUGIN, &config.to_string(), "response_headers[0].name: ");
        match Stack::new().plugin(PLUGIN, config).try_start() {
            Err(log) => assert!(log.contains(&refusal), "{action}: {log}"),
            Ok(envoy) => {
                let resp = envoy.get_over(Protocol::Http2, "/", &[]);
                assert_eq!(resp.status, 200, "{action}: {resp:?}");
            }
        }
    }
}

#[test]
fn invalid_configurations_are_refused_at_load_with_the_field_named() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "nothing to do: give at least one of response_headers, remove_response_headers, request_headers, remove_request_headers",
        ),
        (
            "{}",
            "nothing to do: give at least one of response_headers",
        ),
        (
            r#"{"response_headers": [], "remove_request_headers": []}"#,
            "nothing to do: give at least one of response_headers",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}, {"name": "c", "value": "3", "action": "upsert"}]}"#,
            "response_headers[2].action: unknown action 'upsert' (expected one of: set, append, add_if_absent, overwrite_if_exists)",
        ),
        (
            r#"{"response_headers": [{"name": "", "value": "1"}]}"#,
            "response_headers[0].name: header name must not be empty",
        ),
        (
            r#"{"response_headers": [{"name": ":status", "value": "200"}]}"#,
            "response_headers[0].name: ':status' is a pseudo-header and cannot be used here",
        ),
        (
            r#"{"remove_request_headers": ["x", ":path"]}"#,
            "remove_request_headers[1]: ':path' is a pseudo-header and cannot be used here",
        ),
        (
            r#"{"request_headers": [{"name": "a b", "value": "1"}]}"#,
            "request_headers[0].name: 'a b' is not a valid header name (RFC 9110 token)",
        ),
        (
            r#"{"response_headers": [{"name": "x", "value": "1\r\nset-cookie: a=b"}]}"#,
            "response_headers[0].value: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"response_headers": [{"name": "x", "value": "a\nb"}]}"#,
            "response_headers[0].value: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"request_headers": [{"name": "x", "value": "a\u0000b"}]}"#,
            "request_headers[0].value: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"response_headers": [{"name": "x"}]}"#,
            "response_headers[0].value: is required",
        ),
        (
            r#"{"response_headers": [{"name": "x", "value": "1", "append": true}]}"#,
            "response_headers[0].append: unknown field (known fields: action, name, value)",
        ),
        (
            r#"{"response_headers_to_add": [{"name": "x", "value": "1"}]}"#,
            "response_headers_to_add: unknown field",
        ),
        (
            r#"{"response_headers": {"x": "1"}}"#,
            "response_headers: expected a list, got an object",
        ),
        (
            r#"{"response_headers": [{"name": "content-length", "value": "0"}]}"#,
            "response_headers[0].name: 'content-length' frames the message",
        ),
        (
            r#"{"request_headers": [{"name": "Host", "value": "other"}]}"#,
            "request_headers[0].name: 'host' cannot be changed here",
        ),
        (
            r#"{"remove_response_headers": ["x"], "response_headers": [{"name": "x", "value": "1", "action": "overwrite_if_exists"}]}"#,
            "response_headers[0]: 'x' is always absent here (because of remove_response_headers[0]), so overwrite_if_exists never applies",
        ),
        ("{not json", "invalid JSON: "),
        (
            r#"{"response_headers": [{"name": "x", "value": "1", "value": "2"}]}"#,
            "response_headers[0].value: appears twice in one object",
        ),
    ];
    for (config, expected) in cases {
        assert_config_refused(PLUGIN, config, expected);
    }
    // 20,000 entries were accepted and cost over a second of worker CPU per
    // response; each list now stops at 100.
    let many: Vec<_> = (0..20_000)
        .map(|i| serde_json::json!({"name": format!("x-{i}"), "value": "v"}))
        .collect();
    let config = serde_json::json!({ "response_headers": many }).to_string();
    assert_config_refused(
        PLUGIN,
        &config,
        "response_headers: at most 100 items, got 20000",
    );
}
