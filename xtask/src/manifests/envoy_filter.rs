//! A gateway as one `EnvoyFilter`, for meshes without WasmPlugin: per filter an
//! `EXTENSION_CONFIG` patch holding its Wasm filter config
//! (`envoy.extensions.filters.http.wasm.v3.Wasm`, built as istiod builds one
//! from a WasmPlugin: V8, the module as a remote `http_uri` with its sha256,
//! which Istio's agent fetches and checks before Envoy sees it, or a local file
//! for `file://`) and an `HTTP_FILTER` patch that inserts a filter fetching it
//! by extension config discovery (ECDS). One resource, so the order of its
//! patches, which Istio applies in list order, is the whole gateway's order.
//!
//! The filter order, stable whatever else the listener holds:
//! - AUTHN filters go first in the HTTP filter chain (`INSERT_FIRST`, which needs
//!   no anchor), as a WasmPlugin of phase AUTHN runs before Istio's own
//!   filters; their patches are listed in reverse chain order, since each goes
//!   in front of the one inserted before it.
//! - Every other filter goes just before `envoy.filters.http.router`, which
//!   every HTTP listener has (`INSERT_BEFORE`), in chain order: so AUTHZ and
//!   STATS filters run after Istio's own authn, authz and stats filters,
//!   where a WasmPlugin would run before the latter two.
//!
//! An anchor on one of our own filters would be skipped silently on a listener
//! that `match` left it off, dropping the filter: only the router and the
//! chain's head are anchors that always exist.

use super::{labels_node, target_refs};
use crate::gateway::fuse::Filter;
use crate::gateway::{compat, Gateway, Phase, Target, Url};
use crate::yaml::Node;
use serde_json::Value;

pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// What Istio's agent puts in a filter's place when it cannot fetch the
/// module: an RBAC filter that denies all (or allows all, when the config
/// fails open). The filter must accept that type too, as istiod's own do.
pub const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const HCM: &str = "envoy.filters.network.http_connection_manager";
const ROUTER: &str = "envoy.filters.http.router";

/// `(file name, comment, EnvoyFilter)` for all of `filters` (in chain order).
pub fn render(
    gateway: &Gateway,
    filters: &[Filter],
    sha256: &dyn Fn(&str) -> Result<String, String>,
) -> Result<(String, String, Node), String> {
    let mut patches = Vec::new();
    for filter in filters {
        patches.push(extension_config(gateway, filter, sha256)?);
    }
    let (first, rest): (Vec<&Filter>, Vec<&Filter>) = filters
        .iter()
        .partition(|f| f.first().phase == Phase::Authn);
    for filter in first.iter().rev() {
        patches.extend(http_filter(gateway, filter, true));
    }
    for filter in &rest {
        patches.extend(http_filter(gateway, filter, false));
    }
    let mut spec: Vec<(&str, Node)> = Vec::new();
    match &gateway.target {
        Target::Selector(labels) => spec.push((
            "workloadSelector",
            Node::map([("labels", labels_node(labels))]),
        )),
        Target::TargetRefs(refs) => spec.push(("targetRefs", target_refs(refs))),
    }
    spec.push(("configPatches", Node::List(patches)));
    let names: Vec<String> = filters.iter().map(|f| f.key().to_string()).collect();
    let about = format!(
        "# The gateway's {} filter{} in chain order: {}. AUTHN filters go first in\n\
         # the HTTP filter chain (INSERT_FIRST, so listed in reverse), the others just\n\
         # before envoy.filters.http.router (INSERT_BEFORE), each fetched by ECDS.\n",
        filters.len(),
        if filters.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let doc = Node::map([
        ("apiVersion", Node::str("networking.istio.io/v1alpha3")),
        ("kind", Node::str("EnvoyFilter")),
        (
            "metadata",
            super::metadata(gateway, format!("{}-wasm-plugins", gateway.name)),
        ),
        ("spec", Node::map(spec)),
    ]);
    Ok(("envoy-filter.yaml".to_string(), about, doc))
}

/// The ECDS resource name of a filter: `<namespace>.<gateway>-<first>`, as
/// istiod names a WasmPlugin's `<namespace>.<name>`.
pub fn resource_name(gateway: &Gateway, filter: &Filter) -> String {
    format!("{}.{}", gateway.namespace, filter.name(&gateway.name))
}

fn extension_config(
    gateway: &Gateway,
    filter: &Filter,
    sha256: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Node, String> {
    let name = resource_name(gateway, filter);
    let first = filter.first();
    let module = filter.module();
    let url = gateway.url.module(module);
    let code = match &gateway.url {
        Url::File(_) => Node::map([(
            "local",
            Node::map([("filename", Node::str(url.trim_start_matches("file://")))]),
        )]),
        // For OCI too: Istio's agent pulls `oci://` URLs given here and checks
        // the image against `sha256`. Envoy itself never fetches this: the
        // agent replaces it with the file it fetched, so the cluster is a
        // placeholder, as istiod writes it.
        Url::Oci(_) | Url::Https(_) => Node::map([(
            "remote",
            Node::map([
                (
                    "http_uri",
                    Node::map([
                        ("uri", Node::str(&url)),
                        ("cluster", Node::str("_")),
                        ("timeout", Node::str("30s")),
                    ]),
                ),
                ("sha256", Node::str(sha256(module)?)),
            ]),
        )]),
    };
    let mut vm: Vec<(&str, Node)> = vec![
        ("runtime", Node::str("envoy.wasm.runtime.v8")),
        ("code", code),
    ];
    // What a WasmPlugin's imagePullPolicy becomes: the variable Istio's agent
    // reads (and removes) before it hands the config to Envoy.
    let mut values: Vec<(String, Node)> = Vec::new();
    if let Some(policy) = first
        .image_pull_policy
        .as_deref()
        .filter(|p| *p != "UNSPECIFIED_POLICY")
    {
        values.push((
            "ISTIO_META_WASM_IMAGE_PULL_POLICY".into(),
            Node::str(policy),
        ));
    }
    let mut host = Vec::new();
    for var in &first.env {
        match &var.value {
            Some(value) => values.push((var.name.clone(), Node::str(value))),
            None => host.push(Node::str(&var.name)),
        }
    }
    let mut env: Vec<(&str, Node)> = Vec::new();
    if !values.is_empty() {
        env.push(("key_values", Node::map(values)));
    }
    if !host.is_empty() {
        env.push(("host_env_keys", Node::List(host)));
    }
    if !env.is_empty() {
        vm.push(("environment_variables", Node::map(env)));
    }
    let mut config: Vec<(&str, Node)> =
        vec![("name", Node::str(&name)), ("vm_config", Node::map(vm))];
    if filter.config().is_some() {
        config.push((
            "configuration",
            Node::map([
                (
                    "@type",
                    Node::str("type.googleapis.com/google.protobuf.StringValue"),
                ),
                ("value", Node::str(filter.config_json())),
            ]),
        ));
    }
    if gateway.istio >= compat::FAILURE_POLICY {
        config.push((
            "failure_policy",
            Node::str(first.fail_strategy.envoy_policy()),
        ));
    } else if first.fail_strategy == crate::gateway::FailStrategy::FailOpen {
        // Proxies before 1.25 know only the boolean (FAIL_RELOAD is refused there).
        config.push(("fail_open", Node::Json(Value::Bool(true))));
    }
    Ok(Node::map([
        ("applyTo", Node::str("EXTENSION_CONFIG")),
        (
            "patch",
            Node::map([
                ("operation", Node::str("ADD")),
                (
                    "value",
                    Node::map([
                        ("name", Node::str(&name)),
                        (
                            "typed_config",
                            Node::map([
                                ("@type", Node::str(WASM_TYPE)),
                                ("config", Node::map(config)),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ]))
}

/// The listeners a filter's `match` selects, as (context, port) pairs. Istio
/// (pilot/pkg/model/extensions.go) counts a gateway's listeners and a
/// sidecar's outbound ones as CLIENT, a sidecar's inbound ones as SERVER.
fn selected(filter: &Filter) -> Vec<(&'static str, Option<u64>)> {
    let clause = filter
        .first()
        .matches
        .as_ref()
        .and_then(Value::as_array)
        .and_then(|clauses| clauses.first());
    let Some(clause) = clause else {
        return vec![("ANY", None)];
    };
    let contexts: &[&'static str] = match clause.get("mode").and_then(Value::as_str) {
        Some("CLIENT") => &["GATEWAY", "SIDECAR_OUTBOUND"],
        Some("SERVER") => &["SIDECAR_INBOUND"],
        _ => &["ANY"],
    };
    let ports: Vec<Option<u64>> = match clause.get("ports").and_then(Value::as_array) {
        Some(ports) if !ports.is_empty() => ports
            .iter()
            .map(|p| p.get("number").and_then(Value::as_u64))
            .collect(),
        _ => vec![None],
    };
    contexts
        .iter()
        .flat_map(|c| ports.iter().map(move |p| (*c, *p)))
        .collect()
}

fn http_filter(gateway: &Gateway, filter: &Filter, first: bool) -> Vec<Node> {
    let name = resource_name(gateway, filter);
    selected(filter)
        .into_iter()
        .map(|(context, port)| {
            let mut hcm: Vec<(&str, Node)> = vec![("name", Node::str(HCM))];
            if !first {
                hcm.push(("subFilter", Node::map([("name", Node::str(ROUTER))])));
            }
            let mut listener: Vec<(&str, Node)> = Vec::new();
            if let Some(port) = port {
                listener.push(("portNumber", Node::Json(Value::from(port))));
            }
            listener.push(("filterChain", Node::map([("filter", Node::map(hcm))])));
            Node::map([
                ("applyTo", Node::str("HTTP_FILTER")),
                (
                    "match",
                    Node::map([
                        ("context", Node::str(context)),
                        ("listener", Node::map(listener)),
                    ]),
                ),
                (
                    "patch",
                    Node::map([
                        (
                            "operation",
                            Node::str(if first {
                                "INSERT_FIRST"
                            } else {
                                "INSERT_BEFORE"
                            }),
                        ),
                        (
                            "value",
                            Node::map([
                                ("name", Node::str(&name)),
                                (
                                    "config_discovery",
                                    Node::map([
                                        (
                                            "config_source",
                                            Node::map([
                                                ("ads", Node::map::<&str>([])),
                                                ("initial_fetch_timeout", Node::str("0s")),
                                            ]),
                                        ),
                                        (
                                            "type_urls",
                                            Node::List(vec![
                                                Node::str(WASM_TYPE),
                                                Node::str(RBAC_TYPE),
                                            ]),
                                        ),
                                    ]),
                                ),
                            ]),
                        ),
                    ]),
                ),
            ])
        })
        .collect()
}
