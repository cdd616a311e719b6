//! `path`: `common::path`'s `normalize`, `RequestPath` and `PathRule`. Input: a
//! rule line (`prefix /admin`, `exact /x`, `suffix .json`), a newline, then the
//! request's `:path` (an input without a newline is all path).
//!
//! `normalize` is idempotent; a normalized absolute path starts with `/` and has no
//! `//`, no `.` or `..` segment, no `;`, `\`, `?` or `#`, and only uppercase escapes
//! of characters an upstream would not decode; a refusal has its cause in the
//! path. A rule that `PathRule::from_text` accepts is already normalized, covers its
//! own path, and covers a request exactly when its documented meaning covers the
//! request's raw or normalized form.

use common::path::{normalize, path_only, PathError, PathRule, RequestPath};
use common::ConfigError;

pub fn run(data: &[u8]) {
    let (rule_line, path) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b""[..], data),
    };
    let request = check_normalize(path);
    if let Some(rule) = parse_rule(rule_line) {
        check_rule(&rule);
        if let Some(request) = &request {
            check_match(&rule, request);
        }
    }
}

fn check_normalize(path: &[u8]) -> Option<RequestPath<'_>> {
    let only = path_only(path);
    assert!(path.starts_with(only) && !only.iter().any(|b| matches!(b, b'?' | b'#')));
    let normalized = match normalize(path) {
        Ok(n) => n,
        Err(e) => {
            let lower = only.to_ascii_lowercase();
            let has = |s: &[u8]| lower.windows(s.len()).any(|w| w == s);
            let cause = match e {
                PathError::Backslash => has(b"\\"),
                PathError::EncodedSlash => has(b"%2f") || has(b"%5c"),
                PathError::BadEscape => has(b"%"),
            };
            assert!(cause, "{e:?} without its cause");
            assert_eq!(RequestPath::new(path).err(), Some(e));
            return None;
        }
    };
    let n: &[u8] = &normalized;
    assert_eq!(normalize(n).as_deref(), Ok(n), "not idempotent");
    assert_eq!(normalize(only).as_deref(), Ok(n), "query changed the path");
    assert!(n.len() <= only.len() + 1, "grew");
    if only.starts_with(b"/") {
        assert!(n.starts_with(b"/"), "lost its leading /");
        assert!(!n.windows(2).any(|w| w == b"//"), "has //");
        for segment in n.split(|&b| b == b'/').skip(1) {
            assert!(segment != b"." && segment != b"..", "has a dot segment");
        }
        assert!(!n.iter().any(|b| matches!(b, b';' | b'\\' | b'?' | b'#')));
        let mut escapes = n.split(|&b| b == b'%').skip(1);
        assert!(escapes.all(escape_kept), "an escape left as is");
    }
    let request = RequestPath::new(path).expect("normalize accepted it");
    assert_eq!(request.raw, only);
    assert_eq!(&*request.normalized, n);
    Some(request)
}

/// What follows a `%` in a normalized path: two uppercase hex digits naming a
/// character no upstream decodes differently (not unreserved, not `/`, `\`, NUL).
fn escape_kept(after: &[u8]) -> bool {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let (Some(&h), Some(&l)) = (after.first(), after.get(1)) else {
        return false;
    };
    let Some(c) = hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l) else {
        return false;
    };
    let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
    !unreserved && !matches!(c, b'/' | b'\\' | 0)
}

fn parse_rule(line: &[u8]) -> Option<PathRule> {
    let line = String::from_utf8_lossy(line);
    let (kind, text) = match line.split_once(' ') {
        Some((kind @ ("prefix" | "exact" | "suffix"), text)) => (kind, text),
        _ => ("prefix", &*line),
    };
    let make: fn(String) -> PathRule = match kind {
        "exact" => PathRule::Exact,
        "suffix" => PathRule::Suffix,
        _ => PathRule::Prefix,
    };
    match PathRule::from_text(text, make) {
        Ok(rule) => Some(rule),
        Err(message) => {
            crate::configs::check_error(&ConfigError::new(kind, message));
            None
        }
    }
}

fn check_rule(rule: &PathRule) {
    let (text, own) = match rule {
        PathRule::Prefix(t) | PathRule::Exact(t) => (t.clone(), t.clone()),
        PathRule::Suffix(s) if s.starts_with('/') => (s.clone(), format!("/x{s}")),
        PathRule::Suffix(s) => (format!("/{s}"), format!("/x{s}")),
    };
    assert!(text.starts_with('/'), "{rule:?}");
    assert_eq!(
        normalize(text.as_bytes()).as_deref(),
        Ok(text.as_bytes()),
        "{rule:?} is not normalized"
    );
    let own = RequestPath::new(own.as_bytes()).expect("a normalized path is accepted");
    assert!(rule.matches(&own), "{rule:?} does not cover its own path");
}

/// `path` without one trailing `/`, unless it is the root.
fn trim(path: &[u8]) -> &[u8] {
    match path.strip_suffix(b"/") {
        Some(t) if !t.is_empty() => t,
        _ => path,
    }
}

fn ends_with_ignore_case(path: &[u8], end: &[u8]) -> bool {
    path.len() >= end.len() && path[path.len() - end.len()..].eq_ignore_ascii_case(end)
}

/// The rules' meaning as their documentation words it, for one form of the path.
fn covers(rule: &PathRule, path: &[u8]) -> bool {
    match rule {
        PathRule::Prefix(p) => {
            let p = p.as_bytes();
            path.starts_with(p) || (p.len() > 1 && p.ends_with(b"/") && path == &p[..p.len() - 1])
        }
        PathRule::Exact(p) => trim(path) == trim(p.as_bytes()),
        PathRule::Suffix(s) => {
            let s = s.as_bytes();
            ends_with_ignore_case(path, s) || ends_with_ignore_case(trim(path), trim(s))
        }
    }
}

fn check_match(rule: &PathRule, request: &RequestPath<'_>) {
    let matched = rule.matches(request);
    let want = covers(rule, &request.normalized) || covers(rule, request.raw);
    assert_eq!(matched, want, "{rule:?} vs {request:?}");
    // What the upstream resolves the path to is covered whatever form it came in.
    let resolved = RequestPath::new(&request.normalized).expect("normalized is accepted");
    if rule.matches(&resolved) {
        assert!(matched, "{rule:?} covers {resolved:?} but not {request:?}");
    }
    // Suffixes are file extensions on case-insensitive file systems.
    if let PathRule::Suffix(_) = rule {
        let swapped: Vec<u8> = request
            .raw
            .iter()
            .map(|&b| match b {
                b'a'..=b'z' => b.to_ascii_uppercase(),
                b'A'..=b'Z' => b.to_ascii_lowercase(),
                _ => b,
            })
            .collect();
        if let Ok(other) = RequestPath::new(&swapped) {
            assert_eq!(
                rule.matches(&other),
                matched,
                "{rule:?}: case of {request:?}"
            );
        }
    }
}
