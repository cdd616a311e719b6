//! The auth call built from the original request: pseudo-headers, the
//! `x-forwarded-*` trio, the allowed headers and the fixed ones, never the body;
//! and the cache key of the request.

use crate::cache::Key;
use crate::config::{CallPath, Config};
use sha2::{Digest, Sha256};

/// What the plugin needs from the request headers, read in one pass.
#[derive(Debug, Default)]
pub struct Request<'a> {
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub authority: Option<&'a [u8]>,
    /// Occurrences of `allowed_headers`, in request order, with the configured name.
    pub forwarded: Vec<(&'a str, &'a [u8])>,
    /// Occurrences of the cache's `key_headers`, in request order.
    pub keyed: Vec<(&'a str, &'a [u8])>,
}

fn find<'c>(names: &'c [String], name: &[u8]) -> Option<&'c str> {
    names
        .iter()
        .find(|n| n.as_bytes() == name)
        .map(String::as_str)
}

impl<'a> Request<'a> {
    /// Reads the pairs of a request header map (names are lowercase in Envoy).
    pub fn read<'c: 'a>(
        config: &'c Config,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let caching = config.cache.ttl_ms > 0;
        let mut request = Request::default();
        for (name, value) in pairs {
            match name {
                b":method" => request.method = Some(value),
                b":path" => request.path = Some(value),
                b":authority" => request.authority = Some(value),
                _ => {
                    if let Some(n) = find(&config.allowed_headers, name) {
                        request.forwarded.push((n, value));
                    }
                    if caching {
                        if let Some(n) = find(&config.cache.key_headers, name) {
                            request.keyed.push((n, value));
                        }
                    }
                }
            }
        }
        request
    }
}

/// A request the plugin cannot forward faithfully: the named header's value is
/// not UTF-8, which the host's call interface cannot carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8<'a>(pub &'a str);

fn text<'a>(name: &'a str, value: &'a [u8]) -> Result<&'a str, NotUtf8<'a>> {
    std::str::from_utf8(value).map_err(|_| NotUtf8(name))
}

/// The call's headers, pseudo-headers first, in the form the host call takes.
/// `joined` holds the call's path when it is `path_prefix` + the original path,
/// the one value not already in the config or the request.
pub fn headers<'a>(
    config: &'a Config,
    request: &Request<'a>,
    joined: &'a mut String,
) -> Result<Vec<(&'a str, &'a str)>, NotUtf8<'a>> {
    let method = request.method.map(|m| text(":method", m)).transpose()?;
    let path = request.path.map(|p| text(":path", p)).transpose()?;
    let authority = request
        .authority
        .map(|a| text(":authority", a))
        .transpose()?;
    let call_method: &'a str = match (&config.method, method) {
        (Some(m), _) => m,
        (None, Some(m)) => m,
        (None, None) => "GET",
    };
    let call_path: &'a str = match (&config.path, path) {
        (CallPath::Fixed(p), _) => p,
        (CallPath::Prefix(prefix), Some(p)) if prefix.is_empty() => p,
        (CallPath::Prefix(prefix), Some(p)) => {
            joined.clear();
            joined.push_str(prefix);
            joined.push_str(p);
            joined
        }
        // CONNECT has no :path; the call still needs one.
        (CallPath::Prefix(prefix), None) if prefix.is_empty() => "/",
        (CallPath::Prefix(prefix), None) => prefix,
    };
    let mut out = Vec::with_capacity(6 + request.forwarded.len() + config.headers_to_add.len());
    out.push((":method", call_method));
    out.push((":path", call_path));
    out.push((":authority", config.authority.as_str()));
    if let Some(a) = authority {
        out.push(("x-forwarded-host", a));
    }
    if let Some(m) = method {
        out.push(("x-forwarded-method", m));
    }
    if let Some(p) = path {
        out.push(("x-forwarded-uri", p));
    }
    for (name, value) in &request.forwarded {
        out.push((*name, text(name, value)?));
    }
    for (name, value) in &config.headers_to_add {
        out.push((name.as_str(), value.as_str()));
    }
    Ok(out)
}

/// The cache key: method, authority, path and every occurrence of the key
/// headers, each length-prefixed so no two different requests share an input.
/// The authority is part of it: one gateway serves many hosts, and the auth
/// service sees the host (`x-forwarded-host`) when it decides.
pub fn key(request: &Request<'_>) -> Key {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    for part in [request.method, request.authority, request.path] {
        // A tag byte keeps "absent" apart from every value, the empty one included.
        match part {
            Some(bytes) => {
                field(b"\x01");
                field(bytes);
            }
            None => field(b"\x00"),
        }
    }
    for (name, value) in &request.keyed {
        field(name.as_bytes());
        field(value);
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
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
            NotUtf8("authorization".into())
        );
        let p: Vec<(&[u8], &[u8])> = vec![(b":method", b"GET"), (b":path", b"/\xff")];
        let r = Request::read(&c, p.iter().copied());
        assert_eq!(
            headers(&c, &r, &mut String::new()).unwrap_err(),
            NotUtf8(":path".into())
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
}
