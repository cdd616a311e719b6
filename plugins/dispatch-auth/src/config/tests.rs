//! The configuration's table tests: defaults, every field read, and each refusal
//! with the field it names.

use super::*;
use serde_json::json;

#[test]
fn defaults() {
    let c =
        Config::parse(br#"{"cluster": "outbound|8000||auth.default.svc.cluster.local"}"#).unwrap();
    assert_eq!(c.cluster, "outbound|8000||auth.default.svc.cluster.local");
    assert_eq!(c.authority, "auth.default.svc.cluster.local");
    assert_eq!(c.path, CallPath::Prefix(String::new()));
    assert_eq!(c.method, None);
    assert_eq!(c.timeout_ms, 1000);
    assert_eq!(c.allowed_headers, ["authorization"]);
    assert!(c.headers_to_add.is_empty());
    assert!(c.allowed_upstream_headers.is_empty());
    assert_eq!(
        c.allowed_client_headers,
        ["www-authenticate", "location", "content-type"]
    );
    assert!(!c.failure_mode_allow);
    assert_eq!(c.status_on_error, 403);
    assert_eq!(c.max_pending_calls, 100);
    assert_eq!(
        c.cache,
        Cache {
            ttl_ms: 0,
            max_entries: 10_000,
            max_bytes: 8 << 20,
            key_headers: vec!["authorization".into()]
        }
    );
    let c = Config::parse(br#"{"cluster": "a", "cache": {"ttl_ms": 5}}"#).unwrap();
    assert_eq!(c.cache.max_bytes, DEFAULT_CACHE_BYTES);
}

#[test]
fn every_field_is_read() {
    let c = Config::parse(
        br#"{
          "cluster": "auth", "authority": "auth.example", "path_prefix": "/check",
          "method": "POST", "timeout_ms": 250,
          "allowed_headers": ["Authorization", "cookie", "authorization"],
          "headers_to_add": {"X-Auth-Source": "gateway"},
          "allowed_upstream_headers": ["X-User-Id"],
          "allowed_client_headers": ["www-authenticate"],
          "failure_mode_allow": true, "status_on_error": 503, "max_pending_calls": 8,
          "cache": {"ttl_ms": 5000, "max_entries": 7, "max_bytes": 65536,
                    "key_headers": ["Authorization"]}
        }"#,
    )
    .unwrap();
    assert_eq!(c.authority, "auth.example");
    assert_eq!(c.path, CallPath::Prefix("/check".into()));
    assert_eq!(c.method.as_deref(), Some("POST"));
    assert_eq!(c.timeout_ms, 250);
    assert_eq!(c.allowed_headers, ["authorization", "cookie"]);
    assert_eq!(
        c.headers_to_add,
        [("x-auth-source".to_string(), "gateway".to_string())]
    );
    assert_eq!(c.allowed_upstream_headers, ["x-user-id"]);
    assert_eq!(c.allowed_client_headers, ["www-authenticate"]);
    assert!(c.failure_mode_allow);
    assert_eq!(c.status_on_error, 503);
    assert_eq!(c.cache.ttl_ms, 5000);
    assert_eq!(c.cache.max_entries, 7);
    assert_eq!(c.cache.max_bytes, 65536);
    assert_eq!(c.max_pending_calls, 8);
    assert_eq!(c.cache.key_headers, ["authorization"]);
    let fixed = Config::parse(br#"{"cluster": "a", "path": "/verify?x=1"}"#).unwrap();
    assert_eq!(fixed.path, CallPath::Fixed("/verify?x=1".into()));
    let empty_prefix = Config::parse(br#"{"cluster": "a", "path_prefix": ""}"#).unwrap();
    assert_eq!(empty_prefix.path, CallPath::Prefix(String::new()));
}

#[test]
fn default_authority_follows_istio_cluster_names() {
    let cases = [
        (
            "outbound|8000||auth.default.svc.cluster.local",
            "auth.default.svc.cluster.local",
        ),
        (
            "outbound|80|v1|auth.ns.svc.cluster.local",
            "auth.ns.svc.cluster.local",
        ),
        ("inbound|9000||", "inbound|9000||"),
        ("outbound|8000||", "outbound|8000||"),
        ("auth", "auth"),
        ("outbound|1|2|3|4", "outbound|1|2|3|4"),
        ("other|1||host", "other|1||host"),
    ];
    for (cluster, expected) in cases {
        assert_eq!(default_authority(cluster), expected, "{cluster}");
    }
}

#[test]
fn bad_configurations_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("{}", "cluster: is required"),
        (r#"{"cluster": ""}"#, "cluster: must not be empty"),
        (r#"{"cluster": 1}"#, "cluster: expected a string, got a number"),
        (r#"{"cluster": "a\r\n"}"#, "cluster: must not contain spaces or control characters"),
        (r#"{"cluster": "outbound|8000||auth\r\nx: y"}"#, "cluster: must not contain spaces or control characters"),
        (r#"{"cluster": "auth svc"}"#, "cluster: must not contain spaces or control characters"),
        (
            r#"{"cluster": "a", "path": "/a", "path_prefix": "/b"}"#,
            "path: cannot be combined with path_prefix: set one of them",
        ),
        (r#"{"cluster": "a", "path": "a"}"#, "path: must start with '/', got 'a'"),
        (
            r#"{"cluster": "a", "path_prefix": "/a b"}"#,
            "path_prefix: must not contain spaces, '#', control or non-ASCII characters",
        ),
        (
            r#"{"cluster": "a", "timeout_ms": 0}"#,
            "timeout_ms: must be 1..=60000, got 0",
        ),
        (
            r#"{"cluster": "a", "timeout_ms": 60001}"#,
            "timeout_ms: must be 1..=60000, got 60001",
        ),
        (
            r#"{"cluster": "a", "method": "GE T"}"#,
            "method: 'GE T' is not a valid HTTP method (RFC 9110 token)",
        ),
        (
            r#"{"cluster": "a", "authority": "a\nb"}"#,
            "authority: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"cluster": "a", "allowed_headers": ["bad name"]}"#,
            "allowed_headers[0]: 'bad name' is not a valid header name (RFC 9110 token)",
        ),
        (
            r#"{"cluster": "a", "allowed_headers": [":path"]}"#,
            "allowed_headers[0]: ':path' is a pseudo-header and cannot be used here",
        ),
        (
            r#"{"cluster": "a", "allowed_headers": ["authorization", "Content-Length"]}"#,
            "allowed_headers[1]: 'content-length' cannot be sent: the call carries no body",
        ),
        (
            r#"{"cluster": "a", "allowed_headers": ["x-forwarded-uri"]}"#,
            "allowed_headers[0]: 'x-forwarded-uri' is always set by the plugin",
        ),
        (
            r#"{"cluster": "a", "allowed_headers": "authorization"}"#,
            "allowed_headers: expected a list, got a string",
        ),
        (
            r#"{"cluster": "a", "headers_to_add": {"x-a": 1}}"#,
            "headers_to_add.x-a: expected a string, got a number",
        ),
        (
            r#"{"cluster": "a", "headers_to_add": {"Authorization": "x"}}"#,
            "headers_to_add.Authorization: 'authorization' is also in allowed_headers: a header is either copied or fixed",
        ),
        (
            r#"{"cluster": "a", "headers_to_add": {"x-a": "a\r\nb"}}"#,
            "headers_to_add.x-a: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"cluster": "a", "headers_to_add": {"x-forwarded-host": "h"}}"#,
            "headers_to_add.x-forwarded-host: 'x-forwarded-host' is always set by the plugin",
        ),
        (
            r#"{"cluster": "a", "allowed_upstream_headers": ["x-auth-failure-mode-allowed"]}"#,
            "allowed_upstream_headers[0]: 'x-auth-failure-mode-allowed' is set by the plugin",
        ),
        (
            r#"{"cluster": "a", "allowed_client_headers": ["transfer-encoding"]}"#,
            "allowed_client_headers[0]: 'transfer-encoding' is set by Envoy and cannot be copied",
        ),
        (
            r#"{"cluster": "a", "failure_mode_allow": "yes"}"#,
            "failure_mode_allow: expected a boolean, got a string",
        ),
        (
            r#"{"cluster": "a", "status_on_error": 200}"#,
            "status_on_error: must be 400..=599, got 200",
        ),
        (
            r#"{"cluster": "a", "cache": {"ttl_ms": -1}}"#,
            "cache.ttl_ms: must be 0..=86400000, got -1",
        ),
        (
            r#"{"cluster": "a", "cache": {"max_entries": 0}}"#,
            "cache.max_entries: must be 1..=1000000, got 0",
        ),
        (
            r#"{"cluster": "a", "cache": {"key_headers": ["a b"]}}"#,
            "cache.key_headers[0]: 'a b' is not a valid header name (RFC 9110 token)",
        ),
        (
            r#"{"cluster": "a", "cache": {"ttl": 1}}"#,
            "cache.ttl: unknown field (known fields: key_headers, max_bytes, max_entries, ttl_ms)",
        ),
        (
            r#"{"cluster": "a", "timeout": 1}"#,
            "timeout: unknown field (known fields: allowed_client_headers, allowed_headers, allowed_upstream_headers, authority, cache, cluster, failure_mode_allow, headers_to_add, max_pending_calls, method, path, path_prefix, status_on_error, timeout_ms)",
        ),
        (
            r#"{"cluster": "a", "cache": {"max_bytes": 65535}}"#,
            "cache.max_bytes: must be 65536..=268435456 (64 KiB to 256 MiB: a wasm VM stops at 1 GiB, shared by every plugin instance in it), got 65535",
        ),
        (
            r#"{"cluster": "a", "cache": {"max_bytes": 268435457}}"#,
            "cache.max_bytes: must be 65536..=268435456 (64 KiB to 256 MiB: a wasm VM stops at 1 GiB, shared by every plugin instance in it), got 268435457",
        ),
        (
            r#"{"cluster": "a", "cache": {"max_bytes": 1073741824}}"#,
            "cache.max_bytes: must be 65536..=268435456 (64 KiB to 256 MiB: a wasm VM stops at 1 GiB, shared by every plugin instance in it), got 1073741824",
        ),
        (
            r#"{"cluster": "a", "cache": {"max_bytes": "8MiB"}}"#,
            "cache.max_bytes: expected a whole number, got a string",
        ),
        (
            r#"{"cluster": "a", "max_pending_calls": 0}"#,
            "max_pending_calls: must be 1..=10000, got 0",
        ),
        (
            r#"{"cluster": "a", "max_pending_calls": 10001}"#,
            "max_pending_calls: must be 1..=10000, got 10001",
        ),
        (
            r#"{"cluster": "a", "allowed_upstream_headers": ["x_auth_failure_mode_allowed"]}"#,
            "allowed_upstream_headers[0]: 'x_auth_failure_mode_allowed' is set by the plugin",
        ),
        ("[]", "expected an object, got a list"),
        ("", "cluster: is required"),
    ];
    for (input, expected) in cases {
        let err = Config::parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), *expected, "{input}");
    }
}

#[test]
fn every_list_has_a_limit() {
    let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("x-h{i}")).collect() };
    for field in [
        "allowed_headers",
        "allowed_upstream_headers",
        "allowed_client_headers",
    ] {
        let ok = serde_json::json!({"cluster": "a", field: names(MAX_NAMES)});
        assert!(Config::from_value(&ok).is_ok(), "{field}");
        let over = serde_json::json!({"cluster": "a", field: names(MAX_NAMES + 1)});
        assert_eq!(
            Config::from_value(&over).unwrap_err().to_string(),
            format!("{field}: at most 32 items, got 33")
        );
    }
    let over = serde_json::json!({"cluster": "a", "cache": {"key_headers": names(33)}});
    assert_eq!(
        Config::from_value(&over).unwrap_err().to_string(),
        "cache.key_headers: at most 32 items, got 33"
    );
    let headers: serde_json::Map<String, serde_json::Value> =
        names(33).into_iter().map(|n| (n, "v".into())).collect();
    let over = serde_json::json!({"cluster": "a", "headers_to_add": headers});
    assert_eq!(
        Config::from_value(&over).unwrap_err().to_string(),
        "headers_to_add: at most 32 entries, got 33"
    );
}

#[test]
fn the_cache_byte_range_holds_the_largest_entries() {
    // The smallest budget still holds several of the largest cached denials.
    let largest = crate::flow::MAX_CACHED_BYTES + 1024;
    assert!(*CACHE_BYTES.start() as usize >= 4 * largest);
    // The largest leaves most of a VM's 1 GiB to everything else.
    assert!(*CACHE_BYTES.end() as usize <= (1 << 30) / 4);
    assert!(CACHE_BYTES.contains(&(DEFAULT_CACHE_BYTES as i64)));
}

#[test]
fn no_error_quotes_a_headers_to_add_value() {
    // A fixed header of the call may carry the auth service's API key.
    let secret = "s3cr3t-api-key-marker";
    let cases = [
        (
            json!({"cluster": "a", "headers_to_add": {"x-api-key": format!("{secret}\r\n")}}),
            "headers_to_add.x-api-key: header value must not contain CR, LF or NUL",
        ),
        (
            json!({"cluster": "a", "headers_to_add": {"x-api-key": [secret]}}),
            "headers_to_add.x-api-key: expected a string, got a list",
        ),
        (
            json!({"cluster": "a", "headers_to_add": {"Authorization": secret}}),
            "headers_to_add.Authorization: 'authorization' is also in allowed_headers: a header is either copied or fixed",
        ),
        (
            json!({"cluster": "a", "headers_to_add": {"content-length": secret}}),
            "headers_to_add.content-length: 'content-length' cannot be sent: the call carries no body",
        ),
        (
            json!({"cluster": "a", "headers_to_add": [secret]}),
            "headers_to_add: expected an object, got a list",
        ),
        (
            json!({"cluster": "a", "headers_to_add": secret}),
            "headers_to_add: expected an object, got a string",
        ),
    ];
    for (doc, expected) in cases {
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert_eq!(err, expected);
        assert!(!err.contains(secret), "{err}");
    }
    // Nor does the parsed document's Debug form.
    let doc = json!({"cluster": "a", "headers_to_add": {"x-api-key": secret}});
    let spec: Spec = from_value(&doc).unwrap();
    let shown = format!("{spec:?}");
    assert!(
        shown.contains("x-api-key") && !shown.contains(secret),
        "{shown}"
    );
    let config = Config::from_value(&doc).unwrap();
    assert_eq!(
        config.headers_to_add,
        [("x-api-key".to_string(), secret.to_string())]
    );
}

#[test]
fn numbers_are_whole_and_in_range() {
    let cases = [
        (
            json!({"cluster": "a", "timeout_ms": 1.5}),
            "timeout_ms: expected a whole number, got a number",
        ),
        (
            json!({"cluster": "a", "timeout_ms": "5"}),
            "timeout_ms: expected a whole number, got a string",
        ),
        (
            json!({"cluster": "a", "status_on_error": 18446744073709551615u64}),
            "status_on_error: must be 400..=599, got 18446744073709551615",
        ),
        (
            json!({"cluster": "a", "cache": {"max_entries": -5}}),
            "cache.max_entries: must be 1..=1000000, got -5",
        ),
        (
            json!({"cluster": "a", "cache": []}),
            "cache: expected an object, got a list",
        ),
    ];
    for (doc, expected) in cases {
        assert_eq!(Config::from_value(&doc).unwrap_err().to_string(), expected);
    }
    let c = Config::from_value(&json!({"cluster": "a", "authority": null, "cache": null})).unwrap();
    assert_eq!(c.authority, "a");
    assert_eq!(c.cache.ttl_ms, 0);
}
