//! jwt-auth's own config field types, each checked while it is deserialized so
//! an error carries its path: provider names, the realm, where a token may be,
//! claims to headers, the JWKS path.

use super::{Providers, MAX_NAME, MAX_PROVIDERS};
use common::config::fields::NonEmpty;
use common::headers::{header_name, is_connection_specific, is_token};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;

/// A provider's name: 1 to 63 characters, no control characters.
struct ProviderName(String);

impl<'de> Deserialize<'de> for ProviderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(de::Error::custom(
                "a provider name must be 1 to 63 characters, no control characters",
            ));
        }
        Ok(ProviderName(name.to_string()))
    }
}

impl<'de> Deserialize<'de> for Providers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByName;

        impl<'de> Visitor<'de> for ByName {
            type Value = Providers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of providers by name")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Providers, A::Error> {
                if let Some(len) = map.size_hint().filter(|&n| n > MAX_PROVIDERS) {
                    return Err(de::Error::custom(format!(
                        "at most {MAX_PROVIDERS} providers, got {len}"
                    )));
                }
                let mut out = Vec::new();
                while let Some(ProviderName(name)) = map.next_key()? {
                    out.push((name, map.next_value()?));
                }
                if out.is_empty() {
                    return Err(de::Error::custom("must name at least one provider"));
                }
                Ok(Providers(out))
            }
        }

        // Through deserialize_any, so a list or a string is refused in this
        // visitor's words.
        deserializer.deserialize_any(ByName)
    }
}

/// `realm`: sent inside a quoted-string, so no quote, backslash or control
/// character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm(pub String);

impl<'de> Deserialize<'de> for Realm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(realm) = NonEmpty::deserialize(deserializer)?;
        if realm
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(de::Error::custom(
                "must not contain quotes, backslashes or control characters",
            ));
        }
        Ok(Realm(realm))
    }
}

/// A header a token may be in, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader(pub String);

impl<'de> Deserialize<'de> for TokenHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let header = header_name(<&str>::deserialize(deserializer)?).map_err(de::Error::custom)?;
        if header == "host" || is_connection_specific(&header) {
            return Err(de::Error::custom(format!(
                "'{header}' cannot carry a token"
            )));
        }
        Ok(TokenHeader(header))
    }
}

/// A query parameter's or a cookie's name: an RFC 9110 token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(pub String);

impl<'de> Deserialize<'de> for TokenName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(name) = NonEmpty::deserialize(deserializer)?;
        if !is_token(&name) {
            return Err(de::Error::custom(format!(
                "'{}' is not a valid name",
                name.escape_debug()
            )));
        }
        Ok(TokenName(name))
    }
}

/// A claim's path, split at its dots, no part empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(pub Vec<String>);

impl<'de> Deserialize<'de> for ClaimPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(claim) = NonEmpty::deserialize(deserializer)?;
        let path: Vec<String> = claim.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(de::Error::custom(
                "a claim path has no empty part ('a.b', not 'a..b')",
            ));
        }
        Ok(ClaimPath(path))
    }
}

/// A header set from a claim, lowercase: not one Envoy or the connection owns,
/// nor `cookie`, which carries tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader(pub String);

impl<'de> Deserialize<'de> for ClaimHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let header = header_name(<&str>::deserialize(deserializer)?).map_err(de::Error::custom)?;
        if header == "host" || is_connection_specific(&header) {
            return Err(de::Error::custom(format!(
                "'{header}' cannot be set from a claim"
            )));
        }
        if header == "cookie" {
            return Err(de::Error::custom(
                "'cookie' carries tokens and cannot be set from a claim",
            ));
        }
        Ok(ClaimHeader(header))
    }
}

/// `remote_jwks.path`: starts with '/', no spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksPath(pub String);

impl<'de> Deserialize<'de> for JwksPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(path) = NonEmpty::deserialize(deserializer)?;
        if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(de::Error::custom(
                "must start with '/' and hold no spaces or control characters",
            ));
        }
        Ok(JwksPath(path))
    }
}
