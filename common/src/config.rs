//! Reading a plugin's JSON configuration, so every error names the field path it
//! is about (`deny.status: must be 200..=599, got 700`) and unknown fields are
//! refused instead of silently ignored. Configs are `#[derive(Deserialize)]` types
//! read with [`from_value`]; [`Fields`] and [`Node`] read a document by hand.

mod deserialize;
pub mod fields;

pub use deserialize::from_value;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
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
/// A key that appears twice in one object is refused with its path: serde_json
/// would keep the last one silently, and a reviewer reading the first would
/// approve a config that does something else.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Unique {
        path: String::new(),
        duplicate: &duplicate,
    };
    let parsed = seed.deserialize(&mut de).and_then(|value| {
        de.end()?;
        Ok(value)
    });
    match (parsed, duplicate.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(path)) => Err(ConfigError::new(
            path,
            "appears twice in one object (each key may be given once)",
        )),
        (Err(e), None) => Err(ConfigError::new("", format!("invalid JSON: {e}"))),
    }
}

/// Parses configuration bytes (see [`parse_json`]) into `T`.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    from_value(&parse_json(bytes)?)
}

/// Deserializes a JSON value like `serde_json::Value` does, except that a repeated
/// key stops it; the repeated key's path is left in `duplicate`.
struct Unique<'p> {
    path: String,
    duplicate: &'p RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let item = Unique {
                path: format!("{}[{}]", self.path, items.len()),
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(item)? {
                Some(value) => items.push(value),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(Unique {
                path,
                duplicate: self.duplicate,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
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

/// `path.key`, the key as written except for control characters, which are
/// escaped: errors are logged as one line, and a key holding a newline would
/// otherwise forge the line after it. The empty key is written `""`, so an error
/// about it still names a field.
fn join(path: &str, key: &str) -> String {
    let mut out = String::with_capacity(path.len() + key.len() + 3);
    out.push_str(path);
    if !path.is_empty() {
        out.push('.');
    }
    if key.is_empty() {
        out.push_str("\"\"");
    }
    for c in key.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
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

    /// The items of a list of at most `max` items. Every list a plugin walks per
    /// request has such a limit: 20,000 response headers cost over a second of
    /// worker CPU per response, and a config that large is a mistake.
    pub fn list_at_most(&self, max: usize) -> Result<Vec<Node<'a>>, ConfigError> {
        let items = self.list()?;
        if items.len() > max {
            return Err(self.error(format!("at most {max} items, got {}", items.len())));
        }
        Ok(items)
    }

    /// A list of at most `max` strings.
    pub fn str_list_at_most(&self, max: usize) -> Result<Vec<&'a str>, ConfigError> {
        self.list_at_most(max)?.iter().map(Node::str).collect()
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

    /// An object of at most `max` fields whose values are all strings
    /// (`{"content-type": "text/plain"}`), in document order, each value with its path.
    pub fn str_map(&self, max: usize) -> Result<Vec<(&'a str, Node<'a>)>, ConfigError> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.expected("an object"))?;
        if map.len() > max {
            return Err(self.error(format!("at most {max} entries, got {}", map.len())));
        }
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
    fn parses_like_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, true, null, "s", {"b": {}}], "c": {"d": []}, "e": 18446744073709551615}"#;
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_json(text.as_bytes()).unwrap(), want);
        assert_eq!(parse_json(b"[1]").unwrap(), json!([1]));
        assert_eq!(parse_json(b"\"x\"").unwrap(), json!("x"));
    }

    #[test]
    fn repeated_keys_are_refused_with_their_path() {
        let cases = [
            (r#"{"a": 1, "a": 2}"#, "a"),
            (r#"{"deny": {"status": 401, "status": 200}}"#, "deny.status"),
            (
                r#"{"rules": [{"x": 1}, {"p": "/", "p": "/a"}]}"#,
                "rules[1].p",
            ),
            (r#"{"m": [[{"k": 1, "k": 1}]]}"#, "m[0][0].k"),
        ];
        for (text, path) in cases {
            let err = parse_json(text.as_bytes()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{path}: appears twice in one object (each key may be given once)"),
                "{text}"
            );
        }
        // The same key in two different objects is fine.
        assert!(parse_json(br#"{"a": {"k": 1}, "b": {"k": 1}}"#).is_ok());
    }

    #[test]
    fn trailing_bytes_and_deep_nesting_are_invalid_json() {
        for text in [&b"{} x"[..], b"{}{}", b"{\"a\":1"] {
            let err = parse_json(text).unwrap_err().to_string();
            assert!(err.starts_with("invalid JSON: "), "{err}");
        }
        let deep = "[".repeat(10_000);
        let err = parse_json(deep.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("invalid JSON: recursion limit"), "{err}");
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
        let err = deny.get("headers").unwrap().str_map(8).unwrap_err();
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
    fn lists_and_maps_have_limits() {
        let doc = json!({"a": ["x", "y", "z"], "m": {"a": "1", "b": "2"}});
        let mut top = Fields::root(&doc).unwrap();
        let a = top.get("a").unwrap();
        assert_eq!(a.str_list_at_most(3).unwrap(), ["x", "y", "z"]);
        let err = a.str_list_at_most(2).unwrap_err();
        assert_eq!(err.to_string(), "a: at most 2 items, got 3");
        let m = top.get("m").unwrap();
        assert_eq!(m.str_map(2).unwrap().len(), 2);
        assert_eq!(
            m.str_map(1).unwrap_err().to_string(),
            "m: at most 1 entries, got 2"
        );
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
    fn keys_in_paths_have_their_control_characters_escaped() {
        let doc = json!({"a\nb": 1, "m": {"x\u{85}": 1}});
        let mut top = Fields::root(&doc).unwrap();
        let err = top.get("m").unwrap().str_map(8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "m.x\\u{85}: expected a string, got a number"
        );
        let err = top.finish().unwrap_err();
        assert_eq!(err.to_string(), "a\\nb: unknown field (known fields: m)");
        let err = parse_json(br#"{"k\r": 1, "k\r": 2}"#).unwrap_err();
        assert_eq!(err.path, "k\\r");
        // Other characters, quotes and backslashes included, are shown as they are.
        let doc = json!({"é\"\\": 1});
        let err = Fields::root(&doc).unwrap().finish().unwrap_err();
        assert!(err.to_string().starts_with("é\"\\: unknown field"), "{err}");
    }

    #[test]
    fn the_empty_key_is_named() {
        let err = parse_json(br#"{"": 1, "": 2}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"\": appears twice in one object (each key may be given once)"
        );
        let err = parse_json(br#"{"a": {"": 1, "": 2}}"#).unwrap_err();
        assert_eq!(err.path, "a.\"\"");
        let doc = json!({"": 1});
        let mut top = Fields::root(&doc).unwrap();
        assert!(top.get("a").is_none());
        let err = top.finish().unwrap_err();
        assert_eq!(err.to_string(), "\"\": unknown field (known fields: a)");
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
