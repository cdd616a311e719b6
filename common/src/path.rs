//! Path rules that match what the upstream will serve: a request path is compared
//! as Envoy passed it and as an upstream resolves it (unreserved escapes decoded,
//! `//` merged, `.` and `..` removed, `;parameters` dropped), and paths whose
//! meaning differs between upstreams (an encoded `/` or `\`, a bad escape) are
//! refused. Hand-written: no crate does this normalization, and it must not panic.

use std::borrow::Cow;

pub mod fields;

/// Why a request path is refused. The names are safe to log: none quotes the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` or `%5C`: one upstream decodes it into a separator, another does not,
    /// so no rule can say which resource it names (Envoy's `REJECT_REQUEST`).
    EncodedSlash,
    /// A literal `\`, which some upstreams take for `/`.
    Backslash,
    /// `%` not followed by two hex digits, or an encoded NUL.
    BadEscape,
}

impl PathError {
    pub fn reason(self) -> &'static str {
        match self {
            PathError::EncodedSlash => "the path has an encoded '/' or '\\'",
            PathError::Backslash => "the path has a '\\'",
            PathError::BadEscape => "the path has an invalid percent-encoding",
        }
    }
}

/// The status and body for a refused path.
pub const BAD_PATH_STATUS: u32 = 400;
pub const BAD_PATH_BODY: &str = "Bad request: path not accepted\n";

/// The path of a `:path` value: without query string and fragment.
pub fn path_only(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// True when `path` may change under [`normalize`]; most paths do not, and cost no
/// allocation. `/.` also catches harmless names like `/.well-known`: those only
/// take the slow path.
fn needs_work(path: &[u8]) -> bool {
    path.iter().any(|&b| matches!(b, b'%' | b';' | b'\\'))
        || path.windows(2).any(|pair| pair == b"//" || pair == b"/.")
}

/// Decodes `%XX` escapes of unreserved characters, writes the others with
/// uppercase hex, and refuses what cannot be resolved safely.
fn decode(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut bytes = path.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let high = bytes.next().and_then(hex).ok_or(PathError::BadEscape)?;
                let low = bytes.next().and_then(hex).ok_or(PathError::BadEscape)?;
                match high * 16 + low {
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    0 => return Err(PathError::BadEscape),
                    c if unreserved(c) => out.push(c),
                    c => {
                        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
                        out.push(b'%');
                        out.extend(DIGITS.get(usize::from(c >> 4)));
                        out.extend(DIGITS.get(usize::from(c & 15)));
                    }
                }
            }
            _ => out.push(b),
        }
    }
    Ok(out)
}

/// The path (query and fragment removed) as an upstream resolves it: unreserved
/// escapes decoded, empty segments merged, `;parameters` dropped from each segment,
/// `.` and `..` resolved (never above the root). A path that ends in a directory
/// (`/a/`, `/a/.`, `/a/b/..`) keeps one trailing `/`. A path that does not start
/// with `/` (`*`, an authority) is returned as it is.
pub fn normalize(path: &[u8]) -> Result<Cow<'_, [u8]>, PathError> {
    let path = path_only(path);
    if !needs_work(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path)?;
    let Some(rest) = decoded.strip_prefix(b"/") else {
        return Ok(Cow::Owned(decoded));
    };
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    let mut ends_in_directory = false;
    for segment in rest.split(|&b| b == b'/') {
        let segment = segment.split(|&b| b == b';').next().unwrap_or_default();
        match segment {
            b"" | b"." => ends_in_directory = true,
            b".." => {
                let parent = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(parent);
                ends_in_directory = true;
            }
            name => {
                out.push(b'/');
                out.extend_from_slice(name);
                ends_in_directory = false;
            }
        }
    }
    if out.is_empty() || ends_in_directory {
        out.push(b'/');
    }
    Ok(Cow::Owned(out))
}

/// Headers through which frameworks (Rails, Laravel, Spring's HiddenHttpMethodFilter
/// kin, ASP.NET) let a client replace the method. A rule covers a request whose
/// method or any such override it lists, so `GET` + `X-HTTP-Method-Override: DELETE`
/// cannot reach a DELETE handler that a rule protects.
pub const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// How many override values are looked at; a request with more is odd, and the
/// first few decide as well as any.
pub const MAX_OVERRIDES: usize = 4;

/// A request path in the two forms rules are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    /// As Envoy passed it, without query and fragment.
    pub raw: &'a [u8],
    /// As an upstream resolves it.
    pub normalized: Cow<'a, [u8]>,
}

impl<'a> RequestPath<'a> {
    /// Both forms of a `:path` value, or why it is refused.
    pub fn new(path: &'a [u8]) -> Result<Self, PathError> {
        Ok(RequestPath {
            raw: path_only(path),
            normalized: normalize(path)?,
        })
    }
}

/// How a rule matches a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// Paths that start with this string (`/productpage` covers `/productpage2`
    /// too); a prefix that ends in `/` also covers the path without it (`/admin/`
    /// covers `/admin`, which most upstreams serve as the same index).
    Prefix(String),
    /// This path, with or without a trailing `/`.
    Exact(String),
    /// Paths that end with this string, with or without a trailing `/`, compared
    /// case-insensitively (`.json` covers `/a.JSON/`): file extensions name the
    /// same file on case-insensitive file systems.
    Suffix(String),
}

/// `path` without one trailing `/`, unless it is the root.
fn trim_slash(path: &[u8]) -> &[u8] {
    match path.strip_suffix(b"/") {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    }
}

fn ends_with_ignore_case(path: &[u8], suffix: &[u8]) -> bool {
    path.len() >= suffix.len()
        && path
            .get(path.len() - suffix.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
}

impl PathRule {
    /// Reads a rule's path of kind `make`. Rule paths must already be in
    /// normalized form (a rule with `//`, `..` or `;` would never match a
    /// normalized path); the error says how to write it.
    pub fn from_text(text: &str, make: fn(String) -> PathRule) -> Result<PathRule, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.contains(['?', '#']) {
            return Err(
                "must not contain '?' or '#': paths are matched without query string and fragment"
                    .into(),
            );
        }
        // Any control character, C1 (U+0080..=U+009F) included: the error below
        // quotes the path, and is logged as one line.
        if text.chars().any(|c| c.is_control() || c == ' ') {
            return Err("must not contain spaces or control characters".into());
        }
        if text.contains(';') {
            return Err("must not contain ';': paths are matched without ;parameters".into());
        }
        let rule = make(text.to_string());
        let absolute = match rule {
            PathRule::Suffix(_) if !text.starts_with('/') => format!("/{text}"),
            PathRule::Suffix(_) => text.to_string(),
            _ if !text.starts_with('/') => return Err("must start with '/'".into()),
            _ => text.to_string(),
        };
        let normalized = normalize(absolute.as_bytes()).map_err(|e| {
            format!(
                "cannot be matched: {}",
                e.reason().replace("the path", "it")
            )
        })?;
        if *normalized != *absolute.as_bytes() {
            let hint = String::from_utf8_lossy(&normalized);
            let hint = match rule {
                PathRule::Suffix(_) if !text.starts_with('/') => hint.trim_start_matches('/'),
                _ => &hint,
            };
            return Err(format!(
                "is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write '{hint}'"
            ));
        }
        Ok(rule)
    }

    fn matches_one(&self, path: &[u8]) -> bool {
        match self {
            PathRule::Prefix(p) => {
                let p = p.as_bytes();
                path.starts_with(p) || (p.len() > 1 && p.ends_with(b"/") && path == trim_slash(p))
            }
            PathRule::Exact(p) => trim_slash(path) == trim_slash(p.as_bytes()),
            PathRule::Suffix(s) => {
                let s = s.as_bytes();
                ends_with_ignore_case(path, s)
                    || ends_with_ignore_case(trim_slash(path), trim_slash(s))
            }
        }
    }

    /// True when the rule covers the path in either form: a path that names a
    /// covered resource to any upstream is covered.
    pub fn matches(&self, path: &RequestPath<'_>) -> bool {
        self.matches_one(&path.normalized)
            || (*path.normalized != *path.raw && self.matches_one(path.raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, PathError> {
        normalize(path.as_bytes()).map(|p| String::from_utf8_lossy(&p).into_owned())
    }

    #[test]
    fn normalization_table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/a/b?x=1", Ok("/a/b")),
            ("/a/b#f", Ok("/a/b")),
            ("//admin", Ok("/admin")),
            ("/a//b///c", Ok("/a/b/c")),
            ("/a/./b", Ok("/a/b")),
            ("/a/../b", Ok("/b")),
            ("/../../b", Ok("/b")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/.", Ok("/a/b/")),
            ("/a/", Ok("/a/")),
            ("/a//", Ok("/a/")),
            ("/..", Ok("/")),
            ("/exact;x=1", Ok("/exact")),
            ("/data.json;x", Ok("/data.json")),
            ("/a;x/b;y=1;z", Ok("/a/b")),
            ("/public/..;/admin", Ok("/admin")),
            ("/;x/admin", Ok("/admin")),
            ("/%70roductpage", Ok("/productpage")),
            ("/%2e%2e/admin", Ok("/admin")),
            ("/a/%2E%2E/b", Ok("/b")),
            ("/%7euser", Ok("/~user")),
            ("/a%20b", Ok("/a%20b")),
            ("/a%3bb", Ok("/a%3Bb")),
            ("/a%3Bb/..", Ok("/")),
            ("/a%25b", Ok("/a%25b")),
            ("/.well-known/x", Ok("/.well-known/x")),
            ("/public%2F..%2Fadmin", Err(PathError::EncodedSlash)),
            ("/a%2fb", Err(PathError::EncodedSlash)),
            ("/a%5Cb", Err(PathError::EncodedSlash)),
            ("/a%5cb", Err(PathError::EncodedSlash)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%zzb", Err(PathError::BadEscape)),
            ("/a%4", Err(PathError::BadEscape)),
            ("/a%", Err(PathError::BadEscape)),
            ("/a%00", Err(PathError::BadEscape)),
            ("*", Ok("*")),
            ("example.com:443", Ok("example.com:443")),
            ("", Ok("")),
            // Only the path is checked: the query may hold anything.
            ("/a?x=%2F%zz\\", Ok("/a")),
        ];
        for (path, want) in cases {
            assert_eq!(norm(path), want.map(str::to_string), "{path}");
        }
    }

    #[test]
    fn unchanged_paths_are_borrowed() {
        for path in ["/", "/a/b", "/a/b?x=//", "/a.b/c-d_e~f"] {
            assert!(
                matches!(normalize(path.as_bytes()), Ok(Cow::Borrowed(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for path in [
            "//a/./b/../c;x/",
            "/%41/%2e/b",
            "/a%3b/..",
            "/x/y/../../../z/.",
        ] {
            let once = norm(path).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{path}");
        }
    }

    fn rule(kind: &str, path: &str) -> Result<PathRule, String> {
        let make: fn(String) -> PathRule = match kind {
            "prefix" => PathRule::Prefix,
            "exact" => PathRule::Exact,
            _ => PathRule::Suffix,
        };
        PathRule::from_text(path, make).map_err(|e| format!("{kind}: {e}"))
    }

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, &str, bool)] = &[
            // The walk-arounds found against Istio's default normalization.
            ("prefix", "/admin", "//admin", true),
            ("prefix", "/admin", "/admin", true),
            ("prefix", "/admin", "/admin2", true),
            ("prefix", "/admin", "/public/../admin/x", true),
            ("prefix", "/admin", "/public/..;/admin", true),
            ("prefix", "/admin", "/%61dmin", true),
            ("prefix", "/admin", "/Admin", false),
            ("prefix", "/admin", "/public", false),
            ("prefix", "/admin/", "/admin", true),
            ("prefix", "/admin/", "/admin/x", true),
            ("prefix", "/admin/", "/adminx", false),
            ("prefix", "/", "/anything", true),
            ("exact", "/exact", "/exact", true),
            ("exact", "/exact", "/exact/", true),
            ("exact", "/exact", "/exact;x=1", true),
            ("exact", "/exact", "//exact", true),
            ("exact", "/exact", "/exact?q", true),
            ("exact", "/exact", "/exact/x", false),
            ("exact", "/exact", "/exactx", false),
            ("exact", "/exact/", "/exact", true),
            ("exact", "/", "/", true),
            ("exact", "/", "//", true),
            ("exact", "/", "/a", false),
            ("suffix", ".json", "/data.json", true),
            ("suffix", ".json", "/data.json;x", true),
            ("suffix", ".json", "/data.json/", true),
            ("suffix", ".json", "/data.JSON", true),
            ("suffix", ".json", "/data.js", false),
            ("suffix", ".json", "/a?x=.json", false),
            ("suffix", "/edit", "/doc/edit/", true),
            ("suffix", "/", "/dir/", true),
            ("suffix", "/", "/file", false),
            // The raw form counts too: an upstream that takes `..;` literally serves
            // this under /admin/.
            ("prefix", "/admin", "/admin/..;/x", true),
            ("prefix", "/admin", "/admin/../x", true),
        ];
        for (kind, rule_path, request, want) in cases {
            let r = rule(kind, rule_path).unwrap();
            let path = RequestPath::new(request.as_bytes()).unwrap();
            assert_eq!(r.matches(&path), *want, "{kind} {rule_path} vs {request}");
        }
    }

    #[test]
    fn rule_paths_are_checked() {
        let cases: &[(&str, &str, &str)] = &[
            ("prefix", "", "prefix: must not be empty"),
            ("prefix", "admin", "prefix: must start with '/'"),
            ("exact", "/a?b", "exact: must not contain '?' or '#': paths are matched without query string and fragment"),
            ("exact", "/a b", "exact: must not contain spaces or control characters"),
            ("prefix", "/a/\u{85}/../b", "prefix: must not contain spaces or control characters"),
            ("exact", "/a;b", "exact: must not contain ';': paths are matched without ;parameters"),
            ("prefix", "//admin", "prefix: is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write '/admin'"),
            ("prefix", "/a/../b", "prefix: is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write '/b'"),
            ("exact", "/%70age", "exact: is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write '/page'"),
            ("suffix", "a/./b", "suffix: is not a normalized path (requests are matched after resolving '//', '.', '..' and unreserved escapes): write 'a/b'"),
            ("prefix", "/a%2Fb", "prefix: cannot be matched: it has an encoded '/' or '\\'"),
            ("prefix", "/a\\b", "prefix: cannot be matched: it has a '\\'"),
            ("suffix", "%zz", "suffix: cannot be matched: it has an invalid percent-encoding"),
        ];
        for (kind, path, want) in cases {
            let err = rule(kind, path).unwrap_err();
            assert_eq!(err.to_string(), *want, "{kind} {path}");
        }
        for (kind, path) in [
            ("suffix", ".json"),
            ("suffix", "/"),
            ("prefix", "/a%20b/"),
            ("exact", "/"),
        ] {
            assert!(rule(kind, path).is_ok(), "{kind} {path}");
        }
    }
}
