//! The cases of `cargo xtask bench`: no filter, the empty wasm filter once and six
//! times, each plugin beside the native Envoy filter that does its job (jwt-auth
//! beside `jwt_authn`, with keys and tokens made for the run), the four plugins
//! stacked, and the example ingress gateway (in `ingress.rs`).

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
    ];
    cases.extend(jwt_cases());
    cases.push(Case::new("all four plugins stacked", stacked()).headers(STACKED_HEADERS));
    let (gateway_cases, skipped) = ingress::cases(demo)?;
    cases.extend(gateway_cases);
    Ok((cases, skipped))
}

/// jwt-auth and Envoy's native `jwt_authn`, for an RS256 and an ES256 token,
/// each verified on every request (jwt-auth's `cache_entries: 0`, jwt_authn
/// without `jwt_cache_config`) and from their caches of verified tokens. Both
/// read the same keys from their config, and copy `sub` to `x-user-id`.
fn jwt_cases() -> Vec<Case> {
    use harness::jwt::Signer;
    use Filter::{Native, Plugin};
    const ISSUER: &str = "https://issuer.bench";
    let rsa = Signer::rsa("bench-rsa", "RS256");
    let ec = Signer::ec256("bench-ec");
    let jwks = json!({"keys": [rsa.jwk, ec.jwk]});
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 86_400;
    let claims = json!({"iss": ISSUER, "aud": "bench", "sub": "user-1", "exp": exp});
    let plugin = |cache_entries: u32| {
        json!({
            "providers": {"bench": {
                "issuer": ISSUER, "audiences": ["bench"], "local_jwks": jwks,
                "claim_to_headers": [{"claim": "sub", "header": "x-user-id"}],
            }},
            "rules": [{"prefix": "/", "providers": ["bench"]}],
            "cache_entries": cache_entries,
        })
    };
    let native = |cached: bool| {
        let mut provider = json!({
            "issuer": ISSUER, "audiences": ["bench"],
            "local_jwks": {"inline_string": jwks.to_string()},
            "claim_to_headers": [{"header_name": "x-user-id", "claim_name": "sub"}],
        });
        if cached {
            provider["jwt_cache_config"] = json!({"jwt_cache_size": 1024});
        }
        Native(json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"bench": provider},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
            }
        }))
    };
    let mut cases = Vec::new();
    for signer in [&rsa, &ec] {
        let auth = format!("Bearer {}", signer.token(&claims));
        let headers = [("authorization", auth.as_str())];
        let alg = signer.alg;
        cases.extend([
            Case::new(
                &format!("jwt-auth {alg} (verify each request)"),
                vec![Plugin("jwt-auth", plugin(0))],
            )
            .headers(&headers),
            Case::new(&format!("  native jwt_authn {alg}"), vec![native(false)]).headers(&headers),
            Case::new(
                &format!("jwt-auth {alg} (cached)"),
                vec![Plugin("jwt-auth", plugin(1024))],
            )
            .headers(&headers),
            Case::new(
                &format!("  native jwt_authn {alg} (jwt_cache)"),
                vec![native(true)],
            )
            .headers(&headers),
        ]);
    }
    cases
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
