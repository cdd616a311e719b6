//! The plugins xtask knows: for each, the plugin's own config type, compiled
//! natively, validates an instance's config before anything is built or written,
//! and says what `run` needs to host it locally.
//!
//! Adding a plugin: add it to `[workspace.dependencies]` and to xtask's Cargo.toml,
//! then add its entry to [`PLUGINS`]: `check` parses with the plugin's
//! `config::Config::from_value` and returns [`Checked::gate`] (headers that pass it),
//! [`Checked::passive`] (never denies) or [`Checked::auth_cluster`] (calls a cluster);
//! a chain reports what its instances do, together ([`Checked::chain`]).
//! A test checks that every directory under `plugins/` has its entry here.

use common::ConfigError;
use schemars::Schema;
use serde_json::Value;

/// What `run`'s demo auth service allows, so what gets past a plugin that calls one.
pub const DEMO_TOKEN: &str = "Bearer demo";

/// What xtask learns from a valid config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// The Envoy clusters the filter calls out to (dispatch-auth's `cluster`; each
    /// dispatch-auth instance's in a chain): `run` creates a cluster of exactly
    /// each name pointing at its demo auth service, which allows
    /// `Authorization: Bearer demo`.
    pub auth_clusters: Vec<String>,
    /// Request headers that get a request past this filter, for the curl commands
    /// `run` prints; `None` when it does not deny requests.
    pub pass_headers: Option<Vec<(String, String)>>,
}

impl Checked {
    /// A plugin that never denies a request.
    pub fn passive() -> Self {
        Checked::default()
    }

    /// A plugin that lets a request through when it carries `headers`.
    pub fn gate(headers: Vec<(String, String)>) -> Self {
        Checked {
            auth_clusters: Vec::new(),
            pass_headers: Some(headers),
        }
    }

    /// A plugin that asks the auth service behind `cluster`; locally that is the
    /// demo service, which allows `Authorization: Bearer demo`.
    pub fn auth_cluster(cluster: String) -> Self {
        Checked {
            auth_clusters: vec![cluster],
            pass_headers: Some(vec![("authorization".into(), DEMO_TOKEN.into())]),
        }
    }

    /// What a chain of instances does, in order: it denies when any of them
    /// does, a request passes it with every instance's pass headers, and it
    /// calls every cluster they call (each name once).
    pub fn chain(parts: impl IntoIterator<Item = Checked>) -> Self {
        let mut chain = Checked::passive();
        for part in parts {
            for cluster in part.auth_clusters {
                if !chain.auth_clusters.contains(&cluster) {
                    chain.auth_clusters.push(cluster);
                }
            }
            if let Some(headers) = part.pass_headers {
                let pass = chain.pass_headers.get_or_insert_with(Vec::new);
                for header in headers {
                    if !pass.contains(&header) {
                        pass.push(header);
                    }
                }
            }
        }
        chain
    }
}

/// A plugin xtask can validate and run.
pub struct Plugin {
    /// Its directory under `plugins/` (and its crate name).
    pub name: &'static str,
    /// Parses an instance's `config` with the plugin's own config type.
    pub check: fn(&Value) -> Result<Checked, ConfigError>,
    /// The JSON Schema of that config type (its crate's `schema` feature), or
    /// `None` while its config is still read by hand.
    pub schema: fn() -> Option<Schema>,
}

/// `T`'s JSON Schema in draft-07, the draft yaml-language-server (and so the
/// VS Code YAML extension) validates with; schemars' default, 2020-12, it
/// does not fully support.
pub fn schema_of<T: schemars::JsonSchema>() -> Option<Schema> {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    Some(generator.into_root_schema_for::<T>())
}

pub const PLUGINS: &[Plugin] = &[
    Plugin {
        name: "header-authorization",
        check: |c| header_authorization(header_authorization::config::Config::from_value(c)?),
        schema: schema_of::<header_authorization::config::Spec>,
    },
    Plugin {
        name: "basic-auth",
        check: |c| basic_auth(&basic_auth::config::Config::from_value(c)?, c),
        schema: schema_of::<basic_auth::config::Spec>,
    },
    Plugin {
        name: "response-headers",
        check: |c| {
            response_headers::config::Config::from_value(c)?;
            Ok(Checked::passive())
        },
        schema: schema_of::<response_headers::config::Spec>,
    },
    Plugin {
        name: "chain",
        check: chain,
        schema: schema_of::<chain::config::Spec>,
    },
    Plugin {
        name: "dispatch-auth",
        check: |c| {
            let config = dispatch_auth::config::Config::from_value(c)?;
            Ok(Checked::auth_cluster(config.cluster))
        },
        schema: schema_of::<dispatch_auth::config::Spec>,
    },
    Plugin {
        name: "jwt-auth",
        check: |c| jwt_auth(&jwt_auth::config::Config::from_value(c)?),
        schema: schema_of::<jwt_auth::config::Spec>,
    },
];

/// The plugin called `name`, if xtask knows it.
pub fn find(name: &str) -> Option<&'static Plugin> {
    PLUGINS.iter().find(|p| p.name == name)
}

/// The names of all known plugins, for error messages.
pub fn names() -> Vec<&'static str> {
    PLUGINS.iter().map(|p| p.name).collect()
}

/// A chain's config is parsed by the chain's own code, which parses each
/// instance's with its plugin's; what the chain does is what its instances do.
fn chain(doc: &Value) -> Result<Checked, ConfigError> {
    chain::config::from_value(doc)?;
    let parts = chain::config::entries(doc)?
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let plugin = find(&entry.plugin)
                .ok_or_else(|| ConfigError::new(format!("chain[{i}].plugin"), "unknown plugin"))?;
            (plugin.check)(&entry.config)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Checked::chain(parts))
}

fn header_authorization(
    config: header_authorization::config::Config,
) -> Result<Checked, ConfigError> {
    let value = config.values.into_iter().next().unwrap_or_default();
    Ok(Checked::gate(vec![(config.header, value)]))
}

/// jwt-auth guards `GET /` when a rule needs a token there; no header gets a
/// request past it that xtask could write (a token needs the issuer's key), so
/// the curl commands stop at its 401.
fn jwt_auth(config: &jwt_auth::config::Config) -> Result<Checked, ConfigError> {
    match jwt_auth::request::decide(config, b"GET", &[], b"/") {
        jwt_auth::request::Decision::Check { required: true, .. } => Ok(Checked::gate(vec![])),
        _ => Ok(Checked::passive()),
    }
}

/// basic-auth guards `GET /` (what the curl commands ask for) only when one of its
/// rules covers it; then the pass header carries the first credential of the first
/// such rule, read from the raw config because the parsed one keeps only digests.
/// A `{SHA}`-style first credential cannot be turned back into a password: the
/// curl commands then stop at basic-auth's denial.
fn basic_auth(config: &basic_auth::config::Config, raw: &Value) -> Result<Checked, ConfigError> {
    use base64::Engine;
    let no_auth: [&[u8]; 0] = [];
    if basic_auth::auth::decide(config, b"GET", &[], b"/", no_auth)
        == basic_auth::auth::Decision::Pass
    {
        return Ok(Checked::passive());
    }
    let covers_root = |rule: &&Value| {
        let single = |r: &Value| {
            let mut one = r.clone();
            one["credentials"] = serde_json::json!(["u:p"]);
            serde_json::json!({"basic_auth_rules": [one]})
        };
        basic_auth::config::Config::from_value(&single(rule)).is_ok_and(|c| {
            basic_auth::auth::decide(&c, b"GET", &[], b"/", no_auth)
                != basic_auth::auth::Decision::Pass
        })
    };
    let first = raw["basic_auth_rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(covers_root))
        .and_then(|rule| rule["credentials"].get(0))
        .and_then(Value::as_str);
    let header = match first {
        Some(c) if c.contains(":{SHA") => None,
        Some(c) if c.contains(':') => Some(base64::engine::general_purpose::STANDARD.encode(c)),
        Some(c) => Some(c.to_string()),
        None => None,
    };
    Ok(Checked::gate(
        header
            .map(|h| vec![("authorization".to_string(), format!("Basic {h}"))])
            .unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_plugin_directory_is_registered() {
        let dirs = crate::build::plugins().unwrap();
        let mut registered = names();
        registered.sort_unstable();
        assert_eq!(
            dirs, registered,
            "plugins/ and PLUGINS in xtask/src/plugins.rs disagree: add the missing line"
        );
    }

    #[test]
    fn test_modules_are_not_registered() {
        // So a gateway file naming one is refused like any unknown plugin. (Here
        // rather than beside `test_modules` so build's tests need no registry.)
        let test_modules = crate::build::test_modules().unwrap();
        assert!(!test_modules.is_empty());
        assert!(
            test_modules.iter().all(|m| find(m).is_none()),
            "{test_modules:?}"
        );
    }

    #[test]
    fn basic_auth_gates_only_what_its_rules_cover() {
        let check = find("basic-auth").unwrap().check;
        let root = json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": ["ok:test"]}]});
        assert_eq!(
            check(&root).unwrap(),
            Checked::gate(vec![("authorization".into(), "Basic b2s6dGVzdA==".into())])
        );
        let admin = json!({"basic_auth_rules": [{"prefix": "/admin", "request_methods": ["GET"], "credentials": ["ok:test"]}]});
        assert_eq!(check(&admin).unwrap(), Checked::passive());
        let hashed = json!({"basic_auth_rules": [{"exact": "/", "request_methods": ["GET"], "credentials": ["u:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]}]});
        assert_eq!(check(&hashed).unwrap(), Checked::gate(vec![]));
        let err = check(&json!({"basic_auth_rules": []})).unwrap_err();
        assert!(err.to_string().starts_with("basic_auth_rules"), "{err}");
    }

    #[test]
    fn jwt_auth_gates_only_what_its_rules_cover() {
        let check = find("jwt-auth").unwrap().check;
        let config = |prefix: &str| {
            json!({
                "providers": {"a": {"issuer": "https://a", "remote_jwks": {"cluster": "outbound|443||a.example", "path": "/jwks"}}},
                "rules": [{"prefix": prefix, "providers": ["a"]}],
            })
        };
        assert_eq!(check(&config("/")).unwrap(), Checked::gate(vec![]));
        assert_eq!(check(&config("/api")).unwrap(), Checked::passive());
        let err = check(&json!({"providers": {}, "rules": []})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "providers: must name at least one provider"
        );
    }

    #[test]
    fn dispatch_auth_asks_for_its_cluster() {
        let check = find("dispatch-auth").unwrap().check;
        let cluster = "outbound|8000||auth.default.svc.cluster.local";
        assert_eq!(
            check(&json!({"cluster": cluster})).unwrap(),
            Checked::auth_cluster(cluster.into())
        );
        assert_eq!(
            check(&json!({})).unwrap_err().to_string(),
            "cluster: is required"
        );
    }

    #[test]
    fn a_chain_does_what_its_instances_do() {
        let check = find("chain").unwrap().check;
        let cluster = "outbound|8000||auth.default.svc.cluster.local";
        let doc = json!({"chain": [
            {"plugin": "response-headers", "name": "sec", "config": {"response_headers": [{"name": "a", "value": "b"}]}},
            {"plugin": "header-authorization", "name": "tenant", "config": {"header": "x-tenant", "values": ["acme"]}},
            {"plugin": "dispatch-auth", "name": "one", "config": {"cluster": cluster}},
            {"plugin": "dispatch-auth", "name": "two", "config": {"cluster": "other"}},
            {"plugin": "dispatch-auth", "name": "three", "config": {"cluster": cluster}},
        ]});
        assert_eq!(
            check(&doc).unwrap(),
            Checked {
                auth_clusters: vec![cluster.into(), "other".into()],
                pass_headers: Some(vec![
                    ("x-tenant".into(), "acme".into()),
                    ("authorization".into(), DEMO_TOKEN.into()),
                ]),
            }
        );
        let passive = json!({"chain": [{"plugin": "response-headers", "config": {"response_headers": [{"name": "a", "value": "b"}]}}]});
        assert_eq!(check(&passive).unwrap(), Checked::passive());
        // Errors are the chain's own, naming the instance.
        let bad = json!({"chain": [{"plugin": "dispatch-auth", "name": "ext-auth"}]});
        assert_eq!(
            check(&bad).unwrap_err().to_string(),
            "chain[0] (ext-auth): cluster: is required"
        );
    }

    #[test]
    fn response_headers_never_denies() {
        let check = find("response-headers").unwrap().check;
        let config = json!({"response_headers": [{"name": "hello", "value": "world"}]});
        assert_eq!(check(&config).unwrap(), Checked::passive());
        assert!(check(&json!({"response_headers": [{"name": ":status", "value": "1"}]})).is_err());
    }

    #[test]
    fn header_authorization_is_checked_by_its_own_config_type() {
        let check = find("header-authorization").unwrap().check;
        assert_eq!(
            check(&json!({"header": "X-Team", "values": ["red", "blue"]})).unwrap(),
            Checked::gate(vec![("x-team".into(), "red".into())])
        );
        let err = check(&json!({"deny": {"status": 700}})).unwrap_err();
        assert_eq!(err.to_string(), "deny.status: must be 200..=599, got 700");
    }
}
