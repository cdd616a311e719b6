//! What the client sees and what upstream sees: a client cannot forge an
//! identity header or the failure marker in any spelling, on any path that
//! forwards the request; a 304 denial comes without a body and leaves the
//! keep-alive connection usable.

use super::{auth_service, plugin_envoy};
use harness::http::Connection;
use harness::Request;
use serde_json::json;

/// Every spelling of a header a client might forge, each with its own value.
const FORGED: [(&str, &str); 6] = [
    ("x-user-id", "admin"),
    ("X-User-Id", "root"),
    ("x_user_id", "forged-underscores"),
    ("X-User_Id", "forged-mixed"),
    ("x-auth-failure-mode-allowed", "true"),
    ("x_auth_failure_mode_allowed", "true"),
];

/// What upstream received of every spelling of `name`, as (name, value).
fn spellings(seen: &Request, name: &str) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().replace('_', "-") == name)
        .cloned()
        .collect()
}

fn forged(path: &str) -> Request {
    FORGED
        .iter()
        .fold(Request::get(path), |r, (n, v)| r.header(n, v))
        .header("authorization", "Bearer good-alice")
}

fn one(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), value.to_string())]
}

#[test]
fn forged_identity_headers_never_reach_upstream() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({
            "path_prefix": "/check", "allowed_upstream_headers": ["x-user-id"],
            "cache": {"ttl_ms": 60_000},
        }),
    );
    // An allow, then the same request answered from the cache.
    for (round, calls) in [("allow", 1), ("cache hit", 1)] {
        let resp = envoy.send(&forged("/user/a"));
        assert_eq!(resp.status, 200, "{round}: {}", resp.text());
        let seen = resp.echoed();
        assert_eq!(
            spellings(&seen, "x-user-id"),
            one("x-user-id", "good-alice"),
            "{round}: only the auth service's value"
        );
        assert_eq!(
            spellings(&seen, "x-auth-failure-mode-allowed"),
            [],
            "{round}"
        );
        assert_eq!(auth.count(), calls, "{round}");
    }
    // An allow that names no user: no spelling of the header is left.
    let seen = envoy.send(&forged("/allow-anon")).echoed();
    assert_eq!(spellings(&seen, "x-user-id"), []);
    assert_eq!(spellings(&seen, "x-auth-failure-mode-allowed"), []);
    // The header the plugin sets on a failure it lets through: its own, once.
    let envoy = plugin_envoy(
        auth.addr(),
        json!({
            "path_prefix": "/check", "allowed_upstream_headers": ["x-user-id"],
            "failure_mode_allow": true,
        }),
    );
    let resp = envoy.send(&forged("/error500"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.echoed();
    assert_eq!(spellings(&seen, "x-user-id"), []);
    assert_eq!(
        spellings(&seen, "x-auth-failure-mode-allowed"),
        one("x-auth-failure-mode-allowed", "true")
    );
}

#[test]
fn a_304_denial_comes_without_a_body_on_a_connection_that_still_works() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "allowed_client_headers": ["etag", "www-authenticate"]}),
    );
    let mut conn = Connection::open(envoy.addr()).unwrap();
    for round in 0..2 {
        let resp = conn.send(&Request::get("/not-modified")).unwrap();
        assert_eq!(resp.status, 304, "round {round}");
        assert!(resp.body.is_empty(), "round {round}: {:?}", resp.text());
        assert_eq!(resp.header("etag"), Some("\"v1\""));
        assert!(
            resp.header("content-length").is_none_or(|l| l == "0"),
            "{:?}",
            resp.headers
        );
        // The next response on the same connection is read cleanly.
        let resp = conn.send(&Request::get("/allow")).unwrap();
        assert_eq!(resp.status, 200, "round {round}: {}", resp.text());
        assert_eq!(resp.echoed().path, "/allow");
    }
    assert_eq!(envoy.echo().count(), 2);
}
