//! jwt-auth in a real Envoy: tokens signed by keys of every type the test makes,
//! every refusal, each place a token can be, claim headers and their
//! anti-spoofing, `forward`; remote keys from a loopback JWKS server the test
//! controls (one fetch shared by concurrent requests, rotation, the server down,
//! slow or answering garbage); and bad configs refused at load.

use harness::envoy::{static_cluster, LOG_WAIT};
use harness::{assert_config_refused, Protocol, Reply, Request, Response, Server, Stack};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::jwt::{self as keys, b64, Signer};

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

/// A JWKS server whose answer the test changes, counting requests.
struct Jwks {
    server: Server,
    body: Arc<Mutex<(u16, String, Duration)>>,
}

fn jwks_server(body: String) -> Jwks {
    let state = Arc::new(Mutex::new((200u16, body, Duration::ZERO)));
    let shared = state.clone();
    let server = Server::start(move |_| {
        let (status, body, delay) = shared.lock().unwrap().clone();
        let response = Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        };
        if delay.is_zero() {
            Reply::Respond(response)
        } else {
            Reply::Delay(delay, response)
        }
    });
    Jwks {
        server,
        body: state,
    }
}

impl Jwks {
    fn set(&self, status: u16, body: String, delay: Duration) {
        *self.body.lock().unwrap() = (status, body, delay);
    }
}

fn remote(cluster: &str, timeout_ms: u64, ttl_s: u64) -> Value {
    json!({
        "issuer": ISS,
        "remote_jwks": {"cluster": cluster, "authority": "keys.test", "path": "/jwks.json", "timeout_ms": timeout_ms, "cache_ttl_s": ttl_s},
        "claim_to_headers": [{"claim": "sub", "header": "x-user-id"}],
    })
}

#[test]
fn remote_keys_are_fetched_once_for_concurrent_requests_and_rotate() {
    let first = Signer::rsa("k1", "RS256");
    let server = jwks_server(jwks(&[&first]).to_string());
    // Slow enough that the requests below all arrive while the fetch is out.
    server.set(200, jwks(&[&first]).to_string(), Duration::from_millis(400));
    let envoy = Stack::new()
        .cluster(static_cluster("outbound|443||keys.test", server.server.addr()))
        .plugin(PLUGIN, json!({"providers": {"r": remote("outbound|443||keys.test", 2000, 1)}, "rules": [{"prefix": "/", "providers": ["r"]}]}))
        .start();
    let addr = envoy.addr();
    let protocol = Protocol::from_env();
    let tokens: Vec<String> = (0..6)
        .map(|i| {
            let mut c = claims(ISS);
            c["n"] = json!(i);
            first.token(&c)
        })
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|t| {
                scope.spawn(move || {
                    Request::get("/x")
                        .header("authorization", &bearer(t))
                        .send_over(protocol, addr)
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [200; 6]);
    let calls = server.server.received();
    assert_eq!(calls.len(), 1, "one fetch for all of them");
    assert_eq!(calls[0].path, "/jwks.json");
    assert_eq!(calls[0].header_value("host"), Some("keys.test"));
    // Cached: no fetch within the TTL.
    assert_eq!(
        envoy
            .get("/x", &[("authorization", &bearer(&tokens[0]))])
            .status,
        200
    );
    assert_eq!(server.server.count(), 1);

    // Rotation: the server now publishes k2 only; past the TTL (1 s) a token
    // signed by k2 gets the new set, without a restart.
    let second = Signer::ec256("k2");
    server.set(200, jwks(&[&second]).to_string(), Duration::ZERO);
    std::thread::sleep(Duration::from_millis(1100));
    let resp = envoy.get(
        "/x",
        &[("authorization", &bearer(&second.token(&claims(ISS))))],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed().header_value("x-user-id"), Some("user-1"));
    assert_eq!(server.server.count(), 2);
    // k1 is gone from the set: a new token of k1 is refused (the cached ones
    // still pass until they expire).
    let resp = envoy.get(
        "/x",
        &[("authorization", &bearer(&first.token(&claims(ISS))))],
    );
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.text(), "unknown key id\n");
}

#[test]
fn a_jwks_server_down_slow_or_garbled_fails_closed_and_is_tried_again() {
    let key = Signer::ec256("k");
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let slow = jwks_server(jwks(&[&key]).to_string());
    slow.set(200, jwks(&[&key]).to_string(), Duration::from_millis(3000));
    let garbled = jwks_server("<html>not json</html>".into());
    let providers = json!({
        "down": remote("down", 300, 600),
        "slow": {"issuer": "https://slow.test", "remote_jwks": {"cluster": "slow", "path": "/jwks.json", "timeout_ms": 300}},
        "garbled": {"issuer": "https://garbled.test", "remote_jwks": {"cluster": "garbled", "path": "/jwks.json", "timeout_ms": 300}},
    });
    let envoy = Stack::new()
        .cluster(static_cluster("down", dead))
        .cluster(static_cluster("slow", slow.server.addr()))
        .cluster(static_cluster("garbled", garbled.server.addr()))
        .plugin(
            PLUGIN,
            json!({"providers": providers, "realm": "api", "rules": [
                {"prefix": "/down", "providers": ["down"]},
                {"prefix": "/slow", "providers": ["slow"]},
                {"prefix": "/garbled", "providers": ["garbled"]},
            ]}),
        )
        .start();
    let unavailable = "signing keys unavailable\n";
    let token = key.token(&claims(ISS));
    for _ in 0..2 {
        let resp = envoy.get("/down", &[("authorization", &bearer(&token))]);
        assert_refused(&resp, 401, unavailable, "server down");
    }
    let started = Instant::now();
    let resp = envoy.get(
        "/slow",
        &[(
            "authorization",
            &bearer(&key.token(&claims("https://slow.test"))),
        )],
    );
    assert_refused(&resp, 401, unavailable, "server slow");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the timeout ends the wait: {:?}",
        started.elapsed()
    );
    let garbled_token = key.token(&claims("https://garbled.test"));
    let resp = envoy.get("/garbled", &[("authorization", &bearer(&garbled_token))]);
    assert_refused(&resp, 401, unavailable, "garbage");
    assert!(
        envoy
            .wait_log(
                "provider 'garbled': JWKS fetch from cluster 'garbled' failed: not a JWKS",
                LOG_WAIT
            )
            .is_some(),
        "{}",
        envoy.log()
    );
    assert!(envoy
        .wait_log(
            "provider 'down': JWKS fetch from cluster 'down' failed",
            LOG_WAIT
        )
        .is_some());
    // The next request tries again, and a server that recovers serves.
    garbled.set(200, jwks(&[&key]).to_string(), Duration::ZERO);
    let resp = envoy.get("/garbled", &[("authorization", &bearer(&garbled_token))]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(garbled.server.count(), 2);
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

/// The request whose fetch the others wait for leaves: Envoy drops that fetch's
/// answer, so the waiting requests are answered (401) when it goes, not left
/// hanging; the next request fetches again.
#[test]
fn waiting_requests_are_answered_when_the_fetching_request_leaves() {
    use std::io::Write;
    let key = Signer::ec256("k");
    let body = jwks(&[&key]).to_string();
    let server = jwks_server(body.clone());
    server.set(200, body.clone(), Duration::from_millis(2500));
    let envoy = Stack::new()
        .cluster(static_cluster("keys", server.server.addr()))
        .plugin(PLUGIN, json!({"providers": {"r": remote("keys", 5000, 600)}, "rules": [{"prefix": "/", "providers": ["r"]}]}))
        .start();
    let token = key.token(&claims(ISS));
    let mut leaver = std::net::TcpStream::connect(envoy.addr()).unwrap();
    leaver
        .write_all(
            format!("GET /x HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (addr, protocol, auth) = (envoy.addr(), Protocol::from_env(), bearer(&token));
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let resp = Request::get("/x")
            .header("authorization", &auth)
            .send_over(protocol, addr);
        (resp, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(leaver);
    let (resp, waited) = waiter.join().unwrap();
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.text(), "signing keys unavailable\n");
    assert!(
        waited < Duration::from_millis(2000),
        "answered when the fetcher left, not at the fetch's answer: {waited:?}"
    );
    // Envoy and the VM live on: the next request fetches again.
    server.set(200, body, Duration::ZERO);
    let resp = envoy.get("/x", &[("authorization", &bearer(&token))]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(server.server.count(), 2);
}
