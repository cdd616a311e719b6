//! The dispatch-auth configuration: which cluster answers, what the call carries,
//! which headers flow back, what a failure means, and the decision cache. Used by
//! the plugin and by xtask alike.

use common::config::{parse_json, ConfigError, Fields, Node};
use common::headers::{check_name, check_value, is_framing};
use serde_json::Value;

/// Headers the plugin always sets on the call; configuring them would contradict it.
pub const FORWARDED: [&str; 3] = ["x-forwarded-host", "x-forwarded-method", "x-forwarded-uri"];

/// The header added to a request let through by `failure_mode_allow`.
pub const FAILURE_MODE_HEADER: &str = "x-auth-failure-mode-allowed";

/// Where the call goes: the original path behind a prefix, or one fixed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallPath {
    Prefix(String),
    Fixed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// 0 = no cache.
    pub ttl_ms: u64,
    pub max_entries: usize,
    /// Lowercase names whose values (with method, authority and path) make the key.
    pub key_headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Envoy cluster the call goes to (`outbound|PORT||HOST` in Istio).
    pub cluster: String,
    /// The call's `:authority`.
    pub authority: String,
    pub path: CallPath,
    /// The call's `:method`; `None` = the original request's method.
    pub method: Option<String>,
    pub timeout_ms: u64,
    /// Lowercase names of request headers copied to the call.
    pub allowed_headers: Vec<String>,
    /// Fixed headers added to the call, names lowercase.
    pub headers_to_add: Vec<(String, String)>,
    /// Lowercase names of auth-response headers copied onto an allowed request.
    pub allowed_upstream_headers: Vec<String>,
    /// Lowercase names of auth-response headers copied onto a denial.
    pub allowed_client_headers: Vec<String>,
    pub failure_mode_allow: bool,
    pub status_on_error: u32,
    pub cache: Cache,
}

/// The `:authority` Istio's cluster naming implies: `outbound|8000||auth.ns.svc`
/// names the service `auth.ns.svc`. Any other name is used as it is.
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

/// The reason a header cannot be used in a given role, if any.
fn reserved(name: &str, role: Role) -> Option<&'static str> {
    let framing = is_framing(name);
    let hop = matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "te" | "upgrade"
    );
    match role {
        Role::Call if framing => Some("cannot be sent: the call carries no body"),
        Role::Call if hop => Some("is connection-specific and cannot be sent on the call"),
        Role::Call if name == "host" => Some("is the call's :authority: set `authority` instead"),
        Role::Call if FORWARDED.contains(&name) => Some("is always set by the plugin"),
        Role::Upstream | Role::Client if framing => Some("is set by Envoy and cannot be copied"),
        Role::Upstream if hop => Some("is connection-specific and cannot be copied"),
        Role::Upstream if name == "host" => Some("would change the request's :authority"),
        Role::Upstream if name == FAILURE_MODE_HEADER => Some("is set by the plugin"),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Role {
    Call,
    Upstream,
    Client,
}

/// A list of header names, lowercased and deduplicated, each checked for `role`.
fn names(node: &Node<'_>, role: Option<Role>) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for item in node.list()? {
        let name = check_name(&item, item.str()?)?;
        if let Some(why) = role.and_then(|r| reserved(&name, r)) {
            return Err(item.error(format!("'{name}' {why}")));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn path_value(node: &Node<'_>) -> Result<String, ConfigError> {
    let path = node.str()?;
    if !path.starts_with('/') {
        return Err(node.error(format!(
            "must start with '/', got '{}'",
            path.escape_debug()
        )));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'#' || !b.is_ascii())
    {
        return Err(node.error("must not contain spaces, '#', control or non-ASCII characters"));
    }
    Ok(path.to_string())
}

fn names_or(
    fields: &mut Fields<'_>,
    key: &'static str,
    role: Option<Role>,
    default: &[&str],
) -> Result<Vec<String>, ConfigError> {
    match fields.get(key) {
        Some(node) => names(&node, role),
        None => Ok(default.iter().map(|s| s.to_string()).collect()),
    }
}

impl Config {
    /// Parses `pluginConfig` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(&parse_json(bytes)?)
    }

    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let mut fields = Fields::root(doc)?;
        let cluster = fields.require("cluster")?.non_empty_str()?.to_string();
        let authority = match fields.get("authority") {
            Some(node) => check_value(&node, node.non_empty_str()?)?.to_string(),
            None => default_authority(&cluster).to_string(),
        };
        let prefix = fields.get("path_prefix");
        let fixed = fields.get("path");
        let path = match (prefix, fixed) {
            (Some(_), Some(fixed)) => {
                return Err(fixed.error("cannot be combined with path_prefix: set one of them"))
            }
            (None, Some(fixed)) => CallPath::Fixed(path_value(&fixed)?),
            (Some(prefix), None) if prefix.str()?.is_empty() => CallPath::Prefix(String::new()),
            (Some(prefix), None) => CallPath::Prefix(path_value(&prefix)?),
            (None, None) => CallPath::Prefix(String::new()),
        };
        let method = match fields.get("method") {
            Some(node) => {
                let method = node.non_empty_str()?;
                if !common::headers::is_token(method) {
                    return Err(node.error(format!(
                        "'{}' is not a valid HTTP method (RFC 9110 token)",
                        method.escape_debug()
                    )));
                }
                Some(method.to_string())
            }
            None => None,
        };
        let timeout_ms = fields.opt_int_in("timeout_ms", 1..=60_000)?.unwrap_or(1000) as u64;
        let allowed_headers = names_or(
            &mut fields,
            "allowed_headers",
            Some(Role::Call),
            &["authorization"],
        )?;
        let mut headers_to_add = Vec::new();
        if let Some(node) = fields.get("headers_to_add") {
            for (name, value) in node.str_map(32)? {
                let lower = check_name(&value, name)?;
                if let Some(why) = reserved(&lower, Role::Call) {
                    return Err(value.error(format!("'{lower}' {why}")));
                }
                if allowed_headers.contains(&lower) {
                    return Err(value.error(format!(
                        "'{lower}' is also in allowed_headers: a header is either copied or fixed"
                    )));
                }
                headers_to_add.push((lower, check_value(&value, value.str()?)?.to_string()));
            }
        }
        let allowed_upstream_headers = names_or(
            &mut fields,
            "allowed_upstream_headers",
            Some(Role::Upstream),
            &[],
        )?;
        let allowed_client_headers = names_or(
            &mut fields,
            "allowed_client_headers",
            Some(Role::Client),
            &["www-authenticate", "location", "content-type"],
        )?;
        let failure_mode_allow = fields.opt_bool("failure_mode_allow")?.unwrap_or(false);
        let status_on_error = fields
            .opt_int_in("status_on_error", 400..=599)?
            .unwrap_or(403) as u32;
        let cache = match fields.get("cache") {
            Some(node) => {
                let mut cache = node.fields()?;
                let ttl_ms = cache.opt_int_in("ttl_ms", 0..=86_400_000)?.unwrap_or(0) as u64;
                let max_entries = cache
                    .opt_int_in("max_entries", 1..=1_000_000)?
                    .unwrap_or(10_000) as usize;
                let key_headers = match cache.get("key_headers") {
                    Some(node) => names(&node, None)?,
                    None => allowed_headers.clone(),
                };
                cache.finish()?;
                Cache {
                    ttl_ms,
                    max_entries,
                    key_headers,
                }
            }
            None => Cache {
                ttl_ms: 0,
                max_entries: 10_000,
                key_headers: allowed_headers.clone(),
            },
        };
        fields.finish()?;
        Ok(Config {
            cluster,
            authority,
            path,
            method,
            timeout_ms,
            allowed_headers,
            headers_to_add,
            allowed_upstream_headers,
            allowed_client_headers,
            failure_mode_allow,
            status_on_error,
            cache,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::parse(br#"{"cluster": "outbound|8000||auth.default.svc.cluster.local"}"#)
            .unwrap();
        assert_eq!(c.cluster, "outbound|8000||auth.default.svc.cluster.local");
        assert_eq!(c.authority, "auth.default.svc.cluster.local");
        assert_eq!(c.path, CallPath::Prefix(String::new()));
        assert_eq!(c.method, None);
        assert_eq!(c.timeout_ms, 1000);
        assert_eq!(c.allowed_headers, ["authorization"]);
        assert!(c.headers_to_add.is_empty());
        assert!(c.allowed_upstream_headers.is_empty());
        assert_eq!(
            c.allowed_client_headers,
            ["www-authenticate", "location", "content-type"]
        );
        assert!(!c.failure_mode_allow);
        assert_eq!(c.status_on_error, 403);
        assert_eq!(
            c.cache,
            Cache {
                ttl_ms: 0,
                max_entries: 10_000,
                key_headers: vec!["authorization".into()]
            }
        );
    }

    #[test]
    fn every_field_is_read() {
        let c = Config::parse(
            br#"{
              "cluster": "auth", "authority": "auth.example", "path_prefix": "/check",
              "method": "POST", "timeout_ms": 250,
              "allowed_headers": ["Authorization", "cookie", "authorization"],
              "headers_to_add": {"X-Auth-Source": "gateway"},
              "allowed_upstream_headers": ["X-User-Id"],
              "allowed_client_headers": ["www-authenticate"],
              "failure_mode_allow": true, "status_on_error": 503,
              "cache": {"ttl_ms": 5000, "max_entries": 7, "key_headers": ["Authorization"]}
            }"#,
        )
        .unwrap();
        assert_eq!(c.authority, "auth.example");
        assert_eq!(c.path, CallPath::Prefix("/check".into()));
        assert_eq!(c.method.as_deref(), Some("POST"));
        assert_eq!(c.timeout_ms, 250);
        assert_eq!(c.allowed_headers, ["authorization", "cookie"]);
        assert_eq!(
            c.headers_to_add,
            [("x-auth-source".to_string(), "gateway".to_string())]
        );
        assert_eq!(c.allowed_upstream_headers, ["x-user-id"]);
        assert_eq!(c.allowed_client_headers, ["www-authenticate"]);
        assert!(c.failure_mode_allow);
        assert_eq!(c.status_on_error, 503);
        assert_eq!(c.cache.ttl_ms, 5000);
        assert_eq!(c.cache.max_entries, 7);
        assert_eq!(c.cache.key_headers, ["authorization"]);
        let fixed = Config::parse(br#"{"cluster": "a", "path": "/verify?x=1"}"#).unwrap();
        assert_eq!(fixed.path, CallPath::Fixed("/verify?x=1".into()));
        let empty_prefix = Config::parse(br#"{"cluster": "a", "path_prefix": ""}"#).unwrap();
        assert_eq!(empty_prefix.path, CallPath::Prefix(String::new()));
    }

    #[test]
    fn default_authority_follows_istio_cluster_names() {
        let cases = [
            (
                "outbound|8000||auth.default.svc.cluster.local",
                "auth.default.svc.cluster.local",
            ),
            (
                "outbound|80|v1|auth.ns.svc.cluster.local",
                "auth.ns.svc.cluster.local",
            ),
            ("inbound|9000||", "inbound|9000||"),
            ("outbound|8000||", "outbound|8000||"),
            ("auth", "auth"),
            ("outbound|1|2|3|4", "outbound|1|2|3|4"),
            ("other|1||host", "other|1||host"),
        ];
        for (cluster, expected) in cases {
            assert_eq!(default_authority(cluster), expected, "{cluster}");
        }
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("{}", "cluster: is required"),
            (r#"{"cluster": ""}"#, "cluster: must not be empty"),
            (r#"{"cluster": 1}"#, "cluster: expected a string, got a number"),
            (
                r#"{"cluster": "a", "path": "/a", "path_prefix": "/b"}"#,
                "path: cannot be combined with path_prefix: set one of them",
            ),
            (r#"{"cluster": "a", "path": "a"}"#, "path: must start with '/', got 'a'"),
            (
                r#"{"cluster": "a", "path_prefix": "/a b"}"#,
                "path_prefix: must not contain spaces, '#', control or non-ASCII characters",
            ),
            (
                r#"{"cluster": "a", "timeout_ms": 0}"#,
                "timeout_ms: must be 1..=60000, got 0",
            ),
            (
                r#"{"cluster": "a", "timeout_ms": 60001}"#,
                "timeout_ms: must be 1..=60000, got 60001",
            ),
            (
                r#"{"cluster": "a", "method": "GE T"}"#,
                "method: 'GE T' is not a valid HTTP method (RFC 9110 token)",
            ),
            (
                r#"{"cluster": "a", "authority": "a\nb"}"#,
                "authority: header value must not contain CR, LF or NUL",
            ),
            (
                r#"{"cluster": "a", "allowed_headers": ["bad name"]}"#,
                "allowed_headers[0]: 'bad name' is not a valid header name (RFC 9110 token)",
            ),
            (
                r#"{"cluster": "a", "allowed_headers": [":path"]}"#,
                "allowed_headers[0]: ':path' is a pseudo-header and cannot be used here",
            ),
            (
                r#"{"cluster": "a", "allowed_headers": ["authorization", "Content-Length"]}"#,
                "allowed_headers[1]: 'content-length' cannot be sent: the call carries no body",
            ),
            (
                r#"{"cluster": "a", "allowed_headers": ["x-forwarded-uri"]}"#,
                "allowed_headers[0]: 'x-forwarded-uri' is always set by the plugin",
            ),
            (
                r#"{"cluster": "a", "allowed_headers": "authorization"}"#,
                "allowed_headers: expected a list, got a string",
            ),
            (
                r#"{"cluster": "a", "headers_to_add": {"x-a": 1}}"#,
                "headers_to_add.x-a: expected a string, got a number",
            ),
            (
                r#"{"cluster": "a", "headers_to_add": {"Authorization": "x"}}"#,
                "headers_to_add.Authorization: 'authorization' is also in allowed_headers: a header is either copied or fixed",
            ),
            (
                r#"{"cluster": "a", "headers_to_add": {"x-a": "a\r\nb"}}"#,
                "headers_to_add.x-a: header value must not contain CR, LF or NUL",
            ),
            (
                r#"{"cluster": "a", "headers_to_add": {"x-forwarded-host": "h"}}"#,
                "headers_to_add.x-forwarded-host: 'x-forwarded-host' is always set by the plugin",
            ),
            (
                r#"{"cluster": "a", "allowed_upstream_headers": ["x-auth-failure-mode-allowed"]}"#,
                "allowed_upstream_headers[0]: 'x-auth-failure-mode-allowed' is set by the plugin",
            ),
            (
                r#"{"cluster": "a", "allowed_client_headers": ["transfer-encoding"]}"#,
                "allowed_client_headers[0]: 'transfer-encoding' is set by Envoy and cannot be copied",
            ),
            (
                r#"{"cluster": "a", "failure_mode_allow": "yes"}"#,
                "failure_mode_allow: expected a boolean, got a string",
            ),
            (
                r#"{"cluster": "a", "status_on_error": 200}"#,
                "status_on_error: must be 400..=599, got 200",
            ),
            (
                r#"{"cluster": "a", "cache": {"ttl_ms": -1}}"#,
                "cache.ttl_ms: must be 0..=86400000, got -1",
            ),
            (
                r#"{"cluster": "a", "cache": {"max_entries": 0}}"#,
                "cache.max_entries: must be 1..=1000000, got 0",
            ),
            (
                r#"{"cluster": "a", "cache": {"key_headers": ["a b"]}}"#,
                "cache.key_headers[0]: 'a b' is not a valid header name (RFC 9110 token)",
            ),
            (
                r#"{"cluster": "a", "cache": {"ttl": 1}}"#,
                "cache.ttl: unknown field (known fields: key_headers, max_entries, ttl_ms)",
            ),
            (
                r#"{"cluster": "a", "timeout": 1}"#,
                "timeout: unknown field (known fields: allowed_client_headers, allowed_headers, allowed_upstream_headers, authority, cache, cluster, failure_mode_allow, headers_to_add, method, path, path_prefix, status_on_error, timeout_ms)",
            ),
            ("[]", "expected an object, got a list"),
            ("", "cluster: is required"),
        ];
        for (input, expected) in cases {
            let err = Config::parse(input.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), *expected, "{input}");
        }
    }
}
