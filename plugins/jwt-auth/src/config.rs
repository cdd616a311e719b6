//! jwt-auth's configuration, read once per configure with `common::config`, so
//! every error names its field: providers (issuer, audiences, keys local or
//! remote, where the token is found, claims to headers) and the rules that say
//! which providers a request needs. Used by the plugin and by xtask alike.

use crate::jwks::{self, Key};
use crate::remote::KeyState;
use common::config::{ConfigError, Fields, Node};
use common::headers::{check_name, is_connection_specific, is_token};
use common::path::{rule_methods, rule_path, PathRule};
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

pub const MAX_PROVIDERS: usize = 16;
pub const MAX_RULES: usize = 64;
/// Token places per provider, of each kind.
pub const MAX_PLACES: usize = 8;
pub const MAX_CLAIM_HEADERS: usize = 16;
pub const MAX_AUDIENCES: usize = 32;
pub const MAX_METHODS: usize = 16;
/// Token places in the whole config (each provider's, the same place once).
pub const MAX_LOCATIONS: usize = 64;
pub const MAX_TIMEOUT_MS: i64 = 60_000;
pub const MAX_CACHE_TTL_S: i64 = 7 * 24 * 3600;
pub const MAX_SKEW_S: i64 = 3600;
/// The most verified tokens an instance keeps per VM (`cache_entries`).
pub const MAX_CACHE_ENTRIES: i64 = 65_536;
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A request header (lowercase), its value starting with `prefix`.
    Header { name: String, prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Where a provider's keys come from.
pub enum Keys {
    Local(Rc<Vec<Key>>),
    Remote(Remote),
}

/// `remote_jwks`: fetched with `dispatch_http_call`, cached per VM.
pub struct Remote {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub cache_ttl_ms: u64,
    /// The keys fetched so far and the fetch under way, shared by every stream of
    /// this instance in the VM.
    pub state: Rc<RefCell<KeyState>>,
}

pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: Keys,
    /// Bit `i` set: the token may be at `Config::locations[i]`.
    pub locations: u64,
    pub forward: bool,
    /// The claim's path (`a.b` split) and the header it goes to.
    pub claim_to_headers: Vec<(Vec<String>, String)>,
    pub clock_skew_s: u64,
    pub require_expiration: bool,
}

pub struct Rule {
    pub path: PathRule,
    /// Uppercase; empty means every method. `GET` brings `HEAD`.
    pub methods: Vec<String>,
    /// Bit `i` set: provider `i` may have issued the token. 0: no token needed.
    pub providers: u32,
    pub allow_missing: bool,
}

pub struct Config {
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    /// Every place any provider reads a token from, each once.
    pub locations: Vec<Location>,
    /// Every header any provider sets from a claim: removed from every request.
    pub claim_headers: Vec<String>,
    /// Verified tokens kept per VM (0: every token is verified on every request).
    pub cache_entries: usize,
    /// `WWW-Authenticate` for a missing token, and for a bad one.
    pub challenge_missing: String,
    pub challenge_invalid: String,
}

fn providers_known(providers: &[Provider]) -> String {
    providers
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Config {
    pub fn from_value(doc: &Value) -> Result<Config, ConfigError> {
        let mut top = Fields::root(doc)?;
        let realm = match top.get("realm") {
            None => "jwt".to_string(),
            Some(node) => {
                let realm = node.non_empty_str()?;
                // It is sent inside a quoted-string: no quote, backslash or control.
                if realm
                    .chars()
                    .any(|c| c.is_control() || c == '"' || c == '\\')
                {
                    return Err(
                        node.error("must not contain quotes, backslashes or control characters")
                    );
                }
                realm.to_string()
            }
        };
        let cache_entries = top
            .opt_int_in("cache_entries", 0..=MAX_CACHE_ENTRIES)?
            .map_or(DEFAULT_CACHE_ENTRIES, |n| n as usize);
        let mut locations: Vec<Location> = Vec::new();
        let providers_node = top.require("providers")?;
        let map = providers_node
            .value
            .as_object()
            .ok_or_else(|| providers_node.error("expected an object of providers by name"))?;
        if map.is_empty() {
            return Err(providers_node.error("must name at least one provider"));
        }
        if map.len() > MAX_PROVIDERS {
            return Err(providers_node.error(format!(
                "at most {MAX_PROVIDERS} providers, got {}",
                map.len()
            )));
        }
        let mut providers: Vec<Provider> = Vec::new();
        for (name, value) in map {
            let node = Node {
                value,
                path: format!("providers.{}", name.escape_debug()),
            };
            if name.is_empty() || name.len() > 63 || name.chars().any(|c| c.is_control()) {
                return Err(
                    node.error("a provider name must be 1 to 63 characters, no control characters")
                );
            }
            let provider = parse_provider(&node, name, &mut locations)?;
            if let Some(other) = providers.iter().find(|p| p.issuer == provider.issuer) {
                return Err(ConfigError::new(
                    format!("{}.issuer", node.path),
                    format!(
                        "provider '{}' has the same issuer: a token's issuer picks its provider",
                        other.name
                    ),
                ));
            }
            providers.push(provider);
        }
        let rules_node = top.require("rules")?;
        let rules = rules_node
            .list_at_most(MAX_RULES)?
            .iter()
            .map(|n| parse_rule(n, &providers))
            .collect::<Result<Vec<_>, _>>()?;
        if rules.is_empty() {
            return Err(rules_node.error("must list at least one rule"));
        }
        top.finish()?;
        let mut claim_headers: Vec<String> = Vec::new();
        for provider in &providers {
            for (_, header) in &provider.claim_to_headers {
                if !claim_headers.contains(header) {
                    claim_headers.push(header.clone());
                }
            }
        }
        Ok(Config {
            providers,
            rules,
            locations,
            claim_headers,
            cache_entries,
            challenge_missing: format!("Bearer realm=\"{realm}\""),
            challenge_invalid: format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
        })
    }
}

/// The index of `location` in `locations`, added when new.
fn location_bit(
    node: &Node<'_>,
    locations: &mut Vec<Location>,
    location: Location,
) -> Result<u64, ConfigError> {
    let at = match locations.iter().position(|l| *l == location) {
        Some(at) => at,
        None => {
            if locations.len() >= MAX_LOCATIONS {
                return Err(node.error(format!("at most {MAX_LOCATIONS} token places in all")));
            }
            locations.push(location);
            locations.len() - 1
        }
    };
    Ok(1u64 << at)
}

/// A name that must be a token (a query parameter's or a cookie's).
fn token_name(node: &Node<'_>) -> Result<String, ConfigError> {
    let name = node.non_empty_str()?;
    if !is_token(name) {
        return Err(node.error(format!("'{}' is not a valid name", name.escape_debug())));
    }
    Ok(name.to_string())
}

fn parse_provider(
    node: &Node<'_>,
    name: &str,
    locations: &mut Vec<Location>,
) -> Result<Provider, ConfigError> {
    let mut fields = node.fields()?;
    let issuer = fields.require("issuer")?.non_empty_str()?.to_string();
    let audiences = match fields.get("audiences") {
        None => Vec::new(),
        Some(n) => n
            .str_list_at_most(MAX_AUDIENCES)?
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    let keys = match (fields.get("local_jwks"), fields.get("remote_jwks")) {
        (Some(local), None) => {
            let set = jwks::parse(&local, true)?;
            if set.keys.is_empty() {
                return Err(local.error("holds no key this plugin verifies with"));
            }
            Keys::Local(Rc::new(set.keys))
        }
        (None, Some(remote)) => Keys::Remote(parse_remote(&remote)?),
        (None, None) => {
            return Err(node.error("exactly one of local_jwks, remote_jwks is required"))
        }
        (Some(_), Some(_)) => {
            return Err(node.error("exactly one of local_jwks, remote_jwks is allowed"))
        }
    };
    let mut bits = 0u64;
    let mut given = false;
    if let Some(list) = fields.get("from_headers") {
        given = true;
        for item in list.list_at_most(MAX_PLACES)? {
            let mut f = item.fields()?;
            let name_node = f.require("name")?;
            let header = check_name(&name_node, name_node.str()?)?;
            if header.starts_with(':') || header == "host" || is_connection_specific(&header) {
                return Err(name_node.error(format!("'{header}' cannot carry a token")));
            }
            let prefix = f.opt_str("value_prefix")?.unwrap_or_default().to_string();
            f.finish()?;
            bits |= location_bit(
                &item,
                locations,
                Location::Header {
                    name: header,
                    prefix,
                },
            )?;
        }
    }
    if let Some(list) = fields.get("from_params") {
        given = true;
        for item in list.list_at_most(MAX_PLACES)? {
            bits |= location_bit(&item, locations, Location::Param(token_name(&item)?))?;
        }
    }
    if let Some(list) = fields.get("from_cookies") {
        given = true;
        for item in list.list_at_most(MAX_PLACES)? {
            bits |= location_bit(&item, locations, Location::Cookie(token_name(&item)?))?;
        }
    }
    if !given {
        let default = Location::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        };
        bits |= location_bit(node, locations, default)?;
    }
    if bits == 0 {
        return Err(
            node.error("from_headers, from_params and from_cookies name no place for the token")
        );
    }
    let forward = fields.opt_bool("forward")?.unwrap_or(false);
    let mut claim_to_headers: Vec<(Vec<String>, String)> = Vec::new();
    if let Some(list) = fields.get("claim_to_headers") {
        for item in list.list_at_most(MAX_CLAIM_HEADERS)? {
            let mut f = item.fields()?;
            let claim_node = f.require("claim")?;
            let claim = claim_node.non_empty_str()?;
            let path: Vec<String> = claim.split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(claim_node.error("a claim path has no empty part ('a.b', not 'a..b')"));
            }
            let header_node = f.require("header")?;
            let header = check_name(&header_node, header_node.str()?)?;
            if header.starts_with(':') || header == "host" || is_connection_specific(&header) {
                return Err(header_node.error(format!("'{header}' cannot be set from a claim")));
            }
            let carries_token = locations
                .iter()
                .any(|l| matches!(l, Location::Header { name, .. } if *name == header));
            if carries_token || header == "cookie" {
                return Err(header_node.error(format!(
                    "'{header}' carries tokens and cannot be set from a claim"
                )));
            }
            f.finish()?;
            claim_to_headers.push((path, header));
        }
    }
    let clock_skew_s = fields
        .opt_int_in("clock_skew_s", 0..=MAX_SKEW_S)?
        .unwrap_or(60) as u64;
    let require_expiration = fields.opt_bool("require_expiration")?.unwrap_or(false);
    fields.finish()?;
    Ok(Provider {
        name: name.to_string(),
        issuer,
        audiences,
        keys,
        locations: bits,
        forward,
        claim_to_headers,
        clock_skew_s,
        require_expiration,
    })
}

/// The host of an Istio cluster name (`outbound|443||www.googleapis.com`).
fn istio_host(cluster: &str) -> Option<&str> {
    let mut parts = cluster.split('|');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("outbound" | "inbound"), Some(_), Some(_), Some(host), None) if !host.is_empty() => {
            Some(host)
        }
        _ => None,
    }
}

fn parse_remote(node: &Node<'_>) -> Result<Remote, ConfigError> {
    let mut fields = node.fields()?;
    let cluster = fields.require("cluster")?.non_empty_str()?.to_string();
    let authority = match fields.get("authority") {
        Some(n) => n.non_empty_str()?.to_string(),
        None => istio_host(&cluster).unwrap_or(&cluster).to_string(),
    };
    let path_node = fields.require("path")?;
    let path = path_node.non_empty_str()?;
    if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' ') {
        return Err(path_node.error("must start with '/' and hold no spaces or control characters"));
    }
    let timeout_ms = fields
        .opt_int_in("timeout_ms", 1..=MAX_TIMEOUT_MS)?
        .unwrap_or(1000) as u64;
    let cache_ttl_s = fields
        .opt_int_in("cache_ttl_s", 1..=MAX_CACHE_TTL_S)?
        .unwrap_or(600) as u64;
    fields.finish()?;
    Ok(Remote {
        cluster,
        authority,
        path: path.to_string(),
        timeout_ms,
        cache_ttl_ms: cache_ttl_s * 1000,
        state: Rc::default(),
    })
}

fn parse_rule(node: &Node<'_>, providers: &[Provider]) -> Result<Rule, ConfigError> {
    let mut fields = node.fields()?;
    let path = rule_path(node, &mut fields)?;
    let mut methods: Vec<String> = Vec::new();
    if let Some(list) = fields.get("request_methods") {
        methods = rule_methods(&list, MAX_METHODS)?;
        if methods.is_empty() {
            return Err(list.error("must list at least one method (leave it out for all)"));
        }
    }
    let list = fields.require("providers")?;
    let mut mask = 0u32;
    for item in list.list_at_most(MAX_PROVIDERS)? {
        let name = item.str()?;
        let at = providers
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                item.error(format!(
                    "unknown provider '{}' (known: {})",
                    name.escape_debug(),
                    providers_known(providers)
                ))
            })?;
        mask |= 1 << at;
    }
    let allow_missing = fields.opt_bool("allow_missing")?.unwrap_or(false);
    fields.finish()?;
    Ok(Rule {
        path,
        methods,
        providers: mask,
        allow_missing,
    })
}

#[cfg(test)]
mod tests;
