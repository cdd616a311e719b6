//! The JSON Schemas `build-all` writes to `schemas/`: each plugin's config
//! (`<plugin>.json`, from its config type) and the gateway file's
//! (`gateway.json`, from `gateway::spec`), in which an instance's `config` is
//! held to the schema of the plugin its `plugin:` names, and so is each
//! instance's in a chain's config. Draft-07 (see [`plugins::schema_of`]) and
//! self-contained, so an editor needs the one file a gateway file names.

use crate::build::CHAIN;
use crate::gateway::spec::GatewaySpec;
use crate::plugins::{self, PLUGINS};
use crate::util::{root, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Where they are committed.
pub fn default_dir() -> PathBuf {
    root().join("schemas")
}

/// Every schema file: `(file name, text)`, sorted by name; the text is pretty
/// JSON with a trailing newline, the same on every run.
pub fn files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = PLUGINS
        .iter()
        .filter_map(|p| plugin_file(p.name).map(|s| (format!("{}.json", p.name), s)))
        .map(|(name, schema)| (name, text(&schema)))
        .collect();
    files.push(("gateway.json".into(), text(&gateway())));
    files.sort();
    files
}

fn text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema of `plugin`'s config, titled with the plugin's name; `None` while
/// its config type has none.
pub fn plugin(name: &str) -> Option<Value> {
    let plugin = plugins::find(name)?;
    let mut schema = serde_json::to_value((plugin.schema)()?).ok()?;
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), json!(format!("{name} config")));
    }
    Some(schema)
}

/// What `schemas/<name>.json` holds: the plugin's config schema; for the chain,
/// with each instance's `config` tied to its plugin's schema as in gateway.json,
/// so the file alone checks a whole chain config.
pub fn plugin_file(name: &str) -> Option<Value> {
    let own = plugin(name)?;
    if name != CHAIN {
        return Some(own);
    }
    let mut definitions = Map::new();
    let own = embed(own, CHAIN, &mut definitions);
    let mut ties = Vec::new();
    for p in PLUGINS.iter().filter(|p| p.name != CHAIN) {
        let Some(schema) = plugin(p.name) else {
            continue;
        };
        let schema = embed(schema, p.name, &mut definitions);
        definitions.insert(p.name.to_string(), schema);
        ties.push(tie(p.name));
    }
    definitions.insert("ChainInstance".into(), chain_instance(ties));
    Some(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "chain config",
        "allOf": [own, {"properties": {"chain": {"items": {"$ref": "#/definitions/ChainInstance"}}}}],
        "definitions": definitions,
    }))
}

/// `config` held to the schema of the plugin `plugin` names.
fn tie(name: &str) -> Value {
    json!({
        "if": {"properties": {"plugin": {"const": name}}, "required": ["plugin"]},
        "then": {"properties": {"config": {"$ref": format!("#/definitions/{name}")}}},
    })
}

/// One chain instance, its config held by `ties`.
fn chain_instance(ties: Vec<Value>) -> Value {
    let chained: Vec<&str> = PLUGINS
        .iter()
        .map(|p| p.name)
        .filter(|n| *n != CHAIN)
        .collect();
    json!({
        "description": "One instance of a chain: its plugin, name and config.",
        "type": "object",
        "properties": {"plugin": {"enum": chained}},
        "allOf": ties,
    })
}

/// The gateway file's schema: [`GatewaySpec`]'s, with each plugin's config
/// schema among its definitions (as `<plugin>`, its own definitions as
/// `<plugin>.<name>`) and `config` tied to `plugin`.
pub fn gateway() -> Value {
    let mut schema = plugins::schema_of::<GatewaySpec>()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    let mut definitions = match schema.get_mut("definitions").map(Value::take) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut ties = Vec::new();
    let mut chain_ties = Vec::new();
    for p in PLUGINS {
        let own = plugin(p.name).map(|s| embed(s, p.name, &mut definitions));
        let config = match (p.name == CHAIN, own) {
            // A chain's instances are tied like a gateway's, whether or not
            // the chain's config type has a schema yet.
            (true, own) => {
                let instances = json!({
                    "properties": {"chain": {"items": {"$ref": "#/definitions/ChainInstance"}}}
                });
                Some(match own {
                    Some(own) => json!({"allOf": [own, instances]}),
                    None => instances,
                })
            }
            (false, own) => own,
        };
        let Some(config) = config else { continue };
        definitions.insert(p.name.to_string(), config);
        let tie = tie(p.name);
        if p.name != CHAIN {
            chain_ties.push(tie.clone());
        }
        ties.push(tie);
    }
    if let Some(Value::Object(instance)) = definitions.get_mut("InstanceSpec") {
        instance.insert("allOf".into(), Value::Array(ties));
    }
    definitions.insert("ChainInstance".into(), chain_instance(chain_ties));
    if let Some(object) = schema.as_object_mut() {
        object.insert("definitions".into(), Value::Object(definitions));
    }
    schema
}

/// `schema` without its `$schema` and definitions, which move into
/// `definitions` as `<prefix>.<name>`, every `$ref` to them rewritten.
fn embed(mut schema: Value, prefix: &str, definitions: &mut Map<String, Value>) -> Value {
    rename_refs(&mut schema, prefix);
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        if let Some(Value::Object(own)) = object.remove("definitions") {
            for (name, definition) in own {
                definitions.insert(format!("{prefix}.{name}"), definition);
            }
        }
    }
    schema
}

fn rename_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix("#/definitions/") {
                            *target = format!("#/definitions/{prefix}.{name}");
                        }
                    }
                    (_, item) => rename_refs(item, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, prefix)),
        _ => {}
    }
}

/// Writes [`files`] to `dir`, each only when it changed, and removes any other
/// `*.json` there (a plugin's that is gone). Returns the file names.
pub fn write(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = files();
    for (name, text) in &files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for path in entries.flatten().map(|e| e.path()) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = files.iter().any(|(n, _)| Some(n) == name.as_ref());
        if !ours && path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(files.into_iter().map(|(name, _)| name).collect())
}

#[cfg(test)]
pub mod tests;
