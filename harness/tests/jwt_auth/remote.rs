//! jwt-auth's remote keys from a loopback JWKS server the test controls: one
//! fetch shared by concurrent requests, rotation, the server down, slow or
//! answering garbage, and the request that fetches leaving.

use super::{assert_refused, bearer, claims, jwks, ISS, PLUGIN};
use harness::envoy::{static_cluster, LOG_WAIT};
use harness::jwt::Signer;
use harness::{Protocol, Reply, Request, Response, Server, Stack};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Requests woken when the keys come go on through the rest of the filter: in
/// the chain form, into dispatch-auth, whose call must be answered to them
/// (Envoy answers every call to the root context; the adapter passes each answer
/// to the stream that made the call, a woken one included). Separate filters run
/// the same requests through two filters.
#[test]
fn woken_requests_go_on_into_a_later_call() {
    let key = Signer::ec256("k");
    let body = jwks(&[&key]).to_string();
    let server = jwks_server(body.clone());
    server.set(200, body, Duration::from_millis(400));
    let auth = Server::start(|_| Reply::with(200, &[("x-authz", "yes")], ""));
    let envoy = Stack::new()
        .cluster(static_cluster("keys", server.server.addr()))
        .cluster(static_cluster("auth", auth.addr()))
        .plugin(PLUGIN, json!({"providers": {"r": remote("keys", 3000, 600)}, "rules": [{"prefix": "/", "providers": ["r"]}]}))
        .plugin("dispatch-auth", json!({"cluster": "auth", "allowed_upstream_headers": ["x-authz"], "timeout_ms": 3000}))
        .start();
    let (addr, protocol) = (envoy.addr(), Protocol::from_env());
    let tokens: Vec<String> = (0..5)
        .map(|i| {
            let mut c = claims(ISS);
            c["n"] = json!(i);
            key.token(&c)
        })
        .collect();
    let responses: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|t| {
                scope.spawn(move || {
                    Request::get("/x")
                        .header("authorization", &bearer(t))
                        .send_over(protocol, addr)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for resp in &responses {
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.echoed().header_value("x-authz"), Some("yes"));
        assert_eq!(resp.echoed().header_value("x-user-id"), Some("user-1"));
    }
    assert_eq!(server.server.count(), 1, "one fetch");
    assert_eq!(auth.count(), 5, "each request's own auth call");
}
