//! basic-auth decisions: rules, methods, credentials and hostile paths, as a table.

use super::*;
use base64::Engine;

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic(credentials: &str) -> String {
    format!("Basic {}", b64(credentials.as_bytes()))
}

use crate::config::tests::SEED;

#[test]
fn seed_table() {
    let config = Config::parse(SEED.as_bytes()).unwrap();
    let ok = basic("ok:test");
    let admin3 = basic("admin3:admin3");
    let wrong = basic("ok:nope");
    let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION));
    let cases: &[(&str, &str, &str, &[&str], Decision)] = &[
        (
            "no credentials",
            "GET",
            "/productpage",
            &[],
            Decision::Deny(Denial::NoHeader),
        ),
        (
            "ok:test",
            "GET",
            "/productpage",
            &[&ok],
            Decision::Allow("ok"),
        ),
        (
            "base64 entry",
            "POST",
            "/productpage",
            &[&admin3],
            Decision::Allow("admin3"),
        ),
        (
            "wrong password",
            "GET",
            "/productpage",
            &[&wrong],
            Decision::Deny(Denial::Rejected),
        ),
        (
            "user of another entry",
            "GET",
            "/productpage",
            &[&basic("ok:admin3")],
            Decision::Deny(Denial::Rejected),
        ),
        (
            "method not covered",
            "DELETE",
            "/productpage",
            &[],
            Decision::Pass,
        ),
        (
            "method case",
            "get",
            "/productpage",
            &[],
            Decision::Deny(Denial::NoHeader),
        ),
        (
            "query",
            "GET",
            "/productpage?x=1",
            &[],
            Decision::Deny(Denial::NoHeader),
        ),
        (
            "fragment",
            "GET",
            "/productpage#x",
            &[],
            Decision::Deny(Denial::NoHeader),
        ),
        (
            "prefix is a string prefix",
            "GET",
            "/productpage2/x",
            &[],
            Decision::Deny(Denial::NoHeader),
        ),
        (
            "query does not make a match",
            "GET",
            "/other?/productpage",
            &[],
            Decision::Pass,
        ),
        ("other path", "GET", "/other", &[], Decision::Pass),
        (
            "other path with bad header",
            "GET",
            "/other",
            &["junk"],
            Decision::Pass,
        ),
        (
            "scheme case",
            "GET",
            "/productpage",
            &[&ok.replace("Basic", "bAsIc")],
            Decision::Allow("ok"),
        ),
        (
            "whitespace",
            "GET",
            "/productpage",
            &[&format!(" \t{}\t ", ok.replace(' ', "  \t"))],
            Decision::Allow("ok"),
        ),
        (
            "unpadded",
            "GET",
            "/productpage",
            &[ok.trim_end_matches('=')],
            Decision::Allow("ok"),
        ),
        (
            "bearer",
            "GET",
            "/productpage",
            &["Bearer abc"],
            Decision::Deny(Denial::NotBasic),
        ),
        (
            "basic glued",
            "GET",
            "/productpage",
            &["Basicb2s6dGVzdA=="],
            Decision::Deny(Denial::NotBasic),
        ),
        (
            "empty value",
            "GET",
            "/productpage",
            &[""],
            Decision::Deny(Denial::NotBasic),
        ),
        (
            "scheme only",
            "GET",
            "/productpage",
            &["Basic"],
            Decision::Deny(Denial::Empty),
        ),
        (
            "scheme and space",
            "GET",
            "/productpage",
            &["Basic   "],
            Decision::Deny(Denial::Empty),
        ),
        (
            "not base64",
            "GET",
            "/productpage",
            &["Basic ok:test"],
            Decision::Deny(Denial::NotBase64),
        ),
        (
            "url-safe alphabet",
            "GET",
            "/productpage",
            &["Basic __-_"],
            Decision::Deny(Denial::NotBase64),
        ),
        (
            "no colon",
            "GET",
            "/productpage",
            &[&basic("oktest")],
            Decision::Deny(Denial::NoColon),
        ),
        (
            "not utf-8",
            "GET",
            "/productpage",
            &[&format!("Basic {}", b64(b"ok:t\xffst"))],
            Decision::Deny(Denial::NotUtf8),
        ),
        (
            "empty user and password",
            "GET",
            "/productpage",
            &[&basic(":")],
            Decision::Deny(Denial::Rejected),
        ),
        (
            "too long",
            "GET",
            "/productpage",
            &[&long],
            Decision::Deny(Denial::TooLong),
        ),
        (
            "two headers",
            "GET",
            "/productpage",
            &[&ok, &ok],
            Decision::Deny(Denial::Several),
        ),
        (
            "comma-joined",
            "GET",
            "/productpage",
            &[&format!("{ok},{ok}")],
            Decision::Deny(Denial::Several),
        ),
        (
            "joined after another scheme",
            "GET",
            "/productpage",
            &[&format!("Bearer x,{ok}")],
            Decision::Deny(Denial::Several),
        ),
        (
            "joined after an empty value",
            "GET",
            "/productpage",
            &[&format!(",{ok}")],
            Decision::Deny(Denial::Several),
        ),
        (
            "password with colon",
            "GET",
            "/productpage",
            &[&basic("ok:test:x")],
            Decision::Deny(Denial::Rejected),
        ),
        (
            "trailing newline in password",
            "GET",
            "/productpage",
            &[&basic("ok:test\n")],
            Decision::Deny(Denial::Rejected),
        ),
    ];
    for (name, method, path, values, expected) in cases {
        let got = decide(
            &config,
            method.as_bytes(),
            &[],
            path.as_bytes(),
            values.iter().map(|v| v.as_bytes()),
        );
        assert_eq!(got, *expected, "{name}");
    }
}

#[test]
fn largest_allowed_value_decodes() {
    let password = "p".repeat(MAX_AUTHORIZATION / 4 * 3 - 10);
    let doc = serde_json::json!({"basic_auth_rules": [
        {"prefix": "/", "request_methods": ["GET"], "credentials": [format!("u:{password}")]}]});
    let config = Config::from_value(&doc).unwrap();
    let value = basic(&format!("u:{password}"));
    assert!(value.len() <= MAX_AUTHORIZATION, "{}", value.len());
    assert_eq!(
        decide(&config, b"GET", &[], b"/", [value.as_bytes()]),
        Decision::Allow("u")
    );
}

#[test]
fn match_kinds_hashes_and_overlapping_rules() {
    let sha1_b64 = b64(&sha1(b"s1"));
    let sha256_b64 = b64(&sha256(b"s2"));
    let doc = serde_json::json!({"basic_auth_rules": [
        {"exact": "/exact", "request_methods": ["GET"], "credentials": [format!("hashed:{{SHA}}{sha1_b64}")]},
        {"suffix": ".png", "request_methods": ["GET"], "credentials": [format!("hashed2:{{SHA256}}{sha256_b64}")]},
        {"prefix": "/api", "request_methods": ["GET"], "credentials": ["alice:a", "bob:b"]},
        {"prefix": "/api/admin", "request_methods": ["GET"], "credentials": ["alice:a", "carol:c"]}
    ]});
    let config = Config::from_value(&doc).unwrap();
    let cases: &[(&str, &str, Option<&str>, Decision)] = &[
        (
            "exact, {SHA}",
            "/exact",
            Some("hashed:s1"),
            Decision::Allow("hashed"),
        ),
        (
            "exact, {SHA} wrong",
            "/exact",
            Some("hashed:s2"),
            Decision::Deny(Denial::Rejected),
        ),
        (
            "exact does not match longer",
            "/exact/x",
            None,
            Decision::Pass,
        ),
        (
            "exact with query",
            "/exact?a=b",
            None,
            Decision::Deny(Denial::NoHeader),
        ),
        (
            "suffix, {SHA256}",
            "/img/a.png",
            Some("hashed2:s2"),
            Decision::Allow("hashed2"),
        ),
        (
            "suffix, {SHA256} wrong",
            "/img/a.png",
            Some("hashed2:s1"),
            Decision::Deny(Denial::Rejected),
        ),
        (
            "suffix before query",
            "/a.png?x=1",
            None,
            Decision::Deny(Denial::NoHeader),
        ),
        ("suffix only in query", "/a?x=.png", None, Decision::Pass),
        (
            "one rule, bob",
            "/api/x",
            Some("bob:b"),
            Decision::Allow("bob"),
        ),
        (
            "one rule, carol",
            "/api/x",
            Some("carol:c"),
            Decision::Deny(Denial::Rejected),
        ),
        (
            "both rules, alice",
            "/api/admin/x",
            Some("alice:a"),
            Decision::Allow("alice"),
        ),
        (
            "both rules, bob",
            "/api/admin/x",
            Some("bob:b"),
            Decision::Deny(Denial::Rejected),
        ),
        (
            "both rules, carol",
            "/api/admin/x",
            Some("carol:c"),
            Decision::Deny(Denial::Rejected),
        ),
        (
            "suffix and prefix, alice",
            "/api/a.png",
            Some("alice:a"),
            Decision::Deny(Denial::Rejected),
        ),
    ];
    for (name, path, credentials, expected) in cases {
        let value = credentials.map(basic);
        let got = decide(
            &config,
            b"GET",
            &[],
            path.as_bytes(),
            value.as_deref().map(str::as_bytes),
        );
        assert_eq!(got, *expected, "{name}");
    }
}

/// The walk-arounds: rules `prefix /admin [GET, POST]`, `exact /exact`,
/// `suffix .json`, and paths a hostile client sent to get past them.
#[test]
fn hostile_paths_and_methods_are_covered() {
    let doc = serde_json::json!({"basic_auth_rules": [
        {"prefix": "/admin", "request_methods": ["GET", "POST"], "credentials": ["a:b"]},
        {"exact": "/exact", "request_methods": ["GET"], "credentials": ["a:b"]},
        {"suffix": ".json", "request_methods": ["GET"], "credentials": ["a:b"]},
        {"prefix": "/delete-only", "request_methods": ["DELETE"], "credentials": ["a:b"]}
    ]});
    let config = Config::from_value(&doc).unwrap();
    let missing = Decision::Deny(Denial::NoHeader);
    let cases: &[(&str, &str, &[&str], Decision)] = &[
        ("GET", "//admin", &[], missing),
        (
            "GET",
            "/public%2F..%2Fadmin",
            &[],
            Decision::BadPath(PathError::EncodedSlash),
        ),
        ("GET", "/public/%2e%2e/admin", &[], missing),
        ("GET", "/public/..;/admin", &[], missing),
        ("GET", "/exact/", &[], missing),
        ("GET", "/exact;x=1", &[], missing),
        ("GET", "//exact", &[], missing),
        ("GET", "/data.json;x", &[], missing),
        ("GET", "/data.json/", &[], missing),
        ("GET", "/data.JSON", &[], missing),
        ("HEAD", "/admin", &[], missing),
        ("head", "/admin", &[], missing),
        ("HEAD", "/exact", &[], missing),
        ("PUT", "/admin", &[], Decision::Pass),
        ("GET", "/delete-only", &[], Decision::Pass),
        ("GET", "/delete-only", &["DELETE"], missing),
        ("POST", "/delete-only", &[" delete "], missing),
        ("GET", "/delete-only", &["PATCH"], Decision::Pass),
        (
            "GET",
            "/a%5Cb",
            &[],
            Decision::BadPath(PathError::EncodedSlash),
        ),
        ("GET", "/a\\b", &[], Decision::BadPath(PathError::Backslash)),
        ("GET", "/a%zz", &[], Decision::BadPath(PathError::BadEscape)),
        // Refused even where no rule would apply: the path has no one meaning.
        (
            "GET",
            "/public%2Fx",
            &[],
            Decision::BadPath(PathError::EncodedSlash),
        ),
        ("GET", "/public", &[], Decision::Pass),
        ("GET", "/public?x=%2F", &[], Decision::Pass),
    ];
    for (method, path, overrides, expected) in cases {
        let overrides: Vec<&[u8]> = overrides.iter().map(|o| o.as_bytes()).collect();
        let got = decide(
            &config,
            method.as_bytes(),
            &overrides,
            path.as_bytes(),
            None,
        );
        assert_eq!(got, *expected, "{method} {path} {overrides:?}");
    }
}

#[test]
fn denials_say_missing_or_wrong() {
    assert!(Denial::NoHeader.is_missing());
    assert!(Denial::NotBasic.is_missing());
    for d in [
        Denial::Several,
        Denial::TooLong,
        Denial::Empty,
        Denial::NotBase64,
        Denial::NotUtf8,
        Denial::NoColon,
        Denial::Rejected,
    ] {
        assert!(!d.is_missing(), "{d:?}");
    }
}
