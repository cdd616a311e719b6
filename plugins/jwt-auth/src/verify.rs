//! The checks after a token's issuer picked its provider: which key (by `kid`,
//! or each key that fits the `alg`), the signature, the audience, and the claim
//! header values a verified token sets.

use crate::alg;
use crate::config::Provider;
use crate::jwks::Key;
use crate::token::{Refusal, Token};
use serde_json::Value;

/// Verifies the token's signature with `keys`. A `kid` picks its key, which
/// must fit the `alg`; without one, every key that fits is tried. An `alg` that
/// fits no key (HS256 against an RSA set) is refused before any crypto.
pub fn signature(token: &Token<'_>, keys: &[Key]) -> Result<(), Refusal> {
    let check = |key: &Key| {
        alg::verify(
            token.alg,
            &key.material,
            token.signing_input,
            &token.signature,
        )
    };
    match &token.kid {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or(Refusal::UnknownKid)?;
            if !key.accepts(token.alg) {
                return Err(Refusal::AlgMismatch);
            }
            if check(key) {
                Ok(())
            } else {
                Err(Refusal::Signature)
            }
        }
        None => {
            let mut fitting = keys.iter().filter(|k| k.accepts(token.alg)).peekable();
            if fitting.peek().is_none() {
                return Err(Refusal::AlgMismatch);
            }
            if fitting.any(check) {
                Ok(())
            } else {
                Err(Refusal::Signature)
            }
        }
    }
}

pub fn audience(token: &Token<'_>, provider: &Provider) -> Result<(), Refusal> {
    if token.claims.audience_ok(&provider.audiences) {
        Ok(())
    } else {
        Err(Refusal::Audience)
    }
}

/// A claim as a header value: a string as it is, anything else as compact JSON.
/// `None` for a value no header can carry (CR, LF or NUL in it).
pub fn header_value(value: &Value) -> Option<Vec<u8>> {
    let bytes = match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).ok()?,
    };
    (!bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))).then_some(bytes)
}

/// The values of the provider's claim headers this token sets, by index into
/// `claim_to_headers`; a claim the token lacks sets nothing.
pub fn claim_headers(token: &Token<'_>, provider: &Provider) -> Vec<(usize, Vec<u8>)> {
    provider
        .claim_to_headers
        .iter()
        .enumerate()
        .filter_map(|(i, (path, _))| Some((i, header_value(token.claims.get(path)?)?)))
        .collect()
}
