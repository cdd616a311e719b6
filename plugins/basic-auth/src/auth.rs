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
mod tests;
