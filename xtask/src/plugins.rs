//! The plugins xtask knows: every crate under `plugins/`. For each, the plugin's
//! own configuration code, compiled natively (the very `configure` it runs in
//! `on_configure`), validates an instance's config before anything is built or
//! written, and its `local_run` says what `run` needs to host it locally.
//!
//! Adding a plugin: `cargo xtask new <name>` (or a crate under `plugins/` whose
//! lib.rs says `common::export_plugin!(..)`, then `cargo xtask build-all`). The
//! list below is made by build.rs from the generated section of xtask's
//! Cargo.toml, which `new` and build-all keep equal to the directory
//! (`plugin_lists`); a plugin says what `run` needs by implementing
//! `common::Plugin::local_run` ([`LocalRun::Gate`]: headers that pass it;
//! [`LocalRun::AuthCluster`]: calls a cluster; by default passive). A chain
//! reports what its instances do, together ([`Checked::chain`]).

use common::plugin::LocalRun;
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

impl From<LocalRun> for Checked {
    fn from(run: LocalRun) -> Self {
        match run {
            LocalRun::Passive => Checked::passive(),
            LocalRun::Gate(headers) => Checked::gate(headers),
            LocalRun::AuthCluster(cluster) => Checked::auth_cluster(cluster),
        }
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

/// Every crate under `plugins/` (see the module's doc), sorted by name.
pub const PLUGINS: &[Plugin] = include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Parses an instance's config with plugin `P`'s own `configure` and asks it what
/// `run` needs.
fn check<P: common::Plugin>(doc: &Value) -> Result<Checked, ConfigError> {
    let config = P::configure(doc)?;
    Ok(P::local_run(&config, doc).into())
}

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
            "plugins/ and xtask's list disagree (a plugin's NAME is not its directory, or \
             xtask/Cargo.toml's generated section is stale: run `cargo xtask build-all`)"
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
