//! The plugin's flow over the recording mock host: local and remote keys,
//! every refusal's answer, the fetch shared by waiting streams, fetch failures,
//! claim headers and their anti-spoofing, `forward`, and the verified-token cache.
//! Keys and tokens are made by the tests (`keys`, shared with the end-to-end
//! tests and the bench).

#[path = "../../../harness/src/jwt.rs"]
pub mod keys;
mod remote;

use super::*;
use common::plugin::testing::{Effect, Mock};
use common::plugin::{Chain, Configured, Instance};
use keys::{b64, Signer};
use serde_json::json;

const ISS: &str = "https://issuer.test";

fn provider_local(signers: &[&Signer]) -> Value {
    json!({
        "issuer": ISS,
        "audiences": ["api"],
        "local_jwks": {"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()},
        "claim_to_headers": [{"claim": "sub", "header": "x-user-id"}, {"claim": "org.id", "header": "x-org"}],
    })
}

fn chain_of(config: Value) -> Chain {
    let instance: Box<dyn Instance> = Box::new(Configured::<JwtAuth>::new("", &config).unwrap());
    Chain::new(Rc::new(vec![instance]))
}

fn instances(config: Value) -> common::plugin::Instances {
    let instance: Box<dyn Instance> = Box::new(Configured::<JwtAuth>::new("", &config).unwrap());
    Rc::new(vec![instance])
}

fn claims(exp_in: i64) -> Value {
    let now = (Mock::new().now / 1000) as i64;
    json!({"iss": ISS, "aud": "api", "sub": "user-1", "exp": now + exp_in, "org": {"id": 7}})
}

fn get(path: &str, headers: &[(&str, &str)]) -> Mock {
    let mut all = vec![(":method", "GET"), (":path", path)];
    all.extend_from_slice(headers);
    Mock::with_request(&all)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The status a request got, or 0 when it went on.
fn status(mock: &mut Mock, step: Step) -> u32 {
    let effects = mock.take();
    let responded = effects.iter().find_map(|e| match e {
        Effect::Respond(status, ..) => Some(*status),
        _ => None,
    });
    match (step, responded) {
        (Step::Continue, None) => 0,
        (Step::Stop | Step::Pause, Some(status)) => status,
        other => panic!("step and effects disagree: {other:?} {effects:?}"),
    }
}

#[test]
fn each_key_type_signs_tokens_that_pass_and_set_claim_headers() {
    let signers = [
        Signer::rsa("r1", "RS256"),
        Signer::rsa("r2", "PS384"),
        Signer::ec256("e1"),
        Signer::ec384("e2"),
        Signer::ed25519("o1"),
        Signer::hmac("h1", "HS512", 64),
    ];
    let refs: Vec<&Signer> = signers.iter().collect();
    let config = json!({"providers": {"p": provider_local(&refs)}, "rules": [{"prefix": "/", "providers": ["p"]}]});
    for signer in &signers {
        let token = signer.token(&claims(600));
        let mut mock = get(
            "/x",
            &[
                ("authorization", &bearer(&token)),
                ("x-user-id", "forged"),
                ("x_org", "forged"),
            ],
        );
        let step = chain_of(config.clone()).on_request_headers(&mut mock, 1);
        assert_eq!(status(&mut mock, step), 0, "{}", signer.alg);
        assert_eq!(
            mock.request_values("x-user-id"),
            ["user-1"],
            "{}",
            signer.alg
        );
        assert_eq!(
            mock.request_values("x-org"),
            ["7"],
            "nested claim, number as JSON"
        );
        assert!(
            mock.request_values("x_org").is_empty(),
            "every spelling of a claim header goes"
        );
        assert!(
            mock.request_values("authorization").is_empty(),
            "forward: false takes the token out"
        );
    }
}

#[test]
fn refusals_answer_as_documented() {
    let rsa = Signer::rsa("r1", "RS256");
    let other = Signer::rsa("r9", "RS256");
    let ec = Signer::ec256("e1");
    let config = json!({
        "providers": {"p": provider_local(&[&rsa, &ec])},
        "rules": [{"prefix": "/", "providers": ["p"]}],
        "realm": "api",
    });
    let now = (Mock::new().now / 1000) as i64;
    let with = |patch: Value| {
        let mut c = claims(600);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // HS256 "signed" with the RSA public key's JWK as the secret.
    let confused =
        keys::hs256_with_secret(&rsa.jwk.to_string().into_bytes(), Some("r1"), &claims(600));
    let cases: Vec<(&str, Option<String>, u32, &str)> = vec![
        ("missing", None, 401, "missing token\n"),
        ("garbage", Some("abc".into()), 401, "malformed token\n"),
        (
            "four parts",
            Some(format!("{}.x", rsa.token(&claims(600)))),
            401,
            "malformed token\n",
        ),
        (
            "alg none",
            Some(keys::unsigned(&claims(600))),
            401,
            "unsigned token (alg none)\n",
        ),
        (
            "alg confusion",
            Some(confused),
            401,
            "token algorithm does not fit the issuer's keys\n",
        ),
        (
            "unknown kid",
            Some(other.token(&claims(600))),
            401,
            "unknown key id\n",
        ),
        (
            "bad signature",
            Some(keys::tamper(&rsa.token(&claims(600)))),
            401,
            "invalid token signature\n",
        ),
        (
            "wrong issuer",
            Some(rsa.token(&with(json!({"iss": "https://evil"})))),
            401,
            "token issuer not accepted\n",
        ),
        (
            "expired",
            Some(rsa.token(&with(json!({"exp": now - 61})))),
            401,
            "token expired\n",
        ),
        (
            "not yet",
            Some(rsa.token(&with(json!({"nbf": now + 61})))),
            401,
            "token not yet valid\n",
        ),
        (
            "audience",
            Some(rsa.token(&with(json!({"aud": ["other"]})))),
            403,
            "audience not allowed\n",
        ),
        (
            "within skew",
            Some(rsa.token(&with(json!({"exp": now - 59, "nbf": now + 59})))),
            0,
            "",
        ),
    ];
    for (name, token, expected, body) in cases {
        let mut headers = vec![];
        let value = token.as_deref().map(bearer);
        if let Some(v) = &value {
            headers.push(("authorization", v.as_str()));
        }
        let mut mock = get("/x", &headers);
        let step = chain_of(config.clone()).on_request_headers(&mut mock, 1);
        let effects = mock.take();
        if expected == 0 {
            assert_eq!(step, Step::Continue, "{name}: {effects:?}");
            continue;
        }
        let Some(Effect::Respond(status, _, headers, text)) =
            effects.iter().find(|e| matches!(e, Effect::Respond(..)))
        else {
            panic!("{name}: no response: {effects:?}");
        };
        assert_eq!((*status, text.as_str()), (expected, body), "{name}");
        let challenge = if name == "missing" {
            "Bearer realm=\"api\""
        } else {
            "Bearer realm=\"api\", error=\"invalid_token\""
        };
        assert_eq!(
            headers,
            &[("www-authenticate".to_string(), challenge.to_string())],
            "{name}"
        );
        if let Some(token) = &token {
            assert!(
                !text.contains(token.as_str()),
                "{name}: the body never echoes the token"
            );
        }
    }
}

#[test]
fn rules_decide_first_match_and_allow_missing_still_checks_bad_tokens() {
    let rsa = Signer::rsa("r1", "RS256");
    let config = json!({
        "providers": {"p": provider_local(&[&rsa])},
        "rules": [
            {"prefix": "/public", "providers": []},
            {"prefix": "/api", "request_methods": ["POST"], "providers": ["p"]},
            {"prefix": "/", "providers": ["p"], "allow_missing": true},
        ],
    });
    let good = bearer(&rsa.token(&claims(600)));
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u32);
    let cases: Vec<Case> = vec![
        ("GET", "/public/x", vec![], 0),
        (
            "GET",
            "/public/x",
            vec![("authorization", "Bearer junk")],
            0,
        ),
        ("POST", "/api/x", vec![], 401),
        ("POST", "/api/x", vec![("authorization", &good)], 0),
        // GET /api falls through to the last rule: a missing token is fine...
        ("GET", "/api/x", vec![], 0),
        // ...but a bad one is refused.
        ("GET", "/api/x", vec![("authorization", "Bearer junk")], 401),
        // An override to POST needs what POST needs.
        (
            "GET",
            "/api/x",
            vec![("x-http-method-override", "POST")],
            401,
        ),
        (
            "GET",
            "/public/x",
            vec![("x-http-method-override", "DELETE")],
            0,
        ),
        // A path that cannot be matched safely.
        ("GET", "/api%2Fx", vec![], 400),
    ];
    for (method, path, headers, expected) in cases {
        let mut all = vec![(":method", method), (":path", path)];
        all.extend(headers.iter().copied());
        let mut mock = Mock::with_request(&all);
        let step = chain_of(config.clone()).on_request_headers(&mut mock, 1);
        assert_eq!(
            status(&mut mock, step),
            expected,
            "{method} {path} {headers:?}"
        );
    }
}

#[test]
fn spoofed_claim_headers_are_removed_even_where_no_rule_applies() {
    let rsa = Signer::rsa("r1", "RS256");
    let config = json!({"providers": {"p": provider_local(&[&rsa])}, "rules": [{"prefix": "/api", "providers": ["p"]}]});
    // Envoy hands header names over lowercase.
    let mut mock = get(
        "/other",
        &[
            ("x-user-id", "admin"),
            ("x_user_id", "root"),
            ("x-user-idx", "kept"),
        ],
    );
    let step = chain_of(config).on_request_headers(&mut mock, 1);
    assert_eq!(status(&mut mock, step), 0);
    let names: Vec<&str> = mock.request.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [":method", ":path", "x-user-idx"]);
}

#[test]
fn tokens_in_params_and_cookies_are_found_and_taken_out() {
    let rsa = Signer::rsa("r1", "RS256");
    let mut provider = provider_local(&[&rsa]);
    provider["from_params"] = json!(["access_token"]);
    provider["from_cookies"] = json!(["session"]);
    provider["from_headers"] = json!([{"name": "x-jwt"}]);
    let config = json!({"providers": {"p": provider.clone()}, "rules": [{"prefix": "/", "providers": ["p"]}]});
    let token = rsa.token(&claims(600));
    let path = format!("/x?a=1&access_token={token}&b=2");
    let mut mock = get(&path, &[]);
    let step = chain_of(config.clone()).on_request_headers(&mut mock, 1);
    assert_eq!(status(&mut mock, step), 0);
    assert_eq!(mock.request_values(":path"), ["/x?a=1&b=2"]);
    let cookie = format!("a=1; session={token}; b=2");
    let mut mock = get("/x", &[("cookie", &cookie)]);
    let step = chain_of(config.clone()).on_request_headers(&mut mock, 1);
    assert_eq!(status(&mut mock, step), 0);
    assert_eq!(mock.request_values("cookie"), ["a=1; b=2"]);
    let mut mock = get("/x", &[("x-jwt", &token)]);
    let step = chain_of(config.clone()).on_request_headers(&mut mock, 1);
    assert_eq!(status(&mut mock, step), 0);
    assert!(mock.request_values("x-jwt").is_empty());
    // The default place is not read when places are given.
    let mut mock = get("/x", &[("authorization", &bearer(&token))]);
    let step = chain_of(config).on_request_headers(&mut mock, 1);
    assert_eq!(status(&mut mock, step), 401);
    // forward: true leaves the token where it was.
    provider["forward"] = json!(true);
    let config =
        json!({"providers": {"p": provider}, "rules": [{"prefix": "/", "providers": ["p"]}]});
    let mut mock = get(&path, &[]);
    let step = chain_of(config).on_request_headers(&mut mock, 1);
    assert_eq!(status(&mut mock, step), 0);
    assert_eq!(mock.request_values(":path"), [path]);
}

#[test]
fn a_verified_token_is_not_verified_again_until_it_expires() {
    let rsa = Signer::rsa("r1", "RS256");
    let config = json!({"providers": {"p": provider_local(&[&rsa])}, "rules": [{"prefix": "/", "providers": ["p"]}]});
    let list = instances(config);
    let token = rsa.token(&claims(100));
    let mut mock = get("/", &[("authorization", &bearer(&token))]);
    Chain::new(list.clone()).on_request_headers(&mut mock, 1);
    let verified = |mock: &mut Mock| {
        mock.effects()
            .iter()
            .any(|e| matches!(e, Effect::Log(_, l) if l.contains("token verified (provider")))
    };
    assert!(verified(&mut mock));
    let mut again = get("/", &[("authorization", &bearer(&token))]);
    assert_eq!(
        Chain::new(list.clone()).on_request_headers(&mut again, 2),
        Step::Continue
    );
    assert!(!verified(&mut again), "a cache hit");
    assert_eq!(
        again.request_values("x-user-id"),
        ["user-1"],
        "the cached claim headers"
    );
    // Past exp plus skew the cached entry no longer serves, and the check refuses.
    let mut late = get("/", &[("authorization", &bearer(&token))]);
    late.now += 161_000;
    let step = Chain::new(list).on_request_headers(&mut late, 3);
    assert_eq!(status(&mut late, step), 401);
    // cache_entries: 0 verifies every time.
    let config = json!({"providers": {"p": provider_local(&[&rsa])}, "rules": [{"prefix": "/", "providers": ["p"]}], "cache_entries": 0});
    let list = instances(config);
    for id in 0..2 {
        let mut mock = get("/", &[("authorization", &bearer(&token))]);
        assert_eq!(
            Chain::new(list.clone()).on_request_headers(&mut mock, id),
            Step::Continue
        );
        assert!(verified(&mut mock), "request {id}");
    }
}

#[test]
fn logs_never_hold_the_token() {
    let rsa = Signer::rsa("r1", "RS256");
    let config = json!({"providers": {"p": provider_local(&[&rsa])}, "rules": [{"prefix": "/", "providers": ["p"]}]});
    let token = rsa.token(&claims(600));
    for value in [
        bearer(&token),
        bearer(&keys::tamper(&token)),
        format!("Bearer {}", b64(b"x")),
    ] {
        let mut mock = get("/", &[("authorization", &value)]);
        chain_of(config.clone()).on_request_headers(&mut mock, 1);
        for effect in mock.effects().iter() {
            if let Effect::Log(_, line) = effect {
                let secret = value.trim_start_matches("Bearer ");
                assert!(!line.contains(secret), "{line}");
                assert!(!line.contains("user-1"), "no claim value in logs: {line}");
            }
        }
    }
}
