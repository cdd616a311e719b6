//! The bench's gateway cases: the example ingress gateway (6 instances of 4
//! plugins), loaded and checked by the gateway module, in Istio's order, its
//! filters built by the code `run` uses: as six filters, with VMs shared per
//! module (as `run` and Istio, which set no `vm_id`) and with a VM each; fused as
//! the file says (`chain: true`: one chain filter per phase here); and all six in
//! one chain filter. The chain cases need the chain module (`plugins/chain`).

use super::{own_vm, Case, Filter};
use crate::build::{dist_dir, module_path, CHAIN};
use crate::gateway::fuse::Filter as GatewayFilter;
use crate::gateway::{self, Gateway};
use crate::local;
use crate::plugins::Checked;
use crate::util::{root, Result};
use std::net::SocketAddr;

const FILE: &str = "examples/gateways/ingress.yaml";

/// The gateway's cases, and a note for each that cannot run (no chain module).
/// The filters' auth calls go to the demo auth service at `demo`, which allows
/// what the requests carry.
pub fn cases(demo: SocketAddr) -> Result<(Vec<Case>, Vec<String>)> {
    let gateway = gateway::load(&root().join(FILE))?;
    let apart = apart(&gateway);
    let mut cases = vec![
        case(
            &apart,
            "six filters (as run, Istio)",
            apart.filters().filters,
            false,
            demo,
        )?,
        case(
            &apart,
            "six filters, a VM each",
            apart.filters().filters,
            true,
            demo,
        )?,
    ];
    let mut skipped = Vec::new();
    let chains = [
        (
            format!(
                "fused as the file says ({} filters)",
                gateway.filters().filters.len()
            ),
            gateway.filters().filters,
        ),
        (
            "all six in one chain".to_string(),
            vec![GatewayFilter {
                instances: gateway.chain(),
            }],
        ),
    ];
    let chain_module = module_path(&dist_dir(), CHAIN);
    for (name, filters) in chains {
        if chain_module.is_file() {
            cases.push(case(&gateway, &name, filters, false, demo)?);
        } else {
            skipped.push(format!(
                "{}: {name}: {} is missing (plugins/chain not built)",
                gateway.name,
                chain_module.display()
            ));
        }
    }
    Ok((cases, skipped))
}

/// `gateway` with every instance a filter of its own, whatever the file fuses.
fn apart(gateway: &Gateway) -> Gateway {
    let mut apart = gateway.clone();
    apart.chain = false;
    for instance in &mut apart.instances {
        instance.chain = Some(false);
    }
    apart
}

/// The case running `filters` of `gateway` as `run` builds them (with a VM each
/// when `own_vms`), with the clusters their auth calls go to and the request
/// headers that get past all of them.
fn case(
    gateway: &Gateway,
    name: &str,
    filters: Vec<GatewayFilter>,
    own_vms: bool,
    demo: SocketAddr,
) -> Result<Case> {
    let checked: Vec<Checked> = filters.iter().map(GatewayFilter::checked).collect();
    let entries = filters
        .iter()
        .map(|filter| {
            let module = module_path(&dist_dir(), filter.module());
            let entry = Filter::Entry(local::wasm_filter(gateway, filter, &module));
            if own_vms {
                own_vm(entry, &local::envoy_name(gateway, filter))
            } else {
                entry
            }
        })
        .collect();
    let mut case = Case::new(&format!("{}: {name}", gateway.name), entries);
    case.instances = Some(filters.iter().map(|f| f.instances.len()).sum());
    case.headers = Checked::chain(checked.iter().cloned())
        .pass_headers
        .unwrap_or_default();
    case.clusters = local::auth_clusters(&checked, Some(demo))?;
    Ok(case)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entry(filter: &Filter) -> &Value {
        match filter {
            Filter::Entry(entry) => entry,
            _ => panic!("not an entry"),
        }
    }

    fn names(case: &Case) -> Vec<&str> {
        case.filters
            .iter()
            .map(|f| entry(f)["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_gateway_runs_as_run_builds_it_and_passes_with_its_headers() {
        let demo: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let gateway = gateway::load(&root().join(FILE)).unwrap();
        let apart = apart(&gateway);
        let six = case(&apart, "six", apart.filters().filters, false, demo).unwrap();
        assert_eq!(
            names(&six),
            [
                "ingress-security-headers",
                "ingress-tenant",
                "ingress-admin-basic-auth",
                "ingress-ext-auth",
                "ingress-team",
                "ingress-api-version"
            ]
        );
        let vm = |f: &Filter| entry(f)["typed_config"]["config"]["vm_config"].clone();
        assert!(vm(&six.filters[1]).get("vm_id").is_none());
        let own = case(&apart, "own", apart.filters().filters, true, demo).unwrap();
        assert_eq!(vm(&own.filters[1])["vm_id"], "ingress-tenant");
        let header = |name: &str| {
            six.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("x-tenant"), Some("acme"));
        assert_eq!(header("authorization"), Some(crate::plugins::DEMO_TOKEN));
        assert_eq!(
            six.clusters[0]["name"],
            "outbound|8000||auth.default.svc.cluster.local"
        );

        // Fused or not, the same requests pass and the same clusters are called.
        let all = GatewayFilter {
            instances: gateway.chain(),
        };
        let one = case(&gateway, "one", vec![all], false, demo).unwrap();
        assert_eq!(one.filters.len(), 1);
        let config = &entry(&one.filters[0])["typed_config"]["config"];
        assert!(config["vm_config"]["code"]["local"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("chain.wasm"));
        let chain: Value =
            serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(chain["chain"].as_array().unwrap().len(), 6);
        let sorted = |mut h: Vec<(String, String)>| {
            h.sort();
            h
        };
        assert_eq!(sorted(one.headers.clone()), sorted(six.headers.clone()));
        assert_eq!(one.clusters, six.clusters);
        let fused = case(&gateway, "fused", gateway.filters().filters, false, demo).unwrap();
        assert_eq!(fused.filters.len(), 3);
    }
}
