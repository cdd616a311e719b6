//! The decision: which rules apply to a request, and do its Basic credentials
//! satisfy every one of them?

use crate::config::{Config, Rule, Secret};
use crate::secret::{b64_decode_into, ct_eq, sha1, sha256};
use common::path::{PathError, RequestPath};

/// The longest Authorization value looked at; longer ones are refused unread.
pub const MAX_AUTHORIZATION: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'c> {
    /// No rule applies: the request passes untouched.
    Pass,
    /// Every applicable rule accepted the credentials of this user.
    Allow(&'c str),
    Deny(Denial),
    /// The path cannot be matched safely: refused with 400 whatever the rules say.
    BadPath(PathError),
}

/// The method-override headers a rule also covers (shared with jwt-auth).
pub use common::path::{MAX_OVERRIDES, METHOD_OVERRIDES};

/// Why a request was refused. The names are safe to log: none carries any part of
/// what the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NoHeader,
    NotBasic,
    Several,
    TooLong,
    Empty,
    NotBase64,
    NotUtf8,
    NoColon,
    Rejected,
}

impl Denial {
    /// True when the client sent no Basic credentials at all (as opposed to bad ones).
    pub fn is_missing(self) -> bool {
        matches!(self, Denial::NoHeader | Denial::NotBasic)
    }

    pub fn reason(self) -> &'static str {
        match self {
            Denial::NoHeader => "no authorization header",
            Denial::NotBasic => "authorization scheme is not Basic",
            Denial::Several => "several authorization headers",
            Denial::TooLong => "authorization header too long",
            Denial::Empty => "empty Basic credentials",
            Denial::NotBase64 => "Basic credentials are not base64",
            Denial::NotUtf8 => "Basic credentials are not UTF-8",
            Denial::NoColon => "Basic credentials have no ':'",
            Denial::Rejected => "unknown user or wrong password",
        }
    }
}

/// Decides for a request with this method (and method-override header values),
/// `:path` and Authorization header values.
pub fn decide<'c, 'a>(
    config: &'c Config,
    method: &[u8],
    overrides: &[&[u8]],
    path: &[u8],
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Decision<'c> {
    let path = match RequestPath::new(path) {
        Ok(path) => path,
        Err(e) => return Decision::BadPath(e),
    };
    let mut applicable = config
        .rules
        .iter()
        .filter(|rule| applies(rule, method, overrides, &path))
        .peekable();
    if applicable.peek().is_none() {
        return Decision::Pass;
    }
    let mut values = authorization.into_iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Decision::Deny(Denial::NoHeader),
        (Some(_), Some(_)) => return Decision::Deny(Denial::Several),
        (Some(value), None) => value,
    };
    let mut buf = [0u8; MAX_AUTHORIZATION / 4 * 3];
    let (user, password) = match basic_credentials(value, &mut buf) {
        Ok(pair) => pair,
        Err(denial) => return Decision::Deny(denial),
    };
    let mut presented = Presented::new(password);
    let mut allowed = None;
    for rule in applicable {
        match accepting_user(rule, user, &mut presented) {
            Some(name) => allowed = Some(name),
            None => return Decision::Deny(Denial::Rejected),
        }
    }
    allowed.map_or(Decision::Deny(Denial::Rejected), Decision::Allow)
}

fn applies(rule: &Rule, method: &[u8], overrides: &[&[u8]], path: &RequestPath<'_>) -> bool {
    let listed = |m: &[u8]| {
        rule.methods
            .iter()
            .any(|listed| listed.as_bytes().eq_ignore_ascii_case(m.trim_ascii()))
    };
    rule.path.matches(path) && (listed(method) || overrides.iter().any(|m| listed(m)))
}

/// Splits `Basic <base64 of user:password>` into user and password.
fn basic_credentials<'b>(value: &[u8], buf: &'b mut [u8]) -> Result<(&'b str, &'b [u8]), Denial> {
    if value.len() > MAX_AUTHORIZATION {
        return Err(Denial::TooLong);
    }
    // Envoy joins repeated Authorization headers with ','; no single Basic value
    // holds one (base64 has no ','), so a comma means several headers were sent.
    if value.contains(&b',') {
        return Err(Denial::Several);
    }
    let value = value.trim_ascii();
    let (scheme, token) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(at) => value.split_at(at),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Denial::NotBasic);
    }
    let token = token.trim_ascii_start();
    if token.is_empty() {
        return Err(Denial::Empty);
    }
    let decoded = b64_decode_into(token, buf).ok_or(Denial::NotBase64)?;
    if decoded.is_empty() {
        return Err(Denial::Empty);
    }
    let decoded = std::str::from_utf8(decoded).map_err(|_| Denial::NotUtf8)?;
    let (user, password) = decoded.split_once(':').ok_or(Denial::NoColon)?;
    Ok((user, password.as_bytes()))
}

/// The presented password and its digests, each computed at most once per request.
struct Presented<'p> {
    password: &'p [u8],
    sha1: Option<[u8; 20]>,
    sha256: Option<[u8; 32]>,
}

impl<'p> Presented<'p> {
    fn new(password: &'p [u8]) -> Self {
        Presented {
            password,
            sha1: None,
            sha256: None,
        }
    }

    fn matches(&mut self, secret: &Secret) -> bool {
        match secret {
            Secret::Sha1(want) => ct_eq(self.sha1.get_or_insert_with(|| sha1(self.password)), want),
            Secret::Sha256(want) => ct_eq(
                self.sha256.get_or_insert_with(|| sha256(self.password)),
                want,
            ),
        }
    }
}

/// The configured user name when `rule` accepts `user` with the presented password.
/// Every entry is compared, so the time taken does not tell which one matched.
fn accepting_user<'c>(
    rule: &'c Rule,
    user: &str,
    presented: &mut Presented<'_>,
) -> Option<&'c str> {
    let mut accepted = None;
    for credential in &rule.credentials {
        let user_ok = ct_eq(credential.user.as_bytes(), user.as_bytes());
        let password_ok = presented.matches(&credential.secret);
        if user_ok & password_ok {
            accepted = Some(credential.user.as_str());
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
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
}
