//! The cases of `cargo xtask bench`: no filter, the empty wasm filter once and six
//! times, each plugin beside the native Envoy filter that does its job, the four
//! plugins stacked, and the example ingress gateway (in `ingress.rs`).

use super::{empty_filter, idle_filter, ingress, Case, Filter};
use crate::util::Result;
use serde_json::json;
use std::net::SocketAddr;

/// A user `alice` with password `secret`, as htpasswd `{SHA}` and as Basic credentials.
const ALICE_SHA: &str = "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
pub const ALICE_BASIC: &str = "Basic YWxpY2U6c2VjcmV0";

/// The cases in table order, and a note for each case that cannot run here. The
/// gateway's auth calls go to the service at `demo` (see `local::demo_auth_service`).
pub fn cases(demo: SocketAddr) -> Result<(Vec<Case>, Vec<String>)> {
    use Filter::{Native, Plugin};
    let ext_authz = json!({
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "http_service": {"server_uri": {"uri": "http://auth", "cluster": "auth", "timeout": "1s"}},
            "allowed_headers": {"patterns": [{"exact": "authorization"}]},
        }
    });
    let dispatch = |ttl_ms: u64| json!({"cluster": "auth", "allowed_headers": ["authorization"], "cache": {"ttl_ms": ttl_ms}});
    let mut cases = vec![
        Case::new("no filter (baseline)", vec![]),
        Case::new("one empty wasm filter", vec![empty_filter("empty-0", "")]).floor(),
        // This project's adapter running a plugin that does nothing: what it
        // adds over the SDK's empty filter (or saves: it exports fewer
        // callbacks, see common's `adapter`) every plugin pays.
        Case::new("  our adapter, idle", vec![idle_filter("idle-0")]),
        Case::new(
            "six empty wasm filters (one VM)",
            (0..6).map(|i| empty_filter(&format!("empty-{i}"), "")).collect(),
        )
        .floor(),
        Case::new(
            "header-authorization",
            vec![Plugin("header-authorization", json!({}))],
        )
        .headers(&[("allow", "true")]),
        Case::new(
            "  native rbac (header match)",
            vec![Native(json!({
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {"action": "ALLOW", "policies": {"allow": {
                        "permissions": [{"any": true}],
                        "principals": [{"header": {"name": "allow", "string_match": {"exact": "true"}}}]
                    }}}
                }
            }))],
        )
        .headers(&[("allow", "true")]),
        Case::new(
            "basic-auth ({SHA} user)",
            vec![Plugin(
                "basic-auth",
                json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": [ALICE_SHA]}]}),
            )],
        )
        .headers(&[("authorization", ALICE_BASIC)]),
        Case::new(
            "  native basic_auth",
            vec![Native(json!({
                "name": "envoy.filters.http.basic_auth",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
                    "users": {"inline_string": ALICE_SHA}
                }
            }))],
        )
        .headers(&[("authorization", ALICE_BASIC)]),
        Case::new(
            "response-headers (set one)",
            vec![Plugin(
                "response-headers",
                json!({"response_headers": [{"name": "hello", "value": "world"}]}),
            )],
        ),
        Case::new(
            "  native header_mutation",
            vec![Native(json!({
                "name": "envoy.filters.http.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {"response_mutations": [{"append": {
                        "header": {"key": "hello", "value": "world"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
                    }}]}
                }
            }))],
        ),
        Case::new(
            "dispatch-auth (call per request)",
            vec![Plugin("dispatch-auth", dispatch(0))],
        )
        .headers(&[("authorization", "Bearer demo")]),
        Case::new(
            "dispatch-auth (cache hits)",
            vec![Plugin("dispatch-auth", dispatch(600_000))],
        )
        .headers(&[("authorization", "Bearer demo")]),
        Case::new("  native ext_authz", vec![Native(ext_authz)])
            .headers(&[("authorization", "Bearer demo")]),
        Case::new("all four plugins stacked", stacked()).headers(STACKED_HEADERS),
    ];
    let (gateway_cases, skipped) = ingress::cases(demo)?;
    cases.extend(gateway_cases);
    Ok((cases, skipped))
}

/// The four plugins in one chain, as a gateway would run them; the soak runs the same.
pub fn stacked() -> Vec<Filter> {
    vec![
        Filter::Plugin(
            "response-headers",
            json!({"response_headers": [{"name": "hello", "value": "world"}]}),
        ),
        Filter::Plugin("header-authorization", json!({})),
        Filter::Plugin(
            "basic-auth",
            json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": [ALICE_SHA]}]}),
        ),
        Filter::Plugin(
            "dispatch-auth",
            json!({"cluster": "auth", "allowed_headers": ["x-token"], "cache": {"ttl_ms": 600_000}}),
        ),
    ]
}

/// Request headers that every filter of [`stacked`] lets through.
const STACKED_HEADERS: &[(&str, &str)] = &[
    ("allow", "true"),
    ("authorization", ALICE_BASIC),
    ("x-token", "demo"),
];
