//! Taking tokens apart, time and audience checks, claim paths; the algorithm
//! table and alg confusion, before and in the crypto.

use super::*;
use crate::jwks::{Key, Material};
use crate::tests::keys::{self, b64, Signer};
use serde_json::json;

fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

#[test]
fn tokens_are_taken_apart_or_refused() {
    let ok = json!({"alg": "ES256", "kid": "k"});
    let claims = json!({"iss": "i", "aud": ["a", "b"], "exp": 10, "nbf": 1.5, "sub": "s"});
    let t = compact(&ok, &claims, b"sig");
    let parsed = parse(t.as_bytes()).unwrap();
    assert_eq!(parsed.alg, Alg::Es256);
    assert_eq!(parsed.kid.as_deref(), Some("k"));
    assert_eq!(parsed.signature, b"sig");
    assert_eq!(parsed.claims.aud, ["a", "b"]);
    assert_eq!(
        (parsed.claims.exp, parsed.claims.nbf),
        (Some(10.0), Some(1.5))
    );
    assert_eq!(
        parsed.signing_input,
        t.rsplit_once('.').unwrap().0.as_bytes()
    );

    let malformed = |why: &'static str| Err(Refusal::Malformed(why));
    let cases: Vec<(String, Result<(), Refusal>)> = vec![
        ("a.b".into(), malformed("not three dot-separated parts")),
        (format!("{t}.x"), malformed("not three dot-separated parts")),
        ("!.b.c".into(), malformed("a part is not base64url")),
        (format!("{}=", t), malformed("a part is not base64url")),
        (
            compact(&json!([1]), &claims, b""),
            malformed("header is not a JSON object"),
        ),
        (
            compact(&json!({"kid": "k"}), &claims, b""),
            malformed("header has no alg string"),
        ),
        (
            compact(&json!({"alg": "none"}), &claims, b""),
            Err(Refusal::Alg(crate::alg::AlgError::None)),
        ),
        (
            compact(&json!({"alg": "NONE"}), &claims, b""),
            Err(Refusal::Alg(crate::alg::AlgError::None)),
        ),
        (
            compact(&json!({"alg": "es256"}), &claims, b""),
            Err(Refusal::Alg(crate::alg::AlgError::Unsupported)),
        ),
        (
            compact(&json!({"alg": "ES512"}), &claims, b""),
            Err(Refusal::Alg(crate::alg::AlgError::Unsupported)),
        ),
        (
            compact(&json!({"alg": "ES256", "crit": ["b64"]}), &claims, b""),
            malformed("header has crit extensions"),
        ),
        (
            compact(&json!({"alg": "ES256", "kid": 1}), &claims, b""),
            malformed("header kid is not a string"),
        ),
        (
            compact(&ok, &json!("s"), b""),
            malformed("claims are not a JSON object"),
        ),
        (
            compact(&ok, &json!({"iss": 1}), b""),
            malformed("iss is not a string"),
        ),
        (
            compact(&ok, &json!({"exp": "1"}), b""),
            malformed("a time claim is not a number"),
        ),
        (
            compact(&ok, &json!({"aud": [1]}), b""),
            malformed("aud is not a string or a list of strings"),
        ),
        (
            format!(
                "{}.{}.",
                b64(br#"{"alg":"ES256","alg":"none"}"#),
                b64(b"{}")
            ),
            malformed("header is not a JSON object"),
        ),
        (
            format!(
                "{}.{}.",
                b64(ok.to_string().as_bytes()),
                b64(br#"{"sub":"a","sub":"b"}"#)
            ),
            malformed("claims are not a JSON object"),
        ),
        (
            format!(
                "{}.{}.",
                b64(ok.to_string().as_bytes()),
                "A".repeat(MAX_TOKEN_BYTES)
            ),
            malformed("token too large"),
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(parse(token.as_bytes()).map(|_| ()), expected, "{token:.80}");
    }
}

#[test]
fn time_and_audience_checks() {
    let claims = |v: Value| {
        parse(compact(&json!({"alg": "ES256"}), &v, b"").as_bytes())
            .unwrap()
            .claims
    };
    let cases: Vec<(Value, u64, bool, Result<(), Refusal>)> = vec![
        (json!({"exp": 100}), 160, false, Ok(())),
        (json!({"exp": 100}), 161, false, Err(Refusal::Expired)),
        (json!({"exp": 100.5}), 160, false, Ok(())),
        (json!({"nbf": 200}), 140, false, Ok(())),
        (json!({"nbf": 200}), 139, false, Err(Refusal::NotYetValid)),
        (json!({}), 0, false, Ok(())),
        (json!({}), 0, true, Err(Refusal::NoExpiration)),
    ];
    for (v, now, require, expected) in cases {
        assert_eq!(
            claims(v.clone()).check_time(now, 60, require),
            expected,
            "{v} at {now}"
        );
    }
    let c = claims(json!({"aud": "x", "a": {"b": {"c": 1}}}));
    assert!(
        c.audience_ok(&[])
            && c.audience_ok(&["y".into(), "x".into()])
            && !c.audience_ok(&["y".into()])
    );
    assert!(!claims(json!({})).audience_ok(&["x".into()]));
    let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
    assert_eq!(c.get(&path("a.b.c")), Some(&json!(1)));
    assert_eq!(c.get(&path("a.x")), None);
    assert_eq!(c.get(&path("aud.x")), None);
}

#[test]
fn alg_confusion_is_refused_before_the_crypto_and_in_it() {
    let rsa = Signer::rsa("r", "RS256");
    let ec = Signer::ec256("e");
    let rsa_key = crate::jwks::parse(&json!({"keys": [rsa.jwk]}), false)
        .unwrap()
        .keys;
    let ec_key = crate::jwks::parse(&json!({"keys": [ec.jwk]}), false)
        .unwrap()
        .keys;
    let claims = json!({"iss": "i"});
    let check = |token: &str, keys: &[Key]| {
        crate::verify::signature(&parse(token.as_bytes()).unwrap(), keys)
    };
    // HS256 keyed with the RSA public key's JWK, its DER-ish bytes, or its n.
    let n = rsa.jwk["n"].as_str().unwrap().to_string();
    for secret in [rsa.jwk.to_string().into_bytes(), n.into_bytes()] {
        assert_eq!(
            check(
                &keys::hs256_with_secret(&secret, Some("r"), &claims),
                &rsa_key
            ),
            Err(Refusal::AlgMismatch)
        );
        assert_eq!(
            check(&keys::hs256_with_secret(&secret, None, &claims), &rsa_key),
            Err(Refusal::AlgMismatch)
        );
    }
    // An RSA token against an EC key of the same kid, and the other way round.
    let as_e = rsa.token_with(&json!({"alg": "RS256", "kid": "e"}), &claims);
    assert_eq!(check(&as_e, &ec_key), Err(Refusal::AlgMismatch));
    let es_on_r = ec.token_with(&json!({"alg": "ES256", "kid": "r"}), &claims);
    assert_eq!(check(&es_on_r, &rsa_key), Err(Refusal::AlgMismatch));
    // A key with alg RS256 refuses PS256 tokens even though both are RSA.
    let mut pinned = rsa_key.clone();
    pinned[0].alg = Some(Alg::Rs256);
    let pss = Signer::rsa("r", "PS256").token(&claims);
    assert_eq!(check(&pss, &rsa_key), Ok(()));
    assert_eq!(check(&pss, &pinned), Err(Refusal::AlgMismatch));
    // In the crypto too: a key of another type never verifies.
    let input = b"a.b";
    for alg in [Alg::Hs256, Alg::Es256, Alg::EdDsa] {
        assert!(!crate::alg::verify(alg, &rsa_key[0].material, input, b"x"));
    }
    assert!(
        !crate::alg::verify(Alg::Hs512, &Material::Oct(vec![1; 32]), input, b"x"),
        "a secret shorter than the hash"
    );
    // Every name round-trips.
    for name in [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ] {
        assert_eq!(Alg::parse(name).unwrap().name(), name);
    }
}
