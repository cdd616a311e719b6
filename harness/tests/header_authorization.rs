//! header-authorization in a real Envoy: the seed's behaviour, repeated headers,
//! custom header/values/deny response, debug logs, and configs Envoy must refuse.

use harness::envoy::LOG_WAIT;
use harness::{assert_config_refused, Protocol, Request, Stack};
use serde_json::json;

const PLUGIN: &str = "header-authorization";
const DEFAULT_BODY: &str = "denied: header 'allow' is missing or not allowed\n";

#[test]
fn seed_behaviour_with_no_configuration() {
    // Istio sends no configuration at all when pluginConfig is absent.
    let envoy = Stack::new().plugin_raw(PLUGIN, "").start();
    /// (case, request headers, expected status)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16);
    let cases: &[Case] = &[
        ("missing header", &[], 403),
        ("allow: true", &[("allow", "true")], 200),
        ("allow: false", &[("allow", "false")], 403),
        ("value is case-sensitive", &[("allow", "TRUE")], 403),
        ("empty value", &[("allow", "")], 403),
        (
            "repeated, both allowed",
            &[("allow", "true"), ("allow", "true")],
            200,
        ),
        (
            "repeated, second bad",
            &[("allow", "true"), ("allow", "false")],
            403,
        ),
        (
            "repeated, first bad",
            &[("allow", "false"), ("allow", "true")],
            403,
        ),
        ("comma-joined value", &[("allow", "true,false")], 403),
    ];
    for (name, headers, status) in cases {
        let resp = envoy.get("/anything", headers);
        assert_eq!(resp.status, *status, "{name}: {}", resp.text());
        if *status == 403 {
            assert_eq!(resp.text(), DEFAULT_BODY, "{name}");
        } else {
            assert_eq!(resp.echoed().path, "/anything", "{name}");
        }
    }
    // Only HTTP/1.1 carries a name in capitals (an HTTP/2 client must send it in
    // lowercase), so this case is sent over HTTP/1.1 whatever HARNESS_HTTP says.
    let resp = envoy.get_over(Protocol::Http1, "/anything", &[("ALLOW", "true")]);
    assert_eq!(
        resp.status,
        200,
        "name is case-insensitive: {}",
        resp.text()
    );
}

#[test]
fn empty_object_is_the_seed_behaviour_too() {
    let envoy = Stack::new().plugin(PLUGIN, json!({})).start();
    assert_eq!(envoy.get("/", &[]).status, 403);
    assert_eq!(envoy.get("/", &[("allow", "true")]).status, 200);
    // A denied request never reaches the upstream.
    let before = envoy.echo().count();
    assert_eq!(envoy.get("/", &[("allow", "nope")]).status, 403);
    assert_eq!(envoy.echo().count(), before);
}

#[test]
fn custom_header_values_and_deny_response() {
    let config = json!({
        "header": "X-Team",
        "values": ["red", "blue"],
        "deny": {"status": 401, "body": "team not allowed\n", "headers": {"x-denied-by": "plugin", "content-type": "text/plain"}}
    });
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    for (value, status) in [("red", 200), ("blue", 200), ("green", 401), ("RED", 401)] {
        let resp = envoy.get("/", &[("x-team", value)]);
        assert_eq!(resp.status, status, "x-team: {value}");
    }
    let denied = envoy.get("/", &[("allow", "true")]);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.text(), "team not allowed\n");
    assert_eq!(denied.header("x-denied-by"), Some("plugin"));
    assert_eq!(denied.header("content-type"), Some("text/plain"));
    // The allowed request reaches the upstream with its header intact.
    let passed = envoy.get("/p", &[("x-team", "red")]).echoed();
    assert_eq!(passed.header_value("x-team"), Some("red"));
}

#[test]
fn decisions_are_logged_at_debug_with_the_context_id() {
    let envoy = Stack::new().plugin(PLUGIN, json!({})).start();
    envoy.get("/", &[]);
    envoy.get("/", &[("allow", "false")]);
    envoy.send(&Request::get("/").header("allow", "true"));
    for needle in [
        "header 'allow' missing: denied",
        "header 'allow' not allowed: denied",
        "header 'allow' allowed",
    ] {
        let line = envoy
            .wait_log(needle, LOG_WAIT)
            .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{}", envoy.log()));
        assert!(line.contains("[debug]"), "not at debug level: {line}");
        let before = &line[..line.find(needle).unwrap()];
        let id = before.trim_end().rsplit(' ').next().unwrap_or_default();
        assert!(
            id.len() > 1 && id.starts_with('#') && id[1..].bytes().all(|b| b.is_ascii_digit()),
            "no context id before {needle:?}: {line}"
        );
    }
    // Normal traffic logs nothing at info or above from the plugin.
    let noisy: Vec<_> = envoy
        .log()
        .lines()
        .filter(|l| l.contains("wasm log") && !l.contains("[debug]"))
        .map(str::to_string)
        .collect();
    assert!(noisy.is_empty(), "plugin logged above debug: {noisy:?}");
}

#[test]
fn invalid_configurations_are_refused_at_load_with_the_field_named() {
    let cases = [
        (
            json!({"header": ""}),
            "header: header name must not be empty",
        ),
        (
            json!({"header": 5}),
            "header: expected a string, got a number",
        ),
        (
            json!({"values": []}),
            "values: must list at least one item",
        ),
        (
            json!({"deny": {"status": 700}}),
            "deny.status: must be 200..=599, got 700",
        ),
        // These statuses have no body; Envoy would send the denial text anyway and
        // desync a keep-alive client.
        (
            json!({"deny": {"status": 204}}),
            "deny.status: 204 cannot be a denial",
        ),
        (
            json!({"deny": {"status": 205}}),
            "deny.status: 205 cannot be a denial",
        ),
        (
            json!({"deny": {"status": 304}}),
            "deny.status: 304 cannot be a denial",
        ),
        (
            json!({"deny": {"headers": {"bad name": "x"}}}),
            "deny.headers.bad name: 'bad name' is not a valid header name",
        ),
        (
            json!({"deny": {"headers": {"x": "a\nb"}}}),
            "deny.headers.x: header value must not contain CR, LF or NUL",
        ),
        (json!({"unknown": 1}), "unknown: unknown field"),
        // Envoy never shows a plugin a `host` header: this denied every request.
        (
            json!({"header": "host", "values": ["a.example"]}),
            "header: Envoy holds the Host header as ':authority' and never shows a 'host' header: use \"header\": \":authority\"",
        ),
        (
            json!({"values": (0..257).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "values: at most 256 items, got 257",
        ),
    ];
    for (config, expected) in cases {
        assert_config_refused(PLUGIN, &config.to_string(), expected);
    }
    assert_config_refused(PLUGIN, "{not json", "invalid JSON");
    // The last of two equal keys used to win silently.
    assert_config_refused(
        PLUGIN,
        r#"{"header": "x-team", "values": ["red"], "header": "allow"}"#,
        "header: appears twice in one object (each key may be given once)",
    );
}

#[test]
fn the_host_is_checked_as_authority() {
    let envoy = Stack::new()
        .plugin(
            PLUGIN,
            json!({"header": ":authority", "values": ["shop.example"]}),
        )
        .start();
    let cases = [
        ("shop.example", 200),
        ("evil.example", 403),
        ("SHOP.example", 403),
    ];
    for (host, status) in cases {
        let resp = envoy.get("/", &[("host", host)]);
        assert_eq!(resp.status, status, "{host}: {}", resp.text());
    }
}

/// With Envoy's `wasm` log component off, the host reports level 6, which the SDK's
/// `LogLevel` has no variant for: the plugin reads it as a number, logs nothing, and
/// decides as usual.
#[test]
fn decides_with_plugin_logging_off() {
    let envoy = Stack::new()
        .plugin(PLUGIN, json!({}))
        .wasm_log_level("off")
        .start();
    for _ in 0..3 {
        assert_eq!(envoy.get("/", &[]).status, 403);
        assert_eq!(envoy.get("/", &[("allow", "false")]).status, 403);
        assert_eq!(envoy.get("/", &[("allow", "true")]).status, 200);
    }
    let log = envoy.log();
    assert!(!log.contains("wasm log"), "logged with logging off:\n{log}");
    for crash in ["panicked", "wasm trap", "Uncaught"] {
        assert!(!log.contains(crash), "{crash} in the log:\n{log}");
    }
}

#[test]
fn the_vm_reports_its_memory_as_a_gauge() {
    let envoy = Stack::new().plugin(PLUGIN, json!({})).start();
    assert_eq!(envoy.get("/", &[("allow", "true")]).status, 200);
    let bytes = envoy
        .stat(&envoy.memory_gauge(PLUGIN))
        .expect("the gauge is defined");
    // A wasm page is 64 KiB; a configured VM holds at least its stack and data.
    assert!(bytes >= 65536 && bytes.is_multiple_of(65536), "{bytes}");
    assert!(bytes < 64 << 20, "{bytes}");
}
