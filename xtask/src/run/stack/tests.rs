//! What `run` hands Envoy: each filter's plugin config and name, chains
//! included, and the clusters for the auth services the filters call.

use super::*;
use crate::plugins::Checked;
use crate::run::curl_commands;
use crate::run::tests::{gateway, GW};
use sha2::{Digest, Sha256};

#[test]
fn plugin_config_carries_config_env_and_failure_policy() {
    let g = gateway(GW);
    let plan = g.filters();
    let [tenant, team] = plan.filters.as_slice() else {
        panic!("{plan:?}")
    };
    assert_eq!(envoy_name(&g, tenant), "gw-tenant");
    let config = plugin_config("gw-tenant", tenant, Path::new("/m/h.wasm"));
    assert_eq!(config["name"], "gw-tenant");
    assert_eq!(config["failure_policy"], "FAIL_OPEN");
    assert_eq!(
        config["configuration"]["value"],
        r#"{"header":"x-tenant","values":["it's"]}"#
    );
    // No vm_id, as Istio: instances of one module share a VM per worker.
    assert!(config["vm_config"].get("vm_id").is_none());
    assert_eq!(
        config["vm_config"]["code"]["local"]["filename"],
        "/m/h.wasm"
    );
    assert_eq!(
        config["vm_config"]["environment_variables"],
        json!({"key_values": {"A": "1"}, "host_env_keys": ["PATH"]})
    );
    let config = plugin_config("gw-team", team, Path::new("/m/h.wasm"));
    assert_eq!(config["failure_policy"], "FAIL_CLOSED");
    assert!(config["vm_config"].get("environment_variables").is_none());
}

/// GW with both instances in AUTHN, FAIL_OPEN, one env: fused when asked.
fn fusable(chain: &str) -> String {
    GW.replace("plugins:", &format!("{chain}plugins:"))
            .replace(
                "    phase: AUTHZ\n",
                "    phase: AUTHN\n    priority: -1\n    failStrategy: FAIL_OPEN\n    env: [{name: PATH, valueFrom: HOST}, {name: A, value: '1'}]\n",
            )
}

#[test]
fn a_chain_is_one_filter_named_after_its_instances() {
    let g = gateway(&fusable("chain: true\n"));
    let plan = g.filters();
    let [chain] = plan.filters.as_slice() else {
        panic!("{plan:?}")
    };
    let name = envoy_name(&g, chain);
    // The WasmPlugin's name, and a digest of tenant,team.
    let digest = build::hex(&Sha256::digest(b"tenant,team"));
    assert_eq!(name, format!("gw-tenant+{}", &digest[..8]));
    let config = plugin_config(&name, chain, Path::new("/m/chain.wasm"));
    assert!(config["vm_config"].get("vm_id").is_none());
    assert_eq!(config["failure_policy"], "FAIL_OPEN");
    assert_eq!(
        config["vm_config"]["environment_variables"],
        json!({"key_values": {"A": "1"}, "host_env_keys": ["PATH"]})
    );
    let value: Value =
        serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(value, chain.config().unwrap());
    assert_eq!(value["chain"][1]["name"], "team");
    // Another membership is another filter; other configs are the same filter.
    let reordered = gateway(&fusable("chain: true\n").replace("priority: -1", "priority: 1"));
    let plan = reordered.filters();
    assert_eq!(plan.filters[0].names(","), "team,tenant");
    assert_ne!(envoy_name(&reordered, &plan.filters[0]), name);
    let edited = gateway(&fusable("chain: true\n").replace("red, blue", "green"));
    assert_eq!(envoy_name(&edited, &edited.filters().filters[0]), name);
    // Without chain: true, the same instances are two plain filters.
    let apart = gateway(&fusable(""));
    let names: Vec<String> = apart
        .filters()
        .filters
        .iter()
        .map(|f| envoy_name(&apart, f))
        .collect();
    assert_eq!(names, ["gw-tenant", "gw-team"]);
}

#[test]
fn auth_clusters_point_at_the_demo_auth_service() {
    let mut g = gateway(GW);
    let echo: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let auth: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let names = |c: &[Value]| -> Vec<String> {
        c.iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let checked =
        |g: &Gateway| -> Vec<Checked> { g.filters().filters.iter().map(Filter::checked).collect() };
    assert_eq!(
        names(&clusters(&checked(&g), echo, None).unwrap()),
        ["echo"]
    );
    // What dispatch-auth's registry entry reports for `cluster: ...`.
    let cluster = "outbound|8080||auth.default.svc.cluster.local";
    for i in &mut g.instances {
        i.checked = Checked::auth_cluster(cluster.into());
    }
    let made = clusters(&checked(&g), echo, Some(auth)).unwrap();
    assert_eq!(names(&made), ["echo", cluster]);
    assert_eq!(made[1], static_cluster(cluster, auth));
    let commands = curl_commands("http://h", &g);
    assert_eq!(
        commands.last().unwrap().0,
        "curl -i http://h/ -H 'authorization: Bearer demo'"
    );
    // A chain calls each of its instances' clusters.
    let mut fused = gateway(&fusable("chain: true\n"));
    fused.instances[0].checked = Checked::auth_cluster("one".into());
    fused.instances[1].checked = Checked::auth_cluster("two".into());
    let made = clusters(&checked(&fused), echo, Some(auth)).unwrap();
    assert_eq!(names(&made), ["echo", "one", "two"]);
    g.instances[0].checked = Checked::auth_cluster(ECHO.into());
    assert!(clusters(&checked(&g), echo, Some(auth)).is_err());
}
