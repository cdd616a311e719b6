//! Finding the token in each place, taking it out, and the rules' decisions.

use super::*;
use crate::config::Config;
use serde_json::json;

fn config() -> Config {
    let jwks =
        json!({"keys": [{"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]});
    Config::from_value(&json!({
        "providers": {
            "a": {"issuer": "a", "local_jwks": jwks, "claim_to_headers": [{"claim": "sub", "header": "x-sub"}]},
            "b": {"issuer": "b", "local_jwks": jwks, "from_headers": [{"name": "x-token"}, {"name": "authorization", "value_prefix": "JWT "}], "from_params": ["t"], "from_cookies": ["jwt"]},
        },
        "rules": [
            {"exact": "/open", "providers": []},
            {"prefix": "/b", "providers": ["b"]},
            {"suffix": ".json", "request_methods": ["GET"], "providers": ["a"], "allow_missing": true},
            {"prefix": "/", "request_methods": ["POST"], "providers": ["a", "b"]},
        ],
    }))
    .unwrap()
}

#[test]
fn tokens_are_found_in_each_place() {
    let config = config();
    let all = 0b11;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u32, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("/", vec![("authorization", "Bearer abc")], all, Some("abc")),
        (
            "/",
            vec![("authorization", "bearer   abc  ")],
            all,
            Some("abc"),
        ),
        ("/", vec![("authorization", "Basic abc")], all, None),
        ("/", vec![("authorization", "Bearer ")], all, None),
        ("/", vec![("authorization", "JWT xyz")], 0b10, Some("xyz")),
        ("/", vec![("authorization", "JWT xyz")], 0b01, None),
        ("/", vec![("x-token", "t1")], 0b10, Some("t1")),
        ("/", vec![("x-token", "t1")], 0b01, None),
        ("/p?a=1&t=q1&b", vec![], 0b10, Some("q1")),
        ("/p?t=", vec![], 0b10, None),
        ("/p?tt=1#t=2", vec![], 0b10, None),
        (
            "/",
            vec![("cookie", "a=1; jwt=c1"), ("cookie", "b=2")],
            0b10,
            Some("c1"),
        ),
        (
            "/",
            vec![("cookie", "a=1"), ("cookie", "jwt = c2 ")],
            0b10,
            Some("c2"),
        ),
        ("/", vec![("cookie", "notjwt=c3")], 0b10, None),
        // The first place in config order wins: a's header before b's places.
        (
            "/p?t=q1",
            vec![("authorization", "Bearer first")],
            all,
            Some("first"),
        ),
    ];
    for (path, headers, allowed, expected) in cases {
        let mut pairs: Vec<(&[u8], &[u8])> =
            vec![(b":method", b"GET"), (b":path", path.as_bytes())];
        pairs.extend(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let request = Request::read(&config, pairs);
        let found = find_token(&config, &request, allowed)
            .map(|(_, t)| String::from_utf8_lossy(t).into_owned());
        assert_eq!(found.as_deref(), expected, "{path} {headers:?} {allowed:b}");
    }
}

#[test]
fn tokens_are_taken_out_of_paths_and_cookies() {
    let cases = [
        ("/x?t=1", "/x"),
        ("/x?a=1&t=1&b=2&t=3", "/x?a=1&b=2"),
        ("/x?tt=1", "/x?tt=1"),
        ("/x", "/x"),
        ("/x?&t", "/x"),
    ];
    for (path, expected) in cases {
        assert_eq!(
            String::from_utf8(path_without_param(path.as_bytes(), "t")).unwrap(),
            expected
        );
    }
    let cookies: [&[u8]; 2] = [b"a=1; jwt=x", b"jwt=y;b=2"];
    assert_eq!(
        cookies_without(&cookies, "jwt").as_deref(),
        Some(&b"a=1; b=2"[..])
    );
    assert_eq!(cookies_without(&[b"jwt=x"], "jwt"), None);
}

#[test]
fn the_first_matching_rule_decides_for_each_method() {
    let config = config();
    let check = |allowed, required| Decision::Check { allowed, required };
    let cases: Vec<(&str, &[&str], &str, Decision)> = vec![
        ("GET", &[], "/open", Decision::Pass),
        ("GET", &[], "/open/", Decision::Pass),
        ("GET", &[], "/b/x", check(0b10, true)),
        ("GET", &[], "/x.json", check(0b01, false)),
        ("HEAD", &[], "/x.JSON", check(0b01, false)),
        ("DELETE", &[], "/x.json", Decision::Pass),
        ("POST", &[], "/x.json", check(0b11, true)),
        ("GET", &["POST"], "/x.json", check(0b01, true)),
        ("GET", &["post"], "/open", Decision::Pass),
        ("GET", &[], "/a/../b/x", check(0b10, true)),
        ("GET", &[], "/%62/x", check(0b10, true)),
        (
            "GET",
            &[],
            "/b%2fx",
            Decision::BadPath(common::path::PathError::EncodedSlash),
        ),
    ];
    for (method, overrides, path, expected) in cases {
        let overrides: Vec<&[u8]> = overrides.iter().map(|o| o.as_bytes()).collect();
        assert_eq!(
            decide(&config, method.as_bytes(), &overrides, path.as_bytes()),
            expected,
            "{method} {overrides:?} {path}"
        );
    }
}

#[test]
fn claim_header_spellings_and_overrides_are_read() {
    let config = config();
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b"x-sub", b"1"),
        (b"x_sub", b"2"),
        (b"x-sub", b"3"),
        (b"x-http-method-override", b"POST"),
        (b"x_method_override", b"PUT"),
    ];
    let request = Request::read(&config, pairs);
    assert_eq!(request.spoofed, [&b"x-sub"[..], b"x_sub"]);
    assert_eq!(request.overrides, [&b"POST"[..], b"PUT"]);
}
