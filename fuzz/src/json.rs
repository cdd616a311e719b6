//! `config_json`: `common::config::parse_json` must read every document exactly as
//! serde_json does, except that a document with a key repeated in one object is
//! refused, naming where; and its errors are one line.

use common::config::parse_json;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

pub fn run(data: &[u8]) {
    let ours = parse_json(data);
    if data.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(ours, Ok(Value::Object(Default::default())), "blank input");
        return;
    }
    let theirs = serde_json::from_slice::<Value>(data);
    match (&theirs, repeated_key(data)) {
        (Ok(value), Some(false)) => assert_eq!(ours.as_ref(), Ok(value), "serde_json disagrees"),
        (Ok(_), Some(true)) => {
            let err = ours.as_ref().expect_err("a repeated key was accepted");
            assert!(!err.path.is_empty(), "repeated key without a path: {err}");
            assert!(err.message.starts_with("appears twice"), "{err}");
        }
        (Ok(_), None) => panic!("serde_json read a document the key checker could not"),
        (Err(_), _) => assert!(ours.is_err(), "accepted what serde_json refuses"),
    }
    match ours {
        Ok(value) => {
            // Written back, it reads as serde_json reads it. (Not always as the same
            // value: without its `float_roundtrip` feature serde_json may read a
            // float it wrote one ulp off; no configuration field is a float.)
            let text = serde_json::to_vec(&value).expect("a Value serializes");
            let again = serde_json::from_slice::<Value>(&text).expect("its own output");
            assert_eq!(parse_json(&text), Ok(again), "written back");
        }
        Err(err) => crate::configs::check_error(&err),
    }
}

/// Whether a JSON document repeats a key inside one object; `None` when it is not
/// JSON. Written apart from `parse_json` (no paths, no values kept) to check it.
fn repeated_key(data: &[u8]) -> Option<bool> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let repeated = Repeated.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(repeated)
}

struct Repeated;

impl<'de> DeserializeSeed<'de> for Repeated {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Repeated {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut repeated = false;
        while let Some(inner) = seq.next_element_seed(Repeated)? {
            repeated |= inner;
        }
        Ok(repeated)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut keys = std::collections::HashSet::new();
        let mut repeated = false;
        while let Some(key) = map.next_key::<String>()? {
            repeated |= !keys.insert(key);
            repeated |= map.next_value_seed(Repeated)?;
        }
        Ok(repeated)
    }
}
