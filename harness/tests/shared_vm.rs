//! Instances that share a VM, as Istio's WasmPlugins of one module do (it sets
//! no `vm_id`, and neither does the harness): each keeps its own configuration
//! and its own decision cache. Checked for two filters of one plugin module, and
//! for two filters of the chain module (a native filter between them ends the
//! chain), which share the chain's VM alike. Each test picks both forms itself.

use harness::envoy::static_cluster;
use harness::{Envoy, Form, Reply, Server, Stack};
use serde_json::{json, Value};

const HA: &str = "header-authorization";
const DA: &str = "dispatch-auth";

/// A native filter that changes nothing: between two plugins it makes them two
/// filters in the chain form too (a chain runs consecutive plugins only).
fn between() -> Value {
    json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {}
        }
    })
}

/// The wasm VMs Envoy runs (its main thread's and each worker's copies).
fn vms(envoy: &Envoy) -> u64 {
    envoy.stat("wasm.wasm_vm_count").expect("the VM count")
}

/// Two header-authorization filters with different configurations in one VM
/// each enforce their own: the tenant gate first, then the team gate with a
/// denial of its own.
#[test]
fn instances_sharing_a_vm_each_enforce_their_own_configuration() {
    for form in [Form::Separate, Form::Chain] {
        let alone = Stack::new().form(form).plugin(HA, json!({})).start();
        let envoy = Stack::new()
            .form(form)
            .plugin(HA, json!({"header": "x-tenant", "values": ["acme"]}))
            .filter(between())
            .plugin(
                HA,
                json!({"header": "x-team", "values": ["red"], "deny": {"status": 401, "body": "team?\n"}}),
            )
            .start();
        assert_eq!(
            vms(&envoy),
            vms(&alone),
            "{form:?}: two filters, as many VMs as one filter"
        );
        /// (tenant, team, status, body of a denial)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, u16, &'a str);
        let tenant_denied = "denied: header 'x-tenant' is missing or not allowed\n";
        let cases: [Case; 5] = [
            (Some("acme"), Some("red"), 200, ""),
            (None, Some("red"), 403, tenant_denied),
            (Some("other"), Some("red"), 403, tenant_denied),
            (Some("acme"), Some("blue"), 401, "team?\n"),
            (Some("acme"), None, 401, "team?\n"),
        ];
        for (tenant, team, status, body) in cases {
            let mut headers = Vec::new();
            headers.extend(tenant.map(|t| ("x-tenant", t)));
            headers.extend(team.map(|t| ("x-team", t)));
            let resp = envoy.get("/", &headers);
            assert_eq!(resp.status, status, "{form:?} {headers:?}: {}", resp.text());
            if status != 200 {
                assert_eq!(resp.text(), body, "{form:?} {headers:?}");
            }
        }
    }
}

/// An auth service that allows `Bearer alice`, and `Bearer bob` unless it is
/// `strict`, naming the user in `x-by`.
fn auth(strict: bool) -> Server {
    Server::start(move |req| match req.header_value("authorization") {
        Some("Bearer alice") => Reply::with(200, &[("x-by", "alice")], ""),
        Some("Bearer bob") if !strict => Reply::with(200, &[("x-by", "bob")], ""),
        _ => Reply::with(403, &[], "no\n"),
    })
}

/// Two dispatch-auth filters in one VM, each with a cache, asking two services
/// that disagree about bob. One cache for both would answer the second filter
/// with the first's decision and never ask the strict service.
#[test]
fn dispatch_auth_instances_sharing_a_vm_keep_their_own_caches() {
    for form in [Form::Separate, Form::Chain] {
        let (lenient, strict) = (auth(false), auth(true));
        let cached = |cluster: &str| json!({"cluster": cluster, "cache": {"ttl_ms": 60_000, "key_headers": ["authorization"]}});
        let alone = Stack::new()
            .form(form)
            .plugin(DA, cached("lenient"))
            .start();
        let envoy = Stack::new()
            .form(form)
            .cluster(static_cluster("lenient", lenient.addr()))
            .cluster(static_cluster("strict", strict.addr()))
            .plugin(DA, cached("lenient"))
            .filter(between())
            .plugin(DA, cached("strict"))
            .start();
        assert_eq!(vms(&envoy), vms(&alone), "{form:?}: one VM for both");
        let calls = || (lenient.count(), strict.count());
        // (token, status, calls made so far to each service)
        let cases = [
            ("alice", 200, (1, 1)),
            ("alice", 200, (1, 1)),
            ("bob", 403, (2, 2)),
            ("bob", 403, (2, 2)),
            ("alice", 200, (2, 2)),
        ];
        for (n, (token, status, made)) in cases.into_iter().enumerate() {
            let bearer = format!("Bearer {token}");
            let resp = envoy.get("/", &[("authorization", &bearer)]);
            assert_eq!(
                resp.status,
                status,
                "{form:?} #{n} {token}: {}",
                resp.text()
            );
            assert_eq!(
                calls(),
                made,
                "{form:?} #{n} {token}: calls (lenient, strict)"
            );
        }
        // Each instance holds its own two decisions (the gauge adds them up).
        let entries = envoy.stat("wasmcustom.dispatch-auth.cache_entries");
        assert_eq!(entries, Some(4), "{form:?}");
    }
}
