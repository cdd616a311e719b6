//! basic-auth in a real Envoy: the seed's config, every match kind and credential
//! format, overlapping rules, the forwarded user name and spoofed copies of it,
//! malformed Authorization headers, configs Envoy must refuse, logs that never hold
//! a secret, and the same answers as Envoy's native basic_auth filter.

use harness::envoy::{hcm, LOG_WAIT};
use harness::http::send_raw;
use harness::{assert_config_refused, Envoy, Request, Response, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PLUGIN: &str = "basic-auth";
const MISSING: &str = "Unauthorized: missing credentials\n";
const WRONG: &str = "Unauthorized: wrong credentials\n";

// `printf wonderland | openssl dgst -binary -sha1 | base64`, and -sha256 of builder.
const ALICE_SHA: &str = "alice:{SHA}tiY7sUhYKUwI5L3866kDY+ENcrQ=";
const BOB_SHA256: &str = "bob:{SHA256}32sHF2qbF8xMmvwle9QEcy59CbdkNseJD3t74U5Xl5Q=";

/// The seed's config (istio-ecosystem basic_auth, the SolarMesh example).
fn seed() -> Value {
    json!({
        "basic_auth_rules": [{
            "prefix": "/productpage",
            "request_methods": ["GET", "POST"],
            "credentials": ["ok:test", "YWRtaW4zOmFkbWluMw=="]
        }],
        "realm": "istio"
    })
}

/// Standard base64 with padding, so the tests do not share the plugin's decoder.
fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(credentials: &str) -> String {
    format!("Basic {}", b64(credentials.as_bytes()))
}

fn send(envoy: &Envoy, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::new(method, path);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    envoy.send(&req)
}

/// Asserts a 401 from the plugin, with the challenge and the body `body`.
fn assert_denied(resp: &Response, body: &str, realm_challenge: &str, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text());
    assert_eq!(resp.text(), body, "{what}");
    assert_eq!(
        resp.headers_named("www-authenticate"),
        [realm_challenge],
        "{what}"
    );
}

/// Asserts the request reached the upstream with `path`; returns what it saw.
fn assert_passed(resp: &Response, path: &str, what: &str) -> Request {
    assert_eq!(resp.status, 200, "{what}: {}", resp.text());
    let seen = resp.echoed();
    assert_eq!(seen.path, path, "{what}");
    seen
}

#[test]
fn seed_config() {
    let envoy = Stack::new().plugin(PLUGIN, seed()).start();
    let challenge = "Basic realm=\"istio\"";
    let ok = basic("ok:test");
    let admin3 = basic("admin3:admin3");

    let before = envoy.echo().count();
    let resp = send(&envoy, "GET", "/productpage", &[]);
    assert_denied(&resp, MISSING, challenge, "no credentials");
    let resp = send(
        &envoy,
        "GET",
        "/productpage",
        &[("authorization", &basic("ok:nope"))],
    );
    assert_denied(&resp, WRONG, challenge, "wrong password");
    let resp = send(&envoy, "GET", "/productpage?x=1", &[]);
    assert_denied(&resp, MISSING, challenge, "query string");
    let resp = send(&envoy, "POST", "/productpage/reviews", &[]);
    assert_denied(&resp, MISSING, challenge, "POST under the prefix");
    let resp = send(
        &envoy,
        "GET",
        "/productpage",
        &[("authorization", &basic("admin3:test"))],
    );
    assert_denied(&resp, WRONG, challenge, "password of another user");
    assert_eq!(
        envoy.echo().count(),
        before,
        "a denied request reached the upstream"
    );

    let seen = assert_passed(
        &send(&envoy, "GET", "/productpage", &[("authorization", &ok)]),
        "/productpage",
        "ok:test",
    );
    // The plugin leaves the credentials for the upstream, as the seed did.
    assert_eq!(seen.header_value("authorization"), Some(ok.as_str()));
    assert_passed(
        &send(&envoy, "GET", "/productpage", &[("authorization", &admin3)]),
        "/productpage",
        "admin3 from the base64 entry",
    );
    assert_passed(
        &send(
            &envoy,
            "POST",
            "/productpage?x=1",
            &[("authorization", &ok)],
        ),
        "/productpage?x=1",
        "POST with a query",
    );
    assert_passed(
        &send(&envoy, "DELETE", "/productpage", &[]),
        "/productpage",
        "DELETE is not covered",
    );
    assert_passed(&send(&envoy, "GET", "/other", &[]), "/other", "other path");
    assert_passed(
        &send(&envoy, "GET", "/other?p=/productpage", &[]),
        "/other?p=/productpage",
        "the prefix only in the query",
    );
    // An unprotected request passes untouched, whatever its Authorization says.
    let seen = assert_passed(
        &send(&envoy, "GET", "/other", &[("authorization", "Basic !!!")]),
        "/other",
        "junk credentials on an unprotected path",
    );
    assert_eq!(seen.header_value("authorization"), Some("Basic !!!"));
}

#[test]
fn exact_and_suffix_rules_with_hashed_credentials() {
    let config = json!({
        "basic_auth_rules": [
            {"exact": "/admin", "request_methods": ["GET", "PUT"], "credentials": [ALICE_SHA]},
            {"suffix": ".csv", "request_methods": ["GET"], "credentials": [BOB_SHA256]}
        ],
        "realm": "reports \"internal\""
    });
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let challenge = "Basic realm=\"reports \\\"internal\\\"\"";
    let alice = basic("alice:wonderland");
    let bob = basic("bob:builder");
    /// (what, method, path, authorization, None = passes / Some(body) = 401)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let cases: &[Case] = &[
        (
            "exact, no credentials",
            "GET",
            "/admin",
            None,
            Some(MISSING),
        ),
        ("exact, {SHA} user", "GET", "/admin", Some(&alice), None),
        ("exact, PUT", "PUT", "/admin", Some(&alice), None),
        (
            "exact, wrong user",
            "GET",
            "/admin",
            Some(&bob),
            Some(WRONG),
        ),
        ("exact, query", "GET", "/admin?page=2", None, Some(MISSING)),
        ("exact, longer path", "GET", "/admin/x", None, None),
        (
            "exact, trailing slash",
            "GET",
            "/admin/",
            None,
            Some(MISSING),
        ),
        ("exact, POST not covered", "POST", "/admin", None, None),
        (
            "suffix, no credentials",
            "GET",
            "/r/q1.csv",
            None,
            Some(MISSING),
        ),
        (
            "suffix, {SHA256} user",
            "GET",
            "/r/q1.csv",
            Some(&bob),
            None,
        ),
        (
            "suffix, query",
            "GET",
            "/r/q1.csv?download=1",
            Some(&bob),
            None,
        ),
        (
            "suffix, wrong user",
            "GET",
            "/r/q1.csv",
            Some(&alice),
            Some(WRONG),
        ),
        (
            "suffix, wrong password",
            "GET",
            "/r/q1.csv",
            Some(&basic("bob:Builder")),
            Some(WRONG),
        ),
        ("suffix in the query only", "GET", "/r?f=.csv", None, None),
        ("neither", "GET", "/r/q1.json", None, None),
    ];
    for (what, method, path, auth, denied) in cases {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let resp = send(&envoy, method, path, &headers);
        match denied {
            Some(body) => assert_denied(&resp, body, challenge, what),
            None => {
                assert_passed(&resp, path, what);
            }
        }
    }
}

#[test]
fn overlapping_rules_must_all_accept() {
    let config = json!({"basic_auth_rules": [
        {"prefix": "/api", "request_methods": ["GET"], "credentials": ["alice:a", "bob:b"]},
        {"prefix": "/api/admin", "request_methods": ["GET"], "credentials": ["alice:a", "carol:c"]},
        {"prefix": "/api/admin", "request_methods": ["DELETE"], "credentials": ["carol:c"]}
    ]});
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let cases = [
        ("GET", "/api/x", "alice:a", 200),
        ("GET", "/api/x", "bob:b", 200),
        ("GET", "/api/x", "carol:c", 401),
        ("GET", "/api/admin/x", "alice:a", 200),
        ("GET", "/api/admin/x", "bob:b", 401),
        ("GET", "/api/admin/x", "carol:c", 401),
        ("DELETE", "/api/admin/x", "carol:c", 200),
        ("DELETE", "/api/admin/x", "alice:a", 401),
        ("DELETE", "/api/x", "nobody:x", 200),
    ];
    for (method, path, credentials, status) in cases {
        let resp = send(
            &envoy,
            method,
            path,
            &[("authorization", &basic(credentials))],
        );
        assert_eq!(
            resp.status,
            status,
            "{method} {path} as {credentials}: {}",
            resp.text()
        );
    }
}

#[test]
fn forwarded_user_name_and_spoofed_copies() {
    let mut config = seed();
    config["forward_username_header"] = json!("X-Authenticated-User");
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let ok = basic("ok:test");
    let admin3 = basic("admin3:admin3");
    let user_seen = |resp: &Response| -> Vec<String> {
        resp.echoed()
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-authenticated-user"))
            .map(|(_, v)| v.clone())
            .collect()
    };

    let resp = send(&envoy, "GET", "/productpage", &[("authorization", &ok)]);
    assert_eq!(user_seen(&resp), ["ok"]);
    let resp = send(&envoy, "GET", "/productpage", &[("authorization", &admin3)]);
    assert_eq!(user_seen(&resp), ["admin3"]);

    // A client-sent copy is replaced on success...
    let resp = send(
        &envoy,
        "GET",
        "/productpage",
        &[
            ("x-authenticated-user", "admin3"),
            ("Authorization", &ok),
            ("X-Authenticated-User", "root"),
        ],
    );
    assert_eq!(user_seen(&resp), ["ok"]);
    // ...and removed where no rule applies or no user was authenticated.
    for (method, path) in [("GET", "/other"), ("DELETE", "/productpage")] {
        let resp = send(
            &envoy,
            method,
            path,
            &[
                ("x-authenticated-user", "admin3"),
                ("x-authenticated-user", "root"),
            ],
        );
        assert_eq!(user_seen(&resp), Vec::<String>::new(), "{method} {path}");
    }
    // Other spellings are removed too: frameworks read x_authenticated_user as the
    // same variable (HTTP_X_AUTHENTICATED_USER).
    for path in ["/productpage", "/other"] {
        let resp = send(
            &envoy,
            "GET",
            path,
            &[
                ("x_authenticated_user", "root"),
                ("X-Authenticated_User", "root"),
                ("authorization", &ok),
            ],
        );
        let seen = resp.echoed();
        let spoofed: Vec<_> = seen
            .headers
            .iter()
            .filter(|(n, _)| {
                n.replace('_', "-")
                    .eq_ignore_ascii_case("x-authenticated-user")
            })
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        let want: &[&str] = if path == "/other" {
            &[]
        } else {
            &["x-authenticated-user: ok"]
        };
        assert_eq!(spoofed, want, "{path}");
    }
    // A spoofed header never helps a request without credentials.
    let resp = send(
        &envoy,
        "GET",
        "/productpage",
        &[("x-authenticated-user", "ok")],
    );
    assert_eq!(resp.status, 401);
}

/// The plugin's decision lines so far, each without its context id
/// (`denied: no authorization header`).
fn decisions(envoy: &Envoy) -> Vec<String> {
    envoy
        .log()
        .lines()
        .filter(|l| l.contains("wasm log"))
        .filter_map(|l| {
            let at = l.find(": #")?;
            let rest = &l[at + 3..];
            Some(rest[rest.find(' ')? + 1..].to_string())
        })
        .collect()
}

/// Waits for the decision line of the request that followed `before` decisions.
fn next_decision(envoy: &Envoy, before: usize) -> String {
    let start = Instant::now();
    while start.elapsed() < LOG_WAIT {
        if let Some(line) = decisions(envoy).get(before) {
            return line.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no decision logged:\n{}", envoy.log())
}

#[test]
fn malformed_authorization_is_a_401_never_a_crash() {
    let envoy = Stack::new().plugin(PLUGIN, seed()).start();
    let challenge = "Basic realm=\"istio\"";
    let ok = basic("ok:test");
    let token = &ok["Basic ".len()..];
    let accepted = "credentials accepted";
    // (what, Authorization values, body: None = passes, the denial's log reason)
    let cases: Vec<(&str, Vec<String>, Option<&str>, &str)> = vec![
        // The scheme is case-insensitive and whitespace is tolerated.
        (
            "lowercase scheme",
            vec![format!("basic {token}")],
            None,
            accepted,
        ),
        (
            "uppercase scheme",
            vec![format!("BASIC {token}")],
            None,
            accepted,
        ),
        (
            "extra whitespace",
            vec![format!("Basic \t  {token} \t")],
            None,
            accepted,
        ),
        (
            "unpadded",
            vec![format!("Basic {}", token.trim_end_matches('='))],
            None,
            accepted,
        ),
        // Not Basic at all: credentials are missing.
        (
            "bearer",
            vec!["Bearer abc.def".into()],
            Some(MISSING),
            "denied: authorization scheme is not Basic",
        ),
        (
            "scheme glued to token",
            vec![format!("Basic{token}")],
            Some(MISSING),
            "denied: authorization scheme is not Basic",
        ),
        // Envoy passes an empty value on; it is not Basic either.
        (
            "empty value",
            vec![String::new()],
            Some(MISSING),
            "denied: authorization scheme is not Basic",
        ),
        // Basic, but malformed.
        (
            "scheme only",
            vec!["Basic".into()],
            Some(WRONG),
            "denied: empty Basic credentials",
        ),
        (
            "not base64",
            vec!["Basic ok:test".into()],
            Some(WRONG),
            "denied: Basic credentials are not base64",
        ),
        (
            "url-safe base64",
            vec![format!("Basic {}", b64(b"ok:te\xfb\xff").replace('/', "_"))],
            Some(WRONG),
            "denied: Basic credentials are not base64",
        ),
        (
            "no colon",
            vec![basic("oktest")],
            Some(WRONG),
            "denied: Basic credentials have no ':'",
        ),
        (
            "not UTF-8",
            vec![format!("Basic {}", b64(b"ok:t\xe9st"))],
            Some(WRONG),
            "denied: Basic credentials are not UTF-8",
        ),
        (
            "empty user and password",
            vec![basic(":")],
            Some(WRONG),
            "denied: unknown user or wrong password",
        ),
        (
            "empty password",
            vec![basic("ok:")],
            Some(WRONG),
            "denied: unknown user or wrong password",
        ),
        // Valid base64 of a valid shape, only too long to be looked at.
        (
            "huge",
            vec![basic(&format!("ok:{}", "t".repeat(4000)))],
            Some(WRONG),
            "denied: authorization header too long",
        ),
        // Several headers, which Envoy joins with ',' (over HTTP/1.1 and HTTP/2
        // alike): refused even when each is valid.
        (
            "two valid headers",
            vec![ok.clone(), ok.clone()],
            Some(WRONG),
            "denied: several authorization headers",
        ),
        (
            "valid, then junk",
            vec![ok.clone(), "Basic !!!".into()],
            Some(WRONG),
            "denied: several authorization headers",
        ),
        (
            "other scheme, then valid",
            vec!["Bearer x".into(), ok.clone()],
            Some(WRONG),
            "denied: several authorization headers",
        ),
        (
            "comma-joined by the client",
            vec![format!("{ok}, {ok}")],
            Some(WRONG),
            "denied: several authorization headers",
        ),
    ];
    for (what, values, body, reason) in &cases {
        let before = decisions(&envoy).len();
        let headers: Vec<(&str, &str)> = values
            .iter()
            .map(|v| ("authorization", v.as_str()))
            .collect();
        let resp = send(&envoy, "GET", "/productpage", &headers);
        match body {
            None => {
                assert_passed(&resp, "/productpage", what);
            }
            Some(body) => assert_denied(&resp, body, challenge, what),
        }
        assert_eq!(next_decision(&envoy, before), *reason, "{what}");
    }

    // Bytes that are not UTF-8 in the header value itself.
    let before = decisions(&envoy).len();
    let raw = b"GET /productpage HTTP/1.1\r\nhost: t\r\nconnection: close\r\nauthorization: Basic \xff\xfe\xfd\r\n\r\n";
    let resp = send_raw(envoy.addr(), raw);
    assert_denied(&resp, WRONG, challenge, "raw non-UTF-8 value");
    assert_eq!(
        next_decision(&envoy, before),
        "denied: Basic credentials are not base64"
    );

    // After all that the VM is still alive and still checking.
    assert_passed(
        &send(&envoy, "GET", "/productpage", &[("authorization", &ok)]),
        "/productpage",
        "valid request after the malformed ones",
    );
    assert_eq!(send(&envoy, "GET", "/productpage", &[]).status, 401);
    let log = envoy.log();
    for crash in ["panicked", "failed", "wasm trap", "Uncaught"] {
        assert!(!log.contains(crash), "{crash} in the log:\n{log}");
    }
}

#[test]
fn decisions_are_logged_at_debug_without_secrets() {
    let mut config = seed();
    config["basic_auth_rules"][0]["credentials"] =
        json!(["ok:test", "YWRtaW4zOmFkbWluMw==", ALICE_SHA]);
    let envoy = Stack::new().plugin(PLUGIN, config).start();
    let sent = [
        basic("ok:test"),
        basic("admin3:admin3"),
        basic("alice:wonderland"),
        basic("ok:hunter2-wrong"),
        basic("nosuchuser:pass-xyz"),
        "Basic not*base64".to_string(),
    ];
    for value in &sent {
        send(&envoy, "GET", "/productpage", &[("authorization", value)]);
    }
    send(&envoy, "GET", "/productpage", &[]);
    send(&envoy, "GET", "/other", &[]);
    for needle in [
        "credentials accepted",
        "denied: unknown user or wrong password",
        "denied: Basic credentials are not base64",
        "denied: no authorization header",
        "no rule applies",
    ] {
        let line = envoy
            .wait_log(needle, LOG_WAIT)
            .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{}", envoy.log()));
        assert!(line.contains("[debug]"), "not at debug level: {line}");
    }
    let log = envoy.log();
    let secrets = [
        "test",
        "admin3",
        "wonderland",
        "hunter2",
        "nosuchuser",
        "pass-xyz",
        "not*base64",
        "YWRtaW4zOmFkbWluMw",
        "tiY7sUhYKUwI5L3866kDY",
    ];
    for line in log.lines().filter(|l| l.contains("wasm")) {
        for secret in secrets
            .iter()
            .map(|s| s.to_string())
            .chain(sent.iter().map(|v| v[6..].to_string()))
        {
            assert!(!line.contains(&secret), "{secret:?} logged: {line}");
        }
    }
    let noisy: Vec<_> = log
        .lines()
        .filter(|l| l.contains("wasm log") && !l.contains("[debug]"))
        .collect();
    assert!(noisy.is_empty(), "plugin logged above debug: {noisy:?}");
}

#[test]
fn invalid_configurations_are_refused_at_load_with_the_rule_and_field_named() {
    let rule = json!({"prefix": "/", "request_methods": ["GET"], "credentials": ["ok:test"]});
    let with = |key: &str, value: Value| {
        let mut second = rule.clone();
        if value.is_null() {
            second.as_object_mut().unwrap().remove(key);
        } else {
            second[key] = value;
        }
        json!({"basic_auth_rules": [rule.clone(), second]})
    };
    let cases = [
        (json!({}), "basic_auth_rules: is required"),
        (json!({"basic_auth_rules": []}), "basic_auth_rules: must list at least one item"),
        (with("prefix", Value::Null), "basic_auth_rules[1]: exactly one of prefix, exact, suffix is required"),
        (with("exact", json!("/x")), "basic_auth_rules[1]: exactly one of prefix, exact, suffix is allowed"),
        (with("request_methods", Value::Null), "basic_auth_rules[1].request_methods: is required"),
        (with("request_methods", json!([])), "basic_auth_rules[1].request_methods: must list at least one method"),
        (with("credentials", json!([])), "basic_auth_rules[1].credentials: must list at least one item"),
        (with("credentials", json!(["ok:test", ""])), "basic_auth_rules[1].credentials[1]: must not be empty"),
        (with("credentials", json!(["s3cr3t%%"])), "basic_auth_rules[1].credentials[0]: neither user:password nor valid base64 of user:password"),
        (with("credentials", json!(["dXNlcg=="])), "basic_auth_rules[1].credentials[0]: base64 decodes to text without ':'"),
        (with("credentials", json!(["u:{MD5}s3cr3t"])), "basic_auth_rules[1].credentials[0]: unknown hash scheme {MD5}"),
        (with("credentials", json!(["u:{SHA}s3cr3t"])), "basic_auth_rules[1].credentials[0]: {SHA} must be followed by the base64 of a 20-byte digest"),
        // A brace prefix that names no published scheme may be part of the password.
        (with("credentials", json!(["u:{S3CR3T}x"])), "basic_auth_rules[1].credentials[0]: unknown hash scheme in braces"),
        (with("methods", json!(["GET"])), "basic_auth_rules[1].methods: unknown field"),
        (json!({"basic_auth_rules": [rule.clone()], "realm": 7}), "realm: expected a string, got a number"),
        (json!({"basic_auth_rules": [rule.clone()], "forward_username_header": "x user"}), "forward_username_header: 'x user' is not a valid header name"),
        (json!({"basic_auth_rules": [rule.clone()], "unknown": 1}), "unknown: unknown field"),
        // A credential in a field of the wrong type: the error says what kind came.
        (with("credentials", json!([{"ok": "s3cr3t"}])), "basic_auth_rules[1].credentials[0]: expected a string, got an object"),
        (json!({"basic_auth_rules": [rule.clone()], "realm": ["ok:s3cr3t"]}), "realm: expected a string, got a list"),
    ];
    for (config, expected) in cases {
        let log = assert_config_refused(PLUGIN, &config.to_string(), expected);
        assert!(
            !log.to_lowercase().contains("s3cr3t"),
            "a credential in the log:\n{log}"
        );
    }
    // No configuration at all (Istio without pluginConfig) protects nothing: refused.
    assert_config_refused(PLUGIN, "", "basic_auth_rules: is required");
}

/// Envoy's native basic_auth filter: every path and method, users in htpasswd form.
fn native(users: &str, forward: Option<&str>) -> Value {
    let mut config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
        "users": {"inline_string": users},
    });
    if let Some(header) = forward {
        config["forward_username_header"] = json!(header);
    }
    json!({"name": "envoy.filters.http.basic_auth", "typed_config": config})
}

#[test]
fn same_answers_as_envoys_native_basic_auth() {
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let ours = Stack::new()
        .plugin(
            PLUGIN,
            json!({
                "basic_auth_rules": [{"prefix": "/", "request_methods": methods, "credentials": [ALICE_SHA]}],
                "forward_username_header": "x-user"
            }),
        )
        .start();
    let theirs = Stack::new()
        .filter(native(ALICE_SHA, Some("x-user")))
        .start();
    let alice = basic("alice:wonderland");
    let token = &alice["Basic ".len()..];
    /// (method, path, request headers)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        ("GET", "/", vec![]),
        ("POST", "/a/b?c=d", vec![]),
        ("GET", "/", vec![("authorization", alice.clone())]),
        ("DELETE", "/x", vec![("authorization", alice.clone())]),
        (
            "GET",
            "/",
            vec![("authorization", basic("alice:Wonderland"))],
        ),
        (
            "GET",
            "/",
            vec![("authorization", basic("alice:wonderland "))],
        ),
        ("GET", "/", vec![("authorization", basic("bob:wonderland"))]),
        ("GET", "/", vec![("authorization", basic("alice"))]),
        ("GET", "/", vec![("authorization", "Basic !!!".into())]),
        (
            "GET",
            "/",
            vec![("authorization", format!("Bearer {token}"))],
        ),
        ("GET", "/", vec![("authorization", "Basic".into())]),
        (
            "GET",
            "/",
            vec![("authorization", alice.clone()), ("x-user", "root".into())],
        ),
    ];
    for (method, path, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let a = send(&ours, method, path, &headers);
        let b = send(&theirs, method, path, &headers);
        assert_eq!(
            a.status,
            b.status,
            "{method} {path} {headers:?}: ours {} / native {}",
            a.text(),
            b.text()
        );
        if a.status == 200 {
            let user = |r: &Response| r.echoed().header_value("x-user").map(str::to_string);
            assert_eq!(user(&a), Some("alice".into()), "{method} {path}");
            assert_eq!(user(&a), user(&b), "{method} {path}");
        }
    }
}

/// How Envoy may be set to hand paths over: its defaults (nothing normalized),
/// Istio's `pathNormalization: BASE` (its default) and `MERGE_SLASHES`.
fn normalization_settings() -> [(&'static str, Value); 3] {
    [
        ("envoy defaults", json!({})),
        (
            "istio BASE",
            json!({"normalize_path": true, "merge_slashes": false}),
        ),
        (
            "istio MERGE_SLASHES",
            json!({"normalize_path": true, "merge_slashes": true}),
        ),
    ]
}

/// The walk-arounds a hostile client found against Istio's default normalization:
/// under every setting each is challenged or refused, and none reaches the
/// upstream without credentials.
#[test]
fn hostile_paths_cannot_walk_around_the_rules() {
    let config = json!({"basic_auth_rules": [
        {"prefix": "/admin", "request_methods": ["GET", "POST"], "credentials": ["ok:test"]},
        {"exact": "/exact", "request_methods": ["GET"], "credentials": ["ok:test"]},
        {"suffix": ".json", "request_methods": ["GET"], "credentials": ["ok:test"]},
        {"prefix": "/purge", "request_methods": ["DELETE"], "credentials": ["ok:test"]}
    ]});
    /// (method, path, extra request headers)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let challenged: &[Case] = &[
        ("GET", "/admin", &[]),
        ("GET", "//admin", &[]),
        ("GET", "/public/../admin", &[]),
        ("GET", "/public/%2e%2e/admin", &[]),
        ("GET", "/public/..;/admin", &[]),
        ("GET", "/%61dmin/x", &[]),
        ("GET", "/exact/", &[]),
        ("GET", "/exact;x=1", &[]),
        ("GET", "//exact", &[]),
        ("GET", "/exact?x=1", &[]),
        ("GET", "/data.json;x", &[]),
        ("GET", "/data.json/", &[]),
        ("GET", "/data.JSON", &[]),
        ("HEAD", "/admin", &[]),
        ("HEAD", "/exact", &[]),
        ("GET", "/purge/all", &[("x-http-method-override", "DELETE")]),
        (
            "POST",
            "/purge/all",
            &[("x_http_method_override", "delete")],
        ),
        ("GET", "/purge/all", &[("x-method-override", "DELETE")]),
    ];
    let refused = [
        "/public%2F..%2Fadmin",
        "/public%2f..%2fadmin",
        "/admin%5Cx",
        "/public%5C..%5Cadmin",
        "/admin%zz",
        "/admin%4",
    ];
    let open = ["/public", "/exactly", "/data.jsonx", "/purge/all"];
    for (setting, options) in normalization_settings() {
        let envoy = Stack::new()
            .plugin(PLUGIN, config.clone())
            .patch(move |c| {
                for (key, value) in options.as_object().unwrap() {
                    hcm(c)[key] = value.clone();
                }
            })
            .start();
        let before = envoy.echo().count();
        for (method, path, headers) in challenged {
            let resp = send(&envoy, method, path, headers);
            assert_eq!(
                resp.status,
                401,
                "{setting}: {method} {path} {headers:?}: {}",
                resp.text()
            );
        }
        for path in refused {
            let resp = send(&envoy, "GET", path, &[]);
            assert_eq!(resp.status, 400, "{setting}: {path}: {}", resp.text());
        }
        assert_eq!(
            envoy.echo().count(),
            before,
            "{setting}: a challenged or refused request reached the upstream"
        );
        for path in open {
            assert_eq!(
                send(&envoy, "GET", path, &[]).status,
                200,
                "{setting}: {path}"
            );
        }
        // The path as Envoy passed it counts too: unnormalized, this one names a
        // resource under /admin to an upstream that takes `..` literally.
        let status = send(&envoy, "GET", "/administrator/../public", &[]).status;
        let want = if setting == "envoy defaults" {
            401
        } else {
            200
        };
        assert_eq!(status, want, "{setting}: /administrator/../public");
        let ok = basic("ok:test");
        for (method, path, headers) in challenged {
            let mut headers = headers.to_vec();
            headers.push(("authorization", &ok));
            let resp = send(&envoy, method, path, &headers);
            assert_eq!(
                resp.status, 200,
                "{setting}: {method} {path} with credentials"
            );
        }
    }
}

/// The plugin refuses a path it cannot match with its own 400, named in its log.
#[test]
fn a_path_that_cannot_be_matched_is_a_400_with_the_reason_logged() {
    let envoy = Stack::new().plugin(PLUGIN, seed()).start();
    let resp = send(
        &envoy,
        "GET",
        "/productpage%2Fx",
        &[("authorization", &basic("ok:test"))],
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.text(), "Bad request: path not accepted\n");
    let line = envoy
        .wait_log("refused: the path has an encoded '/' or '\\'", LOG_WAIT)
        .expect("a debug line with the reason");
    assert!(
        !line.contains("productpage"),
        "the log quotes the path: {line}"
    );
}
