//! jwt-auth's configuration, declared with serde ([`Spec`]) and read once per
//! configure, so every error names its field: providers (issuer, audiences, keys
//! local or remote, where the token is found, claims to headers) and the rules
//! that say which providers a request needs. Used by the plugin and by xtask alike.

use crate::jwks::{self, JwksSpec, Key};
use crate::remote::KeyState;
use common::config::fields::{Authority, Cluster, Int, List, NonEmpty};
use common::config::{from_value, ConfigError};
use common::path::fields::{one_path, Exact, Methods, Prefix, Suffix};
use common::path::PathRule;
use serde::Deserialize;
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
/// The longest provider name.
pub const MAX_NAME: usize = 63;

/// The configuration as written (`pluginConfig`); its JSON Schema is the plugin's.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The token issuers, by name (1 to 16; a name of 1 to 63 characters).
    pub providers: Providers,
    /// Which providers a request needs, by path and method (1 to 64): the first
    /// rule that covers a request decides; a request no rule covers passes.
    pub rules: List<RuleSpec, 1, MAX_RULES>,
    /// The realm of the `WWW-Authenticate` challenge. Default `jwt`.
    pub realm: Option<Realm>,
    /// Verified tokens kept per VM (0: every token is verified on every
    /// request). Default 1024.
    pub cache_entries: Option<Int<0, MAX_CACHE_ENTRIES>>,
}

/// `providers`: each provider's settings under its name, in name order.
#[derive(Debug, Clone)]
pub struct Providers(pub Vec<(String, ProviderSpec)>);

/// One token issuer.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The `iss` its tokens carry; it picks the provider, so it is unique.
    pub issuer: NonEmpty,
    /// Accepted `aud` values (at most 32); none: any audience.
    pub audiences: Option<List<String, 0, MAX_AUDIENCES>>,
    /// The keys, given here (may hold HMAC secrets). Exactly one of
    /// `local_jwks`, `remote_jwks`.
    pub local_jwks: Option<JwksSpec>,
    /// Where the keys are fetched from. Exactly one of `local_jwks`, `remote_jwks`.
    pub remote_jwks: Option<RemoteSpec>,
    /// Request headers a token may be in (at most 8). Default: `authorization`
    /// after `Bearer ` unless `from_params` or `from_cookies` is given.
    pub from_headers: Option<List<FromHeader, 0, MAX_PLACES>>,
    /// Query parameters a token may be in (at most 8).
    pub from_params: Option<List<TokenName, 0, MAX_PLACES>>,
    /// Cookies a token may be in (at most 8).
    pub from_cookies: Option<List<TokenName, 0, MAX_PLACES>>,
    /// Keep the token on the request sent upstream. Default false.
    pub forward: Option<bool>,
    /// Claims copied to request headers (at most 16).
    pub claim_to_headers: Option<List<ClaimToHeader, 0, MAX_CLAIM_HEADERS>>,
    /// Leeway for `exp` and `nbf`, in seconds (0 to 3600). Default 60.
    pub clock_skew_s: Option<Int<0, MAX_SKEW_S>>,
    /// Refuse a token without `exp`. Default false.
    pub require_expiration: Option<bool>,
}

/// `remote_jwks`: the issuer's JWKS, fetched through an Envoy cluster.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// The Envoy cluster of the issuer (`outbound|443||www.googleapis.com` in
    /// Istio).
    pub cluster: Cluster,
    /// The fetch's `:authority`. Default: the host of an Istio cluster name,
    /// else the cluster name.
    pub authority: Option<Authority>,
    /// The JWKS's path on that host.
    pub path: JwksPath,
    /// How long a fetch may take, in milliseconds. Default 1000.
    pub timeout_ms: Option<Int<1, MAX_TIMEOUT_MS>>,
    /// How long fetched keys are kept, in seconds. Default 600.
    pub cache_ttl_s: Option<Int<1, MAX_CACHE_TTL_S>>,
}

/// One of `from_headers`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FromHeader {
    /// The header (not a pseudo-header, `host` or a connection-specific one).
    pub name: TokenHeader,
    /// What the value starts with before the token (`Bearer `). Default none.
    pub value_prefix: Option<String>,
}

/// One of `claim_to_headers`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The claim, nested ones by dots (`a.b`).
    pub claim: ClaimPath,
    /// The request header it is copied to (first removed from every request).
    pub header: ClaimHeader,
}

/// One of `rules`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Paths that start with this. Exactly one of `prefix`, `exact`, `suffix`.
    pub prefix: Option<Prefix>,
    /// This path. Exactly one of `prefix`, `exact`, `suffix`.
    pub exact: Option<Exact>,
    /// Paths that end with this. Exactly one of `prefix`, `exact`, `suffix`.
    pub suffix: Option<Suffix>,
    /// The methods the rule covers (at most 16, `GET` brings `HEAD`). Default all.
    pub request_methods: Option<Methods<MAX_METHODS>>,
    /// The providers whose tokens are accepted, by name; empty: no token needed.
    pub providers: List<String, 0, MAX_PROVIDERS>,
    /// Let a request without a token through (a bad token is still refused).
    /// Default false.
    pub allow_missing: Option<bool>,
}

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
        let spec: Spec = from_value(doc)?;
        let realm = spec.realm.map_or_else(|| "jwt".to_string(), |r| r.0);
        let mut locations: Vec<Location> = Vec::new();
        let mut providers: Vec<Provider> = Vec::new();
        for (name, provider) in spec.providers.0 {
            let at = format!("providers.{name}");
            let provider = provider_from(provider, name, &at, &mut locations)?;
            if let Some(other) = providers.iter().find(|p| p.issuer == provider.issuer) {
                return Err(ConfigError::new(
                    format!("{at}.issuer"),
                    format!(
                        "provider '{}' has the same issuer: a token's issuer picks its provider",
                        other.name
                    ),
                ));
            }
            providers.push(provider);
        }
        let rules = spec
            .rules
            .0
            .into_iter()
            .enumerate()
            .map(|(i, rule)| rule_from(rule, &format!("rules[{i}]"), &providers))
            .collect::<Result<Vec<_>, _>>()?;
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
            cache_entries: spec
                .cache_entries
                .map_or(DEFAULT_CACHE_ENTRIES, |n| n.0 as usize),
            challenge_missing: format!("Bearer realm=\"{realm}\""),
            challenge_invalid: format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
        })
    }
}

/// The index of `location` in `locations` as a bit, added when new; `at` is
/// the path of the field that names it.
fn location_bit(
    at: &str,
    locations: &mut Vec<Location>,
    location: Location,
) -> Result<u64, ConfigError> {
    let index = match locations.iter().position(|l| *l == location) {
        Some(index) => index,
        None => {
            if locations.len() >= MAX_LOCATIONS {
                return Err(ConfigError::new(
                    at,
                    format!("at most {MAX_LOCATIONS} token places in all"),
                ));
            }
            locations.push(location);
            locations.len() - 1
        }
    };
    Ok(1u64 << index)
}

fn provider_from(
    spec: ProviderSpec,
    name: String,
    at: &str,
    locations: &mut Vec<Location>,
) -> Result<Provider, ConfigError> {
    let keys = match (spec.local_jwks, spec.remote_jwks) {
        (Some(local), None) => {
            let at = format!("{at}.local_jwks");
            let set = jwks::from_spec(local, &at, true)?;
            if set.keys.is_empty() {
                return Err(ConfigError::new(
                    at,
                    "holds no key this plugin verifies with",
                ));
            }
            Keys::Local(Rc::new(set.keys))
        }
        (None, Some(remote)) => Keys::Remote(remote_from(remote)),
        (None, None) => {
            return Err(ConfigError::new(
                at,
                "exactly one of local_jwks, remote_jwks is required",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                at,
                "exactly one of local_jwks, remote_jwks is allowed",
            ))
        }
    };
    let mut bits = 0u64;
    let given =
        spec.from_headers.is_some() || spec.from_params.is_some() || spec.from_cookies.is_some();
    for (i, place) in spec
        .from_headers
        .map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let location = Location::Header {
            name: place.name.0,
            prefix: place.value_prefix.unwrap_or_default(),
        };
        bits |= location_bit(&format!("{at}.from_headers[{i}]"), locations, location)?;
    }
    for (i, param) in spec
        .from_params
        .map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let location = Location::Param(param.0);
        bits |= location_bit(&format!("{at}.from_params[{i}]"), locations, location)?;
    }
    for (i, cookie) in spec
        .from_cookies
        .map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let location = Location::Cookie(cookie.0);
        bits |= location_bit(&format!("{at}.from_cookies[{i}]"), locations, location)?;
    }
    if !given {
        let default = Location::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        };
        bits |= location_bit(at, locations, default)?;
    }
    if bits == 0 {
        return Err(ConfigError::new(
            at,
            "from_headers, from_params and from_cookies name no place for the token",
        ));
    }
    let mut claim_to_headers: Vec<(Vec<String>, String)> = Vec::new();
    let claims = spec.claim_to_headers.map(|l| l.0).unwrap_or_default();
    for (i, ClaimToHeader { claim, header }) in claims.into_iter().enumerate() {
        let header = header.0;
        let carries_token = locations
            .iter()
            .any(|l| matches!(l, Location::Header { name, .. } if *name == header));
        if carries_token {
            return Err(ConfigError::new(
                format!("{at}.claim_to_headers[{i}].header"),
                format!("'{header}' carries tokens and cannot be set from a claim"),
            ));
        }
        claim_to_headers.push((claim.0, header));
    }
    Ok(Provider {
        name,
        issuer: spec.issuer.0,
        audiences: spec.audiences.map(|l| l.0).unwrap_or_default(),
        keys,
        locations: bits,
        forward: spec.forward.unwrap_or(false),
        claim_to_headers,
        clock_skew_s: spec.clock_skew_s.map_or(60, |s| s.0 as u64),
        require_expiration: spec.require_expiration.unwrap_or(false),
    })
}

fn remote_from(spec: RemoteSpec) -> Remote {
    Remote {
        authority: spec
            .authority
            .map_or_else(|| spec.cluster.default_authority().to_string(), |a| a.0),
        cluster: spec.cluster.0,
        path: spec.path.0,
        timeout_ms: spec.timeout_ms.map_or(1000, |t| t.0 as u64),
        cache_ttl_ms: spec.cache_ttl_s.map_or(600, |t| t.0 as u64) * 1000,
        state: Rc::default(),
    }
}

fn rule_from(spec: RuleSpec, at: &str, providers: &[Provider]) -> Result<Rule, ConfigError> {
    let path = one_path(spec.prefix, spec.exact, spec.suffix)
        .map_err(|message| ConfigError::new(at, message))?;
    let methods = match spec.request_methods {
        None => Vec::new(),
        Some(Methods(methods)) if methods.is_empty() => {
            return Err(ConfigError::new(
                format!("{at}.request_methods"),
                "must list at least one method (leave it out for all)",
            ))
        }
        Some(Methods(methods)) => methods,
    };
    let mut mask = 0u32;
    for (i, name) in spec.providers.0.iter().enumerate() {
        let index = providers
            .iter()
            .position(|p| p.name == *name)
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.providers[{i}]"),
                    format!(
                        "unknown provider '{}' (known: {})",
                        name.escape_debug(),
                        providers_known(providers)
                    ),
                )
            })?;
        mask |= 1 << index;
    }
    Ok(Rule {
        path,
        methods,
        providers: mask,
        allow_missing: spec.allow_missing.unwrap_or(false),
    })
}

mod fields;

pub use fields::{ClaimHeader, ClaimPath, JwksPath, Realm, TokenHeader, TokenName};

#[cfg(feature = "schema")]
mod schema;

#[cfg(test)]
mod tests;
