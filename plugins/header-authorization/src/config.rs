//! The header-authorization configuration: which header, which values pass, and
//! what a denied request gets back. Used by the plugin and by xtask alike.

use common::config::fields::List;
use common::config::{from_value, parse_json, ConfigError};
use common::deny::DenySpec;
use common::headers::header_name;
use common::DenyResponse;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

/// The most accepted values: each request compares its header against all of them.
pub const MAX_VALUES: usize = 256;

/// The configuration as written (`pluginConfig`); its JSON Schema is the plugin's.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The request header to check (`:authority` for the Host). Default `allow`.
    pub header: Option<CheckedHeader>,
    /// The accepted values, exact and case-sensitive. Default `["true"]`.
    pub values: Option<List<String, 1, MAX_VALUES>>,
    /// The response to a request without an accepted value. Default 403 with a
    /// body naming the header.
    pub deny: Option<DenySpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The request header to check, lowercase (`:authority` for the Host).
    pub header: String,
    /// Accepted values, exact and case-sensitive.
    pub values: Vec<String>,
    pub deny: DenyResponse,
}

impl Config {
    /// Parses `pluginConfig` bytes; empty means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(&parse_json(bytes)?)
    }

    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let spec: Spec = from_value(doc)?;
        let header = spec.header.map_or_else(|| "allow".to_string(), |h| h.0);
        let values = spec
            .values
            .map_or_else(|| vec!["true".to_string()], |v| v.0);
        let default_body = format!("denied: header '{header}' is missing or not allowed\n");
        let deny = DenyResponse::from_spec(spec.deny, 403, default_body);
        Ok(Config {
            header,
            values,
            deny,
        })
    }
}

/// The header to check. Envoy holds the Host header as the pseudo-header
/// `:authority` and never shows a plugin a `host` header, so `host` would deny every
/// request: it is refused, and `:authority` is the one pseudo-header accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedHeader(pub String);

impl<'de> Deserialize<'de> for CheckedHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        if name.eq_ignore_ascii_case(":authority") {
            return Ok(CheckedHeader(":authority".to_string()));
        }
        let lower = header_name(name).map_err(de::Error::custom)?;
        if lower == "host" {
            return Err(de::Error::custom(
                "Envoy holds the Host header as ':authority' and never shows a 'host' header: use \"header\": \":authority\"",
            ));
        }
        Ok(CheckedHeader(lower))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for CheckedHeader {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CheckedHeader".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(:[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Tt][Yy]|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
            "not": {"pattern": "^[Hh][Oo][Ss][Tt]$"},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_means_the_seed_behaviour() {
        for input in ["", "{}", "  "] {
            let config = Config::parse(input.as_bytes()).unwrap();
            assert_eq!(config.header, "allow");
            assert_eq!(config.values, ["true"]);
            assert_eq!(config.deny.status(), 403);
            assert_eq!(
                config.deny.body(),
                "denied: header 'allow' is missing or not allowed\n"
            );
        }
    }

    #[test]
    fn fields_are_read() {
        let config = Config::parse(
            br#"{"header": "X-Team", "values": ["a", "B"], "deny": {"status": 401, "body": "no\n", "headers": {"x-why": "team"}}}"#,
        )
        .unwrap();
        assert_eq!(config.header, "x-team");
        assert_eq!(config.values, ["a", "B"]);
        assert_eq!(config.deny.status(), 401);
        assert_eq!(config.deny.body(), "no\n");
        assert_eq!(config.deny.headers(), [("x-why".into(), "team".into())]);
    }

    #[test]
    fn the_authority_pseudo_header_and_the_values_limit() {
        let config =
            Config::parse(br#"{"header": ":Authority", "values": ["a.example"]}"#).unwrap();
        assert_eq!(config.header, ":authority");
        let many: Vec<String> = (0..=MAX_VALUES).map(|i| i.to_string()).collect();
        let doc = serde_json::json!({"values": many});
        let err = Config::from_value(&doc).unwrap_err();
        assert_eq!(err.to_string(), "values: at most 256 items, got 257");
        let doc = serde_json::json!({"values": many[1..]});
        assert!(Config::from_value(&doc).is_ok());
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"header": ""}"#, "header: header name must not be empty"),
            (
                r#"{"header": 7}"#,
                "header: expected a string, got a number",
            ),
            (
                r#"{"header": "a b"}"#,
                "header: 'a b' is not a valid header name (RFC 9110 token)",
            ),
            (
                r#"{"header": "Host"}"#,
                "header: Envoy holds the Host header as ':authority' and never shows a 'host' header: use \"header\": \":authority\"",
            ),
            (
                r#"{"header": ":path"}"#,
                "header: ':path' is a pseudo-header and cannot be used here",
            ),
            (
                r#"{"header": "a", "header": "b"}"#,
                "header: appears twice in one object (each key may be given once)",
            ),
            (
                r#"{"values": []}"#,
                "values: must list at least one item",
            ),
            (
                r#"{"values": "true"}"#,
                "values: expected a list, got a string",
            ),
            (
                r#"{"values": [true]}"#,
                "values[0]: expected a string, got a boolean",
            ),
            (
                r#"{"deny": {"status": 700}}"#,
                "deny.status: must be 200..=599, got 700",
            ),
            (
                r#"{"deny": {"headers": {"x": "a\r\nb"}}}"#,
                "deny.headers.x: header value must not contain CR, LF or NUL",
            ),
            (
                r#"{"hedaer": "x"}"#,
                "hedaer: unknown field (known fields: deny, header, values)",
            ),
            (r#"[]"#, "expected an object, got a list"),
            (
                r#"{"header":"#,
                "invalid JSON: EOF while parsing a value at line 1 column 10",
            ),
        ];
        for (input, expected) in cases {
            let err = Config::parse(input.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), *expected, "{input}");
        }
    }
}
