//! `dispatch_auth_verdict` and `dispatch_auth_call`: what dispatch-auth reads from
//! the auth service's answer, and what it builds from the request for the call.
//!
//! `dispatch_auth_verdict` input: the answer's headers, one `name: value` a line
//! (`:status: 401`), an empty line, then the body. An answer is read as its status
//! says (2xx allows, 3xx/4xx deny as sent, a 5xx with `x-envoy-overloaded` is
//! Envoy's overload, anything else fails), only the allowed headers are copied,
//! in order, the body is read only when used, and an error quotes Envoy's own
//! text only.
//!
//! `dispatch_auth_call` input: a configuration on the first line (the default one
//! below when it is not valid), then the request's headers, one a line. The call
//! carries the pseudo-headers first, the `x-forwarded-*` trio, the allowed headers
//! in request order, then the fixed ones, and nothing else; a value it cannot
//! carry is named; the cache key depends on method, authority, path and key
//! headers only, and the boundary between them.

use crate::header_line;
use common::headers::is_spelling_of;
use dispatch_auth::call::{self, NotUtf8, Request};
use dispatch_auth::config::{CallPath, Config, FAILURE_MODE_HEADER};
use dispatch_auth::verdict::{classify, Failure, Outcome, Overload, Verdict};
use std::sync::OnceLock;

fn verdict_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::parse(
            br#"{"cluster": "auth", "allowed_upstream_headers": ["x-user-id", "X-Groups"],
                 "allowed_client_headers": ["www-authenticate", "location"]}"#,
        )
        .expect("the fixed config parses")
    })
}

/// The status as the answer gives it: the first `:status`, one to three digits.
fn status(headers: &[(&[u8], &[u8])]) -> Option<u32> {
    let (_, value) = headers.iter().find(|(n, _)| *n == b":status")?;
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The headers of `headers` named in `allowed` (any case), with the configured
/// name, in order.
fn allowed(headers: &[(&[u8], &[u8])], allowed: &[String]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(n, _)| {
            allowed
                .iter()
                .any(|a| a.as_bytes() == n.to_ascii_lowercase())
        })
        .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec()))
        .collect()
}

pub fn verdict(data: &[u8]) {
    let config = verdict_config();
    let mut headers = Vec::new();
    let mut body: &[u8] = b"";
    let mut rest = data;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &b""[..]),
        };
        if line.is_empty() {
            body = after;
            break;
        }
        headers.push(header_line(line));
        rest = after;
    }
    // The body is asked for only when the answer is not a 2xx: an allow never
    // pays for copying it out.
    let mut asked = false;
    let outcome = classify(config, &headers, || {
        asked = true;
        body.to_vec()
    });
    if asked {
        assert!(
            !matches!(status(&headers), Some(200..=299)),
            "body read for a 2xx"
        );
    }
    let expected_status = status(&headers);
    let envoy_overloaded = matches!(expected_status, Some(500..=599))
        && headers
            .iter()
            .any(|(n, v)| *n == b"x-envoy-overloaded" && v.eq_ignore_ascii_case(b"true"));
    match &outcome {
        Outcome::Failed(Failure::NoResponse) => assert!(headers.is_empty()),
        Outcome::Failed(Failure::BadStatus) => {
            assert!(!headers.is_empty() && expected_status.is_none())
        }
        Outcome::Failed(Failure::Status(s, reason)) => {
            assert_eq!(Some(*s), expected_status);
            assert!(!(200..=499).contains(s), "{s} is a decision");
            if let Some(reason) = reason {
                // Quoted in the warn log: only Envoy's own reply text, one line.
                assert!((500..=599).contains(s));
                assert!(
                    reason.starts_with("upstream ") || reason.starts_with("no healthy upstream")
                );
                assert!(reason.len() <= 300 && reason.bytes().all(|b| (b' '..=b'~').contains(&b)));
                let text = std::str::from_utf8(body).expect("quoted, so UTF-8");
                assert_eq!(text.trim_end(), reason);
            }
        }
        Outcome::Failed(Failure::Dispatch(_)) => panic!("classify never dispatches"),
        Outcome::Decided(Verdict::Allow { headers: copied }) => {
            assert!(matches!(expected_status, Some(200..=299)));
            assert_eq!(*copied, allowed(&headers, &config.allowed_upstream_headers));
        }
        Outcome::Decided(Verdict::Deny {
            status,
            headers: copied,
            body: sent,
        }) => {
            assert_eq!(Some(*status), expected_status);
            assert!((300..=499).contains(status));
            assert_eq!(*copied, allowed(&headers, &config.allowed_client_headers));
            // A 304 carries no body (RFC 9110), whatever the service sent.
            let want: &[u8] = if *status == 304 { b"" } else { body };
            assert_eq!(sent.as_slice(), want);
        }
        Outcome::Failed(Failure::Overloaded(overload)) => {
            assert_eq!(
                *overload,
                Overload::Envoy,
                "classify neither caps nor dispatches"
            );
            assert!(matches!(expected_status, Some(500..=599)));
            assert!(
                envoy_overloaded,
                "overloaded without x-envoy-overloaded: true"
            );
        }
    }
    if let Outcome::Failed(Failure::Status(..)) = &outcome {
        assert!(
            !envoy_overloaded,
            "Envoy's overload read as the service's error"
        );
    }
    if let Outcome::Failed(failure) = &outcome {
        let text = failure.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    if let Outcome::Decided(v) = &outcome {
        let (headers, body) = match v {
            Verdict::Allow { headers } => (headers, &[][..]),
            Verdict::Deny { headers, body, .. } => (headers, body.as_slice()),
        };
        let size: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert_eq!(v.size(), size + body.len(), "size");
    }
}

fn default_call_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::parse(
            br#"{"cluster": "outbound|8000||auth.ns.svc.cluster.local", "path_prefix": "/check",
                 "allowed_headers": ["authorization", "cookie"], "headers_to_add": {"x-source": "gw"},
                 "cache": {"ttl_ms": 1000, "key_headers": ["authorization"]}}"#,
        )
        .expect("the fixed config parses")
    })
}

pub fn call(data: &[u8]) {
    let mut lines = crate::lines(data);
    let parsed = Config::parse(lines.next().unwrap_or_default()).ok();
    let config = parsed.as_ref().unwrap_or_else(|| default_call_config());
    let pairs: Vec<(&[u8], &[u8])> = lines.map(header_line).collect();
    let request = Request::read(config, pairs.iter().copied());

    let last = |name: &[u8]| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    assert_eq!(request.method, last(b":method"));
    assert_eq!(request.path, last(b":path"));
    assert_eq!(request.authority, last(b":authority"));
    assert_eq!(
        request.forwarded,
        occurrences(&pairs, &config.allowed_headers)
    );
    if config.cache.ttl_ms > 0 {
        assert_eq!(
            request.keyed,
            occurrences(&pairs, &config.cache.key_headers)
        );
    } else {
        assert!(request.keyed.is_empty());
    }
    // Every client-sent spelling of a header only the plugin sets, each once.
    let own = |name: &[u8]| {
        config
            .allowed_upstream_headers
            .iter()
            .map(String::as_str)
            .chain([FAILURE_MODE_HEADER])
            .any(|own| is_spelling_of(name, own))
    };
    let mut forged: Vec<&str> = Vec::new();
    for (name, _) in &pairs {
        match std::str::from_utf8(name) {
            Ok(name) if own(name.as_bytes()) && !forged.contains(&name) => forged.push(name),
            _ => {}
        }
    }
    assert_eq!(request.forged, forged, "forged identity headers");

    let mut joined = String::new();
    match call::headers(config, &request, &mut joined) {
        Ok(headers) => check_call(config, &request, &headers),
        Err(NotUtf8(name)) => {
            let bad = |v: Option<&[u8]>| v.is_some_and(|v| std::str::from_utf8(v).is_err());
            let named = match name {
                ":method" => bad(request.method),
                ":path" => bad(request.path),
                ":authority" => bad(request.authority),
                _ => request
                    .forwarded
                    .iter()
                    .any(|(n, v)| *n == name && bad(Some(v))),
            };
            assert!(named, "{name} named, yet it is UTF-8");
        }
    }
    check_key(&request, &pairs, config);
}

/// The headers of `pairs` named in `names` (exactly: Envoy's names are lowercase),
/// with the configured name, in order.
fn occurrences<'a>(
    pairs: &[(&'a [u8], &'a [u8])],
    names: &'a [String],
) -> Vec<(&'a str, &'a [u8])> {
    pairs
        .iter()
        .filter_map(|(n, v)| {
            let name = names.iter().find(|c| c.as_bytes() == *n)?;
            Some((name.as_str(), *v))
        })
        .collect()
}

fn check_call(config: &Config, request: &Request<'_>, headers: &[(&str, &str)]) {
    fn text(v: Option<&[u8]>) -> Option<&str> {
        v.map(|v| std::str::from_utf8(v).expect("checked"))
    }
    let (method, path, authority) = (
        text(request.method),
        text(request.path),
        text(request.authority),
    );
    let call_method = config.method.as_deref().or(method).unwrap_or("GET");
    let call_path = match (&config.path, path) {
        (CallPath::Fixed(p), _) => p.clone(),
        (CallPath::Prefix(prefix), Some(p)) => format!("{prefix}{p}"),
        (CallPath::Prefix(prefix), None) if prefix.is_empty() => "/".to_string(),
        (CallPath::Prefix(prefix), None) => prefix.clone(),
    };
    let mut want: Vec<(&str, String)> = vec![
        (":method", call_method.to_string()),
        (":path", call_path),
        (":authority", config.authority.clone()),
    ];
    let forwarded = [
        ("x-forwarded-host", authority),
        ("x-forwarded-method", method),
        ("x-forwarded-uri", path),
    ];
    for (name, value) in forwarded {
        if let Some(value) = value {
            want.push((name, value.to_string()));
        }
    }
    for (name, value) in &request.forwarded {
        want.push((name, text(Some(value)).expect("forwarded").to_string()));
    }
    for (name, value) in &config.headers_to_add {
        want.push((name, value.clone()));
    }
    let got: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
    assert_eq!(got, want, "the call's headers");
}

/// The key changes with what the decision may depend on, and with nothing else.
fn check_key(request: &Request<'_>, pairs: &[(&[u8], &[u8])], config: &Config) {
    let key = call::key(request);
    let mut noisy = pairs.to_vec();
    let noise: &[u8] = b"x-fuzz-noise";
    let unrelated = !config.allowed_headers.iter().any(|n| n.as_bytes() == noise)
        && !config
            .cache
            .key_headers
            .iter()
            .any(|n| n.as_bytes() == noise);
    if unrelated {
        noisy.insert(noisy.len() / 2, (noise, b"1"));
        let again = Request::read(config, noisy.iter().copied());
        assert_eq!(
            call::key(&again),
            key,
            "an unrelated header changed the key"
        );
    }
    // One byte moved across a boundary, or a part present but empty instead of
    // absent, is another request.
    if let (Some(method), Some(path)) = (request.method, request.path) {
        if let Some((&last, head)) = method.split_last() {
            let moved = [&[last][..], path].concat();
            let shifted = Request {
                method: Some(head),
                path: Some(&moved),
                authority: request.authority,
                forwarded: Vec::new(),
                keyed: request.keyed.clone(),
                forged: Vec::new(),
            };
            assert_ne!(call::key(&shifted), key, "a byte moved from method to path");
        }
    }
    if request.authority.is_none() {
        let empty = Request {
            method: request.method,
            path: request.path,
            authority: Some(b""),
            forwarded: Vec::new(),
            keyed: request.keyed.clone(),
            forged: Vec::new(),
        };
        assert_ne!(call::key(&empty), key, "empty authority keyed as absent");
    }
}
