//! `jwt_auth_token`: what jwt-auth reads from outside its config: a token from a
//! request, and a JWKS body from the network.
//!
//! Input: a JWKS document when it starts with `{` (read as a fetched body, where
//! HMAC secrets are refused, and as `local_jwks`), otherwise a compact token. A
//! set keeps at most 64 keys with distinct kids, each fitting its own `alg`; an
//! error is one line naming a field under `keys` (or the document). A token's
//! signed input is exactly its first two parts, `none` never parses, and no
//! fuzzed token verifies against the fixed keys (forging one would be a find).

use common::config::parse_json;
use jwt_auth::jwks::{self, MAX_KEYS};
use jwt_auth::token::{self, Refusal};
use std::sync::OnceLock;

/// Fixed public keys, one per type (P-256's and Ed25519's base points), and a
/// secret everyone knows: none can be forged by a fuzzer.
fn keys() -> &'static Vec<jwks::Key> {
    static KEYS: OnceLock<Vec<jwks::Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY", "y": "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "WHmZlswwydO0FIBj-9k5fQGbJ5vc-NWCFyWqn75tP2Q"},
            {"kty": "oct", "kid": "hs", "k": "ZnV6ei1vbmx5LWZ1enotb25seS1mdXp6LW9ubHktZnV6eg"},
        ]});
        jwks::parse(&doc, true).expect("the fixed keys parse").keys
    })
}

fn check_set(data: &[u8], secrets: bool) {
    let Ok(doc) = parse_json(data) else { return };
    match jwks::parse(&doc, secrets) {
        Ok(set) => {
            assert!(set.keys.len() <= MAX_KEYS);
            for (i, key) in set.keys.iter().enumerate() {
                if let Some(alg) = key.alg {
                    assert!(key.material.fits(alg), "key {i} does not fit its alg");
                }
                if !secrets {
                    assert!(
                        !matches!(key.material, jwks::Material::Oct(_)),
                        "a secret from the network"
                    );
                }
                if let Some(kid) = &key.kid {
                    let same = set
                        .keys
                        .iter()
                        .filter(|k| k.kid.as_ref() == Some(kid))
                        .count();
                    assert_eq!(same, 1, "kid {kid:?} twice");
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.chars().any(|c| c == '\n' || c == '\r'), "{text:?}");
            assert!(e.path.is_empty() || e.path.starts_with("keys"), "{text}");
        }
    }
}

pub fn token(data: &[u8]) {
    if data.first() == Some(&b'{') {
        check_set(data, false);
        check_set(data, true);
        return;
    }
    match token::parse(data) {
        Ok(parsed) => {
            let dots: Vec<usize> = data
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'.')
                .map(|(i, _)| i)
                .collect();
            assert_eq!(dots.len(), 2);
            assert_eq!(parsed.signing_input, &data[..dots[1]]);
            assert_ne!(parsed.alg.name(), "none");
            let verified = jwt_auth::verify::signature(&parsed, keys());
            assert!(verified.is_err(), "a fuzzed token verified");
            let _ = parsed.claims.check_time(1_700_000_000, 60, true);
            let _ = parsed.claims.audience_ok(&["a".to_string()]);
        }
        Err(Refusal::Malformed(why)) => assert!(!why.is_empty()),
        Err(Refusal::Alg(_)) => {}
        Err(other) => panic!("parse refused with {other:?}"),
    }
}
