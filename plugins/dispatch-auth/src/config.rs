//! The dispatch-auth configuration: which cluster answers, what the call carries,
//! which headers flow back, what a failure means, and the decision cache. Used by
//! the plugin and by xtask alike.

use common::config::{parse_json, ConfigError, Fields, Node};
use common::headers::{check_name, check_value, is_framing, is_spelling_of};
use serde_json::Value;

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

/// A list of at most [`MAX_NAMES`] header names, lowercased and deduplicated,
/// each checked for `role`.
fn names(node: &Node<'_>, role: Option<Role>) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for item in node.list_at_most(MAX_NAMES)? {
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

/// `cache.max_bytes`, refused outside [`CACHE_BYTES`] with the reason.
fn cache_bytes(node: &Node<'_>) -> Result<usize, ConfigError> {
    let bytes = node.int_in(i64::MIN..=i64::MAX)?;
    if !CACHE_BYTES.contains(&bytes) {
        return Err(node.error(format!(
            "must be {}..={} (64 KiB to 256 MiB: a wasm VM stops at 1 GiB, shared by \
             every plugin instance in it), got {bytes}",
            CACHE_BYTES.start(),
            CACHE_BYTES.end()
        )));
    }
    Ok(bytes as usize)
}

impl Config {
    /// Parses `pluginConfig` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(&parse_json(bytes)?)
    }

    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let mut fields = Fields::root(doc)?;
        let cluster_node = fields.require("cluster")?;
        let cluster = cluster_node.non_empty_str()?.to_string();
        // The call's :authority derives from it: a CR or LF there would end up in
        // a header of the call.
        if cluster.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(cluster_node.error("must not contain spaces or control characters"));
        }
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
        let timeout_ms = fields
            .opt_int_in("timeout_ms", 1..=MAX_TIMEOUT_MS as i64)?
            .unwrap_or(1000) as u64;
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
        let max_pending_calls = fields
            .opt_int_in("max_pending_calls", MAX_PENDING_CALLS)?
            .map_or(DEFAULT_MAX_PENDING_CALLS, |n| n as usize);
        let cache = match fields.get("cache") {
            Some(node) => {
                let mut cache = node.fields()?;
                let ttl_ms = cache.opt_int_in("ttl_ms", 0..=86_400_000)?.unwrap_or(0) as u64;
                let max_entries = cache
                    .opt_int_in("max_entries", 1..=1_000_000)?
                    .unwrap_or(10_000) as usize;
                let max_bytes = match cache.get("max_bytes") {
                    Some(node) => cache_bytes(&node)?,
                    None => DEFAULT_CACHE_BYTES,
                };
                let key_headers = match cache.get("key_headers") {
                    Some(node) => names(&node, None)?,
                    None => allowed_headers.clone(),
                };
                cache.finish()?;
                Cache {
                    ttl_ms,
                    max_entries,
                    max_bytes,
                    key_headers,
                }
            }
            None => Cache {
                ttl_ms: 0,
                max_entries: 10_000,
                max_bytes: DEFAULT_CACHE_BYTES,
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
            max_pending_calls,
            cache,
        })
    }
}

#[cfg(test)]
mod tests;
