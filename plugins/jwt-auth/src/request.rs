//! What the plugin reads of a request, in one pass over its headers: method,
//! path, method overrides, the token places, and client-sent copies of claim
//! headers; which rule decides; where the token is, and how the request looks
//! with it taken out. Host-free, tested natively.

use crate::config::{Config, Location, Rule};
use common::headers::is_spelling_of;
use common::path::{PathError, RequestPath, MAX_OVERRIDES, METHOD_OVERRIDES};

/// The most cookie header values read (HTTP/2 may split cookies into many).
pub const MAX_COOKIE_HEADERS: usize = 16;

#[derive(Debug, Default)]
pub struct Request<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub overrides: Vec<&'a [u8]>,
    /// Header names that spell a claim header: removed before anything else.
    pub spoofed: Vec<&'a [u8]>,
    pub cookies: Vec<&'a [u8]>,
    /// The first value of each header location, by location index.
    pub headers: Vec<(usize, &'a [u8])>,
}

impl<'a> Request<'a> {
    pub fn read(config: &Config, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut r = Request::default();
        for (name, value) in pairs {
            match name {
                b":method" => r.method = value,
                b":path" => r.path = value,
                b"cookie" => {
                    if r.cookies.len() < MAX_COOKIE_HEADERS {
                        r.cookies.push(value);
                    }
                }
                _ => {
                    if METHOD_OVERRIDES.iter().any(|o| is_spelling_of(name, o))
                        && r.overrides.len() < MAX_OVERRIDES
                    {
                        r.overrides.push(value);
                    }
                    if config.claim_headers.iter().any(|h| is_spelling_of(name, h))
                        && !r.spoofed.contains(&name)
                    {
                        r.spoofed.push(name);
                    }
                }
            }
            for (at, location) in config.locations.iter().enumerate() {
                if let Location::Header { name: wanted, .. } = location {
                    if wanted.as_bytes() == name && !r.headers.iter().any(|(a, _)| *a == at) {
                        r.headers.push((at, value));
                    }
                }
            }
        }
        r
    }
}

/// What the rules say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No rule applies, or the rules that do need no token.
    Pass,
    /// The path cannot be matched safely: 400.
    BadPath(PathError),
    /// A token from one of `allowed` (provider bits) is checked if present, and
    /// needed when `required`.
    Check { allowed: u32, required: bool },
}

fn method_listed(rule: &Rule, method: &[u8]) -> bool {
    rule.methods.is_empty()
        || rule
            .methods
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(method))
}

/// The first rule whose path and method match decides. With method overrides a
/// request may be served as any of its methods, so the first rule for each one
/// counts, and the request must satisfy all of them: a token is checked when
/// any needs one, from a provider every such rule accepts, and may be missing
/// only when every such rule allows it.
pub fn decide(config: &Config, method: &[u8], overrides: &[&[u8]], path: &[u8]) -> Decision {
    let path = match RequestPath::new(path) {
        Ok(path) => path,
        Err(e) => return Decision::BadPath(e),
    };
    let mut allowed = u32::MAX;
    let mut checked = false;
    let mut required = false;
    for m in std::iter::once(method).chain(overrides.iter().copied()) {
        let rule = config
            .rules
            .iter()
            .find(|rule| method_listed(rule, m) && rule.path.matches(&path));
        if let Some(rule) = rule {
            if rule.providers != 0 {
                checked = true;
                allowed &= rule.providers;
                required |= !rule.allow_missing;
            }
        }
    }
    if checked {
        Decision::Check { allowed, required }
    } else {
        Decision::Pass
    }
}

/// `value` without `prefix` (compared case-insensitively: auth schemes are,
/// RFC 9110 §11.1), trimmed of spaces.
fn strip_prefix<'v>(value: &'v [u8], prefix: &str) -> Option<&'v [u8]> {
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
        return None;
    }
    value.get(prefix.len()..).map(<[u8]>::trim_ascii)
}

/// The query's `name=value` pairs.
fn query_pairs(path: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let query = path
        .iter()
        .position(|&b| b == b'?')
        .and_then(|at| path.get(at + 1..))
        .unwrap_or_default();
    let query = query.split(|&b| b == b'#').next().unwrap_or_default();
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            (kv.next().unwrap_or_default(), kv.next().unwrap_or_default())
        })
}

/// The `name=value` pairs of cookie header values.
fn cookie_pairs<'a>(cookies: &'a [&'a [u8]]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    cookies.iter().flat_map(|value| {
        value.split(|&b| b == b';').filter_map(|c| {
            let c = c.trim_ascii();
            let at = c.iter().position(|&b| b == b'=')?;
            Some((c.get(..at)?.trim_ascii(), c.get(at + 1..)?.trim_ascii()))
        })
    })
}

/// The token at `location`, if the request has one there.
pub fn token_at<'a>(config: &Config, request: &'a Request<'a>, at: usize) -> Option<&'a [u8]> {
    let token = match config.locations.get(at)? {
        Location::Header { prefix, .. } => {
            let (_, value) = request.headers.iter().find(|(a, _)| *a == at)?;
            strip_prefix(value, prefix)?
        }
        Location::Param(name) => {
            query_pairs(request.path)
                .find(|(k, _)| *k == name.as_bytes())?
                .1
        }
        Location::Cookie(name) => {
            cookie_pairs(&request.cookies)
                .find(|(k, _)| *k == name.as_bytes())?
                .1
        }
    };
    (!token.is_empty()).then_some(token)
}

/// The first token in the places of the providers in `allowed`, in config order:
/// its location index and the token.
pub fn find_token<'a>(
    config: &Config,
    request: &'a Request<'a>,
    allowed: u32,
) -> Option<(usize, &'a [u8])> {
    let mut places = 0u64;
    for (i, provider) in config.providers.iter().enumerate() {
        if allowed & (1 << i) != 0 {
            places |= provider.locations;
        }
    }
    (0..config.locations.len())
        .filter(|at| places & (1u64 << at) != 0)
        .find_map(|at| token_at(config, request, at).map(|t| (at, t)))
}

/// The path without query parameter `name` (every occurrence).
pub fn path_without_param(path: &[u8], name: &str) -> Vec<u8> {
    let Some(at) = path.iter().position(|&b| b == b'?') else {
        return path.to_vec();
    };
    let (base, query) = path.split_at(at);
    let query = query.get(1..).unwrap_or_default();
    let kept: Vec<&[u8]> = query
        .split(|&b| b == b'&')
        .filter(|pair| {
            let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
            !pair.is_empty() && key != name.as_bytes()
        })
        .collect();
    let mut out = base.to_vec();
    if !kept.is_empty() {
        out.push(b'?');
        out.extend(kept.join(&b'&'));
    }
    out
}

/// The cookie header without cookie `name`, all values joined (`None`: no
/// cookie is left).
pub fn cookies_without(cookies: &[&[u8]], name: &str) -> Option<Vec<u8>> {
    let kept: Vec<&[u8]> = cookies
        .iter()
        .flat_map(|v| v.split(|&b| b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|c| {
            let key = c
                .split(|&b| b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            !c.is_empty() && key != name.as_bytes()
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
}

#[cfg(test)]
mod tests;
