//! The three `api:` kinds: TrafficExtension's shape, what an older Istio gets,
//! kustomization's order, and an EnvoyFilter that carries each filter in a
//! stable, chain-ordered place with the Wasm config istiod would build.

use super::crd_tests::variants;
use super::envoy_filter::{RBAC_TYPE, WASM_TYPE};
use super::*;
use crate::gateway::{default_dir, parse};
use crate::util::version;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A module digest of the right shape (the CRD's pattern checks it).
pub(super) fn sha(module: &str) -> Result<String, String> {
    let digest = Sha256::digest(module.as_bytes());
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

pub(super) fn load(name: &str, text: &str) -> Gateway {
    parse(Path::new(&format!("{name}.yaml")), "test", text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub(super) fn docs(files: &[(String, String)]) -> Vec<Value> {
    files
        .iter()
        .filter(|(n, _)| n != "kustomization.yaml")
        .map(|(_, text)| crate::yaml::parse(text).unwrap())
        .collect()
}

#[test]
fn traffic_extension_puts_the_wasm_fields_under_spec_wasm() {
    let gateway = load(
        "edge",
        "name: edge\nnamespace: edge\nselector: {app: edge}\napi: TrafficExtension\nistio: \"1.30\"\n\
         url: https://cdn.example.com/w\nimagePullPolicy: Always\nchain: true\nplugins:\n\
         - {plugin: header-authorization, name: tenant, phase: AUTHN, priority: 10, failStrategy: FAIL_RELOAD, match: [{mode: SERVER}], env: [{name: A, value: '1'}], config: {header: x-tenant}}\n\
         - {plugin: response-headers, name: sec, phase: AUTHN, priority: 100, failStrategy: FAIL_RELOAD, match: [{mode: SERVER}], env: [{name: A, value: '1'}], config: {response_headers: [{name: x-a, value: b}]}}\n\
         - {plugin: header-authorization, name: last, config: {header: x-last}}\n",
    );
    let files = render(&gateway, &sha).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sec.yaml", "last.yaml", "kustomization.yaml"]);
    let all = docs(&files);
    assert_eq!(
        all[0],
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "TrafficExtension",
            "metadata": {"name": "edge-sec", "namespace": "edge"},
            "spec": {
                "selector": {"matchLabels": {"app": "edge"}},
                "phase": "AUTHN",
                "priority": 100,
                "match": [{"mode": "SERVER"}],
                "wasm": {
                    "url": "https://cdn.example.com/w/chain.wasm",
                    "sha256": sha("chain").unwrap(),
                    "imagePullPolicy": "Always",
                    "type": "HTTP",
                    "failStrategy": "FAIL_RELOAD",
                    "vmConfig": {"env": [{"name": "A", "value": "1"}]},
                    "pluginConfig": {"chain": [
                        {"plugin": "response-headers", "name": "sec", "config": {"response_headers": [{"name": "x-a", "value": "b"}]}},
                        {"plugin": "header-authorization", "name": "tenant", "config": {"header": "x-tenant"}},
                    ]},
                },
            }
        })
    );
    // UNSPECIFIED, not WasmPlugin's UNSPECIFIED_PHASE.
    assert_eq!(all[1]["spec"]["phase"], "UNSPECIFIED");
    assert_eq!(all[1]["spec"]["wasm"]["failStrategy"], "FAIL_CLOSE");
}

#[test]
fn wasm_plugin_leaves_out_what_an_older_istio_does_not_know() {
    // failStrategy (1.19+; FAIL_CLOSE was the only behaviour before) and type
    // (1.20+; HTTP before).
    for (istio, has_fail_strategy, has_type) in [
        ("1.18", false, false),
        ("1.19", true, false),
        ("1.20", true, true),
    ] {
        let gateway = load(
            "gw",
            &format!("name: gw\nnamespace: ns\nselector: {{app: web}}\nistio: \"{istio}\"\nurl: oci://r/p\nplugins: [{{plugin: header-authorization}}]\n"),
        );
        let doc = docs(&render(&gateway, &sha).unwrap()).remove(0);
        assert_eq!(doc["spec"].get("type").is_some(), has_type, "{istio}");
        assert_eq!(
            doc["spec"].get("failStrategy").is_some(),
            has_fail_strategy,
            "{istio}"
        );
    }
}

#[test]
fn kustomization_keeps_the_chain_order() {
    for gateway in variants("") {
        let files = render(&gateway, &sha).unwrap();
        let kustomization = crate::yaml::parse(&files.last().unwrap().1).unwrap();
        assert_eq!(kustomization["sortOptions"], json!({"order": "fifo"}));
        let listed: Vec<&str> = files[..files.len() - 1]
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(kustomization["resources"], json!(listed));
    }
}

fn envoy_filter(text: &str) -> Value {
    let gateway = load("edge", text);
    let files = render(&gateway, &sha).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["envoy-filter.yaml", "kustomization.yaml"]);
    docs(&files).remove(0)
}

/// The ingress example as an EnvoyFilter.
fn ingress_envoy_filter(istio: &str) -> Value {
    let text = std::fs::read_to_string(default_dir().join("ingress.yaml")).unwrap();
    let gateway = load(
        "ingress",
        &format!("api: EnvoyFilter\nistio: \"{istio}\"\n{text}"),
    );
    docs(&render(&gateway, &sha).unwrap()).remove(0)
}

/// Applies an EnvoyFilter's HTTP_FILTER patches, in list order, to the HTTP
/// filters of a listener of `context` on `port`, as Istio documents them:
/// INSERT_FIRST puts the filter at the head, INSERT_BEFORE before the named
/// filter (and does nothing when it is missing); a patch applies when its
/// context is ANY or the listener's and its port, if any, is the listener's.
fn apply(filter: &Value, context: &str, port: u64, mut chain: Vec<String>) -> Vec<String> {
    for patch in filter["spec"]["configPatches"].as_array().unwrap() {
        if patch["applyTo"] != "HTTP_FILTER" {
            continue;
        }
        let m = &patch["match"];
        let listener = &m["listener"];
        if m["context"] != "ANY" && m["context"] != context {
            continue;
        }
        if listener.get("portNumber").is_some_and(|p| p != port) {
            continue;
        }
        assert_eq!(
            listener["filterChain"]["filter"]["name"],
            "envoy.filters.network.http_connection_manager"
        );
        let name = patch["patch"]["value"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        match patch["patch"]["operation"].as_str().unwrap() {
            "INSERT_FIRST" => chain.insert(0, name),
            "INSERT_BEFORE" => {
                let anchor = listener["filterChain"]["filter"]["subFilter"]["name"]
                    .as_str()
                    .unwrap();
                if let Some(at) = chain.iter().position(|f| f == anchor) {
                    chain.insert(at, name);
                }
            }
            other => panic!("unexpected operation {other}"),
        }
    }
    chain
}

fn istio_filters() -> Vec<String> {
    [
        "istio.metadata_exchange",
        "envoy.filters.http.jwt_authn",
        "istio_authn",
        "envoy.filters.http.rbac",
        "istio.stats",
        "envoy.filters.http.router",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn envoy_filter_inserts_filters_in_chain_order_around_istio_s_own() {
    let filter = ingress_envoy_filter("1.28");
    let got = apply(&filter, "GATEWAY", 8080, istio_filters());
    // The example's filters: two chains (AUTHN, AUTHZ) and api-version (STATS;
    // its match is CLIENT, which a gateway's listeners are, on 8080 and 8443).
    assert_eq!(
        got,
        [
            "istio-system.ingress-security-headers",
            "istio.metadata_exchange",
            "envoy.filters.http.jwt_authn",
            "istio_authn",
            "envoy.filters.http.rbac",
            "istio.stats",
            "istio-system.ingress-ext-auth",
            "istio-system.ingress-api-version",
            "envoy.filters.http.router",
        ]
    );
    // Another port, or a sidecar's inbound listener (SERVER): no api-version.
    let other_port = apply(&filter, "GATEWAY", 9090, istio_filters());
    assert_eq!(other_port.len(), 8);
    assert!(!other_port.iter().any(|f| f.ends_with("api-version")));
    let inbound = apply(&filter, "SIDECAR_INBOUND", 8080, istio_filters());
    assert_eq!(
        inbound[inbound.len() - 2..],
        ["istio-system.ingress-ext-auth", "envoy.filters.http.router"]
    );
    // Many AUTHN and later filters keep chain order, wherever they land.
    let filter = envoy_filter(
        "name: edge\nnamespace: edge\nselector: {app: edge}\napi: EnvoyFilter\nurl: oci://r/p\nplugins:\n\
         - {plugin: header-authorization, name: a1, phase: AUTHN, priority: 3}\n\
         - {plugin: header-authorization, name: a2, phase: AUTHN, priority: 2}\n\
         - {plugin: header-authorization, name: a3, phase: AUTHN, priority: 1}\n\
         - {plugin: header-authorization, name: z1, phase: AUTHZ}\n\
         - {plugin: header-authorization, name: s1, phase: STATS}\n\
         - {plugin: header-authorization, name: u1}\n\
         - {plugin: header-authorization, name: u2, priority: -1}\n",
    );
    let got = apply(
        &filter,
        "SIDECAR_OUTBOUND",
        80,
        vec!["envoy.filters.http.router".into()],
    );
    let ours: Vec<&str> = got
        .iter()
        .map(|n| n.trim_start_matches("edge.edge-"))
        .collect();
    assert_eq!(
        ours,
        [
            "a1",
            "a2",
            "a3",
            "z1",
            "s1",
            "u1",
            "u2",
            "envoy.filters.http.router"
        ]
    );
    // The EXTENSION_CONFIGs come first, in chain order.
    let patches = filter["spec"]["configPatches"].as_array().unwrap();
    let configs: Vec<&str> = patches
        .iter()
        .take_while(|p| p["applyTo"] == "EXTENSION_CONFIG")
        .map(|p| {
            p["patch"]["value"]["name"]
                .as_str()
                .unwrap()
                .trim_start_matches("edge.edge-")
        })
        .collect();
    assert_eq!(configs, ["a1", "a2", "a3", "z1", "s1", "u1", "u2"]);
}

#[test]
fn envoy_filter_carries_the_wasm_config_istiod_would_build() {
    let filter = envoy_filter(
        "name: edge\nnamespace: edge\nselector: {app: edge}\napi: EnvoyFilter\nurl: https://cdn.example.com/w\n\
         imagePullPolicy: Always\nplugins:\n\
         - {plugin: header-authorization, name: team, phase: AUTHZ, failStrategy: FAIL_RELOAD, config: {header: x-team}, env: [{name: A, value: '1'}, {name: H, valueFrom: HOST}], match: [{mode: CLIENT, ports: [{number: 8080}, {number: 8443}]}]}\n",
    );
    assert_eq!(
        filter,
        json!({
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": {"name": "edge-wasm-plugins", "namespace": "edge"},
            "spec": {
                "workloadSelector": {"labels": {"app": "edge"}},
                "configPatches": [
                    {
                        "applyTo": "EXTENSION_CONFIG",
                        "patch": {"operation": "ADD", "value": {
                            "name": "edge.edge-team",
                            "typed_config": {
                                "@type": WASM_TYPE,
                                "config": {
                                    "name": "edge.edge-team",
                                    "vm_config": {
                                        "runtime": "envoy.wasm.runtime.v8",
                                        "code": {"remote": {
                                            "http_uri": {"uri": "https://cdn.example.com/w/header-authorization.wasm", "cluster": "_", "timeout": "30s"},
                                            "sha256": sha("header-authorization").unwrap(),
                                        }},
                                        "environment_variables": {
                                            "key_values": {"ISTIO_META_WASM_IMAGE_PULL_POLICY": "Always", "A": "1"},
                                            "host_env_keys": ["H"],
                                        },
                                    },
                                    "configuration": {
                                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                                        "value": "{\"header\":\"x-team\"}",
                                    },
                                    "failure_policy": "FAIL_RELOAD",
                                },
                            },
                        }},
                    },
                    http_filter_patch("GATEWAY", 8080),
                    http_filter_patch("GATEWAY", 8443),
                    http_filter_patch("SIDECAR_OUTBOUND", 8080),
                    http_filter_patch("SIDECAR_OUTBOUND", 8443),
                ],
            }
        })
    );
}

fn http_filter_patch(context: &str, port: u16) -> Value {
    json!({
        "applyTo": "HTTP_FILTER",
        "match": {"context": context, "listener": {
            "portNumber": port,
            "filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
                "subFilter": {"name": "envoy.filters.http.router"},
            }},
        }},
        "patch": {"operation": "INSERT_BEFORE", "value": {
            "name": "edge.edge-team",
            "config_discovery": {
                "config_source": {"ads": {}, "initial_fetch_timeout": "0s"},
                "type_urls": [WASM_TYPE, RBAC_TYPE],
            },
        }},
    })
}

/// The Wasm filter configs of an EnvoyFilter, by name.
fn wasm_configs(filter: &Value) -> Vec<(String, Value)> {
    filter["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["applyTo"] == "EXTENSION_CONFIG")
        .map(|p| {
            let value = &p["patch"]["value"];
            assert_eq!(value["typed_config"]["@type"], WASM_TYPE);
            (
                value["name"].as_str().unwrap().to_string(),
                value["typed_config"]["config"].clone(),
            )
        })
        .collect()
}

#[test]
fn envoy_filter_sources_chains_and_failure_policies() {
    // A chain runs chain.wasm with the chain module's list; oci:// is fetched
    // by Istio's agent, with the digest it checks.
    let filter = ingress_envoy_filter("1.28");
    let configs = wasm_configs(&filter);
    let names: Vec<&str> = configs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "istio-system.ingress-security-headers",
            "istio-system.ingress-ext-auth",
            "istio-system.ingress-api-version"
        ]
    );
    let (_, chain) = &configs[0];
    let remote = &chain["vm_config"]["code"]["remote"];
    assert_eq!(
        remote["http_uri"]["uri"],
        format!(
            "oci://registry.example.com/mesh-plugins/chain:{}",
            version()
        )
    );
    assert_eq!(remote["sha256"], sha("chain").unwrap());
    let list: Value =
        serde_json::from_str(chain["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        chain::config::from_value(&list).map(|c| c.len()).ok(),
        Some(3)
    );
    let policies: Vec<&Value> = configs.iter().map(|(_, c)| &c["failure_policy"]).collect();
    assert_eq!(
        policies,
        [
            &json!("FAIL_RELOAD"),
            &json!("FAIL_RELOAD"),
            &json!("FAIL_OPEN")
        ]
    );
    // Before 1.25 proxies take the boolean only.
    let text = std::fs::read_to_string(default_dir().join("ingress.yaml"))
        .unwrap()
        .replace("FAIL_RELOAD", "FAIL_CLOSE");
    let old = load(
        "ingress",
        &format!("api: EnvoyFilter\nistio: \"1.24\"\n{text}"),
    );
    let configs = wasm_configs(&docs(&render(&old, &sha).unwrap())[0]);
    assert!(configs
        .iter()
        .all(|(_, c)| c.get("failure_policy").is_none()));
    let open: Vec<Option<&Value>> = configs.iter().map(|(_, c)| c.get("fail_open")).collect();
    assert_eq!(open, [None, None, Some(&json!(true))]);
    // file:// is a local file, as istiod writes it; no digest needed.
    let filter = envoy_filter(
        "name: edge\nnamespace: edge\ntargetRefs: [{kind: Gateway, name: edge}]\napi: EnvoyFilter\nurl: file:///opt/filters\nplugins: [{plugin: header-authorization}]\n",
    );
    assert_eq!(
        filter["spec"]["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}])
    );
    let (_, config) = &wasm_configs(&filter)[0];
    assert_eq!(
        config["vm_config"]["code"],
        json!({"local": {"filename": "/opt/filters/header-authorization.wasm"}})
    );
    assert!(config.get("configuration").is_none());
    assert!(config["vm_config"].get("environment_variables").is_none());
}
