//! Keys and JWTs for jwt-auth's tests and bench, made fresh by each run (RSA
//! keys once per process: making one takes a while), so no secret is fixed
//! anywhere. The plugin's unit tests include this file by path.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};
use std::sync::OnceLock;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs a token's `header.payload`.
type Sign = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// A key that signs tokens, and its public JWK.
pub struct Signer {
    pub kid: String,
    pub alg: &'static str,
    pub jwk: Value,
    sign: Sign,
}

fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
}

fn rsa_key2() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
}

impl Signer {
    /// An RSA key (`r9` is another key than every other kid) for RS* or PS*.
    pub fn rsa(kid: &str, alg: &'static str) -> Signer {
        use rsa::traits::PublicKeyParts;
        use sha2::Digest;
        let key = if kid == "r9" { rsa_key2() } else { rsa_key() }.clone();
        let public = key.to_public_key();
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())});
        let sign = move |input: &[u8]| -> Vec<u8> {
            let mut rng = OsRng;
            match alg {
                "RS256" => key
                    .sign(
                        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                        &sha2::Sha256::digest(input),
                    )
                    .unwrap(),
                "RS384" => key
                    .sign(
                        rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                        &sha2::Sha384::digest(input),
                    )
                    .unwrap(),
                "RS512" => key
                    .sign(
                        rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                        &sha2::Sha512::digest(input),
                    )
                    .unwrap(),
                "PS256" => key
                    .sign_with_rng(
                        &mut rng,
                        rsa::Pss::new::<sha2::Sha256>(),
                        &sha2::Sha256::digest(input),
                    )
                    .unwrap(),
                "PS384" => key
                    .sign_with_rng(
                        &mut rng,
                        rsa::Pss::new::<sha2::Sha384>(),
                        &sha2::Sha384::digest(input),
                    )
                    .unwrap(),
                "PS512" => key
                    .sign_with_rng(
                        &mut rng,
                        rsa::Pss::new::<sha2::Sha512>(),
                        &sha2::Sha512::digest(input),
                    )
                    .unwrap(),
                other => panic!("{other}"),
            }
        };
        Signer {
            kid: kid.into(),
            alg,
            jwk,
            sign: Box::new(sign),
        }
    }

    pub fn ec256(kid: &str) -> Signer {
        use p256::ecdsa::signature::Signer as _;
        let key = p256::ecdsa::SigningKey::random(&mut OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
        let sign = move |input: &[u8]| -> Vec<u8> {
            let s: p256::ecdsa::Signature = key.sign(input);
            s.to_bytes().to_vec()
        };
        Signer {
            kid: kid.into(),
            alg: "ES256",
            jwk,
            sign: Box::new(sign),
        }
    }

    pub fn ec384(kid: &str) -> Signer {
        use p384::ecdsa::signature::Signer as _;
        let key = p384::ecdsa::SigningKey::random(&mut OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = json!({"kty": "EC", "crv": "P-384", "kid": kid, "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
        let sign = move |input: &[u8]| -> Vec<u8> {
            let s: p384::ecdsa::Signature = key.sign(input);
            s.to_bytes().to_vec()
        };
        Signer {
            kid: kid.into(),
            alg: "ES384",
            jwk,
            sign: Box::new(sign),
        }
    }

    pub fn ed25519(kid: &str) -> Signer {
        use ed25519_dalek::Signer as _;
        let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(key.verifying_key().as_bytes())});
        let sign = move |input: &[u8]| key.sign(input).to_bytes().to_vec();
        Signer {
            kid: kid.into(),
            alg: "EdDSA",
            jwk,
            sign: Box::new(sign),
        }
    }

    pub fn hmac(kid: &str, alg: &'static str, len: usize) -> Signer {
        let mut secret = vec![0u8; len];
        OsRng.fill_bytes(&mut secret);
        let jwk = json!({"kty": "oct", "kid": kid, "k": b64(&secret)});
        let sign = move |input: &[u8]| hmac_sign(alg, &secret, input);
        Signer {
            kid: kid.into(),
            alg,
            jwk,
            sign: Box::new(sign),
        }
    }

    /// A token with this key's kid and alg.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"});
        self.token_with(&header, claims)
    }

    pub fn token_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = (self.sign)(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }
}

fn hmac_sign(alg: &str, secret: &[u8], input: &[u8]) -> Vec<u8> {
    match alg {
        "HS256" => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        "HS384" => {
            let mut m = Hmac::<sha2::Sha384>::new_from_slice(secret).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        other => panic!("{other}"),
    }
}

/// An HS256 token keyed with `secret` (the alg-confusion attack uses a public
/// key's bytes).
pub fn hs256_with_secret(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!(
        "{input}.{}",
        b64(&hmac_sign("HS256", secret, input.as_bytes()))
    )
}

/// An `alg: none` token, with an empty signature.
pub fn unsigned(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The token with one bit of its signature flipped.
pub fn tamper(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 1;
    format!("{input}.{}", b64(&bytes))
}
