//! jwt-auth in a real Envoy: tokens signed by keys of every type the test makes,
//! every refusal, each place a token can be, claim headers and their
//! anti-spoofing, `forward`; remote keys from a loopback JWKS server the test
//! controls (one fetch shared by concurrent requests, rotation, the server down,
//! slow or answering garbage); and bad configs refused at load.

use harness::{assert_config_refused, Request, Response, Stack};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

use harness::jwt::{self as keys, b64, Signer};

// Remote keys, in a file of their own beside this one.
#[path = "jwt_auth/remote.rs"]
mod remote;

const PLUGIN: &str = "jwt-auth";
const ISS: &str = "https://issuer.test";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": ["api"], "sub": "user-1", "exp": now() + 600,
           "org": {"id": 7, "name": "acme"}, "roles": ["a", "b"], "admin": false})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn jwks(signers: &[&Signer]) -> Value {
    json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()})
}

fn challenge(resp: &Response) -> Option<&str> {
    resp.header("www-authenticate")
}

fn assert_refused(resp: &Response, status: u16, body: &str, what: &str) {
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    assert_eq!(resp.text(), body, "{what}");
    let expected = if body == "missing token\n" {
        "Bearer realm=\"api\"".to_string()
    } else {
        "Bearer realm=\"api\", error=\"invalid_token\"".to_string()
    };
    assert_eq!(challenge(resp), Some(expected.as_str()), "{what}");
}

/// The local-keys Envoy: `main` (every key type, default place), `places`
/// (a header without prefix, a query parameter, a cookie) and `fwd` (forwards
/// its token), with rules by prefix.
fn local_envoy(signers: &[&Signer], places: &Signer, fwd: &Signer) -> harness::Envoy {
    let config = json!({
        "providers": {
            "main": {
                "issuer": ISS,
                "audiences": ["api"],
                "local_jwks": jwks(signers),
                "claim_to_headers": [
                    {"claim": "sub", "header": "x-user-id"},
                    {"claim": "org.name", "header": "x-org"},
                    {"claim": "org", "header": "x-org-json"},
                    {"claim": "roles", "header": "x-roles"},
                    {"claim": "admin", "header": "x-admin"},
                ],
            },
            "places": {
                "issuer": "https://places.test",
                "local_jwks": jwks(&[places]),
                "from_headers": [{"name": "x-jwt"}],
                "from_params": ["access_token"],
                "from_cookies": ["session"],
                "claim_to_headers": [{"claim": "sub", "header": "x-user-id"}],
            },
            "fwd": {
                "issuer": "https://fwd.test",
                "local_jwks": jwks(&[fwd]),
                "forward": true,
                "require_expiration": true,
            },
        },
        "rules": [
            {"prefix": "/public", "providers": []},
            {"prefix": "/places", "providers": ["places"]},
            {"prefix": "/fwd", "providers": ["fwd"]},
            {"prefix": "/api", "request_methods": ["GET", "POST"], "providers": ["main"]},
            {"prefix": "/", "providers": ["main"], "allow_missing": true},
        ],
        "realm": "api",
    });
    Stack::new().plugin(PLUGIN, config).start()
}

#[test]
fn local_keys_of_every_type_pass_and_every_refusal_answers() {
    let rsa = Signer::rsa("rsa", "RS256");
    let pss = Signer::rsa("rsa-pss", "PS512");
    let signers = [
        Signer::ec256("p256"),
        Signer::ec384("p384"),
        Signer::ed25519("ed"),
        Signer::hmac("hs", "HS256", 32),
    ];
    let places = Signer::ec256("places");
    let fwd = Signer::ed25519("fwd");
    let mut all: Vec<&Signer> = signers.iter().collect();
    all.push(&rsa);
    all.push(&pss);
    let envoy = local_envoy(&all, &places, &fwd);

    for signer in &all {
        let token = signer.token(&claims(ISS));
        let resp = envoy.get(
            "/api/x",
            &[("authorization", &bearer(&token)), ("x-user-id", "forged")],
        );
        assert_eq!(resp.status, 200, "{}: {}", signer.alg, resp.text());
        let seen = resp.echoed();
        let ids: Vec<_> = seen
            .headers
            .iter()
            .filter(|(n, _)| n == "x-user-id")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(ids, ["user-1"], "{}: only the claim's value", signer.alg);
        assert_eq!(
            seen.header_value("authorization"),
            None,
            "{}: the token is taken out",
            signer.alg
        );
        assert_eq!(seen.header_value("x-org"), Some("acme"));
        assert_eq!(
            seen.header_value("x-org-json"),
            Some(r#"{"id":7,"name":"acme"}"#)
        );
        assert_eq!(seen.header_value("x-roles"), Some(r#"["a","b"]"#));
        assert_eq!(seen.header_value("x-admin"), Some("false"));
    }

    // A 16 KB token (a large claim) passes.
    let mut big = claims(ISS);
    big["blob"] = json!("x".repeat(12_000));
    let token = rsa.token(&big);
    assert!(token.len() >= 16_000, "{}", token.len());
    let resp = envoy.get("/api/big", &[("authorization", &bearer(&token))]);
    assert_eq!(resp.status, 200, "16 KB token: {}", resp.text());

    let with = |patch: Value| {
        let mut c = claims(ISS);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let other = Signer::ec256("p256");
    let rsa_public = rsa.jwk.to_string().into_bytes();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed", "not.a.jwt".into(), 401, "malformed token\n"),
        (
            "alg none",
            keys::unsigned(&claims(ISS)),
            401,
            "unsigned token (alg none)\n",
        ),
        (
            "HS256 with the RSA key as secret, its kid",
            keys::hs256_with_secret(&rsa_public, Some("rsa"), &claims(ISS)),
            401,
            "token algorithm does not fit the issuer's keys\n",
        ),
        (
            "HS256 with the RSA key as secret, no kid",
            keys::hs256_with_secret(&rsa_public, None, &claims(ISS)),
            401,
            "invalid token signature\n",
        ),
        (
            "RS256 header on an EC kid",
            rsa.token_with(&json!({"alg": "RS256", "kid": "p256"}), &claims(ISS)),
            401,
            "token algorithm does not fit the issuer's keys\n",
        ),
        (
            "unknown kid",
            rsa.token_with(&json!({"alg": "RS256", "kid": "nope"}), &claims(ISS)),
            401,
            "unknown key id\n",
        ),
        (
            "another key, same kid",
            other.token(&claims(ISS)),
            401,
            "invalid token signature\n",
        ),
        (
            "tampered",
            keys::tamper(&rsa.token(&claims(ISS))),
            401,
            "invalid token signature\n",
        ),
        (
            "wrong issuer",
            rsa.token(&with(json!({"iss": "https://evil.test"}))),
            401,
            "token issuer not accepted\n",
        ),
        (
            "expired",
            rsa.token(&with(json!({"exp": now() - 120}))),
            401,
            "token expired\n",
        ),
        (
            "not yet valid",
            rsa.token(&with(json!({"nbf": now() + 120}))),
            401,
            "token not yet valid\n",
        ),
        (
            "audience",
            rsa.token(&with(json!({"aud": "other"}))),
            403,
            "audience not allowed\n",
        ),
    ];
    for (what, token, status, body) in &cases {
        let resp = envoy.get("/api/x", &[("authorization", &bearer(token))]);
        assert_refused(&resp, *status, body, what);
        assert!(!resp.text().contains(token.as_str()));
    }
    // Missing where needed; allowed missing elsewhere, but a bad token is refused.
    assert_refused(&envoy.get("/api/x", &[]), 401, "missing token\n", "missing");
    assert_eq!(envoy.get("/other", &[]).status, 200);
    assert_refused(
        &envoy.get("/other", &[("authorization", "Bearer junk")]),
        401,
        "malformed token\n",
        "allow_missing, bad token",
    );
    // Methods the /api rule does not list fall through to the last rule.
    let resp = envoy.send(&Request::new("DELETE", "/api/x"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    // An override to POST needs what POST needs.
    let resp =
        envoy.send(&Request::new("DELETE", "/api/x").header("x-http-method-override", "GET"));
    assert_refused(&resp, 401, "missing token\n", "override");
    // No token needed on /public; forged claim headers go there too, in every spelling.
    let resp = envoy.get(
        "/public/x",
        &[
            ("x-user-id", "admin"),
            ("x_user_id", "root"),
            ("authorization", "Bearer junk"),
        ],
    );
    assert_eq!(resp.status, 200);
    let seen = resp.echoed();
    assert!(
        seen.headers
            .iter()
            .all(|(n, _)| !n.eq_ignore_ascii_case("x-user-id")
                && !n.eq_ignore_ascii_case("x_user_id")),
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.header_value("authorization"),
        Some("Bearer junk"),
        "no rule checks it there"
    );
    // Logs hold no token, not even at debug.
    let log = envoy.log();
    for (_, token, _, _) in &cases {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(
            signature.len() < 8 || !log.contains(signature),
            "a token in the log"
        );
    }
}

#[test]
fn tokens_are_read_from_each_place_and_forward_keeps_them() {
    let main = Signer::ec256("main");
    let places = Signer::ec256("places");
    let fwd = Signer::ed25519("fwd");
    let envoy = local_envoy(&[&main], &places, &fwd);
    let token = places.token(&claims("https://places.test"));

    let resp = envoy.get("/places/h", &[("x-jwt", &token)]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed().header_value("x-jwt"), None);
    assert_eq!(resp.echoed().header_value("x-user-id"), Some("user-1"));

    let resp = envoy.get(&format!("/places/q?a=1&access_token={token}&b=2"), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.echoed().path,
        "/places/q?a=1&b=2",
        "the parameter is taken out"
    );

    let cookie = format!("theme=dark; session={token}; lang=en");
    let resp = envoy.get("/places/c", &[("cookie", &cookie)]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.echoed().header_value("cookie"),
        Some("theme=dark; lang=en")
    );

    // Its token in the default place is not looked for.
    let resp = envoy.get("/places/x", &[("authorization", &bearer(&token))]);
    assert_refused(
        &resp,
        401,
        "missing token\n",
        "places ignores Authorization",
    );
    // Another provider's token where this one's is looked for.
    let main_token = main.token(&claims(ISS));
    let resp = envoy.get("/places/x", &[("x-jwt", &main_token)]);
    assert_refused(
        &resp,
        401,
        "token issuer not accepted\n",
        "issuer of another provider",
    );

    // forward: true leaves the token for the upstream.
    let fwd_token = fwd.token(&claims("https://fwd.test"));
    let resp = envoy.get("/fwd/x", &[("authorization", &bearer(&fwd_token))]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.echoed().header_value("authorization"),
        Some(bearer(&fwd_token).as_str())
    );
    // require_expiration: a token without exp is refused.
    let mut no_exp = claims("https://fwd.test");
    no_exp.as_object_mut().unwrap().remove("exp");
    let resp = envoy.get("/fwd/x", &[("authorization", &bearer(&fwd.token(&no_exp)))]);
    assert_refused(
        &resp,
        401,
        "token has no expiration\n",
        "require_expiration",
    );
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let provider = |extra: &str| {
        format!(
            r#"{{"providers": {{"p": {{"issuer": "https://i", {extra}}}}}, "rules": [{{"prefix": "/", "providers": ["p"]}}]}}"#
        )
    };
    let cases = [
        (provider(r#""local_jwks": {"keys": "nope"}"#), "providers.p.local_jwks.keys: expected a list, got a string"),
        (provider(r#""local_jwks": {"keys": [{"kty": "RSA", "e": "AQAB"}]}"#), "providers.p.local_jwks.keys[0].n: is required"),
        (
            r#"{"providers": {"p": {"issuer": 7, "local_jwks": {"keys": []}}}, "rules": []}"#.to_string(),
            "providers.p.issuer: expected a string, got a number",
        ),
        (
            provider(r#""local_jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}]}"#)
                .replace(r#""providers": ["p"]"#, r#""providers": ["q"]"#),
            "rules[0].providers[0]: unknown provider 'q' (known: p)",
        ),
    ];
    for (config, expected) in cases {
        let log = assert_config_refused(PLUGIN, &config, expected);
        assert!(!log.contains("c2VjcmV0c2VjcmV0"), "a secret in the log");
    }
}

#[test]
fn secrets_never_reach_the_log() {
    // A config error about an HMAC secret names the field, not the secret.
    let secret = b64(b"short-marker-secret");
    let config = format!(
        r#"{{"providers": {{"p": {{"issuer": "https://i", "local_jwks": {{"keys": [{{"kty": "oct", "k": "{secret}"}}]}}}}}}, "rules": [{{"prefix": "/", "providers": ["p"]}}]}}"#
    );
    let log = assert_config_refused(
        PLUGIN,
        &config,
        "providers.p.local_jwks.keys[0].k: an HMAC secret must be at least 32 bytes",
    );
    assert!(!log.contains(&secret));
}
