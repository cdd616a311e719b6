//! Test-only: what the Kubernetes API server checks on `kubectl apply` of a
//! WasmPlugin or TrafficExtension, against the CRDs vendored in `xtask/crds/`:
//! the `openAPIV3Schema` (with the `jsonschema` crate, the schema turned into
//! plain JSON Schema the way the API server reads it: unknown fields refused
//! where it would prune them, `int32` ranged, `x-kubernetes-list-type` keys
//! unique) and every `x-kubernetes-validations` CEL rule (with the `cel`
//! crate), evaluated with `self` bound to the value at the schema node that
//! carries it. Transition rules (those reading `oldSelf`) are skipped: they run
//! only when an object is updated, and a generated manifest has no previous
//! version. Kubernetes' own CEL functions that the rules use (`isURL`, `url`,
//! `getScheme`) are defined here after Go's `url.ParseRequestURI`, which
//! Kubernetes uses; no crate follows Go's parser (the `url` crate is WHATWG's).

use crate::util::root;
use cel::extractors::This;
use cel::{Context, Program};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A CRD's schema and rules, ready to check objects of its kind.
pub struct Crd {
    pub kind: String,
    schema: Value,
    validator: jsonschema::Validator,
}

/// What checking found: errors, and which rules ran (by schema path and rule).
#[derive(Default, Debug)]
pub struct Report {
    pub errors: Vec<String>,
    pub rules_run: BTreeSet<(String, String)>,
    pub rules_skipped: BTreeSet<(String, String)>,
}

impl Crd {
    /// Loads `xtask/crds/<file>`.
    pub fn load(file: &str) -> Crd {
        let path = root().join("xtask").join("crds").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let crd = crate::yaml::parse(&text).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        let schema = version["schema"]["openAPIV3Schema"].clone();
        let mut plain = schema.clone();
        structural(&mut plain);
        // apiVersion, kind and metadata are the API server's, not the CRD's.
        let top = plain.as_object_mut().unwrap();
        let group = crd["spec"]["group"].as_str().unwrap();
        let props = top["properties"].as_object_mut().unwrap();
        props.insert(
            "apiVersion".into(),
            json!({"enum": [format!("{group}/v1alpha1")]}),
        );
        props.insert("kind".into(), json!({"enum": [kind]}));
        props.insert(
            "metadata".into(),
            json!({
                "type": "object",
                "required": ["name", "namespace"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 253,
                             "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"},
                    "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
                },
                "additionalProperties": false,
            }),
        );
        let required = top["required"].as_array_mut().unwrap();
        required.extend([json!("apiVersion"), json!("kind"), json!("metadata")]);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&plain)
            .unwrap();
        Crd {
            kind,
            schema,
            validator,
        }
    }

    /// Every rule the CRD holds, by schema path.
    pub fn rules(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        collect_rules(&self.schema, "", &mut out);
        out
    }

    /// Checks one object (a parsed manifest).
    pub fn check(&self, object: &Value) -> Report {
        let mut report = Report::default();
        for error in self.validator.iter_errors(object) {
            report
                .errors
                .push(format!("schema: {}: {error}", error.instance_path()));
        }
        lists(&self.schema, object, "", &mut report.errors);
        rules(&self.schema, object, "", "", &mut report);
        report
    }
}

/// The API server's structural schema as JSON Schema: an object's unknown
/// fields are pruned (dropped without a word) unless it preserves them, which
/// for a generator is a field Istio never sees, so here they are errors.
fn structural(schema: &mut Value) {
    let Some(node) = schema.as_object_mut() else {
        return;
    };
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if node.contains_key("properties") && !preserve && !node.contains_key("additionalProperties") {
        node.insert("additionalProperties".into(), json!(false));
    }
    if node.get("format") == Some(&json!("int32")) {
        node.insert("minimum".into(), json!(i32::MIN));
        node.insert("maximum".into(), json!(i32::MAX));
    }
    for (key, value) in node.iter_mut() {
        match key.as_str() {
            "properties" => value
                .as_object_mut()
                .into_iter()
                .flat_map(Map::values_mut)
                .for_each(structural),
            "items" | "additionalProperties" | "not" => structural(value),
            "anyOf" | "oneOf" | "allOf" => value
                .as_array_mut()
                .into_iter()
                .flatten()
                .for_each(structural),
            _ => {}
        }
    }
}

/// `x-kubernetes-list-type: map` (items unique by their keys) and `set`.
fn lists(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    walk(schema, value, path, &mut |schema, value, path| {
        let Some(items) = value.as_array() else {
            return;
        };
        let keys: Vec<String> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => items
                .iter()
                .map(|item| {
                    let key: Vec<&Value> = schema["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().and_then(|k| item.get(k)))
                        .collect();
                    serde_json::to_string(&key).unwrap()
                })
                .collect(),
            Some("set") => items.iter().map(Value::to_string).collect(),
            _ => return,
        };
        let unique: BTreeSet<&String> = keys.iter().collect();
        if unique.len() != keys.len() {
            errors.push(format!(
                "schema: {path}: duplicate entries in a list of type map/set"
            ));
        }
    });
}

/// Calls `f` on every (schema node, value) pair the value reaches.
fn walk(schema: &Value, value: &Value, path: &str, f: &mut dyn FnMut(&Value, &Value, &str)) {
    f(schema, value, path);
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for (key, child) in map {
                let sub = props
                    .and_then(|p| p.get(key))
                    .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()));
                if let Some(sub) = sub {
                    walk(sub, child, &format!("{path}/{key}"), f);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(sub, item, &format!("{path}/{i}"), f);
                }
            }
        }
        _ => {}
    }
}

fn collect_rules(schema: &Value, path: &str, out: &mut BTreeSet<(String, String)>) {
    for rule in schema_rules(schema) {
        out.insert((path.to_string(), rule.0));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            collect_rules(sub, &format!("{path}/{key}"), out);
        }
    }
    if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
        collect_rules(sub, &format!("{path}/*"), out);
    }
    if let Some(sub) = schema.get("items") {
        collect_rules(sub, &format!("{path}/[]"), out);
    }
}

/// A schema node's (rule, message) pairs.
fn schema_rules(schema: &Value) -> Vec<(String, String)> {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["rule"].as_str().unwrap_or_default().to_string(),
                v["message"].as_str().unwrap_or("failed rule").to_string(),
            )
        })
        .collect()
}

/// Evaluates every rule the object reaches; `spath` is the schema path (the
/// one [`Crd::rules`] uses), `path` the object's.
fn rules(schema: &Value, value: &Value, path: &str, spath: &str, report: &mut Report) {
    for (rule, message) in schema_rules(schema) {
        let id = (spath.to_string(), rule.clone());
        if rule.contains("oldSelf") {
            report.rules_skipped.insert(id);
            continue;
        }
        match evaluate(&rule, value) {
            Ok(true) => {}
            Ok(false) => report
                .errors
                .push(format!("cel: {path}: {message} (rule: {rule})")),
            Err(e) => report.errors.push(format!(
                "cel: {path}: rule could not run: {e} (rule: {rule})"
            )),
        }
        report.rules_run.insert(id);
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for (key, child) in map {
                if let Some(sub) = props.and_then(|p| p.get(key)) {
                    rules(
                        sub,
                        child,
                        &format!("{path}/{key}"),
                        &format!("{spath}/{key}"),
                        report,
                    );
                } else if let Some(sub) =
                    schema.get("additionalProperties").filter(|s| s.is_object())
                {
                    rules(
                        sub,
                        child,
                        &format!("{path}/{key}"),
                        &format!("{spath}/*"),
                        report,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    rules(
                        sub,
                        item,
                        &format!("{path}/{i}"),
                        &format!("{spath}/[]"),
                        report,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Runs one rule with `self` = `value`.
pub fn evaluate(rule: &str, value: &Value) -> Result<bool, String> {
    let program = Program::compile(rule).map_err(|e| e.to_string())?;
    let mut context = Context::default();
    context
        .add_variable("self", cel::to_value(value).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    context
        .add_function("isURL", |s: Arc<String>| parse_request_uri(&s).is_some())
        .map_err(|e| e.to_string())?;
    context
        .add_function(
            "url",
            |s: Arc<String>| -> Result<Arc<String>, cel::ExecutionError> {
                match parse_request_uri(&s) {
                    Some(_) => Ok(s),
                    None => Err(cel::ExecutionError::function_error(
                        "url",
                        format!("invalid URL: {s}"),
                    )),
                }
            },
        )
        .map_err(|e| e.to_string())?;
    context
        .add_function("getScheme", |This(s): This<Arc<String>>| {
            parse_request_uri(&s)
                .map(|(scheme, _)| scheme)
                .unwrap_or_default()
        })
        .map_err(|e| e.to_string())?;
    match program.execute(&context).map_err(|e| e.to_string())? {
        cel::Value::Bool(b) => Ok(b),
        other => Err(format!("rule gave {other:?}, not a bool")),
    }
}

/// Go's `url.ParseRequestURI` for what the rules read: `Some((scheme, rest))`
/// when Go accepts `s` (an absolute URI, or an absolute path), else `None`.
pub fn parse_request_uri(s: &str) -> Option<(String, String)> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    // Go's getScheme: letters, then letters, digits, + - . up to the ':'.
    let mut scheme = "";
    let mut rest = s;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if i > 0 && (c.is_ascii_digit() || "+-.".contains(c)) {
            continue;
        }
        if c == ':' {
            if i == 0 {
                return None; // "missing protocol scheme"
            }
            scheme = &s[..i];
            rest = &s[i + 1..];
        }
        break;
    }
    if !rest.starts_with('/') {
        // An opaque URI (`mailto:x`) has a scheme; anything else is relative.
        return (!scheme.is_empty()).then(|| (scheme.to_ascii_lowercase(), rest.to_string()));
    }
    if let Some(authority) = rest.strip_prefix("//") {
        let authority = authority.split(['/', '?']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        // A port after the last ':' (not one inside an IPv6 literal) is digits.
        if let Some((before, port)) = host.rsplit_once(':') {
            let inside_ipv6 = host.starts_with('[') && !before.ends_with(']');
            if !inside_ipv6 && !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
        }
        if host.contains(' ') {
            return None;
        }
    }
    Some((scheme.to_ascii_lowercase(), rest.to_string()))
}
