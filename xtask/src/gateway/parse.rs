//! Reading a gateway file: every field checked, with errors that name it, and each
//! instance's config parsed by its plugin's own config type.

use super::{
    compat, fuse, Api, EnvVar, FailStrategy, Gateway, Instance, Istio, Phase, Target, Url,
    PULL_POLICIES,
};
use crate::plugins;
use crate::yaml;
use common::config::{Fields, Node};
use common::ConfigError;
use serde_json::Value;
use std::path::Path;

impl Url {
    fn parse(node: &Node) -> Result<Url, ConfigError> {
        let text = node.non_empty_str()?.trim_end_matches('/');
        let (kind, rest): (fn(String) -> Url, _) = if let Some(rest) = text.strip_prefix("oci://") {
            (Url::Oci, rest)
        } else if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(node.error(format!(
                    "'{text}': a file URL needs an absolute directory (file:///opt/filters)"
                )));
            }
            (Url::File, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (Url::Https, rest)
        } else {
            return Err(node.error(format!("'{text}': expected oci://, file:// or https://")));
        };
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(node.error(format!("'{text}' is not a valid URL")));
        }
        Ok(kind(text.to_string()))
    }
}

/// Parses a gateway file's text; errors are without the file name.
pub fn parse(file: &Path, display: &str, text: &str) -> Result<Gateway, String> {
    let doc = yaml::parse(text)?;
    let mut fields = Fields::root(&doc).map_err(|e| e.to_string())?;
    let err = |e: ConfigError| e.to_string();

    let name_node = fields.require("name").map_err(err)?;
    let name = dns_label(&name_node).map_err(err)?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != stem {
        return Err(err(name_node.error(format!(
            "'{name}' must match the file name ({stem}.yaml holds name: {stem})"
        ))));
    }
    let namespace = dns_label(&fields.require("namespace").map_err(err)?).map_err(err)?;

    let selector = fields.get("selector");
    let target_refs = fields.get("targetRefs");
    let target = match (selector, target_refs) {
        (Some(_), Some(refs)) => {
            return Err(err(refs.error("give selector or targetRefs, not both")))
        }
        (Some(selector), None) => Target::Selector(labels(&selector).map_err(err)?),
        (None, Some(refs)) => Target::TargetRefs(parse_target_refs(&refs).map_err(err)?),
        (None, None) => {
            return Err(err(ConfigError::new(
                "selector",
                "one of selector or targetRefs is required (without either, Istio applies \
                 the plugins to every workload in the namespace)",
            )))
        }
    };
    let url = Url::parse(&fields.require("url").map_err(err)?).map_err(err)?;
    let pull_policy = pull_policy(fields.get("imagePullPolicy")).map_err(err)?;
    let pull_secret = fields
        .get("imagePullSecret")
        .map(|n| n.non_empty_str().map(str::to_string))
        .transpose()
        .map_err(err)?;
    let api = fields
        .get("api")
        .map(|node| one_of(&node, "api", &Api::ALL, Api::as_str))
        .transpose()
        .map_err(err)?
        .unwrap_or(Api::WasmPlugin);
    let istio = match fields.get("istio") {
        Some(node) => compat::parse_istio(node.value)?,
        None => Istio::DEFAULT,
    };
    let chain = fields.opt_bool("chain").map_err(err)?.unwrap_or(false);
    let plugins_node = fields.require("plugins").map_err(err)?;
    fields.finish().map_err(err)?;

    let items = plugins_node.list().map_err(err)?;
    if items.is_empty() {
        return Err(err(plugins_node.error("must list at least one plugin")));
    }
    let mut instances: Vec<Instance> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let label = ["name", "plugin"]
            .iter()
            .find_map(|k| item.value.get(k).and_then(Value::as_str))
            .unwrap_or("?");
        let instance = parse_instance(index, item.value, &pull_policy, &pull_secret)
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
        namespace,
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
    let mut fields = Fields::root(value).map_err(err)?;
    let plugin_node = fields.require("plugin").map_err(err)?;
    let plugin_name = plugin_node.non_empty_str().map_err(err)?;
    let plugin = plugins::find(plugin_name).ok_or_else(|| {
        err(plugin_node.error(format!(
            "unknown plugin '{plugin_name}' (known: {})",
            plugins::names().join(", ")
        )))
    })?;
    let name = match fields.get("name") {
        Some(node) => dns_label(&node).map_err(err)?,
        None => plugin.name.to_string(),
    };
    let phase = fields
        .get("phase")
        .map(|node| one_of(&node, "phase", &Phase::ALL, Phase::as_str))
        .transpose()
        .map_err(err)?
        .unwrap_or(Phase::Unspecified);
    let priority = fields
        .opt_int_in("priority", i64::from(i32::MIN)..=i64::from(i32::MAX))
        .map_err(err)?
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0);
    let fail_strategy = fields
        .get("failStrategy")
        .map(|node| {
            one_of(
                &node,
                "failStrategy",
                &FailStrategy::ALL,
                FailStrategy::as_str,
            )
        })
        .transpose()
        .map_err(err)?
        .unwrap_or(FailStrategy::FailClose);
    let config = fields.get("config").map(|n| n.value.clone());
    let empty = Value::Object(Default::default());
    // The very parse the plugin runs in on_configure.
    let checked = (plugin.check)(config.as_ref().unwrap_or(&empty)).map_err(|e| {
        if e.path.is_empty() {
            format!("config: {}", e.message)
        } else {
            format!("config.{}: {}", e.path, e.message)
        }
    })?;
    let env = match fields.get("env") {
        Some(node) => parse_env(&node).map_err(err)?,
        None => Vec::new(),
    };
    let matches = match fields.get("match") {
        Some(node) => {
            check_match(&node).map_err(err)?;
            Some(node.value.clone())
        }
        None => None,
    };
    let image_pull_policy = pull_policy(fields.get("imagePullPolicy"))
        .map_err(err)?
        .or_else(|| gateway_pull_policy.clone());
    let image_pull_secret = fields
        .get("imagePullSecret")
        .map(|n| n.non_empty_str().map(str::to_string))
        .transpose()
        .map_err(err)?
        .or_else(|| gateway_pull_secret.clone());
    let chain = fields.opt_bool("chain").map_err(err)?;
    fields.finish().map_err(err)?;
    Ok(Instance {
        index,
        plugin: plugin.name.to_string(),
        name,
        phase,
        priority,
        fail_strategy,
        config,
        env,
        matches,
        image_pull_policy,
        image_pull_secret,
        chain,
        checked,
    })
}

/// The value among `all` that `node` names; `what` is the field, for the error.
fn one_of<T: Copy>(
    node: &Node,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, ConfigError> {
    let text = node.str()?;
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            let expected = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                _ => names.join(""),
            };
            node.error(format!("unknown {what} '{text}' (expected {expected})"))
        })
}

/// A lowercase RFC 1123 label: gateway and instance names become Kubernetes names.
fn dns_label(node: &Node) -> Result<String, ConfigError> {
    let s = node.non_empty_str()?;
    let ok = s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(node.error(format!(
            "'{s}' is not a valid name (lowercase letters, digits and '-', at most 63)"
        )))
    }
}

fn labels(node: &Node) -> Result<Vec<(String, String)>, ConfigError> {
    let labels: Vec<(String, String)> = node
        .str_map(64)?
        .into_iter()
        .map(|(k, v)| Ok((k.to_string(), v.str()?.to_string())))
        .collect::<Result<_, ConfigError>>()?;
    if labels.is_empty() {
        return Err(node.error("must have at least one label"));
    }
    Ok(labels)
}

fn parse_target_refs(node: &Node) -> Result<Vec<Vec<(String, String)>>, ConfigError> {
    let items = node.list()?;
    if items.is_empty() {
        return Err(node.error("must list at least one target"));
    }
    items
        .iter()
        .map(|item| {
            let mut fields = item.fields()?;
            let group = fields.opt_str("group")?;
            let kind = fields.require("kind")?.non_empty_str()?;
            let name = fields.require("name")?.non_empty_str()?;
            if fields.opt_str("namespace")?.is_some() {
                // The CRDs' CEL rule requires it empty: the API server would
                // refuse the manifest.
                return Err(ConfigError::new(
                    format!("{}.namespace", item.path),
                    "Istio does not support cross-namespace references (the CRD requires it \
                     empty): leave it out, the target is in the gateway's namespace",
                ));
            }
            fields.finish()?;
            // Istio requires the group; a Gateway's is always this one.
            let group = match (group, kind) {
                (Some(g), _) => g,
                (None, "Gateway") => "gateway.networking.k8s.io",
                (None, _) => {
                    return Err(ConfigError::new(
                        format!("{}.group", item.path),
                        format!("is required for kind {kind}"),
                    ))
                }
            };
            Ok(vec![
                ("group".to_string(), group.to_string()),
                ("kind".to_string(), kind.to_string()),
                ("name".to_string(), name.to_string()),
            ])
        })
        .collect()
}

fn pull_policy(node: Option<Node>) -> Result<Option<String>, ConfigError> {
    let Some(node) = node else { return Ok(None) };
    let text = node.str()?;
    if PULL_POLICIES.contains(&text) {
        Ok(Some(text.to_string()))
    } else {
        Err(node.error(format!(
            "unknown imagePullPolicy '{text}' (expected {})",
            PULL_POLICIES.join(", ")
        )))
    }
}

fn parse_env(node: &Node) -> Result<Vec<EnvVar>, ConfigError> {
    let mut vars: Vec<EnvVar> = Vec::new();
    for item in node.list()? {
        let mut fields = item.fields()?;
        let name_node = fields.require("name")?;
        let name = name_node.non_empty_str()?;
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(name_node.error(format!("'{name}' is not a valid variable name")));
        }
        if vars.iter().any(|v| v.name == name) {
            return Err(name_node.error(format!("duplicate variable '{name}'")));
        }
        let value = fields.get("value");
        let from_host = match fields.get("valueFrom") {
            None => false,
            Some(from) => match from.str()? {
                "INLINE" => false,
                "HOST" => true,
                other => {
                    return Err(from.error(format!(
                        "unknown valueFrom '{other}' (expected INLINE or HOST)"
                    )))
                }
            },
        };
        fields.finish()?;
        let value = match (value, from_host) {
            (Some(v), true) => return Err(v.error("must be empty with valueFrom: HOST")),
            (Some(v), false) => Some(v.str()?.to_string()),
            (None, true) => None,
            (None, false) => Some(String::new()),
        };
        vars.push(EnvVar {
            name: name.to_string(),
            value,
        });
    }
    Ok(vars)
}

/// `match` is passed through, but checked against Istio's shape so a typo fails here
/// rather than at `kubectl apply`.
fn check_match(node: &Node) -> Result<(), ConfigError> {
    const MODES: [&str; 4] = ["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"];
    for item in node.list()? {
        let mut fields = item.fields()?;
        if let Some(mode) = fields.get("mode") {
            let text = mode.str()?;
            if !MODES.contains(&text) {
                return Err(mode.error(format!(
                    "unknown mode '{text}' (expected {})",
                    MODES.join(", ")
                )));
            }
        }
        if let Some(ports) = fields.get("ports") {
            for port in ports.list()? {
                let mut port_fields = port.fields()?;
                port_fields.require("number")?.int_in(1..=65535)?;
                port_fields.finish()?;
            }
        }
        fields.finish()?;
    }
    Ok(())
}
