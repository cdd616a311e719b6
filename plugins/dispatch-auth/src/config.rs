//! The dispatch-auth configuration: which cluster answers, what the call carries,
//! which headers flow back, what a failure means, and the decision cache. Used by
//! the plugin and by xtask alike.

use common::config::fields::{Authority, Cluster, HeaderName, HeaderValue, Int, List, NonEmpty};
use common::config::{from_value, parse_json, ConfigError};
use common::headers::{header_name, is_connection_specific, is_framing, is_spelling_of, is_token};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// Headers the plugin always sets on the call; configuring them would contradict it.
pub const FORWARDED: [&str; 3] = ["x-forwarded-host", "x-forwarded-method", "x-forwarded-uri"];

/// The header added to a request let through by `failure_mode_allow`.
pub const FAILURE_MODE_HEADER: &str = "x-auth-failure-mode-allowed";

/// The longest `timeout_ms`.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// The most names each header list may hold. The plugin walks these lists for
/// every request header (and every auth-response header), so a long list costs
/// every request; 32 is far beyond what an auth integration forwards.
pub const MAX_NAMES: usize = 32;

/// `max_pending_calls` when not set. Envoy's default circuit breaker lets a
/// cluster have 1024 requests (and 1024 pending) across all workers; 100 per VM
/// (one VM per worker) keeps gateways of up to 10 workers under it, so the
/// plugin's own cap refuses first, with a log line that says why. A worker
/// calling a 20 ms auth service at 5,000 requests per second has about 100 calls
/// out; busier gateways raise the cap together with the cluster's circuit breaker.
pub const DEFAULT_MAX_PENDING_CALLS: usize = 100;

/// The range of `max_pending_calls`.
pub const MAX_PENDING_CALLS: std::ops::RangeInclusive<i64> = 1..=10_000;

/// The most entries of `headers_to_add`.
pub const MAX_ADDED: usize = 32;

/// `cache.max_bytes` when not set: 8 MiB per instance and VM. That holds about a
/// thousand of the largest cached denials (8 KiB pages) or tens of thousands of
/// allows, and costs a gateway with 8 workers 64 MiB at most, a small part of
/// what one V8 VM may use (1 GiB).
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;

/// The range of `cache.max_bytes`: at least room for a few of the largest
/// entries, at most a quarter of the 1 GiB V8 gives a wasm VM. Every plugin
/// instance of the module (Istio runs all WasmPlugins of one module in one VM per
/// worker) and every request in flight share that GiB; a VM that reaches it traps
/// and fails every later request.
pub const CACHE_BYTES: std::ops::RangeInclusive<i64> = (64 << 10)..=(256 << 20);

/// The configuration as written (`pluginConfig`); its JSON Schema is the plugin's.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The Envoy cluster the call goes to (`outbound|PORT||HOST` in Istio).
    pub cluster: Cluster,
    /// The call's `:authority`. Default: the host of an Istio cluster name, else
    /// the cluster name.
    pub authority: Option<Authority>,
    /// The call's path is this prefix followed by the request's path. Default
    /// empty (the request's path as it is). Not with `path`.
    pub path_prefix: Option<PrefixPath>,
    /// One fixed path for every call, instead of the request's. Not with
    /// `path_prefix`.
    pub path: Option<CallPathText>,
    /// The call's method. Default: the request's.
    pub method: Option<Method>,
    /// How long a call may take, in milliseconds. Default 1000.
    pub timeout_ms: Option<Int<1, { MAX_TIMEOUT_MS as i64 }>>,
    /// Request headers copied onto the call. Default `["authorization"]`.
    pub allowed_headers: Option<Names>,
    /// Fixed headers added to the call (`{"name": "value"}`).
    pub headers_to_add: Option<HeadersToAdd>,
    /// Headers of an allowing answer copied onto the request sent upstream.
    /// Default none.
    pub allowed_upstream_headers: Option<Names>,
    /// Headers of a denying answer copied onto the denial. Default
    /// `["www-authenticate", "location", "content-type"]`.
    pub allowed_client_headers: Option<Names>,
    /// Let a request through when the call fails (marked with the header
    /// `x-auth-failure-mode-allowed`). Default false. Overload is refused anyway.
    pub failure_mode_allow: Option<bool>,
    /// The status of a request refused because the call failed. Default 403.
    pub status_on_error: Option<Int<400, 599>>,
    /// Calls this VM may have out to the cluster before new requests are refused
    /// (with `status_on_error`). Default 100.
    pub max_pending_calls:
        Option<Int<{ *MAX_PENDING_CALLS.start() }, { *MAX_PENDING_CALLS.end() }>>,
    /// The decision cache. Default: no cache.
    pub cache: Option<CacheSpec>,
}

/// `cache`: answers kept for a while, keyed by method, authority, path and
/// `key_headers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// How long an answer is kept, in milliseconds; 0 keeps none. Default 0.
    pub ttl_ms: Option<Int<0, 86_400_000>>,
    /// The most answers kept. Default 10000.
    pub max_entries: Option<Int<1, 1_000_000>>,
    /// What the kept answers may take in bytes, bookkeeping included, per
    /// instance and VM (64 KiB to 256 MiB). Default 8 MiB.
    pub max_bytes: Option<CacheBytes>,
    /// Headers whose values are part of the key. Default: `allowed_headers`.
    pub key_headers: Option<Names>,
}

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
    /// What the cache's entries may take, bookkeeping included.
    pub max_bytes: usize,
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
    /// Calls this VM may have out to `cluster` (shared with every instance in the
    /// VM that calls it) before new requests are refused.
    pub max_pending_calls: usize,
    pub cache: Cache,
}

/// The `:authority` Istio's cluster naming implies: `outbound|8000||auth.ns.svc`
/// names the service `auth.ns.svc`. Any other name is used as it is.
pub use common::config::fields::default_authority;

/// The reason a header cannot be used in a given role, if any.
fn reserved(name: &str, role: Role) -> Option<&'static str> {
    let framing = is_framing(name);
    let hop = is_connection_specific(name);
    match role {
        Role::Call if framing => Some("cannot be sent: the call carries no body"),
        Role::Call if hop => Some("is connection-specific and cannot be sent on the call"),
        Role::Call if name == "host" => Some("is the call's :authority: set `authority` instead"),
        Role::Call if FORWARDED.contains(&name) => Some("is always set by the plugin"),
        Role::Upstream | Role::Client if framing => Some("is set by Envoy and cannot be copied"),
        Role::Upstream if hop => Some("is connection-specific and cannot be copied"),
        Role::Upstream if name == "host" => Some("would change the request's :authority"),
        Role::Upstream if is_spelling_of(name.as_bytes(), FAILURE_MODE_HEADER) => {
            Some("is set by the plugin")
        }
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Role {
    Call,
    Upstream,
    Client,
}

/// A list of header names. Which names a list refuses depends on its role,
/// checked after deserializing: one list type for the four lists makes a smaller
/// module than a type per role (see the README).
pub type Names = List<HeaderName, 0, MAX_NAMES>;

/// The names of list `field` (lowercase, each once), each checked for `role`,
/// or `default` when the list is left out.
fn names(
    list: Option<Names>,
    field: &str,
    role: Option<Role>,
    default: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let Some(List(listed)) = list else {
        return Ok(default.iter().map(|s| s.to_string()).collect());
    };
    let mut out: Vec<String> = Vec::new();
    for (i, HeaderName(name)) in listed.into_iter().enumerate() {
        if let Some(why) = role.and_then(|r| reserved(&name, r)) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("'{name}' {why}"),
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// `headers_to_add`: fixed headers for the call, each as written (for errors),
/// lowercase, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeadersToAdd(pub Vec<Added>);

/// One of `headers_to_add`. Its value may be a credential for the auth service
/// (an API key): no error quotes it, and `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Added {
    pub written: String,
    pub name: String,
    pub value: String,
}

impl fmt::Debug for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Added({:?}: <{} bytes>)", self.name, self.value.len())
    }
}

/// A name of `headers_to_add`: a token that may be sent on the call.
struct AddedName {
    written: String,
    name: String,
}

impl<'de> Deserialize<'de> for AddedName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = <&str>::deserialize(deserializer)?;
        let name = header_name(written).map_err(de::Error::custom)?;
        if let Some(why) = reserved(&name, Role::Call) {
            return Err(de::Error::custom(format!("'{name}' {why}")));
        }
        Ok(AddedName {
            written: written.to_string(),
            name,
        })
    }
}

impl<'de> Deserialize<'de> for HeadersToAdd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = HeadersToAdd;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names and values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeadersToAdd, A::Error> {
                if let Some(len) = map.size_hint().filter(|&n| n > MAX_ADDED) {
                    return Err(de::Error::custom(format!(
                        "at most {MAX_ADDED} entries, got {len}"
                    )));
                }
                let mut out = Vec::new();
                while let Some(AddedName { written, name }) = map.next_key()? {
                    let HeaderValue(value) = map.next_value()?;
                    out.push(Added {
                        written,
                        name,
                        value,
                    });
                }
                Ok(HeadersToAdd(out))
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

/// A path the call is sent to (`path`, or a non-empty `path_prefix`): starts
/// with '/', no spaces, '#', control or non-ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPathText(pub String);

impl<'de> Deserialize<'de> for CallPathText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let path = <&str>::deserialize(deserializer)?;
        check_call_path(path).map_err(de::Error::custom)?;
        Ok(CallPathText(path.to_string()))
    }
}

fn check_call_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "must start with '/', got '{}'",
            path.escape_debug()
        ));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'#' || !b.is_ascii())
    {
        return Err("must not contain spaces, '#', control or non-ASCII characters".into());
    }
    Ok(())
}

/// `path_prefix`: a call path, or empty for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixPath(pub String);

impl<'de> Deserialize<'de> for PrefixPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let path = <&str>::deserialize(deserializer)?;
        if !path.is_empty() {
            check_call_path(path).map_err(de::Error::custom)?;
        }
        Ok(PrefixPath(path.to_string()))
    }
}

/// The call's method: an RFC 9110 token, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(pub String);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmpty(method) = NonEmpty::deserialize(deserializer)?;
        if !is_token(&method) {
            return Err(de::Error::custom(format!(
                "'{}' is not a valid HTTP method (RFC 9110 token)",
                method.escape_debug()
            )));
        }
        Ok(Method(method))
    }
}

/// `cache.max_bytes`, refused outside [`CACHE_BYTES`] with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBytes(pub usize);

impl<'de> Deserialize<'de> for CacheBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Int(bytes) = Int::<{ i64::MIN }, { i64::MAX }>::deserialize(deserializer)?;
        if !CACHE_BYTES.contains(&bytes) {
            return Err(de::Error::custom(format!(
                "must be {}..={} (64 KiB to 256 MiB: a wasm VM stops at 1 GiB, shared by \
                 every plugin instance in it), got {bytes}",
                CACHE_BYTES.start(),
                CACHE_BYTES.end()
            )));
        }
        Ok(CacheBytes(bytes as usize))
    }
}

impl Config {
    /// Parses `pluginConfig` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(&parse_json(bytes)?)
    }

    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let spec: Spec = from_value(doc)?;
        let authority = match spec.authority {
            Some(Authority(authority)) => authority,
            None => spec.cluster.default_authority().to_string(),
        };
        let path = match (spec.path_prefix, spec.path) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "path",
                    "cannot be combined with path_prefix: set one of them",
                ))
            }
            (None, Some(fixed)) => CallPath::Fixed(fixed.0),
            (Some(prefix), None) => CallPath::Prefix(prefix.0),
            (None, None) => CallPath::Prefix(String::new()),
        };
        let allowed_headers = names(
            spec.allowed_headers,
            "allowed_headers",
            Some(Role::Call),
            &["authorization"],
        )?;
        let mut headers_to_add = Vec::new();
        for added in spec.headers_to_add.unwrap_or_default().0 {
            if allowed_headers.contains(&added.name) {
                return Err(ConfigError::new(
                    format!("headers_to_add.{}", added.written),
                    format!(
                        "'{}' is also in allowed_headers: a header is either copied or fixed",
                        added.name
                    ),
                ));
            }
            headers_to_add.push((added.name, added.value));
        }
        let cache = spec.cache.unwrap_or_default();
        Ok(Config {
            authority,
            path,
            method: spec.method.map(|m| m.0),
            timeout_ms: spec.timeout_ms.map_or(1000, |t| t.0 as u64),
            allowed_upstream_headers: names(
                spec.allowed_upstream_headers,
                "allowed_upstream_headers",
                Some(Role::Upstream),
                &[],
            )?,
            allowed_client_headers: names(
                spec.allowed_client_headers,
                "allowed_client_headers",
                Some(Role::Client),
                &["www-authenticate", "location", "content-type"],
            )?,
            failure_mode_allow: spec.failure_mode_allow.unwrap_or(false),
            status_on_error: spec.status_on_error.map_or(403, |s| s.0 as u32),
            max_pending_calls: spec
                .max_pending_calls
                .map_or(DEFAULT_MAX_PENDING_CALLS, |n| n.0 as usize),
            cache: Cache {
                ttl_ms: cache.ttl_ms.map_or(0, |t| t.0 as u64),
                max_entries: cache.max_entries.map_or(10_000, |n| n.0 as usize),
                max_bytes: cache.max_bytes.map_or(DEFAULT_CACHE_BYTES, |b| b.0),
                key_headers: match cache.key_headers {
                    Some(list) => names(Some(list), "cache.key_headers", None, &[])?,
                    None => allowed_headers.clone(),
                },
            },
            cluster: spec.cluster.0,
            allowed_headers,
            headers_to_add,
        })
    }
}

#[cfg(feature = "schema")]
mod schema;

#[cfg(test)]
mod tests;
