//! A rule's `prefix`/`exact`/`suffix` and `request_methods` fields as config
//! types, checked while deserialized (basic-auth's and jwt-auth's rules alike).

use super::PathRule;
use crate::headers::is_token;
use serde::de::{self, Deserialize, Deserializer};

macro_rules! path_field {
    ($name:ident, $kind:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub PathRule);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <&str>::deserialize(deserializer)?;
                PathRule::from_text(text, PathRule::$kind)
                    .map($name)
                    .map_err(de::Error::custom)
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "pattern": "^[^?#; \\u0000-\\u001f\\u007f-\\u009f]+$",
                    "description": $doc,
                })
            }
        }
    };
}

path_field!(
    Prefix,
    Prefix,
    "Paths that start with this (normalized, starting with '/')."
);
path_field!(
    Exact,
    Exact,
    "This path, with or without a trailing '/' (normalized, starting with '/')."
);
path_field!(
    Suffix,
    Suffix,
    "Paths that end with this, compared case-insensitively."
);

/// The one path a rule gives: exactly one of `prefix`, `exact`, `suffix`.
pub fn one_path(
    prefix: Option<Prefix>,
    exact: Option<Exact>,
    suffix: Option<Suffix>,
) -> Result<PathRule, &'static str> {
    let given = [prefix.map(|p| p.0), exact.map(|e| e.0), suffix.map(|s| s.0)];
    let mut given = given.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(rule), None) => Ok(rule),
        (None, _) => Err("exactly one of prefix, exact, suffix is required"),
        (Some(_), Some(_)) => Err("exactly one of prefix, exact, suffix is allowed"),
    }
}

/// A rule's `request_methods` (at most `MAX`): HTTP method tokens, uppercased,
/// each once, and `HEAD` wherever `GET` is (Envoy answers a HEAD as a GET).
/// Empty when the list is: the rule says what that means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Methods<const MAX: usize>(pub Vec<String>);

/// One method of the list.
struct Method(String);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let method = <&str>::deserialize(deserializer)?;
        if !is_token(method) {
            return Err(de::Error::custom(format!(
                "'{}' is not an HTTP method",
                method.escape_debug()
            )));
        }
        Ok(Method(method.to_ascii_uppercase()))
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Methods<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let crate::config::fields::List(listed) =
            crate::config::fields::List::<Method, 0, MAX>::deserialize(deserializer)?;
        let mut methods: Vec<String> = Vec::new();
        for Method(method) in listed {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
            methods.push("HEAD".to_string());
        }
        Ok(Methods(methods))
    }
}

#[cfg(feature = "schema")]
impl<const MAX: usize> schemars::JsonSchema for Methods<MAX> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Methods_{MAX}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "maxItems": MAX,
            "items": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
        })
    }
}
