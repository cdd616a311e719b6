//! A gateway's filters in a local Envoy, the way `run` serves them and `bench`
//! measures them: each filter's name in Envoy and its wasm `PluginConfig`, one
//! cluster per auth service the filters call, all pointing at one loopback
//! service, and the demo auth service that `run` puts there.

use crate::build;
use crate::gateway::fuse::Filter;
use crate::gateway::Gateway;
use crate::plugins::{Checked, DEMO_TOKEN};
use crate::util::Result;
use harness::envoy::{static_cluster, wasm_plugin_config};
use harness::{Reply, Request, Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// The upstream's cluster, in `run` and in the harness's test Envoys alike, so no
/// auth cluster may take the name.
pub const ECHO: &str = "echo";

/// A filter's name in Envoy: a plain instance's is its WasmPlugin's; a chain's is
/// its WasmPlugin's and a digest of its instances' names in order. A change of a
/// chain's instances is then a new filter, swapped in with the listener, and never
/// a rewrite of one that connections on the old listener still run, which would
/// run an instance twice or skip it until they close.
pub fn envoy_name(gateway: &Gateway, filter: &Filter) -> String {
    let name = filter.name(&gateway.name);
    if !filter.is_chain() {
        return name;
    }
    let digest = build::hex(&Sha256::digest(filter.names(",").as_bytes()));
    format!("{name}+{}", digest.get(..8).unwrap_or(&digest))
}

/// The Envoy `PluginConfig` of one filter: its pluginConfig JSON (a chain's list of
/// instances), env vars for the VM (inline values, and the host's own for
/// `valueFrom: HOST`), failure policy.
pub fn plugin_config(name: &str, filter: &Filter, module: &Path) -> Value {
    let instance = filter.first();
    let inline: Vec<(String, String)> = instance
        .env
        .iter()
        .filter_map(|v| v.value.clone().map(|value| (v.name.clone(), value)))
        .collect();
    let host: Vec<&str> = instance
        .env
        .iter()
        .filter(|v| v.value.is_none())
        .map(|v| v.name.as_str())
        .collect();
    let mut config = wasm_plugin_config(name, module, &filter.config_json(), &inline);
    if !host.is_empty() {
        config["vm_config"]["environment_variables"]["host_env_keys"] = json!(host);
    }
    config["failure_policy"] = json!(instance.fail_strategy.envoy_policy());
    config
}

/// The HTTP filter entry of `filter`, named as [`envoy_name`] says, running `module`.
pub fn wasm_filter(gateway: &Gateway, filter: &Filter, module: &Path) -> Value {
    let name = envoy_name(gateway, filter);
    let config = plugin_config(&name, filter, module);
    json!({"name": name, "typed_config": {"@type": WASM_TYPE, "config": config}})
}

/// One cluster for each auth cluster name the filters call, all pointing at the
/// auth service at `auth`.
pub fn auth_clusters(filters: &[Checked], auth: Option<SocketAddr>) -> Result<Vec<Value>> {
    let names: BTreeSet<&str> = filters
        .iter()
        .flat_map(|c| c.auth_clusters.iter().map(String::as_str))
        .collect();
    names
        .into_iter()
        .map(|name| {
            if name == ECHO {
                return Err(format!(
                    "cluster name '{ECHO}' is the echo upstream's: pick another in the plugin config"
                ));
            }
            let auth = auth.ok_or("the demo auth service is not running")?;
            Ok(static_cluster(name, auth))
        })
        .collect()
}

/// A loopback auth service that allows `Authorization: Bearer demo`, with an
/// identity to copy, and answers 401 otherwise.
pub fn demo_auth_service() -> Server {
    Server::start(|req: &Request| {
        if req.header_value("authorization") == Some(DEMO_TOKEN) {
            // An identity for `allowed_upstream_headers: [x-user-id]` to copy.
            Reply::with(200, &[("x-user-id", "demo")], "")
        } else {
            Reply::with(
                401,
                &[
                    ("content-type", "text/plain"),
                    ("www-authenticate", "Bearer realm=\"demo\""),
                ],
                "demo auth service: send Authorization: Bearer demo\n",
            )
        }
    })
}
