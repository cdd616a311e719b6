//! The JWS algorithms this plugin verifies (RFC 7518, RFC 8037) and the one
//! place a signature is checked. Which key a token may use is decided before
//! (`jwks::Key::accepts`): here a key of the wrong type is refused again rather
//! than trusted.

use crate::jwks::Material;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

/// Why a header's `alg` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgError {
    /// `none`: an unsigned token.
    None,
    Unsupported,
}

impl AlgError {
    pub fn reason(self) -> &'static str {
        match self {
            AlgError::None => "alg 'none' (an unsigned token) is never accepted",
            AlgError::Unsupported => "unsupported alg",
        }
    }
}

const ALL: [(Alg, &str); 12] = [
    (Alg::Hs256, "HS256"),
    (Alg::Hs384, "HS384"),
    (Alg::Hs512, "HS512"),
    (Alg::Rs256, "RS256"),
    (Alg::Rs384, "RS384"),
    (Alg::Rs512, "RS512"),
    (Alg::Ps256, "PS256"),
    (Alg::Ps384, "PS384"),
    (Alg::Ps512, "PS512"),
    (Alg::Es256, "ES256"),
    (Alg::Es384, "ES384"),
    (Alg::EdDsa, "EdDSA"),
];

impl Alg {
    /// The algorithm named `name` exactly (names are case-sensitive, RFC 7515
    /// §4.1.1), `none` in any case refused as such.
    pub fn parse(name: &str) -> Result<Alg, AlgError> {
        if name.eq_ignore_ascii_case("none") {
            return Err(AlgError::None);
        }
        ALL.iter()
            .find(|(_, n)| *n == name)
            .map(|(alg, _)| *alg)
            .ok_or(AlgError::Unsupported)
    }

    pub fn name(self) -> &'static str {
        ALL.iter().find(|(a, _)| *a == self).map_or("?", |(_, n)| n)
    }

    /// The shortest HMAC secret for this algorithm: the hash's size.
    fn min_secret(self) -> usize {
        match self {
            Alg::Hs384 => 48,
            Alg::Hs512 => 64,
            _ => 32,
        }
    }
}

fn hmac_ok<M: Mac + hmac::digest::KeyInit>(secret: &[u8], input: &[u8], signature: &[u8]) -> bool {
    match <M as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(input);
            // Constant-time comparison (subtle), whatever the length given.
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}

fn rsa_ok(key: &rsa::RsaPublicKey, alg: Alg, input: &[u8], signature: &[u8]) -> bool {
    use rsa::{Pkcs1v15Sign, Pss};
    use sha2::Digest;
    let result = match alg {
        Alg::Rs256 => key.verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(input),
            signature,
        ),
        Alg::Rs384 => key.verify(
            Pkcs1v15Sign::new::<Sha384>(),
            &Sha384::digest(input),
            signature,
        ),
        Alg::Rs512 => key.verify(
            Pkcs1v15Sign::new::<Sha512>(),
            &Sha512::digest(input),
            signature,
        ),
        Alg::Ps256 => key.verify(Pss::new::<Sha256>(), &Sha256::digest(input), signature),
        Alg::Ps384 => key.verify(Pss::new::<Sha384>(), &Sha384::digest(input), signature),
        Alg::Ps512 => key.verify(Pss::new::<Sha512>(), &Sha512::digest(input), signature),
        _ => return false,
    };
    result.is_ok()
}

/// Whether `signature` is `alg`'s signature of `input` (the token's
/// `header.payload`) under `key`. A key whose type does not fit `alg` is false
/// before any crypto runs.
pub fn verify(alg: Alg, key: &Material, input: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    if !key.fits(alg) {
        return false;
    }
    match key {
        Material::Oct(secret) if secret.len() >= alg.min_secret() => match alg {
            Alg::Hs256 => hmac_ok::<Hmac<Sha256>>(secret, input, signature),
            Alg::Hs384 => hmac_ok::<Hmac<Sha384>>(secret, input, signature),
            Alg::Hs512 => hmac_ok::<Hmac<Sha512>>(secret, input, signature),
            _ => false,
        },
        Material::Oct(_) => false,
        Material::Rsa(key) => rsa_ok(key, alg, input, signature),
        Material::P256(key) => p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|s| key.verify(input, &s).is_ok()),
        Material::P384(key) => p384::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|s| key.verify(input, &s).is_ok()),
        Material::Ed25519(key) => <[u8; 64]>::try_from(signature).is_ok_and(|raw| {
            key.verify_strict(input, &ed25519_dalek::Signature::from_bytes(&raw))
                .is_ok()
        }),
    }
}
