//! The call's headers, the cache key and the forged-header scan, table-driven.

use super::*;

fn config(json: &str) -> Config {
    Config::parse(json.as_bytes()).unwrap()
}

fn pairs<'a>(p: &'a [(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
    p.iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect()
}

const REQUEST: &[(&str, &str)] = &[
    (":method", "POST"),
    (":path", "/api/items?id=3"),
    (":authority", "shop.example"),
    ("authorization", "Bearer abc"),
    ("cookie", "a=1"),
    ("x-secret", "do not forward"),
    ("authorization", "Bearer second"),
    ("content-length", "12"),
];

fn call(json: &str, request: &[(&str, &str)]) -> Vec<(String, String)> {
    let c = config(json);
    let p = pairs(request);
    let r = Request::read(&c, p.iter().copied());
    let mut joined = String::new();
    headers(&c, &r, &mut joined)
        .unwrap()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn table() {
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
    );
    let cases: &[Case] = &[
        (
            "defaults: original method and path, only authorization",
            r#"{"cluster": "outbound|8000||auth.ns.svc.cluster.local"}"#,
            REQUEST,
            &[
                (":method", "POST"),
                (":path", "/api/items?id=3"),
                (":authority", "auth.ns.svc.cluster.local"),
                ("x-forwarded-host", "shop.example"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/api/items?id=3"),
                ("authorization", "Bearer abc"),
                ("authorization", "Bearer second"),
            ],
        ),
        (
            "prefix, method, allowed headers and fixed headers",
            r#"{"cluster": "auth", "path_prefix": "/check", "method": "GET",
                "allowed_headers": ["cookie", "Authorization"],
                "headers_to_add": {"x-auth-source": "gateway"}}"#,
            REQUEST,
            &[
                (":method", "GET"),
                (":path", "/check/api/items?id=3"),
                (":authority", "auth"),
                ("x-forwarded-host", "shop.example"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/api/items?id=3"),
                ("authorization", "Bearer abc"),
                ("cookie", "a=1"),
                ("authorization", "Bearer second"),
                ("x-auth-source", "gateway"),
            ],
        ),
        (
            "fixed path and authority",
            r#"{"cluster": "auth", "path": "/verify", "authority": "auth.internal", "allowed_headers": []}"#,
            REQUEST,
            &[
                (":method", "POST"),
                (":path", "/verify"),
                (":authority", "auth.internal"),
                ("x-forwarded-host", "shop.example"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/api/items?id=3"),
            ],
        ),
        (
            "no :path (CONNECT)",
            r#"{"cluster": "auth"}"#,
            &[(":method", "CONNECT"), (":authority", "db:5432")],
            &[
                (":method", "CONNECT"),
                (":path", "/"),
                (":authority", "auth"),
                ("x-forwarded-host", "db:5432"),
                ("x-forwarded-method", "CONNECT"),
            ],
        ),
        (
            "no :path with a prefix",
            r#"{"cluster": "auth", "path_prefix": "/check"}"#,
            &[(":method", "CONNECT")],
            &[
                (":method", "CONNECT"),
                (":path", "/check"),
                (":authority", "auth"),
                ("x-forwarded-method", "CONNECT"),
            ],
        ),
    ];
    for (name, json, request, expected) in cases {
        assert_eq!(call(json, request), owned(expected), "{name}");
    }
}

#[test]
fn values_that_are_not_utf8_are_refused_by_name() {
    let c = config(r#"{"cluster": "auth"}"#);
    let p: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":path", b"/"),
        (b"authorization", b"Bearer \xff"),
    ];
    let r = Request::read(&c, p.iter().copied());
    assert_eq!(
        headers(&c, &r, &mut String::new()).unwrap_err(),
        NotUtf8("authorization")
    );
    let p: Vec<(&[u8], &[u8])> = vec![(b":method", b"GET"), (b":path", b"/\xff")];
    let r = Request::read(&c, p.iter().copied());
    assert_eq!(
        headers(&c, &r, &mut String::new()).unwrap_err(),
        NotUtf8(":path")
    );
    // A header that is not forwarded may hold anything.
    let p: Vec<(&[u8], &[u8])> = vec![(b":path", b"/"), (b"x-other", b"\xff")];
    let r = Request::read(&c, p.iter().copied());
    assert!(headers(&c, &r, &mut String::new()).is_ok());
}

fn key_of(json: &str, request: &[(&str, &str)]) -> Key {
    let c = config(json);
    let p = pairs(request);
    key(&Request::read(&c, p.iter().copied()))
}

#[test]
fn keys() {
    let json = r#"{"cluster": "a", "allowed_headers": ["authorization", "cookie"],
                   "cache": {"ttl_ms": 1000, "key_headers": ["authorization"]}}"#;
    let base = [
        (":method", "GET"),
        (":path", "/a"),
        (":authority", "h"),
        ("authorization", "t1"),
    ];
    let k = key_of(json, &base);
    let same: &[(&str, &[(&str, &str)])] = &[
        ("identical", &base),
        (
            "other headers do not count",
            &[
                (":method", "GET"),
                (":path", "/a"),
                (":authority", "h"),
                ("authorization", "t1"),
                ("cookie", "x"),
                ("x-b", "y"),
            ],
        ),
        (
            "order of pseudo-headers does not count",
            &[
                ("authorization", "t1"),
                (":authority", "h"),
                (":path", "/a"),
                (":method", "GET"),
            ],
        ),
    ];
    for (name, request) in same {
        assert_eq!(key_of(json, request), k, "{name}");
    }
    let different: &[(&str, &[(&str, &str)])] = &[
        (
            "method",
            &[
                (":method", "POST"),
                (":path", "/a"),
                (":authority", "h"),
                ("authorization", "t1"),
            ],
        ),
        (
            "path",
            &[
                (":method", "GET"),
                (":path", "/b"),
                (":authority", "h"),
                ("authorization", "t1"),
            ],
        ),
        (
            "query",
            &[
                (":method", "GET"),
                (":path", "/a?x"),
                (":authority", "h"),
                ("authorization", "t1"),
            ],
        ),
        (
            "authority",
            &[
                (":method", "GET"),
                (":path", "/a"),
                (":authority", "h2"),
                ("authorization", "t1"),
            ],
        ),
        (
            "authorization",
            &[
                (":method", "GET"),
                (":path", "/a"),
                (":authority", "h"),
                ("authorization", "t2"),
            ],
        ),
        (
            "no authorization",
            &[(":method", "GET"), (":path", "/a"), (":authority", "h")],
        ),
        (
            "empty authorization",
            &[
                (":method", "GET"),
                (":path", "/a"),
                (":authority", "h"),
                ("authorization", ""),
            ],
        ),
        (
            "repeated",
            &[
                (":method", "GET"),
                (":path", "/a"),
                (":authority", "h"),
                ("authorization", "t1"),
                ("authorization", "t1"),
            ],
        ),
        (
            "no authority",
            &[(":method", "GET"), (":path", "/a"), ("authorization", "t1")],
        ),
        (
            "shifted bytes",
            &[
                (":method", "GE"),
                (":path", "T/a"),
                (":authority", "h"),
                ("authorization", "t1"),
            ],
        ),
    ];
    for (name, request) in different {
        assert_ne!(key_of(json, request), k, "{name}");
    }
    // key_headers default to allowed_headers: the cookie counts then.
    let all = r#"{"cluster": "a", "allowed_headers": ["authorization", "cookie"], "cache": {"ttl_ms": 1000}}"#;
    let with_cookie = [
        (":method", "GET"),
        (":path", "/a"),
        (":authority", "h"),
        ("authorization", "t1"),
        ("cookie", "x"),
    ];
    assert_ne!(key_of(all, &base), key_of(all, &with_cookie));
}

#[test]
fn forged_headers_are_found_in_every_spelling() {
    let c = config(r#"{"cluster": "a", "allowed_upstream_headers": ["x-user-id", "x-groups"]}"#);
    let request = [
        (":method", "GET"),
        (":path", "/"),
        ("x-user-id", "1"),
        ("x_user_id", "2"),
        ("x-user_id", "3"),
        ("x_user_id", "again"),
        ("x_groups", "admin"),
        ("x-auth-failure-mode-allowed", "true"),
        ("x_auth_failure_mode_allowed", "true"),
        ("x-user-idx", "not a spelling"),
        ("x.user.id", "not a spelling"),
        ("authorization", "Bearer t"),
    ];
    let p = pairs(&request);
    let r = Request::read(&c, p.iter().copied());
    assert_eq!(
        r.forged,
        [
            "x-user-id",
            "x_user_id",
            "x-user_id",
            "x_groups",
            "x-auth-failure-mode-allowed",
            "x_auth_failure_mode_allowed"
        ]
    );
    // An honest request allocates nothing for it.
    let p = pairs(&REQUEST[..4]);
    let r = Request::read(&c, p.iter().copied());
    assert!(r.forged.is_empty());
    assert_eq!(r.forged.capacity(), 0);
}
