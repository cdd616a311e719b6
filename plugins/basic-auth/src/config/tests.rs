//! basic-auth config: what is read, what is refused and with which message, and that no error carries a credential.

use super::*;
use crate::secret::sha1;
use base64::Engine;

fn b64(s: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The seed's configuration (the SolarMesh example), used by `auth`'s tests too.
pub(crate) const SEED: &str = r#"{
    "basic_auth_rules": [
        {"prefix": "/productpage", "request_methods": ["GET", "POST"],
         "credentials": ["ok:test", "YWRtaW4zOmFkbWluMw=="]}
    ],
    "realm": "istio"
}"#;

#[test]
fn the_seed_config_parses() {
    let config = Config::parse(SEED.as_bytes()).unwrap();
    assert_eq!(config.realm, "istio");
    assert_eq!(config.forward_username_header, None);
    let rule = &config.rules[0];
    assert_eq!(rule.path, PathRule::Prefix("/productpage".into()));
    assert_eq!(rule.methods, ["GET", "POST", "HEAD"]);
    let users: Vec<_> = rule.credentials.iter().map(|c| c.user.as_str()).collect();
    assert_eq!(users, ["ok", "admin3"]);
    assert!(rule.credentials[0].secret == Secret::Sha256(sha256(b"test")));
    assert!(rule.credentials[1].secret == Secret::Sha256(sha256(b"admin3")));
    assert_eq!(
        config.missing.headers()[0],
        ("www-authenticate".into(), "Basic realm=\"istio\"".into())
    );
    assert_eq!(config.missing.status(), 401);
    assert_eq!(config.wrong.status(), 401);
}

#[test]
fn credential_formats() {
    let sha1_entry = format!("u:{{SHA}}{}", b64(sha1(b"pw")));
    let sha256_entry = format!("u:{{SHA256}}{}", b64(sha256(b"pw")));
    let cases: Vec<(String, Secret)> = vec![
        ("u:pw".into(), Secret::Sha256(sha256(b"pw"))),
        ("u:p:w".into(), Secret::Sha256(sha256(b"p:w"))),
        (b64("u:pw"), Secret::Sha256(sha256(b"pw"))),
        // Unpadded base64 is accepted too.
        (
            b64("u:pw").trim_end_matches('=').into(),
            Secret::Sha256(sha256(b"pw")),
        ),
        // Inside base64 a {SHA} prefix is just part of a plain password.
        (b64("u:{SHA}x"), Secret::Sha256(sha256(b"{SHA}x"))),
        (sha1_entry, Secret::Sha1(sha1(b"pw"))),
        (sha256_entry, Secret::Sha256(sha256(b"pw"))),
        // Braces that are not a scheme name are part of a plain password.
        (
            "u:{not a scheme}".into(),
            Secret::Sha256(sha256(b"{not a scheme}")),
        ),
        ("u:{}x".into(), Secret::Sha256(sha256(b"{}x"))),
    ];
    for (entry, secret) in cases {
        let doc = serde_json::json!({"basic_auth_rules": [
            {"exact": "/", "request_methods": ["GET"], "credentials": [entry]}]});
        let config = Config::from_value(&doc).unwrap_or_else(|e| panic!("{entry}: {e}"));
        let cred = &config.rules[0].credentials[0];
        assert_eq!(cred.user, "u", "{entry}");
        assert!(cred.secret == secret, "{entry}");
    }
}

#[test]
fn fields_are_read() {
    let config = Config::parse(
        br#"{"basic_auth_rules": [
            {"suffix": ".png", "request_methods": ["get", "Delete"], "credentials": ["a:b"]},
            {"exact": "/x", "request_methods": ["PUT"], "credentials": ["c:d"]}
        ], "realm": "my \"realm\"", "forward_username_header": "X-User"}"#,
    )
    .unwrap();
    assert_eq!(config.rules[0].path, PathRule::Suffix(".png".into()));
    assert_eq!(config.rules[0].methods, ["GET", "DELETE", "HEAD"]);
    assert_eq!(config.rules[1].path, PathRule::Exact("/x".into()));
    assert_eq!(config.forward_username_header.as_deref(), Some("x-user"));
    assert_eq!(
        config.wrong.headers()[0].1,
        "Basic realm=\"my \\\"realm\\\"\""
    );
}

#[test]
fn bad_configurations_name_the_rule_and_field() {
    let rule = |extra: &str| {
        format!(
            r#"{{"basic_auth_rules": [{{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}}, {extra}]}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        ("{}".into(), "basic_auth_rules: is required"),
        ("".into(), "basic_auth_rules: is required"),
        (r#"{"basic_auth_rules": []}"#.into(), "basic_auth_rules: must list at least one item"),
        (r#"{"basic_auth_rules": {}}"#.into(), "basic_auth_rules: expected a list, got an object"),
        (rule(r#"{"request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1]: exactly one of prefix, exact, suffix is required"),
        (rule(r#"{"prefix": "/a", "exact": "/a", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1]: exactly one of prefix, exact, suffix is allowed"),
        (rule(r#"{"prefix": "", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].prefix: must not be empty"),
        (rule(r#"{"exact": 3, "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].exact: expected a string, got a number"),
        (rule(r#"{"suffix": "/a?b", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].suffix: must not contain '?' or '#'"),
        (rule(r#"{"prefix": "admin", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].prefix: must start with '/'"),
        (rule(r#"{"prefix": "//admin", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].prefix: is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write '/admin'"),
        (rule(r#"{"exact": "/a%2Fb", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].exact: cannot be matched: it has an encoded '/' or '\\'"),
        (rule(r#"{"suffix": ".json;v=1", "request_methods": ["GET"], "credentials": ["a:b"]}"#), "basic_auth_rules[1].suffix: must not contain ';'"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"], "prefix": "/x"}"#), "basic_auth_rules[1].prefix: appears twice in one object"),
        (rule(r#"{"prefix": "/", "credentials": ["a:b"]}"#), "basic_auth_rules[1].request_methods: is required"),
        (rule(r#"{"prefix": "/", "request_methods": [], "credentials": ["a:b"]}"#), "basic_auth_rules[1].request_methods: must list at least one method"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET "], "credentials": ["a:b"]}"#), "basic_auth_rules[1].request_methods[0]: 'GET ' is not an HTTP method"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"]}"#), "basic_auth_rules[1].credentials: is required"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": []}"#), "basic_auth_rules[1].credentials: must list at least one item"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b", ""]}"#), "basic_auth_rules[1].credentials[1]: must not be empty"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["not base64!"]}"#), "basic_auth_rules[1].credentials[0]: neither user:password nor valid base64"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["YWJj"]}"#), "basic_auth_rules[1].credentials[0]: base64 decodes to text without ':'"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["/w=="]}"#), "basic_auth_rules[1].credentials[0]: base64 decodes to text that is not UTF-8"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": [":pw"]}"#), "basic_auth_rules[1].credentials[0]: user name must not be empty"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["u:"]}"#), "basic_auth_rules[1].credentials[0]: password must not be empty"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["u:{MD5}abc"]}"#), "basic_auth_rules[1].credentials[0]: unknown hash scheme {MD5}"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["u:$apr1$x$y"]}"#), "basic_auth_rules[1].credentials[0]: unsupported hash scheme $apr1$"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["u:{SHA}abc"]}"#), "basic_auth_rules[1].credentials[0]: {SHA} must be followed by the base64 of a 20-byte digest"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["u:{SHA256}qUqP5cyxm6YcTAhz05Hph5gvu9M="]}"#), "basic_auth_rules[1].credentials[0]: {SHA256} must be followed by the base64 of a 32-byte digest"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["u\nv:pw"]}"#), "basic_auth_rules[1].credentials[0]: must not contain control characters"),
        (rule(r#"{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"], "methods": []}"#), "basic_auth_rules[1].methods: unknown field (known fields: credentials, exact, prefix, request_methods, suffix)"),
        (r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}], "realm": "a\nb"}"#.into(), "realm: must not contain control characters"),
        (r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}], "forward_username_header": "a b"}"#.into(), "forward_username_header: 'a b' is not a valid header name"),
        (r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}], "forward_username_header": "Authorization"}"#.into(), "forward_username_header: 'authorization' cannot carry the user name"),
        (r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}], "relam": "x"}"#.into(), "relam: unknown field (known fields: basic_auth_rules, forward_username_header, realm)"),
    ];
    for (input, expected) in cases {
        let err = Config::parse(input.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with(expected),
            "{input}\n  got:  {err}\n  want: {expected}"
        );
    }
}

#[test]
fn lists_have_limits() {
    let rule =
        serde_json::json!({"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]});
    let doc = serde_json::json!({"basic_auth_rules": vec![rule.clone(); MAX_RULES]});
    assert!(Config::from_value(&doc).is_ok());
    let doc = serde_json::json!({"basic_auth_rules": vec![rule; MAX_RULES + 1]});
    let err = Config::from_value(&doc).unwrap_err().to_string();
    assert_eq!(err, "basic_auth_rules: at most 100 items, got 101");
    let users: Vec<String> = (0..=MAX_CREDENTIALS).map(|i| format!("u{i}:p")).collect();
    let doc = serde_json::json!({"basic_auth_rules": [
        {"prefix": "/", "request_methods": ["GET"], "credentials": users}]});
    let err = Config::from_value(&doc).unwrap_err().to_string();
    assert_eq!(
        err,
        "basic_auth_rules[0].credentials: at most 1000 items, got 1001"
    );
    let methods: Vec<String> = (0..=MAX_METHODS).map(|i| format!("M{i}")).collect();
    let doc = serde_json::json!({"basic_auth_rules": [
        {"prefix": "/", "request_methods": methods, "credentials": ["a:b"]}]});
    let err = Config::from_value(&doc).unwrap_err().to_string();
    assert_eq!(
        err,
        "basic_auth_rules[0].request_methods: at most 20 items, got 21"
    );
}

#[test]
fn an_unknown_brace_prefix_is_not_quoted() {
    let cases = [
        ("u:{SSHA}abc", "unknown hash scheme {SSHA} ("),
        ("u:{HUNTER2}rest", "unknown hash scheme in braces ("),
        ("u:{PASS-WORD}", "unknown hash scheme in braces ("),
    ];
    for (entry, expected) in cases {
        let doc = serde_json::json!({"basic_auth_rules": [
            {"prefix": "/", "request_methods": ["GET"], "credentials": [entry]}]});
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert!(err.contains(expected), "{entry}: {err}");
    }
    let doc = serde_json::json!({"basic_auth_rules": [
        {"prefix": "/", "request_methods": ["GET"], "credentials": ["u:{HUNTER2}rest"]}]});
    let err = Config::from_value(&doc).unwrap_err().to_string();
    assert!(!err.contains("HUNTER2"), "{err}");
}

#[test]
fn errors_never_quote_a_credential() {
    for secret in [
        "s3cr3t-not-base64!",
        "u:{MD5}s3cr3t",
        "u:{SHA}s3cr3t",
        "u:$2y$s3cr3t",
        "u:{SHA256}s3cr3t",
        "u:{S3CR3T}x",
        "u:s3cr3t\n",
        "u\t:s3cr3t",
        ":s3cr3t",
        "s3cr3t:",
    ] {
        let doc = serde_json::json!({"basic_auth_rules": [
            {"prefix": "/", "request_methods": ["GET"], "credentials": [secret]}]});
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

#[test]
fn a_credential_in_the_wrong_place_or_shape_is_not_quoted() {
    let rule = |methods: serde_json::Value, credentials: serde_json::Value| {
        serde_json::json!({"basic_auth_rules": [
            {"prefix": "/", "request_methods": methods, "credentials": credentials}]})
    };
    let cases = [
        rule(
            serde_json::json!(["GET"]),
            serde_json::json!([["u:s3cr3t"]]),
        ),
        rule(serde_json::json!(["GET"]), serde_json::json!("u:s3cr3t")),
        rule(
            serde_json::json!(["GET"]),
            serde_json::json!({"u": "s3cr3t"}),
        ),
        rule(
            serde_json::json!(["GET"]),
            serde_json::json!([{"u": "s3cr3t"}]),
        ),
        serde_json::json!({"basic_auth_rules": [
            {"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}],
            "realm": ["u:s3cr3t"]}),
        serde_json::json!({"basic_auth_rules": [
            {"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}],
            "realm": "u:s3cr3t\n"}),
    ];
    for doc in cases {
        let err = Config::from_value(&doc).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

/// Shows the schema (`cargo test -p basic-auth --features schema schema --
/// --nocapture`) and checks the limits it carries.
#[cfg(feature = "schema")]
#[test]
fn the_schema_carries_the_limits() {
    let schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap();
    println!("{}", serde_json::to_string_pretty(&schema).unwrap());
    assert_eq!(schema["required"], serde_json::json!(["basic_auth_rules"]));
    assert_eq!(schema["additionalProperties"], false);
    let rules = &schema["properties"]["basic_auth_rules"];
    assert_eq!(
        (rules["minItems"].as_u64(), rules["maxItems"].as_u64()),
        (Some(1), Some(100))
    );
    let text = schema.to_string();
    for needle in [r#""oneOf""#, r#""maxItems":1000"#, r#""maxItems":20"#] {
        assert!(text.contains(needle), "{needle} missing");
    }
}
