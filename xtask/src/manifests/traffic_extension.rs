//! A filter as a `TrafficExtension` (Istio 1.30+, which supersedes WasmPlugin):
//! the WasmPlugin's placement fields (target, phase, priority, match) at the top
//! of `spec`, its wasm fields under `spec.wasm`, and phase `UNSPECIFIED` where
//! WasmPlugin says `UNSPECIFIED_PHASE` (the vendored CRD's enum).

use super::{metadata, plugin_config, target, vm_config};
use crate::gateway::fuse::Filter;
use crate::gateway::{Gateway, Phase};
use crate::yaml::Node;

pub fn render(
    gateway: &Gateway,
    filter: &Filter,
    sha256: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Node, String> {
    let first = filter.first();
    let module = filter.module();
    let mut wasm: Vec<(&str, Node)> = vec![("url", Node::str(gateway.url.module(module)))];
    wasm.push(("sha256", Node::str(sha256(module)?)));
    if let Some(policy) = &first.image_pull_policy {
        wasm.push(("imagePullPolicy", Node::str(policy)));
    }
    if let Some(secret) = &first.image_pull_secret {
        wasm.push(("imagePullSecret", Node::str(secret)));
    }
    wasm.push(("type", Node::str("HTTP")));
    wasm.push(("failStrategy", Node::str(first.fail_strategy.as_str())));
    if let Some(vm) = vm_config(filter) {
        wasm.push(("vmConfig", vm));
    }
    if let Some(config) = plugin_config(filter) {
        wasm.push(("pluginConfig", config));
    }
    let phase = match first.phase {
        Phase::Unspecified => "UNSPECIFIED",
        other => other.as_str(),
    };
    let mut spec: Vec<(&str, Node)> = vec![target(gateway)];
    spec.push(("phase", Node::str(phase)));
    spec.push(("priority", Node::Int(first.priority.into())));
    if let Some(matches) = &first.matches {
        spec.push(("match", Node::Json(matches.clone())));
    }
    spec.push(("wasm", Node::map(wasm)));
    Ok(Node::map([
        ("apiVersion", Node::str("extensions.istio.io/v1alpha1")),
        ("kind", Node::str("TrafficExtension")),
        ("metadata", metadata(gateway, filter.name(&gateway.name))),
        ("spec", Node::map(spec)),
    ]))
}
