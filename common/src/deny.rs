//! The response a plugin answers with when it refuses a request, read from the
//! plugin's `deny` config and validated once at configure time.

use crate::config::fields::DenySpec;
use crate::headers::serialize;

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
