//! Reading a plugin's JSON configuration, so every error names the field path it
//! is about (`deny.status: must be 200..=599, got 700`) and unknown fields are
//! refused instead of silently ignored. Configs are `#[derive(Deserialize)]` types
//! read with [`from_value`], their fields typed with [`fields`]' checked types.

mod deserialize;
pub mod fields;

pub use deserialize::from_value;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

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
}
