//! The same allow, deny and error cases through the plugin and through Envoy's
//! native ext_authz, both ways of failure_mode_allow: same statuses, same
//! upstream identity, same challenge; and the one deliberate difference.

use super::{auth_service, dead_addr, plugin_envoy};
use harness::envoy::static_cluster;
use harness::{Envoy, Response, Stack};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Envoy's native ext_authz with the same semantics as [`comparison_config`].
fn native_envoy(auth: SocketAddr, failure_mode_allow: bool, timeout_ms: u64) -> Envoy {
    let filter = json!({
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "http_service": {
                "server_uri": {
                    "uri": "http://auth",
                    "cluster": "auth",
                    "timeout": format!("{}s", timeout_ms as f64 / 1000.0),
                },
                "path_prefix": "/check",
                "authorization_response": {
                    "allowed_upstream_headers": {"patterns": [{"exact": "x-user-id"}]},
                    "allowed_client_headers": {"patterns": [{"exact": "www-authenticate"}]}
                }
            },
            "allowed_headers": {"patterns": [{"exact": "authorization"}]},
            "failure_mode_allow": failure_mode_allow,
            "status_on_error": {"code": 403}
        }
    });
    Stack::new()
        .cluster(static_cluster("auth", auth))
        .filter(filter)
        .start()
}

fn comparison_config(failure_mode_allow: bool, timeout_ms: u64) -> Value {
    json!({
        "cluster": "auth",
        "path_prefix": "/check",
        "timeout_ms": timeout_ms,
        "allowed_headers": ["authorization"],
        "allowed_upstream_headers": ["x-user-id"],
        "allowed_client_headers": ["www-authenticate"],
        "failure_mode_allow": failure_mode_allow,
        "status_on_error": 403,
    })
}

/// What a client sees, reduced to what the comparison checks.
fn outcome(resp: &Response) -> (u16, Option<String>, Option<String>) {
    let user = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|_| resp.echoed().header_value("x-user-id").map(str::to_string));
    let challenge = resp.header("www-authenticate").map(str::to_string);
    (resp.status, user, challenge)
}

#[test]
fn native_ext_authz_agrees_on_allow_deny_and_errors() {
    let auth = auth_service();
    // Long enough that a loopback answer makes it on a busy machine, short of SLOW.
    let timeout_ms = 1000;
    // (path, expected status without / with failure_mode_allow)
    let cases: [(&str, u16, u16); 7] = [
        ("/allow", 200, 200),
        ("/deny401", 401, 401),
        ("/deny403", 403, 403),
        ("/redirect", 302, 302),
        ("/error500", 403, 200),
        ("/slow", 403, 200),
        ("/close", 403, 200),
    ];
    for allow in [false, true] {
        let plugin = plugin_envoy(auth.addr(), comparison_config(allow, timeout_ms));
        let native = native_envoy(auth.addr(), allow, timeout_ms);
        for (path, status, status_allowed) in cases {
            let expected = if allow { status_allowed } else { status };
            let headers = [("authorization", "Bearer t")];
            let ours = plugin.get(path, &headers);
            let theirs = native.get(path, &headers);
            assert_eq!(
                ours.status,
                expected,
                "plugin {path} allow={allow}: {}",
                ours.text()
            );
            assert_eq!(
                theirs.status,
                expected,
                "ext_authz {path} allow={allow}: {}",
                theirs.text()
            );
            assert_eq!(outcome(&ours), outcome(&theirs), "{path} allow={allow}");
            if expected == 401 || path == "/deny403" {
                assert_eq!(ours.text(), theirs.text(), "{path}: the denial body");
            }
        }
        // The deliberate difference: a client-sent x-user-id the auth service
        // does not set. ext_authz lets it through; the plugin removes it.
        let spoof = [("authorization", "Bearer t"), ("x-user-id", "admin")];
        let ours = plugin.get("/allow-anon", &spoof).echoed();
        let theirs = native.get("/allow-anon", &spoof).echoed();
        assert_eq!(ours.header_value("x-user-id"), None);
        assert_eq!(theirs.header_value("x-user-id"), Some("admin"));
        // An unreachable auth service: both treat it as an error.
        let dead = dead_addr();
        let plugin = plugin_envoy(dead, comparison_config(allow, timeout_ms));
        let native = native_envoy(dead, allow, timeout_ms);
        let expected = if allow { 200 } else { 403 };
        assert_eq!(plugin.get("/", &[]).status, expected);
        assert_eq!(native.get("/", &[]).status, expected);
    }
}
