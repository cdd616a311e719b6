//! A compact JWS token (RFC 7515/7519) taken apart: its header's `alg` and `kid`,
//! the signed input, the signature, and the registered claims this plugin
//! checks. Header and claims are JSON read with `common::config::parse_json`,
//! which refuses a key given twice (RFC 7515 §4 lets a parser keep either; two
//! parsers keeping different ones is how a checked claim differs from the used
//! one). Only a token not already verified is parsed (see `cache`).

use crate::alg::{Alg, AlgError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::config::parse_json;
use serde_json::{Map, Value};

/// The longest token read: well above any real one (a 16 KB token passes),
/// below Envoy's 60 KiB default for all request headers.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;
/// The most audiences a token's `aud` may list.
pub const MAX_AUDIENCES: usize = 32;

/// Why a request is refused. Each is a 401 but `Audience` (403, as Envoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed(&'static str),
    Alg(AlgError),
    /// The header's `alg` fits none of the provider's keys (HS256 against RSA
    /// keys, for one).
    AlgMismatch,
    Issuer,
    UnknownKid,
    Signature,
    Expired,
    NotYetValid,
    NoExpiration,
    Audience,
    /// The provider's keys could not be fetched.
    KeysUnavailable,
}

impl Refusal {
    pub fn status(self) -> u32 {
        match self {
            Refusal::Audience => 403,
            _ => 401,
        }
    }

    /// The response body: which check failed, in a few words, never the token.
    pub fn body(self) -> &'static str {
        match self {
            Refusal::Missing => "missing token\n",
            Refusal::Malformed(_) => "malformed token\n",
            Refusal::Alg(AlgError::None) => "unsigned token (alg none)\n",
            Refusal::Alg(AlgError::Unsupported) => "unsupported token algorithm\n",
            Refusal::AlgMismatch => "token algorithm does not fit the issuer's keys\n",
            Refusal::Issuer => "token issuer not accepted\n",
            Refusal::UnknownKid => "unknown key id\n",
            Refusal::Signature => "invalid token signature\n",
            Refusal::Expired => "token expired\n",
            Refusal::NotYetValid => "token not yet valid\n",
            Refusal::NoExpiration => "token has no expiration\n",
            Refusal::Audience => "audience not allowed\n",
            Refusal::KeysUnavailable => "signing keys unavailable\n",
        }
    }

    /// Envoy's response code details (access logs' `%RESPONSE_CODE_DETAILS%`).
    pub fn details(self) -> &'static str {
        match self {
            Refusal::Missing => "jwt_auth_missing",
            Refusal::Malformed(_) => "jwt_auth_malformed",
            Refusal::Alg(_) | Refusal::AlgMismatch => "jwt_auth_bad_alg",
            Refusal::Issuer => "jwt_auth_bad_issuer",
            Refusal::UnknownKid => "jwt_auth_unknown_kid",
            Refusal::Signature => "jwt_auth_bad_signature",
            Refusal::Expired => "jwt_auth_expired",
            Refusal::NotYetValid => "jwt_auth_not_yet_valid",
            Refusal::NoExpiration => "jwt_auth_no_exp",
            Refusal::Audience => "jwt_auth_audience",
            Refusal::KeysUnavailable => "jwt_auth_keys_unavailable",
        }
    }

    /// What a debug line says beyond the body.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Malformed(why) => why,
            Refusal::Alg(e) => e.reason(),
            other => other.body().trim_end(),
        }
    }
}

/// A token taken apart, its signature not yet checked.
#[derive(Debug)]
pub struct Token<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
    pub claims: Claims,
}

/// The claims, with the registered ones this plugin checks read out.
#[derive(Debug, Default)]
pub struct Claims {
    pub iss: Option<String>,
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub aud: Vec<String>,
    pub all: Map<String, Value>,
}

fn decode(part: &[u8]) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed("a part is not base64url"))
}

fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, Refusal> {
    match parse_json(bytes) {
        Ok(Value::Object(map)) if !bytes.iter().all(u8::is_ascii_whitespace) => Ok(map),
        _ => Err(Refusal::Malformed(what)),
    }
}

/// Takes a compact token apart. The `alg` is checked here, before any key is
/// looked at: `none` and unknown algorithms never reach the crypto.
pub fn parse(text: &[u8]) -> Result<Token<'_>, Refusal> {
    if text.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed("token too large"));
    }
    let mut parts = text.split(|&b| b == b'.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed("not three dot-separated parts"));
    };
    let signing_input = text
        .get(..header.len() + 1 + payload.len())
        .ok_or(Refusal::Malformed("not three dot-separated parts"))?;
    let header = object(&decode(header)?, "header is not a JSON object")?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::parse(name).map_err(Refusal::Alg)?,
        _ => return Err(Refusal::Malformed("header has no alg string")),
    };
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        return Err(Refusal::Malformed("header has crit extensions"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Refusal::Malformed("header kid is not a string")),
    };
    let signature = decode(signature)?;
    let claims = claims(object(&decode(payload)?, "claims are not a JSON object")?)?;
    Ok(Token {
        alg,
        kid,
        signing_input,
        signature,
        claims,
    })
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(Refusal::Malformed("a time claim is not a number")),
    }
}

fn claims(all: Map<String, Value>) -> Result<Claims, Refusal> {
    let iss = match all.get("iss") {
        None => None,
        Some(Value::String(iss)) => Some(iss.clone()),
        Some(_) => return Err(Refusal::Malformed("iss is not a string")),
    };
    let aud = match all.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) if list.len() <= MAX_AUDIENCES => list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(Refusal::Malformed(
                "aud is not a string or a list of strings",
            ))?,
        Some(_) => {
            return Err(Refusal::Malformed(
                "aud is not a string or a list of strings",
            ))
        }
    };
    Ok(Claims {
        iss,
        exp: number(&all, "exp")?,
        nbf: number(&all, "nbf")?,
        aud,
        all,
    })
}

impl Claims {
    /// Checks `exp` and `nbf` at `now_s` with `skew_s` seconds of leeway either
    /// way (Envoy checks the time before the signature; so does this plugin).
    pub fn check_time(&self, now_s: u64, skew_s: u64, require_exp: bool) -> Result<(), Refusal> {
        let (now, skew) = (now_s as f64, skew_s as f64);
        match self.exp {
            Some(exp) if now > exp + skew => return Err(Refusal::Expired),
            None if require_exp => return Err(Refusal::NoExpiration),
            _ => {}
        }
        match self.nbf {
            Some(nbf) if now + skew < nbf => Err(Refusal::NotYetValid),
            _ => Ok(()),
        }
    }

    /// Whether the token is for one of `allowed` (any audience when none is
    /// configured).
    pub fn audience_ok(&self, allowed: &[String]) -> bool {
        allowed.is_empty() || self.aud.iter().any(|a| allowed.contains(a))
    }

    /// The claim at `path` (`a.b` is `{"a": {"b": ...}}`).
    pub fn get(&self, path: &[String]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.all.get(first)?;
        for key in rest {
            value = value.as_object()?.get(key)?;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests;
