//! The schemas: committed ones are current, each is a valid draft-07 schema,
//! every gateway file in the repository and every accepted gateway of the
//! gateway tests validates, and refused configs and gateway files are refused by
//! the schema too, except the few checks a schema cannot express (listed).

use super::*;
use crate::gateway;
use crate::gateway::tests::{known, BAD, BAD_FILES};
use serde_json::json;
use std::collections::BTreeMap;

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::meta::validate(schema).unwrap_or_else(|e| panic!("not a valid schema: {e}"));
    jsonschema::validator_for(schema).unwrap()
}

/// The schema's complaints about `instance`, one line each.
fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn committed_schemas_are_current() {
    let committed: BTreeMap<String, String> = std::fs::read_dir(default_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(&p).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: BTreeMap<String, String> = files().into_iter().collect();
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&expected),
        "schemas/ is stale: run `cargo xtask build-all`"
    );
    for (name, text) in &expected {
        assert!(
            committed.get(name) == Some(text),
            "schemas/{name} is stale: run `cargo xtask build-all`"
        );
    }
}

#[test]
fn every_schema_is_draft_07_and_every_plugin_with_a_config_type_has_one() {
    for (name, text) in files() {
        let schema: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            schema["$schema"], "http://json-schema.org/draft-07/schema#",
            "{name}"
        );
        validator(&schema);
        assert!(text.ends_with("}\n"), "{name}");
    }
    // Each plugin's schema is also in the gateway's, as its `config`.
    let gateway = gateway();
    for p in PLUGINS {
        if let Some(own) = plugin(p.name) {
            assert!(gateway["definitions"].get(p.name).is_some(), "{}", p.name);
            assert_eq!(own["title"], format!("{} config", p.name));
        }
    }
    assert!(plugin("header-authorization").is_some());
}

/// Every gateway file in the repository (every `*.yaml` outside `target/`,
/// `manifests/` and the vendored CRDs) loads and validates against the schema.
#[test]
fn every_gateway_file_in_the_repository_validates() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["target", "manifests", "crds"].contains(&name.as_str())
                    && !name.starts_with('.')
                {
                    walk(&path, out);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root(), &mut files);
    let examples = gateway::files(&default_gateways()).unwrap();
    assert!(examples.len() >= 2 && examples.iter().all(|e| files.contains(e)));
    let validator = validator(&gateway());
    for file in files {
        gateway::load(&file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = crate::yaml::parse(&text).unwrap();
        let errors = errors(&validator, &doc);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        // Named for yaml-language-server on the first line, relative to the file.
        let first = text.lines().next().unwrap_or_default();
        let schema = default_dir().join("gateway.json");
        let named = first
            .strip_prefix("# yaml-language-server: $schema=")
            .map(|rel| file.parent().unwrap().join(rel));
        assert!(
            named.is_some_and(|n| same_file(&n, &schema)),
            "{}: the first line must be `# yaml-language-server: $schema=<path to schemas/gateway.json>`",
            file.display()
        );
    }
}

fn default_gateways() -> PathBuf {
    gateway::default_dir()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What the gateway tests' accepted files look like.
const GOOD: &str = "\
name: gw
namespace: edge
targetRefs: [{kind: Gateway, name: web}, {group: '', kind: Service, name: api}]
url: https://cdn.example.com/filters/
imagePullPolicy: Always
imagePullSecret: pull
istio: \"1.30\"
api: TrafficExtension
chain: true
plugins:
  - plugin: header-authorization
    name: team
    phase: AUTHZ
    priority: 2147483647
    failStrategy: FAIL_RELOAD
    config: {header: x-team, values: [a], deny: {status: 401, headers: {www-authenticate: Team}}}
    env: [{name: A, value: '1'}, {name: B, valueFrom: HOST}, {name: C, valueFrom: INLINE, value: c}]
    match: [{mode: CLIENT, ports: [{number: 80}]}]
    imagePullPolicy: IfNotPresent
    chain: false
  - plugin: header-authorization
";

/// The refusals of the gateway tests a schema cannot express: they compare
/// fields with each other or with the file's name.
const ONLY_THE_PARSER: &[&str] = &[
    "duplicate instance names",
    "duplicate env variable",
    "name does not match the file",
];

#[test]
fn refused_gateway_files_are_refused_by_the_schema_too() {
    let validator = validator(&gateway());
    let good = crate::yaml::parse(GOOD).unwrap();
    assert!(gateway::parse(Path::new("gw.yaml"), "gw.yaml", GOOD).is_ok());
    assert_eq!(errors(&validator, &good), Vec::<String>::new());
    let base = "name: gw\nnamespace: default\nselector: {app: web}\nurl: oci://registry.example.com/p\nplugins:\n  - plugin: header-authorization\n";
    let cases = BAD
        .iter()
        .map(|(case, extra, _)| (*case, format!("{base}{extra}")))
        .chain(
            BAD_FILES
                .iter()
                .map(|(case, text, _)| (*case, text.to_string())),
        );
    let mut checked = 0;
    for (case, text) in cases {
        assert!(
            gateway::parse(Path::new("gw.yaml"), "gw.yaml", &text).is_err(),
            "{case}: {}",
            known()
        );
        // Invalid YAML never reaches a schema.
        let Ok(doc) = crate::yaml::parse(&text) else {
            continue;
        };
        let refused = !validator.is_valid(&doc);
        assert_eq!(
            refused,
            !ONLY_THE_PARSER.contains(&case),
            "{case}: refused by the schema: {refused}"
        );
        checked += 1;
    }
    assert!(checked >= 25, "{checked}");
}

/// Configs each plugin's parser refuses, by kind of mistake; a plugin's are
/// checked against its schema once it has one.
const REFUSED: &[(&str, &str)] = &[
    ("header-authorization", r#"{"header": 7}"#),
    ("header-authorization", r#"{"header": "a b"}"#),
    ("header-authorization", r#"{"header": "Host"}"#),
    ("header-authorization", r#"{"values": []}"#),
    ("header-authorization", r#"{"values": "true"}"#),
    ("header-authorization", r#"{"values": [true]}"#),
    ("header-authorization", r#"{"deny": {"status": 700}}"#),
    ("header-authorization", r#"{"deny": {"status": 204}}"#),
    (
        "header-authorization",
        r#"{"deny": {"headers": {"x": "a\r\nb"}}}"#,
    ),
    (
        "header-authorization",
        r#"{"deny": {"headers": {"content-length": "1"}}}"#,
    ),
    ("header-authorization", r#"{"deny": {"stauts": 401}}"#),
    ("header-authorization", r#"{"hedaer": "x"}"#),
    ("header-authorization", r#"[]"#),
    ("basic-auth", r#"{}"#),
    ("basic-auth", r#"{"basic_auth_rules": []}"#),
    (
        "basic-auth",
        r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"], "methods": []}]}"#,
    ),
    (
        "basic-auth",
        r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["a:b"]}], "relam": "x"}"#,
    ),
    (
        "basic-auth",
        r#"{"basic_auth_rules": [{"prefix": "/", "request_methods": "GET", "credentials": ["a:b"]}]}"#,
    ),
    (
        "response-headers",
        r#"{"response_headers": [{"name": "a", "value": "b", "action": "upsert"}]}"#,
    ),
    (
        "response-headers",
        r#"{"response_headers": [{"name": "a", "value": "b", "append": true}]}"#,
    ),
    (
        "response-headers",
        r#"{"response_headers": [{"name": "a b", "value": "b"}]}"#,
    ),
    ("response-headers", r#"{"headers": []}"#),
    ("dispatch-auth", r#"{}"#),
    ("dispatch-auth", r#"{"cluster": "c", "timeout_ms": 0}"#),
    (
        "dispatch-auth",
        r#"{"cluster": "c", "status_on_error": 302}"#,
    ),
    (
        "dispatch-auth",
        r#"{"cluster": "c", "failure_mode_allow": "yes"}"#,
    ),
    ("dispatch-auth", r#"{"cluster": "c", "cache": {"ttl": 1}}"#),
    ("dispatch-auth", r#"{"cluster": "c", "timeout": 1}"#),
    ("jwt-auth", r#"{"providers": {}, "rules": []}"#),
    (
        "jwt-auth",
        r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/k", "ttl": 1}}}, "rules": [{"prefix": "/", "providers": ["p"]}]}"#,
    ),
    (
        "jwt-auth",
        r#"{"providers": {"p": {"issuer": "i", "remote_jwks": {"cluster": "c", "path": "/k"}}}, "rules": [{"prefix": "/", "providers": ["p"]}], "cache_entries": -1}"#,
    ),
    ("chain", r#"{"chain": []}"#),
    (
        "chain",
        r#"{"chain": [{"plugin": "header-authorization", "config": {"values": []}}]}"#,
    ),
    (
        "chain",
        r#"{"chain": [{"plugin": "header-authorization", "config": {"hedaer": "x"}}]}"#,
    ),
    ("chain", r#"{"chain": [{"plugin": "nope"}]}"#),
];

#[test]
fn configs_a_parser_refuses_are_refused_by_its_schema() {
    let gateway = validator(&gateway());
    let mut checked = Vec::new();
    for (name, text) in REFUSED {
        let config: Value = serde_json::from_str(text).unwrap();
        let p = plugins::find(name).unwrap();
        assert!((p.check)(&config).is_err(), "{name} accepts {text}");
        // Through the gateway schema, as an instance's config: the chain's
        // instances are tied to their plugins' schemas there.
        let doc = json!({"name": "gw", "namespace": "d", "selector": {"a": "b"},
            "url": "oci://r/p", "plugins": [{"plugin": name, "config": config}]});
        let chained = config["chain"].as_array().is_some_and(|c| {
            !c.is_empty()
                && c.iter().all(|i| {
                    i["plugin"]
                        .as_str()
                        .is_some_and(|n| plugins::find(n).is_some_and(|p| (p.schema)().is_some()))
                })
        });
        if let Some(schema) = plugin_file(name) {
            assert!(
                !validator(&schema).is_valid(&config),
                "{name} schema accepts {text}"
            );
            assert!(
                !gateway.is_valid(&doc),
                "gateway schema accepts {name} with {text}"
            );
            checked.push(*text);
        } else if chained {
            assert!(
                !gateway.is_valid(&doc),
                "gateway schema accepts {name} with {text}"
            );
            checked.push(*text);
        }
    }
    assert!(checked.len() >= 15, "{checked:#?}");
}

#[test]
fn the_gateway_schema_ties_each_config_to_its_plugin() {
    let validator = validator(&gateway());
    let doc = |plugin: &str, config: Value| {
        json!({"name": "gw", "namespace": "d", "selector": {"a": "b"},
            "url": "oci://r/p", "plugins": [{"plugin": plugin, "config": config}]})
    };
    // header-authorization's fields are fine under header-authorization only.
    let config = json!({"header": "x-team", "values": ["a"]});
    assert!(validator.is_valid(&doc("header-authorization", config.clone())));
    let chain =
        json!({"chain": [{"plugin": "header-authorization", "name": "t", "config": config}]});
    assert!(validator.is_valid(&doc("chain", chain)));
    let errors = errors(
        &validator,
        &doc("header-authorization", json!({"header": 7})),
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/plugins/0/config/header")),
        "{errors:#?}"
    );
}

#[test]
fn write_puts_each_schema_once_and_removes_stale_ones() {
    let dir = harness::scratch("xtask-schemas");
    std::fs::write(dir.join("gone.json"), "{}").unwrap();
    std::fs::write(dir.join("notes.txt"), "kept").unwrap();
    let names = write(&dir).unwrap();
    let expected: Vec<String> = files().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, expected);
    assert!(!dir.join("gone.json").exists());
    assert!(dir.join("notes.txt").exists());
    for (name, text) in files() {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), text);
    }
}
