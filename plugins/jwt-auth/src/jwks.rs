//! JSON Web Key Sets (RFC 7517/7518): one parser for a provider's `local_jwks`
//! and for a body fetched from `remote_jwks`, so both refuse the same keys with
//! the same field-named errors. Keys are decoded once into verifying keys; a
//! request never parses a key. Members a key may carry and verification does
//! not use (`x5c`, `key_ops`, ...) are ignored, as real issuers send them.

use crate::alg::Alg;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::config::{ConfigError, Node};

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

/// Reads a JWKS object. `secrets` allows `oct` keys (HMAC secrets), which only a
/// local set may hold: a secret served over the network is no secret. A key of
/// a type or curve not verified here (`EC` P-521, `OKP` X25519) or meant for
/// encryption (`use: enc`) is skipped, as issuers publish such keys beside
/// signing ones; a key of a supported type with a bad member is an error.
/// Errors never quote a secret.
pub fn parse(node: &Node<'_>, secrets: bool) -> Result<Jwks, ConfigError> {
    let mut fields = node.fields()?;
    let list = fields.require("keys")?;
    let items = list.list_at_most(MAX_KEYS)?;
    let mut keys: Vec<Key> = Vec::new();
    let mut skipped = 0;
    for item in &items {
        match parse_key(item, secrets)? {
            Some(key) => {
                if let Some(kid) = &key.kid {
                    if keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
                        return Err(item.error(format!(
                            "kid '{}' appears twice in the set",
                            kid.escape_debug()
                        )));
                    }
                }
                keys.push(key);
            }
            None => skipped += 1,
        }
    }
    Ok(Jwks { keys, skipped })
}

/// Reads the member `name` of a key, which must be a string if present.
fn member<'a>(item: &Node<'a>, name: &str) -> Result<Option<(Node<'a>, &'a str)>, ConfigError> {
    match item.value.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => {
            let node = Node {
                value,
                path: format!("{}.{name}", item.path),
            };
            let text = node.str()?;
            Ok(Some((node, text)))
        }
    }
}

fn required<'a>(item: &Node<'a>, name: &str) -> Result<(Node<'a>, &'a str), ConfigError> {
    member(item, name)?
        .ok_or_else(|| ConfigError::new(format!("{}.{name}", item.path), "is required"))
}

/// A base64url member decoded (padding tolerated, as some issuers pad).
fn bytes(item: &Node<'_>, name: &str) -> Result<Vec<u8>, ConfigError> {
    let (node, text) = required(item, name)?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| node.error("is not base64url"))
}

/// Exactly `len` bytes of base64url (a curve coordinate or an Ed25519 key).
fn fixed(item: &Node<'_>, name: &str, len: usize) -> Result<Vec<u8>, ConfigError> {
    let out = bytes(item, name)?;
    if out.len() != len {
        return Err(ConfigError::new(
            format!("{}.{name}", item.path),
            format!("must be {len} bytes, got {}", out.len()),
        ));
    }
    Ok(out)
}

fn parse_key(item: &Node<'_>, secrets: bool) -> Result<Option<Key>, ConfigError> {
    item.fields()?;
    let (_, kty) = required(item, "kty")?;
    if let Some((_, usage)) = member(item, "use")? {
        if usage != "sig" {
            return Ok(None);
        }
    }
    let kid = member(item, "kid")?.map(|(_, k)| k.to_string());
    let alg = match member(item, "alg")? {
        None => None,
        Some((node, name)) => match Alg::parse(name) {
            Ok(alg) => Some(alg),
            // A key for an algorithm not verified here (RSA-OAEP, ES512, ...).
            Err(_) if name != "none" => return Ok(None),
            Err(e) => return Err(node.error(e.reason())),
        },
    };
    let material = match kty {
        "RSA" => {
            let n = bytes(item, "n")?;
            let e = bytes(item, "e")?;
            let n = rsa::BigUint::from_bytes_be(&n);
            let bits = n.bits();
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(ConfigError::new(
                    format!("{}.n", item.path),
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
            .map_err(|e| {
                ConfigError::new(
                    format!("{}.e", item.path),
                    format!("not a valid RSA key: {e}"),
                )
            })?;
            Material::Rsa(Box::new(key))
        }
        "EC" => {
            let (crv_node, crv) = required(item, "crv")?;
            let len = match crv {
                "P-256" => 32,
                "P-384" => 48,
                _ => return Ok(None),
            };
            let mut sec1 = vec![4u8];
            sec1.extend(fixed(item, "x", len)?);
            sec1.extend(fixed(item, "y", len)?);
            let bad = |_| crv_node.error(format!("x and y are not a point on {crv}"));
            if len == 32 {
                Material::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(bad)?)
            } else {
                Material::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(bad)?)
            }
        }
        "OKP" => {
            let (_, crv) = required(item, "crv")?;
            if crv != "Ed25519" {
                return Ok(None);
            }
            let x = fixed(item, "x", 32)?;
            let mut raw = [0u8; 32];
            raw.copy_from_slice(&x);
            let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| {
                ConfigError::new(format!("{}.x", item.path), "is not an Ed25519 public key")
            })?;
            Material::Ed25519(key)
        }
        "oct" => {
            if !secrets {
                return Err(ConfigError::new(
                    format!("{}.kty", item.path),
                    "oct (HMAC secret) keys are accepted only in local_jwks",
                ));
            }
            let k = bytes(item, "k")?;
            if k.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::new(
                    format!("{}.k", item.path),
                    format!("an HMAC secret must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            Material::Oct(k)
        }
        _ => return Ok(None),
    };
    let key = Key { kid, alg, material };
    if let Some(alg) = key.alg {
        if !key.material.fits(alg) {
            return Err(ConfigError::new(
                format!("{}.alg", item.path),
                format!("{} does not fit a {} key", alg.name(), key.material.kind()),
            ));
        }
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests;
