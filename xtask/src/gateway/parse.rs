//! Reading a gateway file: its serde types ([`spec`](super::spec)) check every
//! field, with errors that name it; here, what spans fields, and each instance's
//! config parsed by its plugin's own config type.

use super::spec::{EnvSpec, GatewaySpec, InstanceSpec, Named, TargetRefs, ValueFrom};
use super::{
    compat, fuse, Api, EnvVar, FailStrategy, Gateway, Instance, Istio, Phase, Target, Url,
};
use crate::yaml;
use common::config::from_value;
use common::ConfigError;
use serde_json::Value;
use std::path::Path;

impl Url {
    /// Parses `url:`; errors are without the field's name.
    pub fn parse(text: &str) -> Result<Url, String> {
        let text = text.trim_end_matches('/');
        let (kind, rest): (fn(String) -> Url, _) = if let Some(rest) = text.strip_prefix("oci://") {
            (Url::Oci, rest)
        } else if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(format!(
                    "'{text}': a file URL needs an absolute directory (file:///opt/filters)"
                ));
            }
            (Url::File, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (Url::Https, rest)
        } else {
            return Err(format!("'{text}': expected oci://, file:// or https://"));
        };
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(format!("'{text}' is not a valid URL"));
        }
        Ok(kind(text.to_string()))
    }
}

/// Parses a gateway file's text; errors are without the file name.
pub fn parse(file: &Path, display: &str, text: &str) -> Result<Gateway, String> {
    let doc = yaml::parse(text)?;
    let err = |e: ConfigError| e.to_string();
    let spec: GatewaySpec = from_value(&doc).map_err(err)?;

    let name = spec.name.0;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != stem {
        return Err(format!(
            "name: '{name}' must match the file name ({stem}.yaml holds name: {stem})"
        ));
    }
    let target = match (spec.selector, spec.target_refs) {
        (Some(_), Some(_)) => {
            return Err("targetRefs: give selector or targetRefs, not both".into())
        }
        (Some(labels), None) => Target::Selector(labels.0),
        (None, Some(refs)) => Target::TargetRefs(target_refs(refs).map_err(err)?),
        (None, None) => {
            return Err(err(ConfigError::new(
                "selector",
                "one of selector or targetRefs is required (without either, Istio applies \
                 the plugins to every workload in the namespace)",
            )))
        }
    };
    let url = Url::parse(&spec.url.0).map_err(|e| format!("url: {e}"))?;
    let pull_policy = spec.image_pull_policy.map(|p| p.0.name().to_string());
    let pull_secret = spec.image_pull_secret.map(|s| s.0);
    let api = spec.api.map_or(Api::WasmPlugin, |a| a.0);
    let istio = spec.istio.map_or(Istio::DEFAULT, |i| i.0);
    let chain = spec.chain.unwrap_or(false);

    // `Instances` checked that this is a list of at least one.
    let items = doc
        .get("plugins")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut instances: Vec<Instance> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let label = ["name", "plugin"]
            .iter()
            .find_map(|k| item.get(k).and_then(Value::as_str))
            .unwrap_or("?");
        let instance = parse_instance(index, item, &pull_policy, &pull_secret)
            .map_err(|e| format!("plugins[{index}] ({label}): {e}"))?;
        if let Some(first) = instances.iter().find(|i| i.name == instance.name) {
            return Err(format!(
                "plugins[{index}] ({label}): name: duplicate instance name '{}' (also plugins[{}]); \
                 give one of them another name",
                instance.name, first.index
            ));
        }
        instances.push(instance);
    }
    let gateway = Gateway {
        file: file.to_path_buf(),
        display: display.to_string(),
        name,
        namespace: spec.namespace.0,
        target,
        url,
        api,
        istio,
        chain,
        instances,
    };
    compat::check(&gateway, pull_secret.is_some())?;
    // Each chain's pluginConfig, parsed as the chain module will parse it.
    fuse::check(&gateway)?;
    Ok(gateway)
}

fn parse_instance(
    index: usize,
    value: &Value,
    gateway_pull_policy: &Option<String>,
    gateway_pull_secret: &Option<String>,
) -> Result<Instance, String> {
    let err = |e: ConfigError| e.to_string();
    let spec: InstanceSpec = from_value(value).map_err(err)?;
    let plugin = spec.plugin.0;
    // `config` and `match` are passed on as written (null is absent).
    let raw = |key: &str| value.get(key).filter(|v| !v.is_null()).cloned();
    let config = raw("config");
    let empty = Value::Object(Default::default());
    // The very parse the plugin runs in on_configure.
    let checked = (plugin.check)(config.as_ref().unwrap_or(&empty)).map_err(|e| {
        if e.path.is_empty() {
            format!("config: {}", e.message)
        } else {
            format!("config.{}: {}", e.path, e.message)
        }
    })?;
    Ok(Instance {
        index,
        plugin: plugin.name.to_string(),
        name: spec.name.map_or_else(|| plugin.name.to_string(), |n| n.0),
        phase: spec.phase.map_or(Phase::Unspecified, |p| p.0),
        priority: spec
            .priority
            .and_then(|p| i32::try_from(p.0).ok())
            .unwrap_or(0),
        fail_strategy: spec.fail_strategy.map_or(FailStrategy::FailClose, |f| f.0),
        config,
        env: env(spec.env.unwrap_or_default()).map_err(err)?,
        matches: raw("match"),
        image_pull_policy: spec
            .image_pull_policy
            .map(|p| p.0.name().to_string())
            .or_else(|| gateway_pull_policy.clone()),
        image_pull_secret: spec
            .image_pull_secret
            .map(|s| s.0)
            .or_else(|| gateway_pull_secret.clone()),
        chain: spec.chain,
        checked,
    })
}

/// The targets, each as (field, value) pairs; `namespace` is refused and a
/// Gateway's group filled in.
fn target_refs(refs: TargetRefs) -> Result<Vec<Vec<(String, String)>>, ConfigError> {
    refs.0
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.namespace.is_some() {
                // The CRDs' CEL rule requires it empty: the API server would
                // refuse the manifest.
                return Err(ConfigError::new(
                    format!("targetRefs[{i}].namespace"),
                    "Istio does not support cross-namespace references (the CRD requires it \
                     empty): leave it out, the target is in the gateway's namespace",
                ));
            }
            let kind = r.kind.0;
            // Istio requires the group; a Gateway's is always this one.
            let group = match (r.group, kind.as_str()) {
                (Some(g), _) => g,
                (None, "Gateway") => "gateway.networking.k8s.io".to_string(),
                (None, _) => {
                    return Err(ConfigError::new(
                        format!("targetRefs[{i}].group"),
                        format!("is required for kind {kind}"),
                    ))
                }
            };
            Ok(vec![
                ("group".to_string(), group),
                ("kind".to_string(), kind),
                ("name".to_string(), r.name.0),
            ])
        })
        .collect()
}

/// The variables, each name once; `valueFrom: HOST` takes no value.
fn env(specs: Vec<EnvSpec>) -> Result<Vec<EnvVar>, ConfigError> {
    let mut vars: Vec<EnvVar> = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let name = spec.name.0;
        if vars.iter().any(|v| v.name == name) {
            return Err(ConfigError::new(
                format!("env[{i}].name"),
                format!("duplicate variable '{name}'"),
            ));
        }
        let from_host = spec.value_from.is_some_and(|v| v.0 == ValueFrom::Host);
        let value = match (spec.value, from_host) {
            (Some(_), true) => {
                return Err(ConfigError::new(
                    format!("env[{i}].value"),
                    "must be empty with valueFrom: HOST",
                ))
            }
            (Some(v), false) => Some(v),
            (None, true) => None,
            (None, false) => Some(String::new()),
        };
        vars.push(EnvVar { name, value });
    }
    Ok(vars)
}
