//! The configs the tests give the plugins, held to the plugins' JSON Schemas:
//! every config a test's Envoy accepted is checked against the schema
//! `cargo xtask build-all` wrote for its plugin (`schemas/<plugin>.json`, which
//! xtask's tests keep current), so a schema that would flag a config the plugin
//! takes fails the test that uses it. A plugin without a schema file is skipped.

use crate::envoy::workspace_root;
use serde_json::Value;

/// Panics when `plugin`'s schema refuses `configuration` (its JSON text, as
/// Envoy passed it; blank is `{}`), naming each complaint.
pub fn assert_schema_accepts(plugin: &str, configuration: &str) {
    let path = workspace_root()
        .join("schemas")
        .join(format!("{plugin}.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let schema: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let config: Value = if configuration.bytes().all(|b| b.is_ascii_whitespace()) {
        Value::Object(Default::default())
    } else {
        match serde_json::from_str(configuration) {
            Ok(config) => config,
            // Not JSON to serde_json: the plugin took it, so say so.
            Err(e) => panic!("{plugin} accepted {configuration:?}, which is not JSON: {e}"),
        }
    };
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(&config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{plugin} accepted a config that schemas/{plugin}.json refuses (the schema is \
         stricter than the config type?): {configuration}\n{errors:#?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_the_schema_refuses_fails_and_one_it_takes_passes() {
        assert_schema_accepts("header-authorization", r#"{"header": "x-team"}"#);
        assert_schema_accepts("header-authorization", " ");
        // No schema file, nothing to hold it to.
        assert_schema_accepts("no-such-plugin", r#"{"anything": 1}"#);
        let refused = std::panic::catch_unwind(|| {
            assert_schema_accepts("header-authorization", r#"{"hedaer": "x-team"}"#)
        });
        assert!(refused.is_err());
    }
}
