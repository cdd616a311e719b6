//! The config deserializer: paths, messages that quote no value, null as absent,
//! and the shared field types (bounded lists, headers, denials, rule paths).

use crate::config::fields::{HeaderName, List};
use crate::config::{from_value, parse};
use crate::deny::DenySpec;
use crate::path::fields::{one_path, Exact, Methods, Prefix, Suffix};
use crate::{ConfigError, DenyResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Top {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    deny: Option<DenySpec>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    limit: Option<u16>,
}

#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Strict,
    Lenient,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Rule {
    header: HeaderName,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    values: Option<List<String, 1, 2>>,
}

fn err(doc: serde_json::Value) -> String {
    from_value::<Top>(&doc).unwrap_err().to_string()
}

#[test]
fn a_valid_document_is_read() {
    let top: Top = from_value(&json!({
        "name": "n", "mode": "lenient", "limit": 7,
        "rules": [{"header": "X-A", "values": ["a", "b"]}],
    }))
    .unwrap();
    assert_eq!(top.name.as_deref(), Some("n"));
    assert_eq!(top.mode, Mode::Lenient);
    assert_eq!(top.limit, Some(7));
    assert_eq!(top.rules[0].header, HeaderName("x-a".into()));
    assert_eq!(
        top.rules[0].values,
        Some(List(vec!["a".into(), "b".into()]))
    );
    let empty: Top = parse(b"").unwrap();
    assert_eq!(empty.rules, []);
}

#[test]
fn errors_name_the_field_path() {
    let cases = [
        (json!({"rules": [{"header": "a"}, {"header": "b c"}]}),
            "rules[1].header: 'b c' is not a valid header name (RFC 9110 token)"),
        (json!({"rules": [{}]}), "rules[0].header: is required"),
        (json!({"rules": [{"header": "a", "hedaer": 1}]}),
            "rules[0].hedaer: unknown field (known fields: header, password, values)"),
        (json!({"rules": [{"header": "a", "values": []}]}), "rules[0].values: must list at least one item"),
        (json!({"rules": [{"header": "a", "values": ["1", "2", "3"]}]}), "rules[0].values: at most 2 items, got 3"),
        (json!({"rules": [{"header": "a", "values": ["1", 2]}]}), "rules[0].values[1]: expected a string, got a number"),
        (json!({"limit": 70000}), "limit: expected u16, got 70000"),
        (json!({"limit": -1}), "limit: expected u16, got -1"),
        (json!({"mode": "loose"}), "mode: unknown value (known values: strict, lenient)"),
        (json!({"mode": 1}), "mode: expected one of strict, lenient, got a number"),
        (json!({"deny": {"status": 700}}), "deny.status: must be 200..=599, got 700"),
        (json!({"deny": {"status": 204}}), "deny.status: 204 cannot be a denial: a 204 response has no body, and a denial sent with one breaks the client's connection"),
        (json!({"deny": {"headers": {"content-length": "1"}}}), "deny.headers.content-length: 'content-length' is set by Envoy and cannot be configured"),
        (json!({"deny": {"headers": {"x-a": "a\nb"}}}), "deny.headers.x-a: header value must not contain CR, LF or NUL"),
        (json!({"a\nb": 1}), "a\\nb: unknown field (known fields: deny, limit, mode, name, rules)"),
        (json!({"name": ["x"]}), "name: expected a string, got a list"),
    ];
    for (doc, want) in cases {
        assert_eq!(err(doc.clone()), want, "{doc}");
    }
}

#[test]
fn a_list_or_a_string_is_never_taken_for_an_object() {
    assert_eq!(err(json!(["x", []])), "expected an object, got a list");
    assert_eq!(err(json!("x")), "expected an object, got a string");
    assert_eq!(
        err(json!({"rules": [["a"]]})),
        "rules[0]: expected an object, got a list"
    );
    assert_eq!(
        err(json!({"deny": "no"})),
        "deny: expected an object, got a string"
    );
}

#[test]
fn null_means_absent() {
    let top: Top = from_value(
        &json!({"name": null, "mode": null, "rules": [{"header": "a", "values": null}]}),
    )
    .unwrap();
    assert_eq!(top.name, None);
    assert_eq!(top.mode, Mode::Strict);
    assert_eq!(
        err(json!({"rules": [{"header": null}]})),
        "rules[0].header: is required"
    );
}

#[test]
fn no_value_is_ever_quoted() {
    // A password in a field of the wrong type, and one of the right type whose
    // neighbour is wrong: the error must not carry it.
    for doc in [
        json!({"limit": "hunter2-secret"}),
        json!({"mode": {"hunter2-secret": 1}}),
        json!({"rules": [{"header": "a", "password": ["hunter2-secret"]}]}),
        json!({"rules": [{"header": "a", "password": "hunter2-secret", "values": [1]}]}),
    ] {
        let e = err(doc.clone());
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn repeated_keys_are_refused_by_the_parser() {
    let e = parse::<Top>(br#"{"rules": [{"header": "a", "header": "b"}]}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "rules[0].header: appears twice in one object (each key may be given once)"
    );
}

#[test]
fn the_deny_spec_takes_defaults_for_what_it_leaves_out() {
    let top: Top =
        from_value(&json!({"deny": {"body": "no\n", "headers": {"X-Why": "t", "x-b": "u"}}}))
            .unwrap();
    let deny = DenyResponse::from_spec(top.deny, 403, "default");
    assert_eq!(deny.status(), 403);
    assert_eq!(deny.body(), "no\n");
    assert_eq!(
        deny.headers(),
        [("x-why".into(), "t".into()), ("x-b".into(), "u".into())]
    );
    let deny = DenyResponse::from_spec(None, 401, "default");
    assert_eq!((deny.status(), deny.body()), (401, "default"));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathRuleDoc {
    prefix: Option<Prefix>,
    exact: Option<Exact>,
    suffix: Option<Suffix>,
    #[serde(default)]
    request_methods: Methods<3>,
}

#[test]
fn rule_paths_and_methods() {
    let doc: PathRuleDoc =
        from_value(&json!({"prefix": "/a", "request_methods": ["get", "POST", "post"]})).unwrap();
    assert_eq!(doc.request_methods.0, ["GET", "POST", "HEAD"]);
    assert_eq!(
        one_path(doc.prefix, doc.exact, doc.suffix),
        Ok(crate::path::PathRule::Prefix("/a".into()))
    );
    let cases = [
        (json!({"exact": "a"}), "exact: must start with '/'"),
        (json!({"exact": "/a//b"}), "exact: is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write '/a/b'"),
        (json!({"prefix": ""}), "prefix: must not be empty"),
        (json!({"prefix": "/", "request_methods": ["G T"]}), "request_methods[0]: 'G T' is not an HTTP method"),
        (json!({"prefix": "/", "request_methods": ["A", "B", "C", "D"]}), "request_methods: at most 3 items, got 4"),
    ];
    for (doc, want) in cases {
        let got = from_value::<PathRuleDoc>(&doc).unwrap_err();
        assert_eq!(got.to_string(), want, "{doc}");
    }
    let none: PathRuleDoc = from_value(&json!({})).unwrap();
    assert_eq!(
        one_path(none.prefix, none.exact, none.suffix),
        Err("exactly one of prefix, exact, suffix is required")
    );
    let two: PathRuleDoc = from_value(&json!({"prefix": "/", "suffix": ".js"})).unwrap();
    assert_eq!(
        one_path(two.prefix, two.exact, two.suffix),
        Err("exactly one of prefix, exact, suffix is allowed")
    );
}

#[test]
fn a_check_in_try_from_is_reported_at_the_object() {
    #[derive(Debug, Deserialize)]
    #[serde(try_from = "PathRuleDoc")]
    struct Checked;
    impl TryFrom<PathRuleDoc> for Checked {
        type Error = &'static str;
        fn try_from(doc: PathRuleDoc) -> Result<Self, Self::Error> {
            one_path(doc.prefix, doc.exact, doc.suffix).map(|_| Checked)
        }
    }
    let e: ConfigError = from_value::<Vec<Checked>>(&json!([{"prefix": "/"}, {}])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "[1]: exactly one of prefix, exact, suffix is required"
    );
}

#[test]
fn whole_numbers_clusters_and_authorities() {
    use crate::config::fields::{Authority, Cluster, Int, NonEmpty};
    type Small = Int<1, 10>;
    let cases = [
        (json!(0), "must be 1..=10, got 0"),
        (json!(-3), "must be 1..=10, got -3"),
        (json!(u64::MAX), "must be 1..=10, got 18446744073709551615"),
        (json!(2.5), "expected a whole number, got a number"),
        (json!("7"), "expected a whole number, got a string"),
    ];
    for (doc, expected) in cases {
        assert_eq!(from_value::<Small>(&doc).unwrap_err().to_string(), expected);
    }
    assert_eq!(from_value::<Small>(&json!(10)).unwrap(), Int(10));
    assert_eq!(
        from_value::<NonEmpty>(&json!("")).unwrap_err().to_string(),
        "must not be empty"
    );
    let cluster: Cluster = from_value(&json!("outbound|8000||auth.ns.svc")).unwrap();
    assert_eq!(cluster.default_authority(), "auth.ns.svc");
    let cluster: Cluster = from_value(&json!("auth")).unwrap();
    assert_eq!(cluster.default_authority(), "auth");
    for bad in ["a b", "a\r\nb", "a\u{85}"] {
        assert_eq!(
            from_value::<Cluster>(&json!(bad)).unwrap_err().to_string(),
            "must not contain spaces or control characters"
        );
    }
    assert_eq!(
        from_value::<Authority>(&json!("a\nb"))
            .unwrap_err()
            .to_string(),
        "header value must not contain CR, LF or NUL"
    );
    assert_eq!(
        from_value::<Authority>(&json!("")).unwrap_err().to_string(),
        "must not be empty"
    );
}

#[test]
fn keys_in_paths_are_one_line_and_the_empty_key_is_named() {
    assert_eq!(
        err(json!({"deny": {"headers": {"x\u{85}": 1}}})),
        "deny.headers.x\\u{85}: 'x\\u{85}' is not a valid header name (RFC 9110 token)"
    );
    assert_eq!(
        err(json!({"": 1})),
        "\"\": unknown field (known fields: deny, limit, mode, name, rules)"
    );
    let e = parse::<Top>(br#"{"k\r": 1, "k\r": 2}"#).unwrap_err();
    assert_eq!(e.path, "k\\r");
}
