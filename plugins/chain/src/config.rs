//! The chain's configuration: `{"chain": [{"plugin", "name", "config"}, ...]}`.
//! Each instance's `config` is parsed by its plugin's own code, and an error
//! names the instance and the field (`chain[2] (ext-auth): cluster: is required`).
//! Used by the module and by xtask alike.

use common::config::fields::List;
use common::config::{self as common_config, parse_json, ConfigError};
use common::plugin::{Configured, Instance, Plugin};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The module's name: it opens its configuration errors and names its gauge.
pub const NAME: &str = "chain";

/// The most instances in one chain: a request runs every one of them.
pub const MAX_INSTANCES: usize = 32;

type Make = fn(&str, &Value) -> Result<Box<dyn Instance>, ConfigError>;

fn make<P: Plugin>(label: &str, doc: &Value) -> Result<Box<dyn Instance>, ConfigError> {
    Ok(Box::new(Configured::<P>::new(label, doc)?))
}

/// The plugins this chain module runs, by the name a gateway file and the
/// `plugin` field use: those it was built with (each a cargo feature), listed by
/// build.rs from the generated section of Cargo.toml.
pub const PLUGINS: &[(&str, Make)] = include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The chain's configuration as written (`pluginConfig`); its JSON Schema is the
/// chain's, with each `config` any object (xtask composes the schema that checks
/// it against its plugin's).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The instances, in request order (responses run them in reverse), 1 to 32.
    pub chain: List<EntrySpec, 1, MAX_INSTANCES>,
}

/// One instance as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// The plugin the instance runs: one the module was built with.
    pub plugin: PluginName,
    /// The instance's name, unique in the chain; its log lines and errors start
    /// with it. Lowercase letters, digits and '-', at most 63. Default: the
    /// plugin's name.
    pub name: Option<InstanceName>,
    /// The instance's configuration, read by its plugin. Default `{}`.
    pub config: Option<Map<String, Value>>,
}

/// One instance as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub plugin: String,
    /// The instance's name, unique in the chain; its log lines start with it.
    pub name: String,
    pub config: Value,
}

/// A plugin this module runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginName(pub String);

impl<'de> Deserialize<'de> for PluginName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let plugin = <&str>::deserialize(deserializer)?;
        if !PLUGINS.iter().any(|(name, _)| *name == plugin) {
            let known: Vec<&str> = PLUGINS.iter().map(|(name, _)| *name).collect();
            return Err(de::Error::custom(format!(
                "unknown plugin '{}' (known: {})",
                plugin.escape_debug(),
                known.join(", ")
            )));
        }
        Ok(PluginName(plugin.to_string()))
    }
}

/// An instance name: lowercase letters, digits and '-', as gateway files name
/// instances, so it reads the same in logs, manifests and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName(pub String);

impl<'de> Deserialize<'de> for InstanceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        if name.is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        let ok = name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(de::Error::custom(format!(
                "'{}' is not a valid instance name (lowercase letters, digits and '-', at most 63)",
                name.escape_debug()
            )));
        }
        Ok(InstanceName(name.to_string()))
    }
}

#[cfg(feature = "schema")]
mod schema {
    //! The JSON Schema of the chain's own field types, with the limits their
    //! deserializers check.

    use super::*;
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    impl JsonSchema for PluginName {
        fn schema_name() -> Cow<'static, str> {
            "PluginName".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            let known: Vec<&str> = PLUGINS.iter().map(|(name, _)| *name).collect();
            json_schema!({"type": "string", "enum": known})
        }
    }

    impl JsonSchema for InstanceName {
        fn schema_name() -> Cow<'static, str> {
            "InstanceName".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "pattern": "^[a-z0-9-]{1,63}$"})
        }
    }
}

/// Reads the list of instances, without building them.
pub fn entries(doc: &Value) -> Result<Vec<Entry>, ConfigError> {
    let spec: Spec = common_config::from_value(doc)?;
    let mut entries: Vec<Entry> = Vec::with_capacity(spec.chain.0.len());
    for (i, entry) in spec.chain.0.into_iter().enumerate() {
        let plugin = entry.plugin.0;
        let (name, field) = match entry.name {
            Some(name) => (name.0, "name"),
            None => (plugin.clone(), "plugin"),
        };
        if let Some(at) = entries.iter().position(|e| e.name == name) {
            return Err(ConfigError::new(
                format!("chain[{i}].{field}"),
                format!("'{name}' is also the name of chain[{at}]: instance names must be unique"),
            ));
        }
        entries.push(Entry {
            plugin,
            name,
            config: Value::Object(entry.config.unwrap_or_default()),
        });
    }
    Ok(entries)
}

/// Builds the instances of a chain configuration; each `config` is parsed by its
/// plugin, and an error names the instance.
pub fn from_value(doc: &Value) -> Result<Vec<Box<dyn Instance>>, ConfigError> {
    entries(doc)?
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let make = PLUGINS
                .iter()
                .find(|(name, _)| *name == entry.plugin)
                .map(|(_, make)| *make)
                .ok_or_else(|| ConfigError::new(format!("chain[{i}].plugin"), "unknown plugin"))?;
            make(&entry.name, &entry.config).map_err(|e| {
                ConfigError::new(format!("chain[{i}] ({})", entry.name), e.to_string())
            })
        })
        .collect()
}

/// Parses the module's `pluginConfig` bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<Box<dyn Instance>>, ConfigError> {
    match parse_json(bytes) {
        Ok(doc) => from_value(&doc),
        Err(e) => Err(in_instance(bytes, e)),
    }
}

/// A key given twice inside an instance's `config` is found while the whole
/// document is read, before any instance is: named as it is, the error would
/// read `chain[1].config.header: ...` where every other error about that config
/// reads `chain[1] (team): header: ...`, as the plugin on its own says it. So
/// the document is read again without the check, for the instance's name; when
/// the list is wrong in some other way too, the error stays as it was.
fn in_instance(bytes: &[u8], e: ConfigError) -> ConfigError {
    let Some((index, field)) = config_field(&e.path) else {
        return e;
    };
    let lenient = serde_json::from_slice::<Value>(bytes).ok();
    let name = lenient
        .as_ref()
        .and_then(|doc| entries(doc).ok())
        .and_then(|list| list.into_iter().nth(index))
        .map(|entry| entry.name);
    match name {
        Some(name) => ConfigError::new(
            format!("chain[{index}] ({name})"),
            ConfigError::new(field, e.message).to_string(),
        ),
        None => e,
    }
}

/// `chain[<index>].config<field>` split into the index and the field inside the
/// config (`header`, `deny.status`, `[0]`).
fn config_field(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("chain[")?;
    let (index, rest) = rest.split_once(']')?;
    let index = index.parse().ok()?;
    let field = rest.strip_prefix(".config")?;
    match field.strip_prefix('.') {
        Some(field) => Some((index, field)),
        None if field.starts_with('[') => Some((index, field)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::plugin::testing::{Effect, Mock};
    use common::plugin::{Chain, Map, Step};
    use serde_json::json;
    use std::rc::Rc;

    fn err(doc: Value) -> String {
        match from_value(&doc) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_instance_and_the_field() {
        let cases = [
            (json!({}), "chain: is required"),
            (json!({"chain": []}), "chain: must list at least one item"),
            (json!({"chain": {}}), "chain: expected a list, got an object"),
            (json!({"chain": [{"name": "x"}]}), "chain[0].plugin: is required"),
            (
                json!({"chain": [{"plugin": "nope"}]}),
                "chain[0].plugin: unknown plugin 'nope' (known: basic-auth, dispatch-auth, header-authorization, jwt-auth, response-headers)",
            ),
            (
                json!({"chain": [{"plugin": "header-authorization", "name": "A b"}]}),
                "chain[0].name: 'A b' is not a valid instance name (lowercase letters, digits and '-', at most 63)",
            ),
            (
                json!({"chain": [{"plugin": "header-authorization"}, {"plugin": "header-authorization"}]}),
                "chain[1].plugin: 'header-authorization' is also the name of chain[0]: instance names must be unique",
            ),
            (
                json!({"chain": [{"plugin": "header-authorization", "name": "a"}, {"plugin": "basic-auth", "name": "a"}]}),
                "chain[1].name: 'a' is also the name of chain[0]: instance names must be unique",
            ),
            (
                json!({"chain": [{"plugin": "header-authorization", "confg": {}}]}),
                "chain[0].confg: unknown field (known fields: config, name, plugin)",
            ),
            (
                json!({"chain": [{"plugin": "response-headers", "name": "sec"}, {"plugin": "dispatch-auth", "name": "ext-auth", "config": {"timeout_ms": 5}}]}),
                "chain[0] (sec): nothing to do: give at least one of response_headers, remove_response_headers, request_headers, remove_request_headers",
            ),
            (
                json!({"chain": [{"plugin": "dispatch-auth", "name": "ext-auth", "config": {"timeout_ms": 5}}]}),
                "chain[0] (ext-auth): cluster: is required",
            ),
            (
                json!({"chain": [{"plugin": "header-authorization", "config": {"deny": {"status": 700}}}]}),
                "chain[0] (header-authorization): deny.status: must be 200..=599, got 700",
            ),
            (json!({"chain": [{"plugin": "header-authorization"}], "extra": 1}), "extra: unknown field (known fields: chain)"),
            (json!({"chain": [{"plugin": "header-authorization", "config": []}]}), "chain[0].config: expected an object, got a list"),
            (json!({"chain": [{"plugin": "header-authorization", "config": "x"}]}), "chain[0].config: expected an object, got a string"),
            (json!({"chain": [{"plugin": "basic-auth", "name": ""}]}), "chain[0].name: must not be empty"),
            (json!({"chain": ["basic-auth"]}), "chain[0]: expected an object, got a string"),
            (json!({"chain": [{"plugin": 1}]}), "chain[0].plugin: expected a string, got a number"),
        ];
        for (doc, expected) in cases {
            assert_eq!(err(doc.clone()), expected, "{doc}");
        }
        let many: Vec<Value> = (0..=MAX_INSTANCES)
            .map(|i| json!({"plugin": "header-authorization", "name": format!("i{i}")}))
            .collect();
        assert_eq!(
            err(json!({"chain": many})),
            "chain: at most 32 items, got 33"
        );
    }

    /// A key given twice is refused wherever it is; inside an instance's config
    /// the error names the instance and the field as any other error about that
    /// config does, and as the plugin on its own would name the field.
    #[test]
    fn a_key_given_twice_is_named_like_any_config_error() {
        let twice = "appears twice in one object (each key may be given once)";
        let cases = [
            (
                r#"{"chain": [{"plugin": "header-authorization", "config": {"header": "a", "header": "b"}}]}"#,
                format!("chain[0] (header-authorization): header: {twice}"),
            ),
            (
                r#"{"chain": [{"plugin": "basic-auth", "name": "admin", "config": {}},
                    {"plugin": "header-authorization", "name": "team", "config": {"deny": {"headers": {"x": "1", "x": "2"}}}}]}"#,
                format!("chain[1] (team): deny.headers.x: {twice}"),
            ),
            (
                r#"{"chain": [{"plugin": "response-headers", "name": "sec", "config": {"response_headers": [{"name": "a", "name": "b"}]}}]}"#,
                format!("chain[0] (sec): response_headers[0].name: {twice}"),
            ),
            // Outside an instance's config, the path is the chain's own.
            (
                r#"{"chain": [{"plugin": "header-authorization", "plugin": "basic-auth"}]}"#,
                format!("chain[0].plugin: {twice}"),
            ),
            (r#"{"chain": [], "chain": []}"#, format!("chain: {twice}")),
            // The list is wrong in another way too (no name to give): as found.
            (
                r#"{"chain": [{"plugin": "nope", "config": {"a": 1, "a": 2}}]}"#,
                format!("chain[0].config.a: {twice}"),
            ),
            (
                r#"{"chain": [{"plugin": "header-authorization", "configs": {"a": 1, "a": 2}}]}"#,
                format!("chain[0].configs.a: {twice}"),
            ),
        ];
        for (text, expected) in cases {
            let got = parse(text.as_bytes()).err().map(|e| e.to_string());
            assert_eq!(got, Some(expected), "{text}");
        }
        // The plugin on its own names the field alike.
        assert_eq!(
            parse_json(br#"{"deny": {"headers": {"x": "1", "x": "2"}}}"#)
                .err()
                .map(|e| e.to_string()),
            Some(format!("deny.headers.x: {twice}"))
        );
    }

    #[test]
    fn names_default_to_the_plugin_and_config_to_empty() {
        let doc = json!({"chain": [{"plugin": "header-authorization"}, {"plugin": "basic-auth", "name": "admin",
            "config": {"basic_auth_rules": [{"prefix": "/admin", "request_methods": ["GET"], "credentials": ["a:b"]}]}}]});
        let got = entries(&doc).unwrap();
        assert_eq!(got[0].name, "header-authorization");
        assert_eq!(got[0].config, json!({}));
        assert_eq!(got[1].name, "admin");
        let instances = from_value(&doc).unwrap();
        let labels: Vec<&str> = instances.iter().map(|i| i.label()).collect();
        assert_eq!(labels, ["header-authorization", "admin"]);
    }

    /// The instances run their own plugin's code in order, with their own
    /// configs, and the first denial ends the request side.
    #[test]
    fn instances_run_their_own_plugins() {
        let doc = json!({"chain": [
            {"plugin": "response-headers", "name": "sec", "config": {"response_headers": [{"name": "x-sec", "value": "1"}]}},
            {"plugin": "header-authorization", "name": "tenant", "config": {"header": "x-tenant", "values": ["acme"]}},
            {"plugin": "header-authorization", "name": "team", "config": {"header": "x-team", "values": ["red"]}},
        ]});
        let instances = Rc::new(from_value(&doc).unwrap());
        /// (request headers, what the request side answers, the status replied)
        type Case<'a> = (&'a [(&'a str, &'a str)], Step, Option<u32>);
        let cases: &[Case] = &[
            (
                &[("x-tenant", "acme"), ("x-team", "red")],
                Step::Continue,
                None,
            ),
            (
                &[("x-tenant", "acme"), ("x-team", "blue")],
                Step::Pause,
                Some(403),
            ),
            (&[("x-team", "red")], Step::Pause, Some(403)),
        ];
        for (headers, step, status) in cases {
            let mut host = Mock::with_request(headers);
            let mut chain = Chain::new(instances.clone());
            assert_eq!(chain.on_request_headers(&mut host, 1), *step, "{headers:?}");
            chain.on_response_headers(&mut host, 1);
            let effects = host.take();
            let replied = effects.iter().find_map(|e| match e {
                Effect::Respond(status, ..) => Some(*status),
                _ => None,
            });
            assert_eq!(replied, *status, "{headers:?}");
            // security headers decorate every answer, denials included.
            assert!(
                effects.contains(&Effect::Replace(Map::Response, "x-sec".into(), "1".into())),
                "{headers:?}: {effects:?}"
            );
            // The request headers were read once for the whole chain.
            assert_eq!(host.header_reads(), 1, "{headers:?}");
        }
    }

    /// Shows the schema (`cargo test -p chain --features schema schema --
    /// --nocapture`): each `config` any object, the plugins this module runs.
    #[cfg(feature = "schema")]
    #[test]
    fn the_schema_carries_the_limits() {
        let schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap();
        println!("{}", serde_json::to_string_pretty(&schema).unwrap());
        assert_eq!(schema["required"], json!(["chain"]));
        let list = &schema["properties"]["chain"];
        assert_eq!(
            (list["minItems"].as_u64(), list["maxItems"].as_u64()),
            (Some(1), Some(32))
        );
        let entry = &schema["$defs"]["EntrySpec"];
        assert_eq!(entry["required"], json!(["plugin"]));
        assert_eq!(entry["additionalProperties"], false);
        assert_eq!(
            entry["properties"]["config"]["type"],
            json!(["object", "null"])
        );
        let known: Vec<&str> = PLUGINS.iter().map(|(name, _)| *name).collect();
        assert_eq!(entry["properties"]["plugin"]["enum"], json!(known));
    }
}
