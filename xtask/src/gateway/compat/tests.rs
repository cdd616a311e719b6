//! Every refusal of an API or Istio version, with the field and the version it
//! needs, and what each version accepts.

use super::super::{parse, Api, Gateway, Istio};
use std::path::Path;

fn gateway(head: &str, plugin: &str) -> Result<Gateway, String> {
    let text = format!(
        "name: gw\nnamespace: default\n{head}\nurl: oci://registry.example.com/p\nplugins:\n  - {{plugin: header-authorization, name: one{plugin}}}\n"
    );
    parse(Path::new("gw.yaml"), "gw.yaml", &text)
}

const SELECTOR: &str = "selector: {app: web}";
const REFS: &str = "targetRefs: [{kind: Gateway, name: gw}]";

#[test]
fn defaults_are_wasm_plugin_for_istio_1_28() {
    let g = gateway(SELECTOR, "").unwrap();
    assert_eq!((g.api, g.istio), (Api::WasmPlugin, Istio::v(28)));
    let g = gateway(
        &format!("{SELECTOR}\napi: EnvoyFilter\nistio: \"1.24\""),
        "",
    )
    .unwrap();
    assert_eq!((g.api, g.istio), (Api::EnvoyFilter, Istio::v(24)));
}

#[test]
fn each_refusal_names_the_field_and_the_istio_version_it_needs() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "selector: {app: web}\napi: TrafficExtension",
            "",
            "api: TrafficExtension needs Istio 1.30+ (this gateway targets istio: \"1.28\")",
        ),
        (
            "selector: {app: web}\napi: TrafficExtension\nistio: \"1.29\"",
            "",
            "api: TrafficExtension needs Istio 1.30+ (this gateway targets istio: \"1.29\")",
        ),
        (
            "istio: \"1.21\"\ntargetRefs: [{kind: Gateway, name: gw}]",
            "",
            "targetRefs: targetRefs on WasmPlugin needs Istio 1.22+ (this gateway targets istio: \"1.21\")",
        ),
        (
            "api: EnvoyFilter\nistio: \"1.21\"\ntargetRefs: [{kind: Gateway, name: gw}]",
            "",
            "targetRefs: targetRefs on EnvoyFilter needs Istio 1.22+",
        ),
        (
            &format!("{SELECTOR}\nistio: \"1.26\""),
            ", failStrategy: FAIL_RELOAD",
            "plugins[0] (one): failStrategy: FAIL_RELOAD needs Istio 1.27+ (this gateway targets istio: \"1.26\")",
        ),
        (
            &format!("{SELECTOR}\napi: EnvoyFilter\nistio: \"1.26\""),
            ", failStrategy: FAIL_RELOAD",
            "plugins[0] (one): failStrategy: FAIL_RELOAD needs Istio 1.27+",
        ),
        (
            &format!("{SELECTOR}\nistio: \"1.18\""),
            ", failStrategy: FAIL_OPEN",
            "plugins[0] (one): failStrategy: FAIL_OPEN on WasmPlugin needs Istio 1.19+ (this gateway targets istio: \"1.18\")",
        ),
        (
            &format!("{SELECTOR}\nistio: \"1.13\""),
            ", env: [{name: A, value: b}]",
            "plugins[0] (one): env: vmConfig.env on WasmPlugin needs Istio 1.14+ (this gateway targets istio: \"1.13\")",
        ),
        (
            &format!("{SELECTOR}\nistio: \"1.15\""),
            ", match: [{mode: SERVER}]",
            "plugins[0] (one): match: match on WasmPlugin needs Istio 1.16+ (this gateway targets istio: \"1.15\")",
        ),
        (
            &format!("{SELECTOR}\napi: EnvoyFilter\nimagePullSecret: creds"),
            "",
            "imagePullSecret: api EnvoyFilter cannot carry an image pull secret: istiod reads the named Secret for WasmPlugin and TrafficExtension only",
        ),
        (
            &format!("{SELECTOR}\napi: EnvoyFilter"),
            ", imagePullSecret: creds",
            "plugins[0] (one): imagePullSecret: api EnvoyFilter cannot carry an image pull secret",
        ),
        (
            &format!("{SELECTOR}\napi: EnvoyFilter"),
            ", match: [{mode: SERVER}, {mode: CLIENT}]",
            "plugins[0] (one): match: api EnvoyFilter takes at most one match clause, got 2",
        ),
        (
            &format!("{SELECTOR}\napi: Lua"),
            "",
            "api: unknown api 'Lua' (expected WasmPlugin, TrafficExtension or EnvoyFilter)",
        ),
        (
            &format!("{SELECTOR}\nistio: 1.30"),
            "",
            "istio: write the version quoted (istio: \"1.3\"): YAML reads an unquoted 1.30 as the number 1.3",
        ),
        (
            &format!("{SELECTOR}\nistio: \"2.0\""),
            "",
            "istio: '2.0' is not an Istio version (expected 1.<minor>, such as \"1.28\")",
        ),
        (
            &format!("{SELECTOR}\nistio: \"1.11\""),
            "",
            "istio: 1.11 is not supported: Istio runs wasm plugins from 1.12 on (WasmPlugin)",
        ),
        (
            "targetRefs: [{kind: Gateway, name: gw, namespace: other}]",
            "",
            "targetRefs[0].namespace: Istio does not support cross-namespace references",
        ),
    ];
    for (head, plugin, expected) in cases {
        let err = gateway(head, plugin).expect_err(head);
        assert!(
            err.starts_with(expected),
            "{head} {plugin}:\n{err}\nexpected: {expected}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn what_each_version_and_api_accepts() {
    // The floors themselves pass.
    for (head, plugin) in [
        ("selector: {app: web}\napi: TrafficExtension\nistio: \"1.30\"", ", failStrategy: FAIL_RELOAD"),
        (&*format!("{REFS}\nistio: \"1.22\""), ""),
        (&*format!("{SELECTOR}\nistio: \"1.27\""), ", failStrategy: FAIL_RELOAD"),
        (&*format!("{SELECTOR}\nistio: \"1.14\""), ", env: [{name: A, valueFrom: HOST}]"),
        (&*format!("{SELECTOR}\nistio: \"1.16\""), ", match: [{mode: SERVER}]"),
        (&*format!("{SELECTOR}\nistio: \"1.19\""), ", failStrategy: FAIL_OPEN"),
        (&*format!("{SELECTOR}\napi: EnvoyFilter\nistio: \"1.12\""), ", failStrategy: FAIL_OPEN"),
        // EnvoyFilter carries env and match in Envoy's own terms at any version,
        // and the pull policy as the variable Istio's agent reads.
        (
            &*format!("{SELECTOR}\napi: EnvoyFilter\nistio: \"1.12\""),
            ", env: [{name: A, value: b}], match: [{mode: CLIENT, ports: [{number: 8080}]}], imagePullPolicy: Always",
        ),
        ("api: TrafficExtension\nistio: \"1.30\"\nimagePullSecret: creds\ntargetRefs: [{kind: Gateway, name: gw}]", ""),
    ] {
        if let Err(e) = gateway(head, plugin) {
            panic!("{head} {plugin}: {e}");
        }
    }
}
