//! response-headers config: what is read, what is refused and with which message, and that no error quotes a header value.

use super::*;
use crate::plan::tests::Mock;
use crate::plan::Op;

#[test]
fn the_issue_example() {
    let config = Config::parse(
        br#"{
          "response_headers": [
            {"name": "hello", "value": "world"},
            {"name": "X-Frame-Options", "value": "DENY", "action": "add_if_absent"},
            {"name": "via", "value": "mesh", "action": "append"}
          ],
          "remove_response_headers": ["server", "X-Powered-By"],
          "request_headers": [{"name": "x-from", "value": "gateway", "action": "set"}],
          "remove_request_headers": ["x-internal"]
        }"#,
    )
    .unwrap();
    let s = |v: &str| v.to_string();
    assert_eq!(
        config.response.ops(),
        [
            Op::Remove(s("server")),
            Op::Remove(s("x-powered-by")),
            Op::Replace(s("hello"), s("world")),
            Op::AddIfAbsent(s("x-frame-options"), s("DENY")),
            Op::Add(s("via"), s("mesh")),
        ]
    );
    assert_eq!(
        config.request.ops(),
        [
            Op::Remove(s("x-internal")),
            Op::Replace(s("x-from"), s("gateway")),
        ]
    );
}

#[test]
fn one_side_is_enough_and_values_may_be_empty() {
    let cases: &[(&str, usize, usize)] = &[
        (r#"{"remove_response_headers": ["server"]}"#, 0, 1),
        (r#"{"request_headers": [{"name": "a", "value": ""}]}"#, 1, 0),
        (
            r#"{"remove_request_headers": ["a"], "response_headers": []}"#,
            1,
            0,
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "é ü"}], "request_headers": null}"#,
            0,
            1,
        ),
    ];
    for (input, request, response) in cases {
        let config = Config::parse(input.as_bytes()).unwrap();
        assert_eq!(config.request.ops().len(), *request, "{input}");
        assert_eq!(config.response.ops().len(), *response, "{input}");
    }
}

#[test]
fn a_configuration_that_changes_nothing_is_refused() {
    let expected = "nothing to do: give at least one of response_headers, \
                    remove_response_headers, request_headers, remove_request_headers";
    for input in [
        "",
        "  ",
        "{}",
        r#"{"response_headers": [], "remove_request_headers": []}"#,
        r#"{"response_headers": null}"#,
    ] {
        let err = Config::parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), expected, "{input:?}");
    }
}

#[test]
fn the_compiled_plan_does_what_the_entries_say() {
    let config = Config::parse(
        br#"{"response_headers": [{"name": "Cache-Control", "value": "no-store", "action": "overwrite_if_exists"}]}"#,
    )
    .unwrap();
    let mut with = Mock::with(&[("cache-control", "max-age=1"), ("cache-control", "public")]);
    config.response.apply(&mut with);
    assert_eq!(with.values("cache-control"), ["no-store"]);
    let mut without = Mock::with(&[("etag", "1")]);
    config.response.apply(&mut without);
    assert!(without.values("cache-control").is_empty());
}

#[test]
fn each_list_has_a_limit() {
    let entries = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| serde_json::json!({"name": format!("x-{i}"), "value": "v"}))
            .collect()
    };
    let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("x-{i}")).collect() };
    for key in ["response_headers", "request_headers"] {
        let doc = serde_json::json!({ key: entries(MAX_ITEMS) });
        assert!(Config::from_value(&doc).is_ok(), "{key}");
        let doc = serde_json::json!({ key: entries(MAX_ITEMS + 1) });
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert_eq!(err, format!("{key}: at most 100 items, got 101"));
    }
    for key in ["remove_response_headers", "remove_request_headers"] {
        let doc = serde_json::json!({ key: names(MAX_ITEMS + 1) });
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert_eq!(err, format!("{key}: at most 100 items, got 101"));
    }
}

#[test]
fn bad_configurations_name_the_entry_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"response_headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}, {"name": "c", "value": "3", "action": "upsert"}]}"#,
            "response_headers[2].action: unknown action 'upsert' (expected one of: set, append, add_if_absent, overwrite_if_exists)",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "1", "action": "SET"}]}"#,
            "response_headers[0].action: unknown action 'SET' (expected one of: set, append, add_if_absent, overwrite_if_exists)",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "1", "action": 1}]}"#,
            "response_headers[0].action: expected a string, got a number",
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
            r#"{"request_headers": [{"name": ":path", "value": "/"}]}"#,
            "request_headers[0].name: ':path' is a pseudo-header and cannot be used here",
        ),
        (
            r#"{"remove_request_headers": ["ok", ":authority"]}"#,
            "remove_request_headers[1]: ':authority' is a pseudo-header and cannot be used here",
        ),
        (
            r#"{"response_headers": [{"name": "bad name", "value": "1"}]}"#,
            "response_headers[0].name: 'bad name' is not a valid header name (RFC 9110 token)",
        ),
        (
            r#"{"response_headers": [{"name": "a:b", "value": "1"}]}"#,
            "response_headers[0].name: 'a:b' is not a valid header name (RFC 9110 token)",
        ),
        (
            r#"{"remove_response_headers": ["x\ny"]}"#,
            "remove_response_headers[0]: 'x\\ny' is not a valid header name (RFC 9110 token)",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "1\r\nset-cookie: x"}]}"#,
            "response_headers[0].value: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"request_headers": [{"name": "a", "value": "x\u0000"}]}"#,
            "request_headers[0].value: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "\n"}]}"#,
            "response_headers[0].value: header value must not contain CR, LF or NUL",
        ),
        (
            r#"{"response_headers": [{"name": "a"}]}"#,
            "response_headers[0].value: is required",
        ),
        (
            r#"{"response_headers": [{"value": "1"}]}"#,
            "response_headers[0].name: is required",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": 1}]}"#,
            "response_headers[0].value: expected a string, got a number",
        ),
        (
            r#"{"response_headers": [{"name": "a", "value": "1", "append": true}]}"#,
            "response_headers[0].append: unknown field (known fields: action, name, value)",
        ),
        (
            r#"{"response_headers": [{"name": "TE", "value": "gzip"}]}"#,
            "response_headers[0].name: 'te' is connection-specific: Envoy manages it per connection, and an HTTP/2 message carrying it is a protocol error",
        ),
        (
            r#"{"remove_request_headers": ["connection"]}"#,
            "remove_request_headers[0]: 'connection' is connection-specific: Envoy manages it per connection, and an HTTP/2 message carrying it is a protocol error",
        ),
        (
            r#"{"response_headers": {"a": "1"}}"#,
            "response_headers: expected a list, got an object",
        ),
        (
            r#"{"response_headers": ["a"]}"#,
            "response_headers[0]: expected an object, got a string",
        ),
        (
            r#"{"remove_response_headers": "server"}"#,
            "remove_response_headers: expected a list, got a string",
        ),
        (
            r#"{"remove_response_headers": ["server"], "headers": []}"#,
            "headers: unknown field (known fields: remove_request_headers, remove_response_headers, request_headers, response_headers)",
        ),
        (
            r#"{"response_headers": [{"name": "Content-Length", "value": "1"}]}"#,
            "response_headers[0].name: 'content-length' frames the message: Envoy sets it, and it cannot be changed here",
        ),
        (
            r#"{"remove_response_headers": ["transfer-encoding"]}"#,
            "remove_response_headers[0]: 'transfer-encoding' frames the message: Envoy sets it, and it cannot be changed here",
        ),
        (
            r#"{"request_headers": [{"name": "Host", "value": "evil"}]}"#,
            "request_headers[0].name: 'host' cannot be changed here: Envoy holds it as :authority (route on the host instead)",
        ),
        (
            r#"{"remove_response_headers": ["server"], "response_headers": [{"name": "server", "value": "x", "action": "overwrite_if_exists"}]}"#,
            "response_headers[0]: 'server' is always absent here (because of remove_response_headers[0]), so overwrite_if_exists never applies",
        ),
        (
            r#"{"request_headers": [{"name": "a", "value": "1"}, {"name": "A", "value": "2", "action": "add_if_absent"}]}"#,
            "request_headers[1]: 'a' is always present here (because of request_headers[0]), so add_if_absent never adds it",
        ),
        (r#"[]"#, "expected an object, got a list"),
        (
            r#"{"response_headers": ["#,
            "invalid JSON: EOF while parsing a list at line 1 column 22",
        ),
    ];
    for (input, expected) in cases {
        let err = Config::parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), *expected, "{input}");
    }
}

#[test]
fn host_is_only_refused_on_requests() {
    let config =
        Config::parse(br#"{"response_headers": [{"name": "host", "value": "x"}]}"#).unwrap();
    assert_eq!(config.response.ops().len(), 1);
}

/// Shows the schema (`cargo test -p response-headers --features schema schema
/// -- --nocapture`) and checks the limits it carries.
#[cfg(feature = "schema")]
#[test]
fn the_schema_carries_the_limits() {
    let schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap();
    println!("{}", serde_json::to_string_pretty(&schema).unwrap());
    assert_eq!(schema["additionalProperties"], false);
    let text = schema.to_string();
    for needle in [
        r#""maxItems":100"#,
        r#""add_if_absent""#,
        r#""required":["name","value"]"#,
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
    // `host` is refused on requests only.
    let host = |list: &str, name: &serde_json::Value| {
        assert_eq!(
            name["not"]["pattern"]
                .as_str()
                .unwrap()
                .contains("[Hh][Oo][Ss][Tt]"),
            list.contains("request"),
            "{list}"
        );
        assert!(
            name["description"].is_string() || list.starts_with("remove"),
            "{list}"
        );
    };
    let props = &schema["properties"];
    host(
        "response_headers",
        &props["response_headers"]["items"]["properties"]["name"],
    );
    host(
        "request_headers",
        &props["request_headers"]["items"]["properties"]["name"],
    );
    host(
        "remove_response_headers",
        &props["remove_response_headers"]["items"],
    );
    host(
        "remove_request_headers",
        &props["remove_request_headers"]["items"],
    );
}

/// A request header's value may be a credential for the upstream (an API key):
/// no error quotes a value.
#[test]
fn errors_never_quote_a_value() {
    for entry in [
        serde_json::json!({"name": "authorization", "value": "Bearer s3cr3t\n"}),
        serde_json::json!({"name": "authorization", "value": ["Bearer s3cr3t"]}),
        serde_json::json!({"name": "authorization", "value": {"s": "s3cr3t"}}),
        serde_json::json!({"name": "authorization", "value": "s3cr3t", "action": "s3t"}),
        serde_json::json!({"name": "authorization", "value": "s3cr3t", "extra": 1}),
        serde_json::json!({"name": "host", "value": "s3cr3t"}),
    ] {
        let doc = serde_json::json!({"request_headers": [entry]});
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
