//! The basic-auth configuration: the istio-ecosystem `basic_auth` schema (rules of
//! path, methods and credentials, a realm) plus `forward_username_header`. Every
//! credential is decoded and hashed here, once, so a request only hashes what it
//! presents and compares digests. Used by the plugin and by xtask alike.

use crate::secret::{b64_decode, sha256};
use common::config::fields::{HeaderName, List};
use common::config::{from_value, parse_json, ConfigError};
use common::headers::is_framing;
use common::path::fields::{one_path, Exact, Methods, Prefix, Suffix};
use common::path::PathRule;
use common::DenyResponse;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// The most rules, methods per rule and credentials per rule: a request is matched
/// against every rule and compared with every credential of the rules that apply.
pub const MAX_RULES: usize = 100;
pub const MAX_METHODS: usize = 20;
pub const MAX_CREDENTIALS: usize = 1000;

/// The configuration as written (`pluginConfig`); its JSON Schema is the plugin's.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The rules, 1 to 100. A request is checked against every rule that covers
    /// its path and method, and must satisfy each; a request no rule covers passes.
    pub basic_auth_rules: List<RuleSpec, 1, MAX_RULES>,
    /// The realm named in the `WWW-Authenticate` challenge. Default `istio`.
    pub realm: Option<Realm>,
    /// A request header that carries the authenticated user name upstream; any
    /// copy the client sent is removed first. Default: none.
    pub forward_username_header: Option<UserHeader>,
}

/// One rule as written: exactly one of `prefix`, `exact`, `suffix`, the methods
/// it covers and the credentials it accepts.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    // null counts as absent, so a branch needs its path as a string.
    schemars(extend("oneOf" = [
        {"required": ["prefix"], "properties": {"prefix": {"type": "string"}}},
        {"required": ["exact"], "properties": {"exact": {"type": "string"}}},
        {"required": ["suffix"], "properties": {"suffix": {"type": "string"}}},
    ]))
)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Paths that start with this (normalized, starting with '/').
    pub prefix: Option<Prefix>,
    /// This path, with or without a trailing '/' (normalized, starting with '/').
    pub exact: Option<Exact>,
    /// Paths that end with this, compared case-insensitively.
    pub suffix: Option<Suffix>,
    /// The methods the rule covers, 1 to 20, compared case-insensitively; `GET`
    /// also covers `HEAD`.
    pub request_methods: RuleMethods,
    /// The accepted users, 1 to 1000: `user:password`, base64 of
    /// `user:password`, or `user:{SHA}digest` / `user:{SHA256}digest` (base64).
    pub credentials: List<Credential, 1, MAX_CREDENTIALS>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub realm: String,
    /// Lowercase header name that carries the user name upstream.
    pub forward_username_header: Option<String>,
    /// The 401 for a request without Basic credentials.
    pub missing: DenyResponse,
    /// The 401 for malformed or wrong credentials.
    pub wrong: DenyResponse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: PathRule,
    /// Uppercase; requests are compared case-insensitively. `GET` brings `HEAD`:
    /// a HEAD request is served by the GET handler, headers and all.
    pub methods: Vec<String>,
    pub credentials: Vec<Credential>,
}

/// One accepted user and password. Plain passwords are kept only as their SHA-256,
/// so no password stays in memory and comparisons do not depend on its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub secret: Secret,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

// Digests of passwords have no business in logs or panic messages either.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.secret {
            Secret::Sha1(_) => "SHA",
            Secret::Sha256(_) => "SHA256",
        };
        write!(f, "Credential({}, {scheme})", self.user)
    }
}

/// Schemes that tools like htpasswd emit but that cannot be checked here; a
/// password written with one of these prefixes is refused rather than taken as
/// plain text (use the base64 form for such a password).
const FOREIGN_HASHES: [&str; 6] = ["$apr1$", "$2a$", "$2b$", "$2y$", "$5$", "$6$"];

/// `{NAME}` schemes of LDAP, Dovecot and similar tools, the only ones an error names.
const KNOWN_SCHEMES: [&str; 16] = [
    "{MD5}",
    "{SMD5}",
    "{SSHA}",
    "{SSHA256}",
    "{SSHA512}",
    "{SHA512}",
    "{SHA384}",
    "{SHA224}",
    "{CRYPT}",
    "{BLF-CRYPT}",
    "{SHA256-CRYPT}",
    "{SHA512-CRYPT}",
    "{MD5-CRYPT}",
    "{PBKDF2}",
    "{ARGON2I}",
    "{ARGON2ID}",
];

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(&parse_json(bytes)?)
    }

    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let spec: Spec = from_value(doc)?;
        let mut rules = Vec::with_capacity(spec.basic_auth_rules.0.len());
        for (i, rule) in spec.basic_auth_rules.0.into_iter().enumerate() {
            let path = one_path(rule.prefix, rule.exact, rule.suffix)
                .map_err(|e| ConfigError::new(format!("basic_auth_rules[{i}]"), e))?;
            rules.push(Rule {
                path,
                methods: rule.request_methods.0,
                credentials: rule.credentials.0,
            });
        }
        let realm = spec.realm.map_or_else(|| "istio".to_string(), |r| r.0);
        let challenge = format!("Basic realm=\"{}\"", quote(&realm));
        let deny = |body: &str| {
            DenyResponse::new(
                401,
                body,
                vec![
                    ("www-authenticate".to_string(), challenge.clone()),
                    ("content-type".to_string(), "text/plain".to_string()),
                ],
            )
        };
        Ok(Config {
            rules,
            missing: deny("Unauthorized: missing credentials\n"),
            wrong: deny("Unauthorized: wrong credentials\n"),
            realm,
            forward_username_header: spec.forward_username_header.map(|h| h.0),
        })
    }
}

/// The realm as the inside of an RFC 9110 quoted-string.
fn quote(realm: &str) -> String {
    let mut out = String::with_capacity(realm.len());
    for c in realm.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The realm: any text without control characters, which would break the
/// challenge header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm(pub String);

impl<'de> Deserialize<'de> for Realm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let realm = <&str>::deserialize(deserializer)?;
        if realm.chars().any(char::is_control) {
            return Err(de::Error::custom("must not contain control characters"));
        }
        Ok(Realm(realm.to_string()))
    }
}

/// The header for the user name: a header name, lowercase, that is not
/// `authorization`, `host` or a framing header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHeader(pub String);

impl<'de> Deserialize<'de> for UserHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let HeaderName(name) = HeaderName::deserialize(deserializer)?;
        if matches!(name.as_str(), "authorization" | "host") || is_framing(&name) {
            return Err(de::Error::custom(format!(
                "'{name}' cannot carry the user name"
            )));
        }
        Ok(UserHeader(name))
    }
}

/// A rule's `request_methods`: at least one, uppercased, each once, `HEAD` with `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMethods(pub Vec<String>);

impl<'de> Deserialize<'de> for RuleMethods {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Methods(methods) = Methods::<MAX_METHODS>::deserialize(deserializer)?;
        if methods.is_empty() {
            return Err(de::Error::custom("must list at least one method"));
        }
        Ok(RuleMethods(methods))
    }
}

// Errors below never quote the credential: it is a secret, and config errors are
// logged at error level.
impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        credential(text).map_err(de::Error::custom)
    }
}

fn credential(text: &str) -> Result<Credential, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some((user, password)) = text.split_once(':') {
        return literal(user, password);
    }
    let decoded = b64_decode(text.trim().as_bytes())
        .ok_or("neither user:password nor valid base64 of user:password")?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| "base64 decodes to text that is not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("base64 decodes to text without ':' (expected user:password)")?;
    check_user_password(user, password)?;
    // The base64 form is the seed's plain form: no hash schemes inside it, which
    // also makes it the way to give a password that starts with `{SHA}`.
    Ok(Credential {
        user: user.to_string(),
        secret: Secret::Sha256(sha256(password.as_bytes())),
    })
}

fn literal(user: &str, password: &str) -> Result<Credential, String> {
    check_user_password(user, password)?;
    let secret = if let Some(hash) = password.strip_prefix("{SHA}") {
        Secret::Sha1(digest("{SHA}", hash)?)
    } else if let Some(hash) = password.strip_prefix("{SHA256}") {
        Secret::Sha256(digest("{SHA256}", hash)?)
    } else if let Some(scheme) = scheme_prefix(password) {
        // Only a scheme name someone publishes is quoted: anything else in braces
        // may be the start of a password.
        let scheme = if KNOWN_SCHEMES.contains(&scheme) {
            scheme
        } else {
            "in braces"
        };
        return Err(format!(
            "unknown hash scheme {scheme} (supported: {{SHA}}, {{SHA256}}, or a plain password)"
        ));
    } else if let Some(scheme) = FOREIGN_HASHES.iter().find(|p| password.starts_with(**p)) {
        return Err(format!(
            "unsupported hash scheme {scheme} (supported: {{SHA}}, {{SHA256}}, or a plain password)"
        ));
    } else {
        Secret::Sha256(sha256(password.as_bytes()))
    };
    Ok(Credential {
        user: user.to_string(),
        secret,
    })
}

/// `{NAME}` at the start of a password, NAME being a plausible scheme name.
fn scheme_prefix(password: &str) -> Option<&str> {
    let end = password.find('}')?;
    let scheme = password.get(..=end)?;
    let name = scheme.get(1..end)?;
    let plausible = password.starts_with('{')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    plausible.then_some(scheme)
}

fn digest<const N: usize>(scheme: &str, hash: &str) -> Result<[u8; N], String> {
    b64_decode(hash.as_bytes())
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| format!("{scheme} must be followed by the base64 of a {N}-byte digest"))
}

fn check_user_password(user: &str, password: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("user name must not be empty".into());
    }
    if password.is_empty() {
        return Err("password must not be empty".into());
    }
    // The user name may be sent upstream in a header; and a control character in
    // a password is nearly always a YAML slip (the newline a `|` block keeps).
    if user.chars().any(char::is_control) || password.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(feature = "schema")]
mod schema {
    //! The JSON Schema of basic-auth's own field types, with the limits their
    //! deserializers check.

    use super::*;
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    /// No control character (`char::is_control`).
    const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

    impl JsonSchema for Realm {
        fn schema_name() -> Cow<'static, str> {
            "Realm".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "pattern": NO_CONTROL})
        }
    }

    impl JsonSchema for UserHeader {
        fn schema_name() -> Cow<'static, str> {
            "UserHeader".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                "not": {"pattern": "^([Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]|[Hh][Oo][Ss][Tt]|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg])$"},
            })
        }
    }

    impl JsonSchema for RuleMethods {
        fn schema_name() -> Cow<'static, str> {
            "RuleMethods".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            let mut schema = Methods::<MAX_METHODS>::json_schema(generator);
            schema.insert("minItems".into(), 1.into());
            schema
        }
    }

    impl JsonSchema for Credential {
        fn schema_name() -> Cow<'static, str> {
            "Credential".into()
        }

        fn inline_schema() -> bool {
            true
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "minLength": 1})
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
