//! The field types of a gateway file: each checks itself while it is read, so
//! an error carries the field's own path, and describes itself in JSON Schema
//! with the same limits (a pattern where the check is a shape).

use super::{InstanceSpec, TargetRefSpec};
use crate::plugins;
use common::config::fields::NonEmpty;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A lowercase RFC 1123 label: gateway and instance names become Kubernetes
/// names.
#[derive(Debug, Clone)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = NonEmpty::deserialize(deserializer)?.0;
        let ok = s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Name(s))
        } else {
            Err(de::Error::custom(format!(
                "'{s}' is not a valid name (lowercase letters, digits and '-', at most 63)"
            )))
        }
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 63,
            "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
            "patternErrorMessage": "lowercase letters, digits and '-', at most 63",
        })
    }
}

/// A field that takes one of a closed set of names.
pub trait Named: Copy + 'static {
    /// The field, as errors name it.
    const FIELD: &'static str;
    const ALL: &'static [Self];
    /// Whether an error lists the names as `A, B or C` rather than `A, B, C`
    /// (each field keeps the wording it always had).
    const OR: bool;
    fn name(self) -> &'static str;
}

/// One of `T`'s names; an error quotes what was written (these are never
/// secrets) and lists the names.
#[derive(Debug, Clone, Copy)]
pub struct Choice<T>(pub T);

impl<'de, T: Named> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        if let Some(v) = T::ALL.iter().find(|v| v.name() == text) {
            return Ok(Choice(*v));
        }
        let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
        let expected = match names.split_last() {
            Some((last, rest)) if T::OR && !rest.is_empty() => {
                format!("{} or {last}", rest.join(", "))
            }
            _ => names.join(", "),
        };
        Err(de::Error::custom(format!(
            "unknown {} '{text}' (expected {expected})",
            T::FIELD
        )))
    }
}

impl<T: Named> JsonSchema for Choice<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Choice_{}", T::FIELD).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
        json_schema!({"type": "string", "enum": names})
    }
}

/// A plugin xtask knows.
#[derive(Clone)]
pub struct PluginName(pub &'static plugins::Plugin);

impl fmt::Debug for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for PluginName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = NonEmpty::deserialize(deserializer)?.0;
        plugins::find(&name).map(PluginName).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown plugin '{name}' (known: {})",
                plugins::names().join(", ")
            ))
        })
    }
}

impl JsonSchema for PluginName {
    fn schema_name() -> Cow<'static, str> {
        "PluginName".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "enum": plugins::names()})
    }
}

/// An instance's `config`: read here as anything, because the plugin's own
/// config type checks it (`parse`), and the gateway schema ties it to the
/// schema of the plugin that `plugin` names (`crate::schemas`).
#[derive(Debug, Clone, Copy)]
pub struct PluginConfig;

impl<'de> Deserialize<'de> for PluginConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(deserializer).map(|_| PluginConfig)
    }
}

impl JsonSchema for PluginConfig {
    fn schema_name() -> Cow<'static, str> {
        "PluginConfig".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "object"})
    }
}

/// A gateway's `plugins`: at least one instance. The items are only counted
/// here: `parse` reads each one as an [`InstanceSpec`] on its own, so its errors
/// name the instance (`plugins[1] (team): ...`).
#[derive(Debug, Clone, Copy)]
pub struct Instances;

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        at_least_one::<de::IgnoredAny, D>(deserializer, "must list at least one plugin")?;
        Ok(Instances)
    }
}

impl JsonSchema for Instances {
    fn schema_name() -> Cow<'static, str> {
        "Instances".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "array",
            "minItems": 1,
            "items": generator.subschema_for::<InstanceSpec>(),
        })
    }
}

/// A gateway's `targetRefs`: at least one.
#[derive(Debug)]
pub struct TargetRefs(pub Vec<TargetRefSpec>);

impl<'de> Deserialize<'de> for TargetRefs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        at_least_one(deserializer, "must list at least one target").map(TargetRefs)
    }
}

impl JsonSchema for TargetRefs {
    fn schema_name() -> Cow<'static, str> {
        "TargetRefs".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "array",
            "minItems": 1,
            "items": generator.subschema_for::<TargetRefSpec>(),
        })
    }
}

/// A list of at least one `T`; `empty` is the error for none.
fn at_least_one<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
    empty: &'static str,
) -> Result<Vec<T>, D::Error> {
    struct Items<T>(&'static str, PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            if items.is_empty() {
                return Err(de::Error::custom(self.0));
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(Items(empty, PhantomData))
}

/// The most labels a selector may hold.
const MAX_LABELS: usize = 64;

/// A selector's labels (`{app: web}`), in document order: at least one.
#[derive(Debug, Clone)]
pub struct Labels(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = Labels;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                if let Some(n) = map.size_hint().filter(|&n| n > MAX_LABELS) {
                    return Err(de::Error::custom(format!(
                        "at most {MAX_LABELS} entries, got {n}"
                    )));
                }
                let mut labels = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    labels.push((key, value));
                }
                if labels.is_empty() {
                    return Err(de::Error::custom("must have at least one label"));
                }
                Ok(Labels(labels))
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

impl JsonSchema for Labels {
    fn schema_name() -> Cow<'static, str> {
        "Labels".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "minProperties": 1,
            "maxProperties": MAX_LABELS,
            "additionalProperties": {"type": "string"},
        })
    }
}

/// An environment variable's name.
#[derive(Debug, Clone)]
pub struct EnvName(pub String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = NonEmpty::deserialize(deserializer)?.0;
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(EnvName(name))
        } else {
            Err(de::Error::custom(format!(
                "'{name}' is not a valid variable name"
            )))
        }
    }
}

impl JsonSchema for EnvName {
    fn schema_name() -> Cow<'static, str> {
        "EnvName".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "patternErrorMessage": "letters, digits and '_', not starting with a digit",
        })
    }
}

/// The text of `url`, checked by `Url`'s parser (`parse`), which keeps its
/// messages; the schema says the same in a pattern.
#[derive(Debug, Clone)]
pub struct UrlText(pub String);

impl<'de> Deserialize<'de> for UrlText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = NonEmpty::deserialize(deserializer)?.0;
        super::super::Url::parse(&text).map_err(de::Error::custom)?;
        Ok(UrlText(text))
    }
}

impl JsonSchema for UrlText {
    fn schema_name() -> Cow<'static, str> {
        "Url".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^((oci|https)://|file:///)\\S*[^\\s/]\\S*$",
            "patternErrorMessage": "expected oci://<registry>/<repository>, file:///<dir> or https://<host>/<path>",
        })
    }
}

/// `istio:`, read by `compat::parse_istio`.
#[derive(Debug, Clone, Copy)]
pub struct IstioVersion(pub super::super::Istio);

impl<'de> Deserialize<'de> for IstioVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        super::super::compat::parse_istio(&value)
            .map(IstioVersion)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for IstioVersion {
    fn schema_name() -> Cow<'static, str> {
        "IstioVersion".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // 1.<minor> from 1.12 on, at most three digits, as compat::parse_istio.
        json_schema!({
            "type": "string",
            "pattern": "^1\\.(0?1[2-9]|0?[2-9][0-9]|[1-9][0-9]{2})$",
            "patternErrorMessage": "an Istio version from 1.12 on, quoted: \"1.28\"",
        })
    }
}
