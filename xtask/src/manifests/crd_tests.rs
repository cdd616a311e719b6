//! Every generated WasmPlugin and TrafficExtension passes its vendored CRD
//! (the openAPIV3Schema and every CEL rule), and the validator catches a bad
//! manifest of each kind.

use super::api_tests::{docs, load, sha};
use super::crd::{parse_request_uri, Crd};
use super::*;
use crate::gateway::default_dir;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The example gateways and the other fixtures, with `head` lines added and the
/// url replaced: every shape the generator writes (chains and single
/// instances, selector and targetRefs, env inline and from the host, match,
/// pull policy and secret, no pluginConfig).
pub(super) fn variants(head: &str) -> Vec<Gateway> {
    let mut texts: Vec<(String, String)> = crate::gateway::files(&default_dir())
        .unwrap()
        .iter()
        .map(|f| {
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    texts.push((
        "edge".into(),
        "name: edge\nnamespace: edge\nselector: {app: edge, tier: front}\nurl: oci://r.example.com/p\n\
         imagePullPolicy: Always\nchain: true\nplugins:\n\
         - {plugin: header-authorization, name: a, phase: AUTHN, env: [{name: A, value: '1'}, {name: H, valueFrom: HOST}], match: [{mode: CLIENT, ports: [{number: 8080}, {number: 8443}]}]}\n\
         - {plugin: header-authorization, name: b, phase: AUTHN, env: [{name: H, valueFrom: HOST}, {name: A, value: '1'}], match: [{mode: CLIENT, ports: [{number: 8080}, {number: 8443}]}], config: {header: x-b}}\n\
         - {plugin: basic-auth, name: c, failStrategy: FAIL_OPEN, priority: -5, config: {basic_auth_rules: [{prefix: /, request_methods: [GET], credentials: ['u:p']}]}}\n"
            .into(),
    ));
    let mut out = Vec::new();
    for (name, text) in texts {
        for url in [
            "oci://registry.example.com/p",
            "file:///opt/filters",
            "https://cdn.example.com/w",
        ] {
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("url:"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.push(load(&name, &format!("{head}url: {url}\n{body}")));
        }
    }
    out
}

/// Checks every document of `api` from [`variants`]; returns the rules run.
fn validate_all(head: &str, crd: &Crd) -> BTreeSet<(String, String)> {
    let mut run = BTreeSet::new();
    let mut count = 0;
    for gateway in variants(head) {
        for doc in docs(&render(&gateway, &sha).unwrap()) {
            assert_eq!(doc["kind"], crd.kind.as_str());
            let report = crd.check(&doc);
            assert!(
                report.errors.is_empty(),
                "{}: {:#?}\n{doc:#}",
                gateway.name,
                report.errors
            );
            assert!(report.rules_skipped.is_empty());
            run.extend(report.rules_run);
            count += 1;
        }
    }
    // 3 files (ingress 3 filters, internal 3, edge 2) with 3 urls each.
    assert_eq!(count, 24);
    run
}

#[test]
fn every_wasm_plugin_passes_the_vendored_crd_schema_and_cel_rules() {
    let crd = Crd::load("wasmplugin.crd.yaml");
    let run = validate_all("", &crd);
    // Every rule ran on some manifest, but those on fields never written:
    // the singular targetRef, and a target's namespace (refused at load).
    let never: BTreeSet<(String, String)> = crd
        .rules()
        .into_iter()
        .filter(|(path, _)| {
            path.starts_with("/spec/targetRef/") || path.starts_with("/spec/targetRefs/")
        })
        .collect();
    assert_eq!((crd.rules().len(), never.len()), (8, 2), "{never:#?}");
    let expected: BTreeSet<_> = crd.rules().difference(&never).cloned().collect();
    assert_eq!(run, expected);
    assert_eq!(run.len(), 6);
}

#[test]
fn every_traffic_extension_passes_the_vendored_crd_schema_and_cel_rules() {
    let crd = Crd::load("trafficextension.crd.yaml");
    let run = validate_all("api: TrafficExtension\nistio: \"1.30\"\n", &crd);
    let never: BTreeSet<(String, String)> = crd
        .rules()
        .into_iter()
        .filter(|(path, _)| path.starts_with("/spec/targetRefs/"))
        .collect();
    assert_eq!((crd.rules().len(), never.len()), (8, 1), "{never:#?}");
    let expected: BTreeSet<_> = crd.rules().difference(&never).cloned().collect();
    assert_eq!(run, expected);
    assert_eq!(run.len(), 7);
}

/// One valid WasmPlugin to break.
fn good_wasm_plugin() -> Value {
    let gateway = load(
        "gw",
        "name: gw\nnamespace: ns\nselector: {app: web}\nurl: https://cdn.example.com/w\nplugins:\n\
         - {plugin: header-authorization, env: [{name: A, valueFrom: HOST}]}\n",
    );
    docs(&render(&gateway, &sha).unwrap()).remove(0)
}

/// An edit that breaks a manifest.
type Breaker = Box<dyn Fn(&mut Value)>;

#[test]
fn the_validator_catches_schema_and_cel_violations() {
    let crd = Crd::load("wasmplugin.crd.yaml");
    let good = good_wasm_plugin();
    assert_eq!(crd.check(&good).errors, Vec::<String>::new());
    let cases: Vec<(&str, Breaker, &str)> = vec![
        // Schema: an enum, a type, int32's range, a pattern, an unknown field
        // (the API server would drop it silently), a required field.
        ("phase", Box::new(|d| d["spec"]["phase"] = json!("AUTHX")), "schema: /spec/phase"),
        ("priority type", Box::new(|d| d["spec"]["priority"] = json!("high")), "schema: /spec/priority"),
        ("int32", Box::new(|d| d["spec"]["priority"] = json!(2147483648u64)), "schema: /spec/priority"),
        ("sha256", Box::new(|d| d["spec"]["sha256"] = json!("ABC")), "schema: /spec/sha256"),
        ("unknown", Box::new(|d| d["spec"]["sha265"] = json!("x")), "schema: /spec"),
        ("url", Box::new(|d| { d["spec"].as_object_mut().unwrap().remove("url"); }), "schema: /spec"),
        ("metadata", Box::new(|d| d["metadata"]["labelz"] = json!({})), "schema: /metadata"),
        ("kind", Box::new(|d| d["kind"] = json!("WasmPlugins")), "schema: /kind"),
        ("list map", Box::new(|d| d["spec"]["vmConfig"]["env"] = json!([{"name": "A"}, {"name": "A", "value": "b"}])), "schema: /spec/vmConfig/env: duplicate"),
        // CEL: each kind of rule the CRD holds.
        (
            "selector and targetRefs",
            Box::new(|d| d["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g", "group": "gateway.networking.k8s.io"}])),
            "cel: /spec: only one of targetRefs or selector can be set",
        ),
        ("label value", Box::new(|d| d["spec"]["selector"]["matchLabels"]["app"] = json!("*")), "cel: /spec/selector/matchLabels/app: wildcard not allowed in label value match"),
        ("label key", Box::new(|d| d["spec"]["selector"]["matchLabels"]["a*"] = json!("x")), "cel: /spec/selector/matchLabels: wildcard not allowed in label key match"),
        ("empty key", Box::new(|d| d["spec"]["selector"]["matchLabels"][""] = json!("x")), "cel: /spec/selector/matchLabels: key must not be empty"),
        ("host env value", Box::new(|d| d["spec"]["vmConfig"]["env"][0]["value"] = json!("x")), "cel: /spec/vmConfig/env/0: value may only be set when valueFrom is INLINE"),
        ("url scheme", Box::new(|d| d["spec"]["url"] = json!("ftp://cdn.example.com/w.wasm")), "cel: /spec/url: url must have schema one of [http, https, file, oci]"),
        (
            "target namespace",
            Box::new(|d| {
                d["spec"].as_object_mut().unwrap().remove("selector");
                d["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g", "group": "gateway.networking.k8s.io", "namespace": "other"}]);
            }),
            "cel: /spec/targetRefs/0/namespace: cross namespace referencing is not currently supported",
        ),
    ];
    for (what, break_it, expected) in cases {
        let mut doc = good.clone();
        break_it(&mut doc);
        let errors = crd.check(&doc).errors;
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{what}: expected {expected}, got {errors:#?}"
        );
    }
    // TrafficExtension's own rule: exactly one of wasm or lua.
    let crd = Crd::load("trafficextension.crd.yaml");
    let gateway = load(
        "gw",
        "name: gw\nnamespace: ns\nselector: {app: web}\napi: TrafficExtension\nistio: \"1.30\"\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
    );
    let mut doc = docs(&render(&gateway, &sha).unwrap()).remove(0);
    assert_eq!(crd.check(&doc).errors, Vec::<String>::new());
    doc["spec"]["lua"] = json!({"inlineCode": "function envoy_on_request(h) end"});
    let errors = crd.check(&doc).errors;
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("cel: /spec: exactly one of wasm or lua must be set")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("schema: /spec")),
        "{errors:#?}"
    );
}

#[test]
fn kubernetes_url_functions_follow_go_parse_request_uri() {
    let scheme = |s: &str| parse_request_uri(s).map(|(scheme, _)| scheme);
    assert_eq!(
        scheme("oci://registry.example.com/p/chain:0.1.0").as_deref(),
        Some("oci")
    );
    assert_eq!(
        scheme("https://cdn.example.com:8443/w.wasm").as_deref(),
        Some("https")
    );
    assert_eq!(
        scheme("file:///opt/filters/a.wasm").as_deref(),
        Some("file")
    );
    assert_eq!(scheme("/opt/a.wasm").as_deref(), Some(""));
    assert_eq!(scheme("mailto:someone").as_deref(), Some("mailto"));
    // An image reference without a scheme is not a request URI; the rules then
    // try it behind http://.
    assert_eq!(scheme("registry.example.com/p:0.1.0"), None);
    assert_eq!(
        scheme("http://registry.example.com/p:0.1.0").as_deref(),
        Some("http")
    );
    assert_eq!(scheme("http://host:port/x"), None);
    assert_eq!(scheme(":no-scheme"), None);
    assert_eq!(scheme("http://a b/"), None);
    let rule = r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"#;
    for (url, ok) in [
        ("oci://r/p:1", true),
        ("r.example.com/p:1", true),
        ("file:///a.wasm", true),
        ("ftp://r/p", false),
        ("s3://bucket/a.wasm", false),
    ] {
        assert_eq!(super::crd::evaluate(rule, &json!(url)), Ok(ok), "{url}");
    }
}
