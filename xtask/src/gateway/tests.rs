//! Gateway files: loading, defaults, chain order, and every refusal.

use super::*;
use crate::plugins;
use harness::scratch;

const GOOD: &str = "\
name: gw
namespace: default
selector: {app: web}
url: oci://registry.example.com/p
plugins:
  - plugin: header-authorization
";

fn parse_text(text: &str) -> Result<Gateway, String> {
    parse(Path::new("gw.yaml"), "gw.yaml", text)
}

#[test]
fn example_gateways_load_and_chain_by_phase_priority_name() {
    let gateways = select(&default_dir(), None).unwrap();
    let names: Vec<&str> = gateways.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["ingress", "internal"]);
    let chain: Vec<&str> = gateways[0]
        .chain()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(
        chain,
        [
            "security-headers",
            "tenant",
            "admin-basic-auth",
            "ext-auth",
            "team",
            "api-version"
        ]
    );
    let plugins: Vec<&str> = gateways[1]
        .chain()
        .iter()
        .map(|i| i.plugin.as_str())
        .collect();
    assert_eq!(
        plugins,
        ["response-headers", "basic-auth", "header-authorization"]
    );
    // ingress fuses its instances into two chains; internal keeps them apart.
    let filters: Vec<String> = gateways[0]
        .filters()
        .filters
        .iter()
        .map(|f| f.names("+"))
        .collect();
    assert_eq!(
        filters,
        [
            "security-headers+tenant+admin-basic-auth",
            "ext-auth+team",
            "api-version"
        ]
    );
    assert_eq!(gateways[1].filters().filters.len(), 3);
    assert!(gateways[1].filters().report().is_empty());
    assert_eq!(
        gateways[0].display,
        Path::new("examples/gateways/ingress.yaml")
            .display()
            .to_string()
    );
    let only = select(&default_dir(), Some("internal")).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].name, "internal");
    let err = select(&default_dir(), Some("nope")).unwrap_err();
    assert_eq!(
        err,
        "no gateway named 'nope' in examples/gateways (found: ingress, internal)"
    );
}

#[test]
fn defaults_are_istios() {
    let g = parse_text(GOOD).unwrap();
    let i = &g.instances[0];
    assert_eq!(i.name, "header-authorization");
    assert_eq!(i.phase, Phase::Unspecified);
    assert_eq!(i.priority, 0);
    assert_eq!(i.fail_strategy, FailStrategy::FailClose);
    assert_eq!(i.config, None);
    assert_eq!(g.filters().filters[0].config_json(), "");
    assert_eq!(
        g.target,
        Target::Selector(vec![("app".into(), "web".into())])
    );
    assert_eq!(
        g.url.module("header-authorization"),
        format!(
            "oci://registry.example.com/p/header-authorization:{}",
            version()
        )
    );
}

#[test]
fn chain_order_is_phase_then_priority_desc_then_name() {
    let g = parse_text(&format!(
        "{GOOD}    name: z-unspecified
  - {{plugin: header-authorization, name: b-stats, phase: STATS}}
  - {{plugin: header-authorization, name: c-authz-low, phase: AUTHZ, priority: -5}}
  - {{plugin: header-authorization, name: a-authz-high, phase: AUTHZ, priority: 7}}
  - {{plugin: header-authorization, name: y-authz-high, phase: AUTHZ, priority: 7}}
  - {{plugin: header-authorization, name: x-authn, phase: AUTHN, priority: -100}}
"
    ))
    .unwrap();
    let chain: Vec<&str> = g.chain().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        chain,
        [
            "x-authn",
            "a-authz-high",
            "y-authz-high",
            "c-authz-low",
            "b-stats",
            "z-unspecified"
        ]
    );
}

#[test]
fn every_field_is_read() {
    let g = parse_text(
        "\
name: gw
namespace: edge
targetRefs: [{kind: Gateway, name: web}, {group: '', kind: Service, name: api}]
url: https://cdn.example.com/filters/
imagePullPolicy: Always
imagePullSecret: pull
plugins:
  - plugin: header-authorization
    name: team
    phase: AUTHZ
    priority: 2147483647
    failStrategy: FAIL_RELOAD
    config: {header: x-team}
    env: [{name: A, value: '1'}, {name: B, valueFrom: HOST}, {name: C, valueFrom: INLINE, value: c}]
    match: [{mode: CLIENT, ports: [{number: 80}]}]
    imagePullPolicy: IfNotPresent
",
    )
    .unwrap();
    assert_eq!(
        g.target,
        Target::TargetRefs(vec![
            vec![
                ("group".into(), "gateway.networking.k8s.io".into()),
                ("kind".into(), "Gateway".into()),
                ("name".into(), "web".into())
            ],
            vec![
                ("group".into(), "".into()),
                ("kind".into(), "Service".into()),
                ("name".into(), "api".into()),
            ],
        ])
    );
    assert_eq!(g.url, Url::Https("https://cdn.example.com/filters".into()));
    assert_eq!(g.url.module("p"), "https://cdn.example.com/filters/p.wasm");
    let i = &g.instances[0];
    assert_eq!((i.phase, i.priority), (Phase::Authz, i32::MAX));
    assert_eq!(i.fail_strategy, FailStrategy::FailReload);
    assert_eq!(i.config, Some(serde_json::json!({"header": "x-team"})));
    let env: Vec<(&str, Option<&str>)> = i
        .env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_deref()))
        .collect();
    assert_eq!(env, [("A", Some("1")), ("B", None), ("C", Some("c"))]);
    assert_eq!(
        i.matches,
        Some(serde_json::json!([{"mode": "CLIENT", "ports": [{"number": 80}]}]))
    );
    // The instance's own pull policy wins; the secret comes from the gateway.
    assert_eq!(i.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(i.image_pull_secret.as_deref(), Some("pull"));
    assert_eq!(
        i.checked.pass_headers,
        Some(vec![("x-team".into(), "true".into())])
    );
}

/// The known plugins as the unknown-plugin error lists them.
pub fn known() -> String {
    plugins::names().join(", ")
}

/// Every refusal (`{known}` stands for the known plugins), as `<file>: [plugins[<i>] (<instance>): ]<field>: <message>`.
pub const BAD: &[(&str, &str, &str)] = &[
        (
            "unknown plugin",
            "  - plugin: basic-oath\n",
            "plugins[1] (basic-oath): plugin: unknown plugin 'basic-oath' (known: {known})",
        ),
        (
            "duplicate instance names",
            "  - {plugin: header-authorization, phase: AUTHN}\n",
            "plugins[1] (header-authorization): name: duplicate instance name 'header-authorization' (also plugins[0]); give one of them another name",
        ),
        (
            "unknown phase",
            "  - {plugin: header-authorization, name: two, phase: AUTHX}\n",
            "plugins[1] (two): phase: unknown phase 'AUTHX' (expected AUTHN, AUTHZ, STATS or UNSPECIFIED_PHASE)",
        ),
        (
            "unknown failStrategy",
            "  - {plugin: header-authorization, name: two, failStrategy: FAIL_SOFT}\n",
            "plugins[1] (two): failStrategy: unknown failStrategy 'FAIL_SOFT' (expected FAIL_CLOSE, FAIL_OPEN or FAIL_RELOAD)",
        ),
        (
            "priority above int32",
            "  - {plugin: header-authorization, name: two, priority: 2147483648}\n",
            "plugins[1] (two): priority: must be -2147483648..=2147483647, got 2147483648",
        ),
        (
            "priority below int32",
            "  - {plugin: header-authorization, name: two, priority: -2147483649}\n",
            "plugins[1] (two): priority: must be -2147483648..=2147483647, got -2147483649",
        ),
        (
            "priority not a whole number",
            "  - {plugin: header-authorization, name: two, priority: 1.5}\n",
            "plugins[1] (two): priority: expected a whole number, got a number",
        ),
        (
            "config refused by the plugin's own type",
            "  - plugin: header-authorization\n    name: two\n    config: {deny: {status: 700}}\n",
            "plugins[1] (two): config.deny.status: must be 200..=599, got 700",
        ),
        (
            "unknown config field",
            "  - {plugin: header-authorization, name: two, config: {hedaer: x}}\n",
            "plugins[1] (two): config.hedaer: unknown field (known fields: deny, header, values)",
        ),
        (
            "config not an object",
            "  - {plugin: header-authorization, name: two, config: [1]}\n",
            "plugins[1] (two): config: expected an object, got a list",
        ),
        (
            "unknown instance field",
            "  - {plugin: header-authorization, name: two, priorty: 1}\n",
            "plugins[1] (two): priorty: unknown field (known fields: chain, config, env, failStrategy, imagePullPolicy, imagePullSecret, match, name, phase, plugin, priority)",
        ),
        (
            "bad instance name",
            "  - {plugin: header-authorization, name: Two_2}\n",
            "plugins[1] (Two_2): name: 'Two_2' is not a valid name (lowercase letters, digits and '-', at most 63)",
        ),
        (
            "missing plugin",
            "  - {name: two}\n",
            "plugins[1] (two): plugin: is required",
        ),
        (
            "env from host with a value",
            "  - {plugin: header-authorization, name: two, env: [{name: A, value: x, valueFrom: HOST}]}\n",
            "plugins[1] (two): env[0].value: must be empty with valueFrom: HOST",
        ),
        (
            "bad env name",
            "  - {plugin: header-authorization, name: two, env: [{name: 1A}]}\n",
            "plugins[1] (two): env[0].name: '1A' is not a valid variable name",
        ),
        (
            "bad match mode",
            "  - {plugin: header-authorization, name: two, match: [{mode: SIDECAR}]}\n",
            "plugins[1] (two): match[0].mode: unknown mode 'SIDECAR' (expected UNDEFINED, CLIENT, SERVER, CLIENT_AND_SERVER)",
        ),
        (
            "bad match port",
            "  - {plugin: header-authorization, name: two, match: [{ports: [{number: 0}]}]}\n",
            "plugins[1] (two): match[0].ports[0].number: must be 1..=65535, got 0",
        ),
        (
            "duplicate env variable",
            "  - {plugin: header-authorization, name: two, env: [{name: A}, {name: A, valueFrom: HOST}]}\n",
            "plugins[1] (two): env[1].name: duplicate variable 'A'",
        ),
        (
            "unknown match field",
            "  - {plugin: header-authorization, name: two, match: [{port: 80}]}\n",
            "plugins[1] (two): match[0].port: unknown field (known fields: mode, ports)",
        ),
        (
            "empty pull secret",
            "  - {plugin: header-authorization, name: two, imagePullSecret: ''}\n",
            "plugins[1] (two): imagePullSecret: must not be empty",
        ),
        (
            "bad pull policy",
            "  - {plugin: header-authorization, name: two, imagePullPolicy: Never}\n",
            "plugins[1] (two): imagePullPolicy: unknown imagePullPolicy 'Never' (expected UNSPECIFIED_POLICY, IfNotPresent, Always)",
        ),
    ];

/// Gateway-level refusals: (case, whole file, message after `<file>: `).
pub const BAD_FILES: &[(&str, &str, &str)] = &[
        (
            "both selector and targetRefs",
            "name: gw\nnamespace: d\nselector: {a: b}\ntargetRefs: [{kind: Gateway, name: g}]\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "targetRefs: give selector or targetRefs, not both",
        ),
        (
            "neither selector nor targetRefs",
            "name: gw\nnamespace: d\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "selector: one of selector or targetRefs is required (without either, Istio applies the plugins to every workload in the namespace)",
        ),
        (
            "name does not match the file",
            "name: other\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "name: 'other' must match the file name (gw.yaml holds name: gw)",
        ),
        (
            "unsupported URL",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: ftp://r/p\nplugins: [{plugin: header-authorization}]\n",
            "url: 'ftp://r/p': expected oci://, file:// or https://",
        ),
        (
            "relative file URL",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: file://filters\nplugins: [{plugin: header-authorization}]\n",
            "url: 'file://filters': a file URL needs an absolute directory (file:///opt/filters)",
        ),
        (
            "no plugins",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugins: []\n",
            "plugins: must list at least one plugin",
        ),
        (
            "missing namespace",
            "name: gw\nselector: {a: b}\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "namespace: is required",
        ),
        (
            "unknown gateway field",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugin: []\nplugins: [{plugin: header-authorization}]\n",
            "plugin: unknown field (known fields: api, chain, imagePullPolicy, imagePullSecret, istio, name, namespace, plugins, selector, targetRefs, url)",
        ),
        (
            "target ref without a group",
            "name: gw\nnamespace: d\ntargetRefs: [{kind: Service, name: s}]\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "targetRefs[0].group: is required for kind Service",
        ),
        (
            "invalid YAML",
            "name: gw\nplugins: [\n",
            "invalid YAML: while parsing a node, did not find expected node content at byte 20 line 3 column 1",
        ),
        (
        "gateway chain not a boolean",
        "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nchain: 1\nplugins: [{plugin: header-authorization}]\n",
        "chain: expected a boolean, got a number",
    ),
    ("empty file", "", "expected an object, got null"),
    (
        "empty selector",
        "name: gw\nnamespace: d\nselector: {}\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
        "selector: must have at least one label",
    ),
    (
        "selector label not a string",
        "name: gw\nnamespace: d\nselector: {a: 1}\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
        "selector.a: expected a string, got a number",
    ),
    (
        "no targets",
        "name: gw\nnamespace: d\ntargetRefs: []\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
        "targetRefs: must list at least one target",
    ),
    (
        "plugins not a list",
        "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugins: {plugin: header-authorization}\n",
        "plugins: expected a list, got an object",
    ),
    (
        "istio unquoted",
        "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nistio: 1.30\nplugins: [{plugin: header-authorization}]\n",
        "istio: write the version quoted (istio: \"1.3\"): YAML reads an unquoted 1.30 as the number 1.3",
    ),
    ];

#[test]
fn bad_gateway_files_are_refused_with_the_field_named() {
    for (case, extra, expected) in BAD {
        let err = parse_text(&format!("{GOOD}{extra}")).unwrap_err();
        assert_eq!(err, expected.replace("{known}", &known()), "{case}");
    }
    for (case, text, expected) in BAD_FILES {
        let err = parse_text(text).unwrap_err();
        assert_eq!(err, *expected, "{case}");
    }
}

#[test]
fn errors_name_the_file_and_every_bad_file_is_reported() {
    let dir = scratch("xtask-errors");
    std::fs::write(dir.join("gw.yaml"), format!("{GOOD}  - plugin: nope\n")).unwrap();
    std::fs::write(dir.join("ok.yaml"), GOOD.replace("name: gw", "name: ok")).unwrap();
    std::fs::write(dir.join("zz.yml"), "name: zz\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not a gateway").unwrap();
    let err = select(&dir, None).unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        format!(
            "{}: plugins[1] (nope): plugin: unknown plugin 'nope' (known: {})",
            display(&dir.join("gw.yaml")),
            known()
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}: namespace: is required",
            display(&dir.join("zz.yml"))
        )),
        "{err}"
    );
    // One gateway picked by name is checked alone.
    assert_eq!(select(&dir, Some("ok")).unwrap()[0].name, "ok");
    // A file path is that one gateway.
    assert_eq!(select(&dir.join("ok.yaml"), None).unwrap().len(), 1);
}

#[test]
fn the_chain_module_holds_what_the_chains_run() {
    let gateways = select(&default_dir(), None).unwrap();
    // ingress fuses five instances of four plugins; internal fuses nothing.
    assert_eq!(
        chained_plugins(&gateways),
        [
            "basic-auth",
            "dispatch-auth",
            "header-authorization",
            "response-headers"
        ]
    );
    assert!(gateways[1].chained_plugins().is_empty());
}
