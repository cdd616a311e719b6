//! A serde `Deserializer` over a parsed config document, so plugins declare their
//! configs with `#[derive(Deserialize)]`. Written here rather than taken from
//! serde_json's `Value` deserializer with serde_path_to_error because a config
//! error must (1) name the field path, (2) never quote the offending value (serde
//! writes `invalid type: string "hunter2"`: a password in the wrong field would
//! land in Envoy's log), (3) never take a list for an object (serde_json hands a
//! derived struct a list as positional fields) and (4) treat `null` as absent.

use super::{join, ConfigError};
use serde::de::{
    self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};
use std::fmt;

/// Deserializes `T` from a config document; an error names the field path and
/// what is wrong, in the words of [`ConfigError`].
pub fn from_value<'a, T: de::Deserialize<'a>>(doc: &'a Value) -> Result<T, ConfigError> {
    T::deserialize(Node::new(doc, "")).map_err(|e| e.at("").into_config_error())
}

/// An error on its way out of a deserialization: the path is set by the
/// innermost value that knows it (see [`Error::at`]).
#[derive(Debug)]
pub struct Error {
    path: Option<String>,
    /// The struct field a `missing_field` error is about, joined to the path of
    /// the object that lacks it.
    field: Option<&'static str>,
    message: String,
}

impl Error {
    fn new(message: String) -> Self {
        Error {
            path: None,
            field: None,
            message,
        }
    }

    /// Sets the path, unless a deeper value already did.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(match self.field {
                Some(field) => join(path, field),
                None => path.to_string(),
            });
        }
        self
    }

    fn into_config_error(self) -> ConfigError {
        ConfigError::new(self.path.unwrap_or_default(), self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Error::new(format!("expected {exp}, got {}", kind(&unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let got = match unexp {
            Unexpected::Unsigned(n) => n.to_string(),
            Unexpected::Signed(n) => n.to_string(),
            // Formatting a float would link core's float printing (~6 KB of wasm).
            Unexpected::Float(_) => "a fractional number".to_string(),
            Unexpected::Bool(b) => b.to_string(),
            other => kind(&other).to_string(),
        };
        Error::new(format!("expected {exp}, got {got}"))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Error::new(format!("expected {exp}, got {len} items"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        // Not quoted either: a secret typed into the wrong field can land here.
        let _ = variant;
        Error::new(format!(
            "unknown value (known values: {})",
            expected.join(", ")
        ))
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        // The key's own path is set by the key deserializer.
        let mut known = expected.to_vec();
        known.sort_unstable();
        Error::new(format!(
            "unknown field (known fields: {})",
            known.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            path: None,
            field: Some(field),
            message: "is required".to_string(),
        }
    }

    fn duplicate_field(_field: &'static str) -> Self {
        Error::new("appears twice in one object (each key may be given once)".to_string())
    }
}

/// What an unexpected value was, never the value itself.
fn kind(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) | Unexpected::Bytes(_) => "a string",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::Seq => "a list",
        Unexpected::Map => "an object",
        _ => "another kind of value",
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One value of the document and its path (borrowed: a path is built once per
/// value, by the list or object holding it, which also reports its errors).
struct Node<'a, 'p> {
    value: &'a Value,
    path: &'p str,
}

impl<'a, 'p> Node<'a, 'p> {
    fn new(value: &'a Value, path: &'p str) -> Self {
        Node { value, path }
    }

    fn expected(&self, what: &str) -> Error {
        Error::new(format!("expected {what}, got {}", value_kind(self.value))).at(self.path)
    }

    fn object(&self) -> Result<&'a Map<String, Value>, Error> {
        self.value
            .as_object()
            .ok_or_else(|| self.expected("an object"))
    }
}

/// Integer methods: anything but a number is "expected a whole number" (serde's
/// own words would be "expected u16"); a number out of range or with a fraction
/// is refused by the integer's visitor.
macro_rules! whole_numbers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.value {
                Value::Number(_) => self.deserialize_any(visitor),
                _ => Err(self.expected("a whole number")),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, Some(f)) => visitor.visit_f64(f),
                (None, None, None) => Err(self.expected("a number")),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Seq::new(items, self.path)),
            Value::Object(map) => visitor.visit_map(Fields::new(map, self.path)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.expected("a boolean")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.expected("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(Seq::new(items, self.path)),
            _ => Err(self.expected("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let map = self.object()?;
        visitor.visit_map(Fields::new(map, self.path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    /// A unit variant is its name as a string; a variant with content is an
    /// object with the variant's name as its one key.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_enum(Variant {
                name: s,
                content: None,
                content_path: self.path.to_string(),
                path: self.path,
            }),
            Value::Object(map) if map.len() == 1 => {
                let Some((name, content)) = map.iter().next() else {
                    return Err(self.expected("an object with one key"));
                };
                visitor.visit_enum(Variant {
                    name,
                    content: Some(content),
                    content_path: join(self.path, name),
                    path: self.path,
                })
            }
            _ => Err(self.expected(&format!("one of {}", variants.join(", ")))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    whole_numbers! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    forward_to_deserialize_any! {
        f32 f64 char bytes byte_buf unit unit_struct tuple_struct identifier
    }
}

struct Seq<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    len: usize,
    path: &'p str,
}

impl<'a, 'p> Seq<'a, 'p> {
    fn new(items: &'a [Value], path: &'p str) -> Self {
        Seq {
            items: items.iter().enumerate(),
            len: items.len(),
            path,
        }
    }
}

impl<'de> SeqAccess<'de> for Seq<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((i, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{i}]", self.path);
        match seed.deserialize(Node::new(value, &path)) {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(e.at(&path)),
        }
    }

    /// The whole length, so a bounded list can say how long the refused one was.
    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

/// An object's entries; those whose value is `null` are skipped, so `null`
/// means absent (the field's default), as it does in Kubernetes manifests.
struct Fields<'a, 'p> {
    entries: serde_json::map::Iter<'a>,
    len: usize,
    path: &'p str,
    value: Option<(&'a Value, String)>,
}

impl<'a, 'p> Fields<'a, 'p> {
    fn new(map: &'a Map<String, Value>, path: &'p str) -> Self {
        Fields {
            entries: map.iter(),
            len: map.len(),
            path,
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Fields<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.entries.by_ref() {
            if value.is_null() {
                continue;
            }
            let path = join(self.path, key);
            let key = de::value::BorrowedStrDeserializer::<Error>::new(key);
            let key = seed.deserialize(key).map_err(|e| e.at(&path))?;
            self.value = Some((value, path));
            return Ok(Some(key));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((value, path)) = self.value.take() else {
            return Err(Error::new("a value without its key".to_string()).at(self.path));
        };
        seed.deserialize(Node::new(value, &path))
            .map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

struct Variant<'a, 'p> {
    name: &'a str,
    content: Option<&'a Value>,
    /// The enum's own path, where an unknown name is reported.
    path: &'p str,
    /// The path of the variant's settings, where their errors are reported.
    content_path: String,
}

impl<'de, 'p> EnumAccess<'de> for Variant<'de, 'p> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let name = de::value::BorrowedStrDeserializer::<Error>::new(self.name);
        let value = seed.deserialize(name).map_err(|e| e.at(self.path))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.content {
            None => Ok(()),
            Some(_) => Err(
                Error::new("takes no settings: give its name as a string".into())
                    .at(&self.content_path),
            ),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.content {
            Some(value) => seed
                .deserialize(Node::new(value, &self.content_path))
                .map_err(|e| e.at(&self.content_path)),
            None => {
                Err(Error::new("needs settings: give it as an object".into())
                    .at(&self.content_path))
            }
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.content {
            Some(value) => {
                de::Deserializer::deserialize_seq(Node::new(value, &self.content_path), visitor)
            }
            None => {
                Err(Error::new("needs settings: give them as a list".into()).at(&self.content_path))
            }
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.content {
            Some(value) => {
                de::Deserializer::deserialize_map(Node::new(value, &self.content_path), visitor)
            }
            None => {
                Err(Error::new("needs settings: give them as an object".into())
                    .at(&self.content_path))
            }
        }
    }
}

#[cfg(test)]
mod tests;
