//! The auth call built from the original request: pseudo-headers, the
//! `x-forwarded-*` trio, the allowed headers and the fixed ones, never the body;
//! the cache key of the request; and the client-sent headers that only the
//! plugin may set.

use crate::cache::Key;
use crate::config::{CallPath, Config, FAILURE_MODE_HEADER};
use common::headers::is_spelling_of;
use siphasher::sip128::Hasher128;
use std::hash::Hasher;

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
    /// Names of client-sent headers the plugin alone sets: an
    /// `allowed_upstream_headers` name or the failure marker, in any spelling
    /// with `-` and `_` (each name once). Empty for an honest client, and then
    /// never allocated.
    pub forged: Vec<&'a str>,
}

/// True when `name` (a request header) is, in some spelling, a header only the
/// plugin may set upstream. Envoy passes names with underscores by default
/// (`headers_with_underscores_action: ALLOW`), and frameworks that read headers
/// as CGI variables fold `x_user_id` and `x-user-id` into one `HTTP_X_USER_ID`.
fn forged(config: &Config, name: &[u8]) -> bool {
    config
        .allowed_upstream_headers
        .iter()
        .map(String::as_str)
        .chain([FAILURE_MODE_HEADER])
        .any(|own| is_spelling_of(name, own))
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
                    // A spelling of a configured name is ASCII, so always text.
                    if forged(config, name) {
                        if let Ok(name) = std::str::from_utf8(name) {
                            if !request.forged.contains(&name) {
                                request.forged.push(name);
                            }
                        }
                    }
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
/// headers, each length-prefixed so no two different requests share an input,
/// under SipHash-2-4 with a 128-bit output and this VM's secret key. A client
/// cannot compute keys, so it cannot craft a request that lands on another's
/// entry (finding a collision blind takes about 2^64 requests), and no credential
/// is kept in clear. SHA-256 did the same without a secret at ten times the cost
/// in wasm (0.9 µs for 120 bytes, more for a JWT), on every cache hit.
/// The authority is part of the key: one gateway serves many hosts, and the auth
/// service sees the host (`x-forwarded-host`) when it decides.
pub fn key(request: &Request<'_>) -> Key {
    let mut hash = common::cache::hasher();
    let mut field = |bytes: &[u8]| {
        hash.write(&(bytes.len() as u64).to_le_bytes());
        hash.write(bytes);
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
    hash.finish128().as_bytes()
}

#[cfg(test)]
mod tests;
