//! JSON Web Key Sets (RFC 7517/7518): one parser for a provider's `local_jwks`
//! and for a body fetched from `remote_jwks`, so both refuse the same keys with
//! the same field-named errors. Keys are decoded once into verifying keys; a
//! request never parses a key. Members a key may carry and verification does
//! not use (`x5c`, `key_ops`, ...) are ignored, as real issuers send them. The
//! set is read with serde ([`JwksSpec`]): as part of the config for `local_jwks`,
//! and on its own for a fetched body.

use crate::alg::Alg;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::config::fields::List;
use common::config::{from_value, ConfigError};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// The most keys a set may hold: a token without `kid` is tried against each.
pub const MAX_KEYS: usize = 64;
/// RSA moduli below this are refused (RFC 7518 §3.3: 2048 bits or larger).
pub const MIN_RSA_BITS: usize = 2048;
/// RSA moduli above this are refused: verification cost grows with the size.
pub const MAX_RSA_BITS: usize = 8192;
/// The shortest HMAC secret (RFC 7518 §3.2: at least the hash's size; 256 bits
/// for HS256, the smallest).
pub const MIN_SECRET_BYTES: usize = 32;

/// The verifying part of one key.
#[derive(Clone)]
pub enum Material {
    Rsa(Box<rsa::RsaPublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An HMAC secret (only from `local_jwks`).
    Oct(Vec<u8>),
}

impl Material {
    /// The JWK `kty` (and curve) this key is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Material::Rsa(_) => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "OKP Ed25519",
            Material::Oct(_) => "oct",
        }
    }

    /// Whether a token signed with `alg` can have been signed with this key: the
    /// algorithm's family must be the key's type (RSA for RS*/PS*, the curve for
    /// ES*, Ed25519 for EdDSA, a secret for HS*), so an RSA public key is never
    /// used as an HMAC secret.
    pub fn fits(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (
                Material::Rsa(_),
                Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512
            ) | (Material::P256(_), Alg::Es256)
                | (Material::P384(_), Alg::Es384)
                | (Material::Ed25519(_), Alg::EdDsa)
                | (Material::Oct(_), Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
        )
    }
}

/// One key of a set.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The key's `alg`, when it names one: then only that algorithm may use it.
    pub alg: Option<Alg>,
    pub material: Material,
}

impl Key {
    /// Whether a token with `alg` may be checked with this key.
    pub fn accepts(&self, alg: Alg) -> bool {
        self.material.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// A parsed set: its keys, and how many it skipped (encryption keys, key types
/// and curves this plugin does not verify with).
pub struct Jwks {
    pub keys: Vec<Key>,
    pub skipped: usize,
}

/// A JWKS as written: `local_jwks`, or a body fetched from `remote_jwks`.
/// Members this plugin does not read are ignored.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwksSpec {
    /// The keys (at most 64). Keys of a type, curve or algorithm not verified
    /// here, or with `use` other than `sig`, are skipped.
    pub keys: List<JwkSpec, 0, MAX_KEYS>,
}

/// One JSON Web Key as written (RFC 7517/7518): the members verification reads.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwkSpec {
    /// `RSA`, `EC` (P-256, P-384), `OKP` (Ed25519) or `oct` (an HMAC secret,
    /// local_jwks only).
    pub kty: String,
    /// `sig`, or left out; a key for another use is skipped.
    #[serde(rename = "use")]
    pub usage: Option<String>,
    /// The key's id, matched against a token's `kid`; unique in the set.
    pub kid: Option<String>,
    /// The one algorithm this key verifies, if given.
    pub alg: Option<String>,
    /// The curve of an `EC` or `OKP` key.
    pub crv: Option<String>,
    /// An RSA key's modulus (base64url, 2048 to 8192 bits).
    pub n: Option<String>,
    /// An RSA key's exponent (base64url).
    pub e: Option<String>,
    /// An EC point's x, or an Ed25519 public key (base64url).
    pub x: Option<String>,
    /// An EC point's y (base64url).
    pub y: Option<String>,
    /// An HMAC secret (base64url, at least 32 bytes).
    pub k: Option<Secret>,
}

/// Key material no error or debug output may show.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// Reads a fetched JWKS document (see [`from_spec`]); error paths start at the
/// document (`keys[0].n`).
pub fn parse(doc: &Value, secrets: bool) -> Result<Jwks, ConfigError> {
    let spec: JwksSpec = from_value(doc)?;
    from_spec(spec, "", secrets)
}

/// The keys of a set whose path is `at` (empty for a document of its own).
/// `secrets` allows `oct` keys (HMAC secrets), which only a local set may hold:
/// a secret served over the network is no secret. A key of a type or curve not
/// verified here (`EC` P-521, `OKP` X25519) or meant for encryption (`use:
/// enc`) is skipped, as issuers publish such keys beside signing ones; a key of
/// a supported type with a bad member is an error. Errors never quote a secret.
pub fn from_spec(spec: JwksSpec, at: &str, secrets: bool) -> Result<Jwks, ConfigError> {
    let mut keys: Vec<Key> = Vec::new();
    let mut skipped = 0;
    for (i, jwk) in spec.keys.0.iter().enumerate() {
        let item = match at {
            "" => format!("keys[{i}]"),
            _ => format!("{at}.keys[{i}]"),
        };
        match parse_key(jwk, &item, secrets)? {
            Some(key) => {
                if let Some(kid) = &key.kid {
                    if keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
                        return Err(ConfigError::new(
                            item,
                            format!("kid '{}' appears twice in the set", kid.escape_debug()),
                        ));
                    }
                }
                keys.push(key);
            }
            None => skipped += 1,
        }
    }
    Ok(Jwks { keys, skipped })
}

/// A member that must be there, with its path for errors.
fn required<'a>(value: Option<&'a str>, item: &str, name: &str) -> Result<&'a str, ConfigError> {
    value.ok_or_else(|| ConfigError::new(format!("{item}.{name}"), "is required"))
}

/// A base64url member decoded (padding tolerated, as some issuers pad).
fn bytes(value: Option<&str>, item: &str, name: &str) -> Result<Vec<u8>, ConfigError> {
    let text = required(value, item, name)?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| ConfigError::new(format!("{item}.{name}"), "is not base64url"))
}

/// Exactly `len` bytes of base64url (a curve coordinate or an Ed25519 key).
fn fixed(value: Option<&str>, item: &str, name: &str, len: usize) -> Result<Vec<u8>, ConfigError> {
    let out = bytes(value, item, name)?;
    if out.len() != len {
        return Err(ConfigError::new(
            format!("{item}.{name}"),
            format!("must be {len} bytes, got {}", out.len()),
        ));
    }
    Ok(out)
}

fn parse_key(jwk: &JwkSpec, item: &str, secrets: bool) -> Result<Option<Key>, ConfigError> {
    if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return Ok(None);
    }
    let at = |name: &str| format!("{item}.{name}");
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => match Alg::parse(name) {
            Ok(alg) => Some(alg),
            // A key for an algorithm not verified here (RSA-OAEP, ES512, ...).
            Err(_) if name != "none" => return Ok(None),
            Err(e) => return Err(ConfigError::new(at("alg"), e.reason())),
        },
    };
    let material = match jwk.kty.as_str() {
        "RSA" => {
            let n = bytes(jwk.n.as_deref(), item, "n")?;
            let e = bytes(jwk.e.as_deref(), item, "e")?;
            let n = rsa::BigUint::from_bytes_be(&n);
            let bits = n.bits();
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(ConfigError::new(
                    at("n"),
                    format!(
                        "RSA modulus of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
                    ),
                ));
            }
            let key = rsa::RsaPublicKey::new_with_max_size(
                n,
                rsa::BigUint::from_bytes_be(&e),
                MAX_RSA_BITS,
            )
            .map_err(|e| ConfigError::new(at("e"), format!("not a valid RSA key: {e}")))?;
            Material::Rsa(Box::new(key))
        }
        "EC" => {
            let crv = required(jwk.crv.as_deref(), item, "crv")?;
            let len = match crv {
                "P-256" => 32,
                "P-384" => 48,
                _ => return Ok(None),
            };
            let mut sec1 = vec![4u8];
            sec1.extend(fixed(jwk.x.as_deref(), item, "x", len)?);
            sec1.extend(fixed(jwk.y.as_deref(), item, "y", len)?);
            let bad = |_| ConfigError::new(at("crv"), format!("x and y are not a point on {crv}"));
            if len == 32 {
                Material::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(bad)?)
            } else {
                Material::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(bad)?)
            }
        }
        "OKP" => {
            if required(jwk.crv.as_deref(), item, "crv")? != "Ed25519" {
                return Ok(None);
            }
            let x = fixed(jwk.x.as_deref(), item, "x", 32)?;
            let mut raw = [0u8; 32];
            raw.copy_from_slice(&x);
            let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
                .map_err(|_| ConfigError::new(at("x"), "is not an Ed25519 public key"))?;
            Material::Ed25519(key)
        }
        "oct" => {
            if !secrets {
                return Err(ConfigError::new(
                    at("kty"),
                    "oct (HMAC secret) keys are accepted only in local_jwks",
                ));
            }
            let k = bytes(jwk.k.as_ref().map(|k| k.0.as_str()), item, "k")?;
            if k.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::new(
                    at("k"),
                    format!("an HMAC secret must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            Material::Oct(k)
        }
        _ => return Ok(None),
    };
    let key = Key {
        kid: jwk.kid.clone(),
        alg,
        material,
    };
    if let Some(alg) = key.alg {
        if !key.material.fits(alg) {
            return Err(ConfigError::new(
                at("alg"),
                format!("{} does not fit a {} key", alg.name(), key.material.kind()),
            ));
        }
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests;
