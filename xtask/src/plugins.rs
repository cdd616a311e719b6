//! The plugins xtask knows: for each, the plugin's own config type, compiled
//! natively, validates an instance's config before anything is built or written,
//! and says what `run` needs to host it locally.
//!
//! Adding a plugin: add it to `[workspace.dependencies]` and to xtask's Cargo.toml,
//! then add its entry to [`PLUGINS`]: `check` parses with the plugin's
//! `config::Config::from_value` and returns [`Checked::gate`] (headers that pass it),
//! [`Checked::passive`] (never denies) or [`Checked::auth_cluster`] (calls a cluster).
//! A test checks that every directory under `plugins/` has its entry here.

use common::ConfigError;
use serde_json::Value;

/// What xtask learns from a valid config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// The Envoy cluster the plugin calls out to (dispatch-auth's `cluster`):
    /// `run` creates a cluster of exactly that name pointing at its demo auth
    /// service, which allows `Authorization: Bearer demo`.
    pub auth_cluster: Option<String>,
    /// Request headers that get a request past this instance, for the curl commands
    /// `run` prints; `None` when the plugin does not deny requests.
    pub pass_headers: Option<Vec<(String, String)>>,
}

// `passive` and `auth_cluster` are for plugins that land on other branches
// (response-headers, dispatch-auth).
#[allow(dead_code)]
impl Checked {
    /// A plugin that never denies a request.
    pub fn passive() -> Self {
        Checked::default()
    }

    /// A plugin that lets a request through when it carries `headers`.
    pub fn gate(headers: Vec<(String, String)>) -> Self {
        Checked {
            auth_cluster: None,
            pass_headers: Some(headers),
        }
    }

    /// A plugin that asks the auth service behind `cluster`; locally that is the
    /// demo service, which allows `Authorization: Bearer demo`.
    pub fn auth_cluster(cluster: String) -> Self {
        Checked {
            auth_cluster: Some(cluster),
            pass_headers: Some(vec![("authorization".into(), "Bearer demo".into())]),
        }
    }
}

/// A plugin xtask can validate and run.
pub struct Plugin {
    /// Its directory under `plugins/` (and its crate name).
    pub name: &'static str,
    /// Parses an instance's `config` with the plugin's own config type.
    pub check: fn(&Value) -> Result<Checked, ConfigError>,
}

pub const PLUGINS: &[Plugin] = &[Plugin {
    name: "header-authorization",
    check: |c| header_authorization(header_authorization::config::Config::from_value(c)?),
}];

/// The plugin called `name`, if xtask knows it.
pub fn find(name: &str) -> Option<&'static Plugin> {
    PLUGINS.iter().find(|p| p.name == name)
}

/// The names of all known plugins, for error messages.
pub fn names() -> Vec<&'static str> {
    PLUGINS.iter().map(|p| p.name).collect()
}

fn header_authorization(
    config: header_authorization::config::Config,
) -> Result<Checked, ConfigError> {
    let value = config.values.into_iter().next().unwrap_or_default();
    Ok(Checked::gate(vec![(config.header, value)]))
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
