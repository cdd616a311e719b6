//! The response-headers configuration: header entries and removals for responses
//! and requests, validated and compiled into plans. Used by the plugin and by xtask.

use crate::plan::{Action, Builder, Plan};
use common::config::fields::{HeaderValue, List};
use common::config::{from_value, parse_json, ConfigError};
use common::headers::{header_name, is_connection_specific, is_framing};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Applied to request headers before the request goes upstream.
    pub request: Plan,
    /// Applied to response headers on the way back to the client.
    pub response: Plan,
}

/// The most items in each of the four lists: every response (or request) walks them,
/// and 20,000 entries cost over a second of worker CPU per response.
pub const MAX_ITEMS: usize = 100;

/// The configuration as written (`pluginConfig`); its JSON Schema is the plugin's.
/// At least one list must change something.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Headers to change on responses, in order, after the removals (at most 100).
    pub response_headers: Option<List<EntrySpec, 0, MAX_ITEMS>>,
    /// Response headers to remove, before the entries run (at most 100).
    pub remove_response_headers: Option<List<ChangeableHeader, 0, MAX_ITEMS>>,
    /// Headers to change on requests before they go upstream, in order, after the
    /// removals (at most 100).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<List<schema::RequestEntry, 0, MAX_ITEMS>>")
    )]
    pub request_headers: Option<List<EntrySpec, 0, MAX_ITEMS>>,
    /// Request headers to remove, before the entries run (at most 100).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<List<schema::RequestHeader, 0, MAX_ITEMS>>")
    )]
    pub remove_request_headers: Option<List<ChangeableHeader, 0, MAX_ITEMS>>,
}

/// One header entry.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
// Inlined: a request entry's schema is this one with `host` refused too.
#[cfg_attr(feature = "schema", schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// The header name (case-insensitive; not a pseudo-header, framing or
    /// connection-specific header, nor `host` on requests).
    pub name: ChangeableHeader,
    /// The value (no CR, LF or NUL); may be empty.
    pub value: HeaderValue,
    /// `set` (default: replace or add), `append` (add one more value),
    /// `add_if_absent` or `overwrite_if_exists`.
    pub action: Option<Action>,
}

impl Config {
    /// Parses `pluginConfig` bytes. Empty input is `{}`, which is refused: see
    /// [`Config::from_value`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(&parse_json(bytes)?)
    }

    /// Reads and compiles a configuration. One that changes nothing is refused:
    /// it is almost always a `pluginConfig` that went missing or was put at the
    /// wrong level, and a gateway silently shipping without its security headers is
    /// worse than a deployment that stops with an error.
    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let spec: Spec = from_value(doc)?;
        let response = side(
            spec.remove_response_headers,
            "remove_response_headers",
            spec.response_headers,
            "response_headers",
            false,
        )?;
        let request = side(
            spec.remove_request_headers,
            "remove_request_headers",
            spec.request_headers,
            "request_headers",
            true,
        )?;
        if request.is_empty() && response.is_empty() {
            return Err(ConfigError::new(
                "",
                "nothing to do: give at least one of response_headers, \
                 remove_response_headers, request_headers, remove_request_headers",
            ));
        }
        Ok(Config { request, response })
    }
}

/// One direction: its removal list, then its entries. An entry that can never act
/// is refused at its path (`response_headers[2]`).
fn side(
    removals: Option<List<ChangeableHeader, 0, MAX_ITEMS>>,
    removals_key: &str,
    entries: Option<List<EntrySpec, 0, MAX_ITEMS>>,
    entries_key: &str,
    request: bool,
) -> Result<Plan, ConfigError> {
    let mut plan = Builder::default();
    for (i, name) in removals.map(|l| l.0).unwrap_or_default().iter().enumerate() {
        let path = format!("{removals_key}[{i}]");
        not_host_on_requests(&name.0, request, &path)?;
        plan.remove(&name.0, &path);
    }
    for (i, entry) in entries.map(|l| l.0).unwrap_or_default().iter().enumerate() {
        let path = format!("{entries_key}[{i}]");
        not_host_on_requests(&entry.name.0, request, &format!("{path}.name"))?;
        let action = entry.action.unwrap_or(Action::Set);
        plan.entry(&entry.name.0, &entry.value.0, action, &path)?;
    }
    Ok(plan.finish())
}

/// A request `host` header would travel upstream beside the `:authority` Envoy
/// writes as `Host`, giving the upstream two Host headers. Checked here rather
/// than in a request-only header type: a second set of derived deserializers
/// cost 5.9 KB of module (measured).
fn not_host_on_requests(name: &str, request: bool, path: &str) -> Result<(), ConfigError> {
    if request && name == "host" {
        return Err(ConfigError::new(
            path,
            "'host' cannot be changed here: Envoy holds it as :authority (route on the host instead)",
        ));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        Action::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
            de::Error::custom(format!(
                "unknown action '{}' (expected one of: {})",
                name.escape_debug(),
                names.join(", ")
            ))
        })
    }
}

/// A header name the plugin may change, lowercase. Pseudo-headers and invalid
/// names are refused by `header_name`; framing headers belong to Envoy's codec,
/// connection-specific ones to the connection (`host` on requests: see
/// [`not_host_on_requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeableHeader(pub String);

impl<'de> Deserialize<'de> for ChangeableHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        let lower = header_name(name).map_err(de::Error::custom)?;
        let refused = match lower.as_str() {
            framing if is_framing(framing) => format!(
                "'{lower}' frames the message: Envoy sets it, and it cannot be changed here"
            ),
            hop if is_connection_specific(hop) => format!(
                "'{lower}' is connection-specific: Envoy manages it per connection, and an HTTP/2 message carrying it is a protocol error"
            ),
            _ => return Ok(ChangeableHeader(lower)),
        };
        Err(de::Error::custom(refused))
    }
}

#[cfg(feature = "schema")]
mod schema {
    //! The JSON Schema of response-headers' own field types, with the limits their
    //! deserializers check.

    use super::*;
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    /// A header name's schema; `request` refuses `host` too.
    fn header(request: bool) -> Schema {
        // Case-insensitive: JSON Schema patterns have no flags.
        let mut refused = vec![
            "[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]",
            "[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]",
            "[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]",
            "[Kk][Ee][Ee][Pp]-[Aa][Ll][Ii][Vv][Ee]",
            "[Pp][Rr][Oo][Xx][Yy]-[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]",
            "[Tt][Ee]",
            "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]",
        ];
        if request {
            refused.push("[Hh][Oo][Ss][Tt]");
        }
        json_schema!({
            "type": "string",
            "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
            "not": {"pattern": format!("^({})$", refused.join("|"))},
        })
    }

    impl JsonSchema for ChangeableHeader {
        fn schema_name() -> Cow<'static, str> {
            "ChangeableHeader".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            header(false)
        }
    }

    /// The schema of a request header name (not `host` either).
    pub struct RequestHeader;

    impl JsonSchema for RequestHeader {
        fn schema_name() -> Cow<'static, str> {
            "RequestHeader".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            header(true)
        }
    }

    /// The schema of a request entry: an entry whose name is a [`RequestHeader`].
    pub struct RequestEntry;

    impl JsonSchema for RequestEntry {
        fn schema_name() -> Cow<'static, str> {
            "RequestEntry".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            let mut entry = EntrySpec::json_schema(generator);
            let name = entry
                .get_mut("properties")
                .and_then(|p| p.get_mut("name"))
                .and_then(|n| n.as_object_mut());
            if let (Some(name), Some(not)) = (name, header(true).get("not")) {
                name.insert("not".into(), not.clone());
            }
            entry
        }
    }

    impl JsonSchema for Action {
        fn schema_name() -> Cow<'static, str> {
            "Action".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            let names: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
            json_schema!({"type": "string", "enum": names})
        }
    }
}

#[cfg(test)]
mod tests;
