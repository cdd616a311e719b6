//! The response a plugin answers with when it refuses a request, read from the
//! plugin's `deny` config and validated once at configure time.

use crate::config::fields::{HeaderName, HeaderValue};
use crate::headers::{is_framing, serialize};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;

/// A local reply: status, body and extra headers (names lowercase), with the
/// headers serialized once for the host, so a denial costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    status: u32,
    body: String,
    headers: Vec<(String, String)>,
    wire_headers: Vec<u8>,
}

impl DenyResponse {
    /// A reply with these parts; header names must already be checked and lowercase.
    pub fn new(status: u32, body: impl Into<String>, headers: Vec<(String, String)>) -> Self {
        let pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let wire_headers = serialize(&pairs);
        DenyResponse {
            status,
            body: body.into(),
            headers,
            wire_headers,
        }
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The headers in the host's serialized form.
    pub fn wire_headers(&self) -> &[u8] {
        &self.wire_headers
    }

    /// The denial a `deny` field describes, each part left out taking its default.
    pub fn from_spec(
        spec: Option<DenySpec>,
        default_status: u32,
        default_body: impl Into<String>,
    ) -> Self {
        let spec = spec.unwrap_or_default();
        DenyResponse::new(
            spec.status.map_or(default_status, |s| s.0),
            spec.body.unwrap_or_else(|| default_body.into()),
            spec.headers.unwrap_or_default().0,
        )
    }
}

/// The most headers a denial may carry.
pub const MAX_HEADERS: usize = 32;

/// Statuses whose responses carry no content (RFC 9110 §15.3.5, §15.3.6, §15.4.5).
/// Envoy sends a local reply's body whatever the status, and a keep-alive client
/// then reads those bytes as the start of the next response.
pub fn must_not_have_body(status: u32) -> bool {
    matches!(status, 100..=199 | 204 | 205 | 304)
}

/// The status of a denial: 200..=599, and one that may carry a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyStatus(pub u32);

impl<'de> Deserialize<'de> for DenyStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let status = i64::deserialize(deserializer)?;
        let status = u32::try_from(status)
            .ok()
            .filter(|s| (200..=599).contains(s))
            .ok_or_else(|| de::Error::custom(format!("must be 200..=599, got {status}")))?;
        if must_not_have_body(status) {
            return Err(de::Error::custom(format!(
                "{status} cannot be a denial: a {status} response has no body, \
                 and a denial sent with one breaks the client's connection"
            )));
        }
        Ok(DenyStatus(status))
    }
}

/// A denial's extra headers, `{"name": "value"}` in document order. Framing
/// headers are refused: Envoy computes them for a local reply, and a configured
/// one would contradict the body it sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DenyHeaders(pub Vec<(String, String)>);

/// A header name a denial may set.
struct DenyHeaderName(String);

impl<'de> Deserialize<'de> for DenyHeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let HeaderName(name) = HeaderName::deserialize(deserializer)?;
        if is_framing(&name) {
            return Err(de::Error::custom(format!(
                "'{name}' is set by Envoy and cannot be configured"
            )));
        }
        Ok(DenyHeaderName(name))
    }
}

impl<'de> Deserialize<'de> for DenyHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = DenyHeaders;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names and values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DenyHeaders, A::Error> {
                if let Some(len) = map.size_hint().filter(|&n| n > MAX_HEADERS) {
                    return Err(de::Error::custom(format!(
                        "at most {MAX_HEADERS} entries, got {len}"
                    )));
                }
                let mut out = Vec::new();
                while let Some(DenyHeaderName(name)) = map.next_key()? {
                    let HeaderValue(value) = map.next_value()?;
                    out.push((name, value));
                }
                Ok(DenyHeaders(out))
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

/// What a refused request gets back: status, body and headers, each part left
/// out taking the plugin's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DenySpec {
    /// The response status, 200..=599 (not 204, 205 or 304: they carry no body).
    pub status: Option<DenyStatus>,
    /// The response body.
    pub body: Option<String>,
    /// Extra response headers (not content-length or transfer-encoding).
    pub headers: Option<DenyHeaders>,
}

#[cfg(feature = "schema")]
mod schema {
    //! The JSON Schema of a denial's fields, with the limits their deserializers check.

    use super::*;
    use crate::config::fields::schema::{TOKEN, VALUE};
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    impl JsonSchema for DenyStatus {
        fn schema_name() -> Cow<'static, str> {
            "DenyStatus".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "integer",
                "minimum": 200,
                "maximum": 599,
                "not": {"enum": [204, 205, 304]},
            })
        }
    }

    impl JsonSchema for DenyHeaders {
        fn schema_name() -> Cow<'static, str> {
            "DenyHeaders".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "object",
                "maxProperties": MAX_HEADERS,
                "propertyNames": {
                    "pattern": TOKEN,
                    "not": {"enum": ["content-length", "transfer-encoding"]},
                },
                "additionalProperties": {"type": "string", "pattern": VALUE},
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_value, ConfigError};
    use serde_json::json;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        deny: Option<DenySpec>,
    }

    fn parse(doc: serde_json::Value) -> Result<DenyResponse, ConfigError> {
        let doc: Doc = from_value(&doc)?;
        Ok(DenyResponse::from_spec(doc.deny, 403, "denied\n"))
    }

    #[test]
    fn defaults_apply_when_absent() {
        let deny = parse(json!({})).unwrap();
        assert_eq!(deny.status(), 403);
        assert_eq!(deny.body(), "denied\n");
        assert!(deny.headers().is_empty());
    }

    #[test]
    fn fields_are_read_and_names_lowercased() {
        let deny =
            parse(json!({"deny": {"status": 401, "body": "no", "headers": {"X-A": "1"}}})).unwrap();
        assert_eq!(deny.status(), 401);
        assert_eq!(deny.body(), "no");
        assert_eq!(deny.headers(), vec![("x-a".to_string(), "1".to_string())]);
    }

    #[test]
    fn the_wire_form_holds_the_headers_in_order() {
        let deny = parse(json!({"deny": {"headers": {"X-B": "2", "x-a": "1"}}})).unwrap();
        let got: Vec<_> = crate::headers::pairs(deny.wire_headers()).collect();
        assert_eq!(got, [(&b"x-b"[..], &b"2"[..]), (&b"x-a"[..], &b"1"[..])]);
        let empty = parse(json!({})).unwrap();
        assert_eq!(crate::headers::pairs(empty.wire_headers()).count(), 0);
        assert_eq!(empty.wire_headers(), 0u32.to_le_bytes());
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (json!({"deny": {"status": 700}}), "deny.status: must be 200..=599, got 700"),
            (json!({"deny": {"status": 199}}), "deny.status: must be 200..=599, got 199"),
            (json!({"deny": {"status": 204}}), "deny.status: 204 cannot be a denial: a 204 response has no body, and a denial sent with one breaks the client's connection"),
            (json!({"deny": {"status": 205}}), "deny.status: 205 cannot be a denial: a 205 response has no body, and a denial sent with one breaks the client's connection"),
            (json!({"deny": {"status": 304}}), "deny.status: 304 cannot be a denial: a 304 response has no body, and a denial sent with one breaks the client's connection"),
            (json!({"deny": {"status": "403"}}), "deny.status: expected a whole number, got a string"),
            (json!({"deny": {"body": 1}}), "deny.body: expected a string, got a number"),
            (json!({"deny": {"headers": {"a b": "1"}}}), "deny.headers.a b: 'a b' is not a valid header name (RFC 9110 token)"),
            (json!({"deny": {"headers": {"x": "a\nb"}}}), "deny.headers.x: header value must not contain CR, LF or NUL"),
            (json!({"deny": {"headers": {"Content-Length": "1"}}}), "deny.headers.Content-Length: 'content-length' is set by Envoy and cannot be configured"),
            (json!({"deny": {"code": 1}}), "deny.code: unknown field (known fields: body, headers, status)"),
            (json!({"deny": []}), "deny: expected an object, got a list"),
        ];
        for (doc, expected) in cases {
            assert_eq!(
                parse(doc.clone()).unwrap_err().to_string(),
                expected,
                "{doc}"
            );
        }
    }
}
