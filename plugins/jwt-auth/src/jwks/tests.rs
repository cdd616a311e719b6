//! JWKS parsing: the keys each type yields, what is skipped, and each refusal.

use super::*;
use serde_json::{json, Value};

fn parse_doc(doc: Value, secrets: bool) -> Result<Jwks, ConfigError> {
    parse(&doc, secrets)
}

/// A real P-256 point (the generator), and Ed25519's base point.
const P256_X: &str = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
const P256_Y: &str = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
const ED_X: &str = "WHmZlswwydO0FIBj-9k5fQGbJ5vc-NWCFyWqn75tP2Q";

#[test]
fn supported_keys_are_read_and_others_skipped() {
    let doc = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "kid": "ec", "alg": "ES256", "use": "sig", "key_ops": ["verify"]},
        {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed"},
        {"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {"kty": "RSA", "use": "enc", "n": "AA", "e": "AQAB"},
        {"kty": "RSA", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB"},
        {"kty": "weird"},
    ], "extra": true});
    let set = parse_doc(doc, true).unwrap();
    let kinds: Vec<&str> = set.keys.iter().map(|k| k.material.kind()).collect();
    assert_eq!(kinds, ["EC P-256", "OKP Ed25519", "oct"]);
    assert_eq!(set.skipped, 5);
    assert_eq!(set.keys[0].kid.as_deref(), Some("ec"));
    assert_eq!(set.keys[0].alg, Some(Alg::Es256));
    assert!(set.keys[0].accepts(Alg::Es256) && !set.keys[0].accepts(Alg::Es384));
    assert!(set.keys[2].accepts(Alg::Hs256) && !set.keys[2].accepts(Alg::Rs256));
}

#[test]
fn bad_keys_are_named_and_secrets_never_quoted() {
    let secret = "c2hvcnQtc2VjcmV0LW1hcmtlcg"; // "short-secret-marker"
    let cases: Vec<(Value, bool, &str)> = vec![
        (json!([]), true, "expected an object, got a list"),
        (json!({}), true, "keys: is required"),
        (
            json!({"keys": {}}),
            true,
            "keys: expected a list, got an object",
        ),
        (
            json!({"keys": [1]}),
            true,
            "keys[0]: expected an object, got a number",
        ),
        (json!({"keys": [{}]}), true, "keys[0].kty: is required"),
        (
            json!({"keys": [{"kty": 1}]}),
            true,
            "keys[0].kty: expected a string, got a number",
        ),
        (
            json!({"keys": [{"kty": "RSA", "n": "AQAB"}]}),
            true,
            "keys[0].e: is required",
        ),
        (
            json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}),
            true,
            "keys[0].n: is not base64url",
        ),
        (
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            true,
            "keys[0].n: RSA modulus of 17 bits; 2048 to 8192 are accepted",
        ),
        (
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": P256_Y}]}),
            true,
            "keys[0].x: must be 32 bytes, got 1",
        ),
        (
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": P256_Y, "y": P256_Y}]}),
            true,
            "keys[0].crv: x and y are not a point on P-256",
        ),
        (
            json!({"keys": [{"kty": "EC", "x": P256_X, "y": P256_Y}]}),
            true,
            "keys[0].crv: is required",
        ),
        (
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "alg": "RS256"}]}),
            true,
            "keys[0].alg: RS256 does not fit a EC P-256 key",
        ),
        (
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "alg": "none"}]}),
            true,
            "keys[0].alg: alg 'none' (an unsigned token) is never accepted",
        ),
        (
            json!({"keys": [{"kty": "oct", "k": secret}]}),
            true,
            "keys[0].k: an HMAC secret must be at least 32 bytes",
        ),
        (
            json!({"keys": [{"kty": "oct", "k": secret}]}),
            false,
            "keys[0].kty: oct (HMAC secret) keys are accepted only in local_jwks",
        ),
        (
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "a"}, {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "a"}]}),
            true,
            "keys[1]: kid 'a' appears twice in the set",
        ),
        (
            json!({"keys": vec![json!({"kty": "weird"}); MAX_KEYS + 1]}),
            true,
            "keys: at most 64 items, got 65",
        ),
    ];
    for (doc, secrets, expected) in cases {
        let error = match parse_doc(doc.clone(), secrets) {
            Ok(_) => panic!("accepted {doc}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(error, expected, "{doc}");
        assert!(!error.contains(secret));
    }
}
