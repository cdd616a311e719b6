//! Reading a plugin's JSON configuration field by field, so every error names the
//! field path it is about (`deny.status: must be 200..=599, got 700`) and unknown
//! fields are refused instead of silently ignored.

use serde_json::{Map, Value};
use std::fmt;
use std::ops::RangeInclusive;

/// A configuration error: the path of the offending field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses configuration bytes. Empty (or all-whitespace) input is `{}`: Istio sends
/// no configuration when `pluginConfig` is absent, and that must mean "defaults".
pub fn parse_json(bytes: &[u8]) -> Result<Value, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| ConfigError::new("", format!("invalid JSON: {e}")))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// One JSON value and the path that leads to it.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
}

impl<'a> Node<'a> {
    /// The whole configuration document.
    pub fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    /// An error about this node.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.clone(), message)
    }

    fn expected(&self, what: &str) -> ConfigError {
        self.error(format!("expected {what}, got {}", kind(self.value)))
    }

    pub fn str(&self) -> Result<&'a str, ConfigError> {
        self.value.as_str().ok_or_else(|| self.expected("a string"))
    }

    /// A string that must not be empty.
    pub fn non_empty_str(&self) -> Result<&'a str, ConfigError> {
        match self.str()? {
            "" => Err(self.error("must not be empty")),
            s => Ok(s),
        }
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.expected("a boolean"))
    }

    /// A whole number within `range`.
    pub fn int_in(&self, range: RangeInclusive<i64>) -> Result<i64, ConfigError> {
        let n = self
            .value
            .as_i64()
            .ok_or_else(|| self.expected("a whole number"))?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(self.error(format!(
                "must be {}..={}, got {n}",
                range.start(),
                range.end()
            )))
        }
    }

    /// The items of a list, each with its path (`values[2]`).
    pub fn list(&self) -> Result<Vec<Node<'a>>, ConfigError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.expected("a list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    /// A list of strings.
    pub fn str_list(&self) -> Result<Vec<&'a str>, ConfigError> {
        self.list()?.iter().map(Node::str).collect()
    }

    /// An object read field by field.
    pub fn fields(&self) -> Result<Fields<'a>, ConfigError> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.expected("an object"))?;
        Ok(Fields {
            map,
            path: self.path.clone(),
            known: Vec::new(),
        })
    }

    /// An object whose values are all strings (`{"content-type": "text/plain"}`),
    /// in document order, each value with its path.
    pub fn str_map(&self) -> Result<Vec<(&'a str, Node<'a>)>, ConfigError> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.expected("an object"))?;
        map.iter()
            .map(|(key, value)| {
                let node = Node {
                    value,
                    path: join(&self.path, key),
                };
                node.str()?;
                Ok((key.as_str(), node))
            })
            .collect()
    }
}

/// A JSON object being read field by field. Each field asked for is remembered, so
/// [`Fields::finish`] can refuse the fields nobody asked for (typos, stale options).
#[derive(Debug)]
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// Reads the top level of a configuration document, which must be an object.
    pub fn root(value: &'a Value) -> Result<Self, ConfigError> {
        Node::root(value).fields()
    }

    /// The field `key`; JSON `null` counts as absent.
    pub fn get(&mut self, key: &'static str) -> Option<Node<'a>> {
        self.known.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(Node {
                value,
                path: join(&self.path, key),
            }),
        }
    }

    /// The field `key`, which must be present.
    pub fn require(&mut self, key: &'static str) -> Result<Node<'a>, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::new(join(&self.path, key), "is required"))
    }

    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<&'a str>, ConfigError> {
        self.get(key).map(|n| n.str()).transpose()
    }

    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        self.get(key).map(|n| n.bool()).transpose()
    }

    pub fn opt_int_in(
        &mut self,
        key: &'static str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        self.get(key).map(|n| n.int_in(range)).transpose()
    }

    /// Refuses any field that was never asked for.
    pub fn finish(self) -> Result<(), ConfigError> {
        let mut unknown = self
            .map
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()));
        match unknown.next() {
            None => Ok(()),
            Some(key) => {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                Err(ConfigError::new(
                    join(&self.path, key),
                    format!("unknown field (known fields: {})", known.join(", ")),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_input_means_defaults() {
        assert_eq!(parse_json(b"").unwrap(), json!({}));
        assert_eq!(parse_json(b" \n").unwrap(), json!({}));
    }

    #[test]
    fn syntax_errors_say_invalid_json() {
        let err = parse_json(b"{\"a\":").unwrap_err();
        assert!(err.to_string().starts_with("invalid JSON: "), "{err}");
    }

    #[test]
    fn errors_name_the_field_path() {
        let doc = json!({"deny": {"status": 700, "headers": {"x": 1}}, "values": ["a", 2]});
        let mut top = Fields::root(&doc).unwrap();
        let mut deny = top.get("deny").unwrap().fields().unwrap();
        let err = deny.opt_int_in("status", 200..=599).unwrap_err();
        assert_eq!(err.to_string(), "deny.status: must be 200..=599, got 700");
        let err = deny.get("headers").unwrap().str_map().unwrap_err();
        assert_eq!(
            err.to_string(),
            "deny.headers.x: expected a string, got a number"
        );
        let err = top.get("values").unwrap().str_list().unwrap_err();
        assert_eq!(
            err.to_string(),
            "values[1]: expected a string, got a number"
        );
        let err = top.require("header").unwrap_err();
        assert_eq!(err.to_string(), "header: is required");
    }

    #[test]
    fn unknown_fields_are_refused_and_null_is_absent() {
        let doc = json!({"header": "a", "path": null, "hedaer": "b"});
        let mut top = Fields::root(&doc).unwrap();
        assert_eq!(top.opt_str("header").unwrap(), Some("a"));
        assert!(top.get("path").is_none());
        let err = top.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "hedaer: unknown field (known fields: header, path)"
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let cases = [
            (json!({"a": 1}), "a: expected a string, got a number"),
            (json!({"a": []}), "a: expected a string, got a list"),
            (json!({"a": {}}), "a: expected a string, got an object"),
            (json!({"a": true}), "a: expected a string, got a boolean"),
        ];
        for (doc, expected) in cases {
            let mut top = Fields::root(&doc).unwrap();
            assert_eq!(top.opt_str("a").unwrap_err().to_string(), expected);
        }
        let err = Fields::root(&json!([1])).unwrap_err();
        assert_eq!(err.to_string(), "expected an object, got a list");
    }
}
