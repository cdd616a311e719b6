//! Config field types that check themselves while they are deserialized, so an
//! error carries the field's own path (`deny.headers.x-a: ...`), and describe
//! themselves in JSON Schema (feature `schema`) with the same limits: bounded
//! lists and numbers, header names and values, the cluster and authority of an
//! outgoing call. A denial's fields are in `deny`.

use crate::headers::{header_name, header_value};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A list of `MIN..=MAX` items. Every list a plugin walks per request has such a
/// limit: 20,000 response headers cost over a second of worker CPU per response,
/// and a config that large is a mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T, const MIN: usize, const MAX: usize>(pub Vec<T>);

impl<T, const MIN: usize, const MAX: usize> List<T, MIN, MAX> {
    fn check(len: usize) -> Result<(), String> {
        if len > MAX {
            return Err(format!("at most {MAX} items, got {len}"));
        }
        if len < MIN {
            return Err(match MIN {
                1 => "must list at least one item".to_string(),
                _ => format!("must list at least {MIN} items"),
            });
        }
        Ok(())
    }
}

impl<'de, T: Deserialize<'de>, const MIN: usize, const MAX: usize> Deserialize<'de>
    for List<T, MIN, MAX>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T, const MIN: usize, const MAX: usize>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const MIN: usize, const MAX: usize> Visitor<'de>
            for Items<T, MIN, MAX>
        {
            type Value = List<T, MIN, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Refused before anything is allocated when the length is known.
                if let Some(len) = seq.size_hint() {
                    List::<T, MIN, MAX>::check(len).map_err(de::Error::custom)?;
                }
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(de::Error::custom(format!("at most {MAX} items")));
                    }
                    items.push(item);
                }
                List::<T, MIN, MAX>::check(items.len()).map_err(de::Error::custom)?;
                Ok(List(items))
            }
        }

        deserializer.deserialize_seq(Items::<T, MIN, MAX>(PhantomData))
    }
}

/// A header name: an RFC 9110 token, not a pseudo-header, kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderName(pub String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        header_name(name).map(HeaderName).map_err(de::Error::custom)
    }
}

/// A header value: no CR, LF or NUL, which would split or truncate the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue(pub String);

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <&str>::deserialize(deserializer)?;
        header_value(value)
            .map(|v| HeaderValue(v.to_string()))
            .map_err(de::Error::custom)
    }
}

/// A whole number in `MIN..=MAX` (a timeout, a count, a size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The range is checked outside the deserializing, so each range a config
        // uses adds a few bytes to a module rather than a deserializer of its own.
        let Whole(n) = Whole::deserialize(deserializer)?;
        in_range(n, MIN, MAX).map(Int).map_err(de::Error::custom)
    }
}

/// Any whole number JSON may hold, as given.
#[derive(Clone, Copy)]
enum Number {
    Signed(i64),
    Unsigned(u64),
}

struct Whole(Number);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Digits;

        impl Visitor<'_> for Digits {
            type Value = Whole;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Whole, E> {
                Ok(Whole(Number::Signed(n)))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Whole, E> {
                Ok(Whole(Number::Unsigned(n)))
            }
        }

        deserializer.deserialize_i64(Digits)
    }
}

fn in_range(n: Number, min: i64, max: i64) -> Result<i64, String> {
    let fits = match n {
        Number::Signed(n) => Some(n),
        Number::Unsigned(n) => i64::try_from(n).ok(),
    };
    match fits {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(match n {
            Number::Signed(n) => format!("must be {min}..={max}, got {n}"),
            Number::Unsigned(n) => format!("must be {min}..={max}, got {n}"),
        }),
    }
}

/// A string that is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match <&str>::deserialize(deserializer)? {
            "" => Err(de::Error::custom("must not be empty")),
            text => Ok(NonEmpty(text.to_string())),
        }
    }
}

/// The Envoy cluster a plugin calls with `dispatch_http_call` (Istio names them
/// `outbound|PORT||HOST`): not empty, and no spaces or control characters, since
/// the call's default `:authority` derives from it and a CR or LF there would
/// end up in a header of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster(pub String);

impl Cluster {
    /// The `:authority` Istio's cluster naming implies: `outbound|8000||auth.ns.svc`
    /// names the service `auth.ns.svc`. Any other name is used as it is.
    pub fn default_authority(&self) -> &str {
        default_authority(&self.0)
    }
}

/// [`Cluster::default_authority`] of a cluster name.
pub fn default_authority(cluster: &str) -> &str {
    let mut parts = cluster.split('|');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("outbound" | "inbound"), Some(_), Some(_), Some(host), None) if !host.is_empty() => {
            host
        }
        _ => cluster,
    }
}

impl<'de> Deserialize<'de> for Cluster {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(name) = NonEmpty::deserialize(deserializer)?;
        if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(de::Error::custom(
                "must not contain spaces or control characters",
            ));
        }
        Ok(Cluster(name))
    }
}

/// A call's `:authority`: not empty, and a valid header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority(pub String);

impl<'de> Deserialize<'de> for Authority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(text) = NonEmpty::deserialize(deserializer)?;
        header_value(&text).map_err(de::Error::custom)?;
        Ok(Authority(text))
    }
}

#[cfg(feature = "schema")]
pub(crate) mod schema {
    //! The JSON Schema of each field type, with the limits its deserializer checks.

    use super::*;
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    /// An RFC 9110 token.
    pub(crate) const TOKEN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
    /// No CR, LF or NUL.
    pub(crate) const VALUE: &str = "^[^\\r\\n\\u0000]*$";

    impl<T: JsonSchema, const MIN: usize, const MAX: usize> JsonSchema for List<T, MIN, MAX> {
        fn schema_name() -> Cow<'static, str> {
            format!("List_{}_{MIN}_{MAX}", T::schema_name()).into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "array",
                "items": generator.subschema_for::<T>(),
                "minItems": MIN,
                "maxItems": MAX,
            })
        }
    }

    impl JsonSchema for HeaderName {
        fn schema_name() -> Cow<'static, str> {
            "HeaderName".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "pattern": TOKEN})
        }
    }

    impl JsonSchema for HeaderValue {
        fn schema_name() -> Cow<'static, str> {
            "HeaderValue".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "pattern": VALUE})
        }
    }

    impl<const MIN: i64, const MAX: i64> JsonSchema for Int<MIN, MAX> {
        fn schema_name() -> Cow<'static, str> {
            format!("Int_{MIN}_{MAX}").into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
        }
    }

    impl JsonSchema for NonEmpty {
        fn schema_name() -> Cow<'static, str> {
            "NonEmpty".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "minLength": 1})
        }
    }

    impl JsonSchema for Cluster {
        fn schema_name() -> Cow<'static, str> {
            "Cluster".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$"})
        }
    }

    impl JsonSchema for Authority {
        fn schema_name() -> Cow<'static, str> {
            "Authority".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "minLength": 1, "pattern": VALUE})
        }
    }
}
