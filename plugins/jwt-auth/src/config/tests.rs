//! Config parsing: defaults, what is derived (token places, claim headers,
//! challenges), and every refusal naming its field.

use super::*;
use common::config::from_value;
use serde_json::json;

const JWKS: &str =
    r#"{"keys": [{"kty": "oct", "kid": "s", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_value(&common::config::parse_json(text.as_bytes())?)
}

fn with_provider(provider: &str) -> String {
    format!(
        r#"{{"providers": {{"p": {provider}}}, "rules": [{{"prefix": "/", "providers": ["p"]}}]}}"#
    )
}

#[test]
fn defaults_and_derived_parts() {
    let config = parse(&with_provider(&format!(
        r#"{{"issuer": "https://i", "local_jwks": {JWKS}}}"#
    )))
    .unwrap();
    let p = &config.providers[0];
    assert!(p.audiences.is_empty());
    assert!(!p.forward && !p.require_expiration);
    assert_eq!(p.clock_skew_s, 60);
    assert_eq!(
        config.locations,
        [Location::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into()
        }]
    );
    assert_eq!(config.challenge_missing, "Bearer realm=\"jwt\"");
    assert_eq!(
        config.challenge_invalid,
        "Bearer realm=\"jwt\", error=\"invalid_token\""
    );
    assert!(config.rules[0].methods.is_empty());
    assert_eq!(config.cache_entries, 1024);

    let doc = json!({
        "providers": {
            "firebase": {
                "issuer": "https://securetoken.google.com/my-project",
                "audiences": ["my-project"],
                "remote_jwks": {"cluster": "outbound|443||www.googleapis.com", "path": "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"},
                "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                "from_params": ["access_token"],
                "from_cookies": ["session"],
                "claim_to_headers": [{"claim": "sub", "header": "X-User-Id"}, {"claim": "a.b", "header": "x-ab"}],
            },
            "internal": {"issuer": "https://issuer.internal", "local_jwks": serde_json::from_str::<Value>(JWKS).unwrap(), "claim_to_headers": [{"claim": "sub", "header": "x-user-id"}]},
        },
        "rules": [
            {"prefix": "/public", "providers": []},
            {"prefix": "/api", "request_methods": ["get", "POST"], "providers": ["firebase", "internal"]},
            {"prefix": "/", "providers": ["firebase"], "allow_missing": true},
        ],
        "realm": "api",
    });
    let config = Config::from_value(&doc).unwrap();
    // Providers are kept in name order; the same place is listed once.
    assert_eq!(config.providers[0].name, "firebase");
    assert_eq!(config.locations.len(), 3);
    assert_eq!(config.providers[0].locations, 0b111);
    assert_eq!(config.providers[1].locations, 0b001);
    let Keys::Remote(remote) = &config.providers[0].keys else {
        panic!()
    };
    assert_eq!(
        remote.authority, "www.googleapis.com",
        "from the Istio cluster name"
    );
    assert_eq!((remote.timeout_ms, remote.cache_ttl_ms), (1000, 600_000));
    assert_eq!(config.claim_headers, ["x-user-id", "x-ab"]);
    assert_eq!(config.providers[0].claim_to_headers[1].0, ["a", "b"]);
    assert_eq!(config.rules[1].methods, ["GET", "POST", "HEAD"]);
    assert_eq!(config.rules[1].providers, 0b11);
    assert_eq!(config.rules[0].providers, 0);
    assert!(config.rules[2].allow_missing);
}

#[test]
fn bad_fields_are_named() {
    let local = |extra: &str| {
        with_provider(&format!(
            r#"{{"issuer": "https://i", "local_jwks": {JWKS}{extra}}}"#
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        ("[]".into(), "expected an object, got a list"),
        (r#"{"rules": [{"prefix": "/", "providers": []}]}"#.into(), "providers: is required"),
        (r#"{"providers": {}, "rules": []}"#.into(), "providers: must name at least one provider"),
        (r#"{"providers": [], "rules": []}"#.into(), "providers: expected an object of providers by name, got a list"),
        (with_provider(r#"{"issuer": 7}"#), "providers.p.issuer: expected a string, got a number"),
        (with_provider(r#"{"local_jwks": {"keys": []}}"#), "providers.p.issuer: is required"),
        (with_provider(r#"{"issuer": "i"}"#), "providers.p: exactly one of local_jwks, remote_jwks is required"),
        (with_provider(r#"{"issuer": "i", "local_jwks": {"keys": []}}"#), "providers.p.local_jwks: holds no key this plugin verifies with"),
        (with_provider(r#"{"issuer": "i", "local_jwks": "x"}"#), "providers.p.local_jwks: expected an object, got a string"),
        (with_provider(r#"{"issuer": "i", "local_jwks": {"keys": [{"kty": "RSA", "e": "AQAB"}]}}"#), "providers.p.local_jwks.keys[0].n: is required"),
        (with_provider(r#"{"issuer": "i", "remote_jwks": {"path": "/k"}}"#), "providers.p.remote_jwks.cluster: is required"),
        (with_provider(r#"{"issuer": "i", "remote_jwks": {"cluster": "c", "path": "k"}}"#), "providers.p.remote_jwks.path: must start with '/' and hold no spaces or control characters"),
        (with_provider(r#"{"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/k", "timeout_ms": 0}}"#), "providers.p.remote_jwks.timeout_ms: must be 1..=60000, got 0"),
        (with_provider(r#"{"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/k", "ttl": 1}}"#), "providers.p.remote_jwks.ttl: unknown field (known fields: authority, cache_ttl_s, cluster, path, timeout_ms)"),
        (local(r#", "from_headers": [{"name": "a b"}]"#), "providers.p.from_headers[0].name: 'a b' is not a valid header name (RFC 9110 token)"),
        (local(r#", "from_headers": [{"name": "host"}]"#), "providers.p.from_headers[0].name: 'host' cannot carry a token"),
        (local(r#", "from_params": ["a=b"]"#), "providers.p.from_params[0]: 'a=b' is not a valid name"),
        (local(r#", "from_cookies": []"#), "providers.p: from_headers, from_params and from_cookies name no place for the token"),
        (local(r#", "claim_to_headers": [{"claim": "a..b", "header": "x"}]"#), "providers.p.claim_to_headers[0].claim: a claim path has no empty part ('a.b', not 'a..b')"),
        (local(r#", "claim_to_headers": [{"claim": "sub", "header": "authorization"}]"#), "providers.p.claim_to_headers[0].header: 'authorization' carries tokens and cannot be set from a claim"),
        (local(r#", "claim_to_headers": [{"claim": "sub", "header": ":path"}]"#), "providers.p.claim_to_headers[0].header: ':path' is a pseudo-header and cannot be used here"),
        (local(r#", "clock_skew_s": -1"#), "providers.p.clock_skew_s: must be 0..=3600, got -1"),
        (local(r#", "forward": "yes""#), "providers.p.forward: expected a boolean, got a string"),
        (local(r#", "audience": ["a"]"#), "providers.p.audience: unknown field (known fields: audiences, claim_to_headers, clock_skew_s, forward, from_cookies, from_headers, from_params, issuer, local_jwks, remote_jwks, require_expiration)"),
        (local(r#", "issuer": "again""#), "providers.p.issuer: appears twice in one object (each key may be given once)"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": [{"prefix": "/", "providers": ["q"]}]}"#.into(), "rules[0].providers[0]: unknown provider 'q' (known: p)"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": []}"#.into(), "rules: must list at least one item"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": [{"providers": []}]}"#.into(), "rules[0]: exactly one of prefix, exact, suffix is required"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": [{"prefix": "/", "request_methods": [], "providers": []}]}"#.into(), "rules[0].request_methods: must list at least one method (leave it out for all)"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}, "q": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": [{"prefix": "/", "providers": []}]}"#.into(), "providers.q.issuer: provider 'p' has the same issuer: a token's issuer picks its provider"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": [{"prefix": "/", "providers": []}], "cache_entries": -1}"#.into(), "cache_entries: must be 0..=65536, got -1"),
        (r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/"}}}, "rules": [{"prefix": "/", "providers": []}], "realm": "a\"b"}"#.into(), "realm: must not contain quotes, backslashes or control characters"),
    ];
    for (text, expected) in cases {
        match parse(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => assert_eq!(e.to_string(), expected, "{text}"),
        }
    }
}

#[test]
fn no_error_or_debug_output_quotes_key_material() {
    // A marker that is valid base64url, so it reaches every check on a member.
    let marker = "U2VjcmV0TWFya2VyOTk5";
    let bad_keys = [
        // HMAC secrets: too short, not base64url, not a string, beside a wrong alg.
        (
            json!({"kty": "oct", "k": marker}),
            "k: an HMAC secret must be at least 32 bytes",
        ),
        (
            json!({"kty": "oct", "k": format!("{marker}!")}),
            "k: is not base64url",
        ),
        (
            json!({"kty": "oct", "k": [marker]}),
            "k: expected a string, got a list",
        ),
        (
            json!({"kty": "oct", "k": format!("{marker}{marker}{marker}"), "alg": "RS256"}),
            "alg: RS256 does not fit a oct key",
        ),
        // Inline public keys.
        (
            json!({"kty": "RSA", "n": marker, "e": "AQAB"}),
            "n: RSA modulus of 119 bits; 2048 to 8192 are accepted",
        ),
        (
            json!({"kty": "RSA", "n": format!("{marker}*"), "e": "AQAB"}),
            "n: is not base64url",
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "x": marker, "y": marker}),
            "x: must be 32 bytes, got 15",
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": marker}),
            "x: must be 32 bytes, got 15",
        ),
        (
            json!({"kty": {"k": marker}}),
            "kty: expected a string, got an object",
        ),
    ];
    for (key, expected) in bad_keys {
        let text = with_provider(&format!(
            r#"{{"issuer": "https://i", "local_jwks": {{"keys": [{key}]}}}}"#
        ));
        let err = parse(&text).map(|_| ()).unwrap_err().to_string();
        assert_eq!(err, format!("providers.p.local_jwks.keys[0].{expected}"));
        assert!(!err.contains(marker), "{err}");
    }
    // A secret where a fetched set would have it, and in the parsed document's
    // Debug form.
    let secret = format!("{marker}{marker}{marker}");
    let set = json!({"keys": [{"kty": "oct", "k": secret}]});
    let err = crate::jwks::parse(&set, false)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "keys[0].kty: oct (HMAC secret) keys are accepted only in local_jwks"
    );
    let doc = json!({"providers": {"p": {"issuer": "i", "local_jwks": set}}, "rules": [{"prefix": "/", "providers": ["p"]}]});
    let spec: Spec = from_value(&doc).unwrap();
    let shown = format!("{spec:?}");
    assert!(
        shown.contains("Secret(<60 bytes>)") && !shown.contains(marker),
        "{shown}"
    );
    assert!(Config::from_value(&doc).is_ok());
}

#[test]
fn remote_jwks_calls_are_checked_like_dispatch_auth_calls() {
    let remote = |fields: &str| {
        with_provider(&format!(
            r#"{{"issuer": "i", "remote_jwks": {{"path": "/k", {fields}}}}}"#
        ))
    };
    let cases = [
        (
            remote(r#""cluster": "c\r\nx: y""#),
            "providers.p.remote_jwks.cluster: must not contain spaces or control characters",
        ),
        (
            remote(r#""cluster": """#),
            "providers.p.remote_jwks.cluster: must not be empty",
        ),
        (
            remote(r#""cluster": "c", "authority": "a\nb""#),
            "providers.p.remote_jwks.authority: header value must not contain CR, LF or NUL",
        ),
        (
            remote(r#""cluster": "c", "cache_ttl_s": 1.5"#),
            "providers.p.remote_jwks.cache_ttl_s: expected a whole number, got a number",
        ),
        (
            with_provider(r#"["i"]"#),
            "providers.p: expected an object, got a list",
        ),
        (
            r#"{"providers": {"": {}}, "rules": []}"#.into(),
            "providers.\"\": a provider name must be 1 to 63 characters, no control characters",
        ),
        (
            format!(
                r#"{{"providers": {{{}}}, "rules": []}}"#,
                (0..17)
                    .map(|i| format!(r#""p{i}": {{}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "providers: at most 16 providers, got 17",
        ),
    ];
    for (text, expected) in cases {
        match parse(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => assert_eq!(e.to_string(), expected, "{text}"),
        }
    }
    let config = parse(&remote(
        r#""cluster": "outbound|443||keys.example", "authority": "k.example""#,
    ))
    .unwrap();
    let Keys::Remote(remote) = &config.providers[0].keys else {
        panic!()
    };
    assert_eq!(
        (remote.cluster.as_str(), remote.authority.as_str()),
        ("outbound|443||keys.example", "k.example")
    );
}
