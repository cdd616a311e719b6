//! Gateway files: which plugins a gateway runs, in which phase and order, with which
//! configuration. Loading checks every field, each instance's config with the
//! plugin's own config type, and orders the instances the way Istio chains them.

use crate::plugins::{self, Checked};
use crate::util::root;
use crate::yaml;
use common::config::{Fields, Node};
use common::ConfigError;
use serde_json::Value;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// Where gateway files live unless `--gateways` says otherwise.
pub fn default_dir() -> PathBuf {
    root().join("examples").join("gateways")
}

/// One gateway file.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The file, and how messages and generated files name it.
    pub file: PathBuf,
    pub display: String,
    pub name: String,
    pub namespace: String,
    pub target: Target,
    pub url: Url,
    /// Plugin instances in file order; [`Gateway::chain`] gives Envoy's order.
    pub instances: Vec<Instance>,
}

/// Which workloads a gateway's WasmPlugins apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `selector.matchLabels`.
    Selector(Vec<(String, String)>),
    /// `targetRefs`, each as (field, value) pairs in group, kind, name, namespace order.
    TargetRefs(Vec<Vec<(String, String)>>),
}

/// Where Istio fetches the modules from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    /// `oci://<base>` -> `oci://<base>/<plugin>:<version>`
    Oci(String),
    /// `file://<dir>` -> `file://<dir>/<plugin>.wasm`
    File(String),
    /// `https://<base>` -> `https://<base>/<plugin>.wasm`
    Https(String),
}

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

    /// The URL of `plugin`'s module.
    pub fn module(&self, plugin: &str) -> String {
        match self {
            Url::Oci(base) => format!("{base}/{plugin}:{}", version()),
            Url::File(base) | Url::Https(base) => format!("{base}/{plugin}.wasm"),
        }
    }

    /// Istio checks the module's sha256 for file and https URLs; an OCI image is
    /// checked by its own digest.
    pub fn wants_sha256(&self) -> bool {
        !matches!(self, Url::Oci(_))
    }
}

/// The workspace version, which OCI tags carry.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Istio's plugin phases, in chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Authn,
    Authz,
    Stats,
    Unspecified,
}

impl Phase {
    const ALL: [Phase; 4] = [Phase::Authn, Phase::Authz, Phase::Stats, Phase::Unspecified];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
            Phase::Unspecified => "UNSPECIFIED_PHASE",
        }
    }
}

/// What happens when the plugin cannot run (a fetch failure, a crashed VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // Istio's names
pub enum FailStrategy {
    FailClose,
    FailOpen,
    FailReload,
}

impl FailStrategy {
    const ALL: [FailStrategy; 3] = [
        FailStrategy::FailClose,
        FailStrategy::FailOpen,
        FailStrategy::FailReload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSE",
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }

    /// Envoy's `PluginConfig.failure_policy` for it (what Istio sets too).
    pub fn envoy_policy(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSED",
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }
}

const PULL_POLICIES: [&str; 3] = ["UNSPECIFIED_POLICY", "IfNotPresent", "Always"];

/// An environment variable for the plugin's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    /// `None` for `valueFrom: HOST`: the proxy's own variable of that name.
    pub value: Option<String>,
}

/// One plugin instance of a gateway.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its position in the file's `plugins` list.
    pub index: usize,
    pub plugin: String,
    pub name: String,
    pub phase: Phase,
    pub priority: i32,
    pub fail_strategy: FailStrategy,
    /// `pluginConfig`; absent means the plugin's defaults (Istio then sends none).
    pub config: Option<Value>,
    pub env: Vec<EnvVar>,
    /// `match`, passed through to the WasmPlugin.
    pub matches: Option<Value>,
    pub image_pull_policy: Option<String>,
    pub image_pull_secret: Option<String>,
    /// What the plugin's config type said about the config.
    pub checked: Checked,
}

impl Instance {
    /// The `pluginConfig` as the JSON text Envoy hands to the plugin.
    pub fn config_json(&self) -> String {
        self.config
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default()
    }
}

/// Istio's order: phase, then priority (highest first), then name.
pub fn chain_order(a: &Instance, b: &Instance) -> Ordering {
    a.phase
        .cmp(&b.phase)
        .then(b.priority.cmp(&a.priority))
        .then(a.name.cmp(&b.name))
}

impl Gateway {
    /// The instances in the order Envoy runs them.
    pub fn chain(&self) -> Vec<&Instance> {
        let mut chain: Vec<&Instance> = self.instances.iter().collect();
        chain.sort_by(|a, b| chain_order(a, b));
        chain
    }

    /// The distinct plugins this gateway uses, sorted.
    pub fn plugins(&self) -> Vec<String> {
        let mut names: Vec<String> = self.instances.iter().map(|i| i.plugin.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A `--gateways` path, which unlike the default directory must exist.
pub fn given(path: String) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "--gateways {}: no such file or directory",
            path.display()
        ))
    }
}

/// The gateway files at `path`: the file itself, or every `*.yaml`/`*.yml` in the
/// directory (none when it does not exist), sorted by name.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.exists() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads and checks the gateways at `path`, or only the one called `only`. On any
/// error, returns every error found (one line per file), so nothing is built or
/// written from a partly bad set.
pub fn select(path: &Path, only: Option<&str>) -> Result<Vec<Gateway>, String> {
    let mut files = files(path)?;
    if let Some(name) = only {
        let stem = |f: &PathBuf| f.file_stem().map(|s| s.to_string_lossy().into_owned());
        let found: Vec<String> = files.iter().filter_map(stem).collect();
        // A gateway's file is named after it, so the name picks the file.
        files.retain(|f| stem(f).as_deref() == Some(name));
        if files.is_empty() {
            return Err(format!(
                "no gateway named '{name}' in {} (found: {})",
                display(path),
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            ));
        }
    }
    let mut gateways = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load(&file) {
            Ok(gateway) => gateways.push(gateway),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(gateways)
    } else {
        Err(errors.join("\n"))
    }
}

/// How messages and generated files name `file`: relative to the workspace when
/// inside it, so output does not depend on where the checkout is.
pub fn display(file: &Path) -> String {
    let absolute = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(file)
    };
    match absolute.strip_prefix(root()) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => file.display().to_string(),
    }
}

/// Loads one gateway file; an error reads `<file>: [plugins[<i>] (<instance>): ]<field>: <message>`.
pub fn load(file: &Path) -> Result<Gateway, String> {
    let display = display(file);
    let text = std::fs::read_to_string(file).map_err(|e| format!("{display}: cannot read: {e}"))?;
    parse(file, &display, &text).map_err(|e| format!("{display}: {e}"))
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
    Ok(Gateway {
        file: file.to_path_buf(),
        display: display.to_string(),
        name,
        namespace,
        target,
        url,
        instances,
    })
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
            let namespace = fields.opt_str("namespace")?;
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
            let mut out = vec![
                ("group".to_string(), group.to_string()),
                ("kind".to_string(), kind.to_string()),
                ("name".to_string(), name.to_string()),
            ];
            if let Some(ns) = namespace {
                out.push(("namespace".to_string(), ns.to_string()));
            }
            Ok(out)
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

#[cfg(test)]
pub mod tests {
    use super::*;
    use harness::scratch;

    const GOOD: &str = "\
name: gw
namespace: default
selector: {app: web}
url: oci://registry.example.com/p
plugins:
  - plugin: header-authorization
";

    fn parse_text(text: &str) -> Result<Gateway, String> {
        parse(Path::new("gw.yaml"), "gw.yaml", text)
    }

    #[test]
    fn example_gateways_load_and_chain_by_phase_priority_name() {
        let gateways = select(&default_dir(), None).unwrap();
        let names: Vec<&str> = gateways.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["ingress", "internal"]);
        let chain: Vec<&str> = gateways[0]
            .chain()
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(
            chain,
            [
                "security-headers",
                "tenant",
                "admin-basic-auth",
                "ext-auth",
                "team",
                "api-version"
            ]
        );
        let plugins: Vec<&str> = gateways[1]
            .chain()
            .iter()
            .map(|i| i.plugin.as_str())
            .collect();
        assert_eq!(
            plugins,
            ["response-headers", "basic-auth", "header-authorization"]
        );
        assert_eq!(
            gateways[0].display,
            Path::new("examples/gateways/ingress.yaml")
                .display()
                .to_string()
        );
        let only = select(&default_dir(), Some("internal")).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name, "internal");
        let err = select(&default_dir(), Some("nope")).unwrap_err();
        assert_eq!(
            err,
            "no gateway named 'nope' in examples/gateways (found: ingress, internal)"
        );
    }

    #[test]
    fn defaults_are_istios() {
        let g = parse_text(GOOD).unwrap();
        let i = &g.instances[0];
        assert_eq!(i.name, "header-authorization");
        assert_eq!(i.phase, Phase::Unspecified);
        assert_eq!(i.priority, 0);
        assert_eq!(i.fail_strategy, FailStrategy::FailClose);
        assert_eq!(i.config, None);
        assert_eq!(i.config_json(), "");
        assert_eq!(
            g.target,
            Target::Selector(vec![("app".into(), "web".into())])
        );
        assert_eq!(
            g.url.module("header-authorization"),
            format!(
                "oci://registry.example.com/p/header-authorization:{}",
                version()
            )
        );
    }

    #[test]
    fn chain_order_is_phase_then_priority_desc_then_name() {
        let g = parse_text(&format!(
            "{GOOD}    name: z-unspecified
  - {{plugin: header-authorization, name: b-stats, phase: STATS}}
  - {{plugin: header-authorization, name: c-authz-low, phase: AUTHZ, priority: -5}}
  - {{plugin: header-authorization, name: a-authz-high, phase: AUTHZ, priority: 7}}
  - {{plugin: header-authorization, name: y-authz-high, phase: AUTHZ, priority: 7}}
  - {{plugin: header-authorization, name: x-authn, phase: AUTHN, priority: -100}}
"
        ))
        .unwrap();
        let chain: Vec<&str> = g.chain().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            chain,
            [
                "x-authn",
                "a-authz-high",
                "y-authz-high",
                "c-authz-low",
                "b-stats",
                "z-unspecified"
            ]
        );
    }

    #[test]
    fn every_field_is_read() {
        let g = parse_text(
            "\
name: gw
namespace: edge
targetRefs: [{kind: Gateway, name: web}, {group: '', kind: Service, name: api, namespace: apps}]
url: https://cdn.example.com/filters/
imagePullPolicy: Always
imagePullSecret: pull
plugins:
  - plugin: header-authorization
    name: team
    phase: AUTHZ
    priority: 2147483647
    failStrategy: FAIL_RELOAD
    config: {header: x-team}
    env: [{name: A, value: '1'}, {name: B, valueFrom: HOST}, {name: C, valueFrom: INLINE, value: c}]
    match: [{mode: CLIENT, ports: [{number: 80}]}]
    imagePullPolicy: IfNotPresent
",
        )
        .unwrap();
        assert_eq!(
            g.target,
            Target::TargetRefs(vec![
                vec![
                    ("group".into(), "gateway.networking.k8s.io".into()),
                    ("kind".into(), "Gateway".into()),
                    ("name".into(), "web".into())
                ],
                vec![
                    ("group".into(), "".into()),
                    ("kind".into(), "Service".into()),
                    ("name".into(), "api".into()),
                    ("namespace".into(), "apps".into())
                ],
            ])
        );
        assert_eq!(g.url, Url::Https("https://cdn.example.com/filters".into()));
        assert_eq!(g.url.module("p"), "https://cdn.example.com/filters/p.wasm");
        let i = &g.instances[0];
        assert_eq!((i.phase, i.priority), (Phase::Authz, i32::MAX));
        assert_eq!(i.fail_strategy, FailStrategy::FailReload);
        assert_eq!(i.config_json(), r#"{"header":"x-team"}"#);
        let env: Vec<(&str, Option<&str>)> = i
            .env
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_deref()))
            .collect();
        assert_eq!(env, [("A", Some("1")), ("B", None), ("C", Some("c"))]);
        assert_eq!(
            i.matches,
            Some(serde_json::json!([{"mode": "CLIENT", "ports": [{"number": 80}]}]))
        );
        // The instance's own pull policy wins; the secret comes from the gateway.
        assert_eq!(i.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(i.image_pull_secret.as_deref(), Some("pull"));
        assert_eq!(
            i.checked.pass_headers,
            Some(vec![("x-team".into(), "true".into())])
        );
    }

    /// The known plugins as the unknown-plugin error lists them.
    pub fn known() -> String {
        plugins::names().join(", ")
    }

    /// Every refusal (`{known}` stands for the known plugins), as `<file>: [plugins[<i>] (<instance>): ]<field>: <message>`.
    pub const BAD: &[(&str, &str, &str)] = &[
        (
            "unknown plugin",
            "  - plugin: basic-oath\n",
            "plugins[1] (basic-oath): plugin: unknown plugin 'basic-oath' (known: {known})",
        ),
        (
            "duplicate instance names",
            "  - {plugin: header-authorization, phase: AUTHN}\n",
            "plugins[1] (header-authorization): name: duplicate instance name 'header-authorization' (also plugins[0]); give one of them another name",
        ),
        (
            "unknown phase",
            "  - {plugin: header-authorization, name: two, phase: AUTHX}\n",
            "plugins[1] (two): phase: unknown phase 'AUTHX' (expected AUTHN, AUTHZ, STATS or UNSPECIFIED_PHASE)",
        ),
        (
            "unknown failStrategy",
            "  - {plugin: header-authorization, name: two, failStrategy: FAIL_SOFT}\n",
            "plugins[1] (two): failStrategy: unknown failStrategy 'FAIL_SOFT' (expected FAIL_CLOSE, FAIL_OPEN or FAIL_RELOAD)",
        ),
        (
            "priority above int32",
            "  - {plugin: header-authorization, name: two, priority: 2147483648}\n",
            "plugins[1] (two): priority: must be -2147483648..=2147483647, got 2147483648",
        ),
        (
            "priority below int32",
            "  - {plugin: header-authorization, name: two, priority: -2147483649}\n",
            "plugins[1] (two): priority: must be -2147483648..=2147483647, got -2147483649",
        ),
        (
            "priority not a whole number",
            "  - {plugin: header-authorization, name: two, priority: 1.5}\n",
            "plugins[1] (two): priority: expected a whole number, got a number",
        ),
        (
            "config refused by the plugin's own type",
            "  - plugin: header-authorization\n    name: two\n    config: {deny: {status: 700}}\n",
            "plugins[1] (two): config.deny.status: must be 200..=599, got 700",
        ),
        (
            "unknown config field",
            "  - {plugin: header-authorization, name: two, config: {hedaer: x}}\n",
            "plugins[1] (two): config.hedaer: unknown field (known fields: deny, header, values)",
        ),
        (
            "config not an object",
            "  - {plugin: header-authorization, name: two, config: [1]}\n",
            "plugins[1] (two): config: expected an object, got a list",
        ),
        (
            "unknown instance field",
            "  - {plugin: header-authorization, name: two, priorty: 1}\n",
            "plugins[1] (two): priorty: unknown field (known fields: config, env, failStrategy, imagePullPolicy, imagePullSecret, match, name, phase, plugin, priority)",
        ),
        (
            "bad instance name",
            "  - {plugin: header-authorization, name: Two_2}\n",
            "plugins[1] (Two_2): name: 'Two_2' is not a valid name (lowercase letters, digits and '-', at most 63)",
        ),
        (
            "missing plugin",
            "  - {name: two}\n",
            "plugins[1] (two): plugin: is required",
        ),
        (
            "env from host with a value",
            "  - {plugin: header-authorization, name: two, env: [{name: A, value: x, valueFrom: HOST}]}\n",
            "plugins[1] (two): env[0].value: must be empty with valueFrom: HOST",
        ),
        (
            "bad env name",
            "  - {plugin: header-authorization, name: two, env: [{name: 1A}]}\n",
            "plugins[1] (two): env[0].name: '1A' is not a valid variable name",
        ),
        (
            "bad match mode",
            "  - {plugin: header-authorization, name: two, match: [{mode: SIDECAR}]}\n",
            "plugins[1] (two): match[0].mode: unknown mode 'SIDECAR' (expected UNDEFINED, CLIENT, SERVER, CLIENT_AND_SERVER)",
        ),
        (
            "bad match port",
            "  - {plugin: header-authorization, name: two, match: [{ports: [{number: 0}]}]}\n",
            "plugins[1] (two): match[0].ports[0].number: must be 1..=65535, got 0",
        ),
        (
            "bad pull policy",
            "  - {plugin: header-authorization, name: two, imagePullPolicy: Never}\n",
            "plugins[1] (two): imagePullPolicy: unknown imagePullPolicy 'Never' (expected UNSPECIFIED_POLICY, IfNotPresent, Always)",
        ),
    ];

    /// Gateway-level refusals: (case, whole file, message after `<file>: `).
    pub const BAD_FILES: &[(&str, &str, &str)] = &[
        (
            "both selector and targetRefs",
            "name: gw\nnamespace: d\nselector: {a: b}\ntargetRefs: [{kind: Gateway, name: g}]\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "targetRefs: give selector or targetRefs, not both",
        ),
        (
            "neither selector nor targetRefs",
            "name: gw\nnamespace: d\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "selector: one of selector or targetRefs is required (without either, Istio applies the plugins to every workload in the namespace)",
        ),
        (
            "name does not match the file",
            "name: other\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "name: 'other' must match the file name (gw.yaml holds name: gw)",
        ),
        (
            "unsupported URL",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: ftp://r/p\nplugins: [{plugin: header-authorization}]\n",
            "url: 'ftp://r/p': expected oci://, file:// or https://",
        ),
        (
            "relative file URL",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: file://filters\nplugins: [{plugin: header-authorization}]\n",
            "url: 'file://filters': a file URL needs an absolute directory (file:///opt/filters)",
        ),
        (
            "no plugins",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugins: []\n",
            "plugins: must list at least one plugin",
        ),
        (
            "missing namespace",
            "name: gw\nselector: {a: b}\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "namespace: is required",
        ),
        (
            "unknown gateway field",
            "name: gw\nnamespace: d\nselector: {a: b}\nurl: oci://r/p\nplugin: []\nplugins: [{plugin: header-authorization}]\n",
            "plugin: unknown field (known fields: imagePullPolicy, imagePullSecret, name, namespace, plugins, selector, targetRefs, url)",
        ),
        (
            "target ref without a group",
            "name: gw\nnamespace: d\ntargetRefs: [{kind: Service, name: s}]\nurl: oci://r/p\nplugins: [{plugin: header-authorization}]\n",
            "targetRefs[0].group: is required for kind Service",
        ),
        (
            "invalid YAML",
            "name: gw\nplugins: [\n",
            "invalid YAML: while parsing a node, did not find expected node content at byte 20 line 3 column 1",
        ),
        ("empty file", "", "expected an object, got null"),
    ];

    #[test]
    fn bad_gateway_files_are_refused_with_the_field_named() {
        for (case, extra, expected) in BAD {
            let err = parse_text(&format!("{GOOD}{extra}")).unwrap_err();
            assert_eq!(err, expected.replace("{known}", &known()), "{case}");
        }
        for (case, text, expected) in BAD_FILES {
            let err = parse_text(text).unwrap_err();
            assert_eq!(err, *expected, "{case}");
        }
    }

    #[test]
    fn errors_name_the_file_and_every_bad_file_is_reported() {
        let dir = scratch("xtask-errors");
        std::fs::write(dir.join("gw.yaml"), format!("{GOOD}  - plugin: nope\n")).unwrap();
        std::fs::write(dir.join("ok.yaml"), GOOD.replace("name: gw", "name: ok")).unwrap();
        std::fs::write(dir.join("zz.yml"), "name: zz\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a gateway").unwrap();
        let err = select(&dir, None).unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert_eq!(
            lines[0],
            format!(
                "{}: plugins[1] (nope): plugin: unknown plugin 'nope' (known: {})",
                display(&dir.join("gw.yaml")),
                known()
            )
        );
        assert!(
            lines[1].starts_with(&format!(
                "{}: namespace: is required",
                display(&dir.join("zz.yml"))
            )),
            "{err}"
        );
        // One gateway picked by name is checked alone.
        assert_eq!(select(&dir, Some("ok")).unwrap()[0].name, "ok");
        // A file path is that one gateway.
        assert_eq!(select(&dir.join("ok.yaml"), None).unwrap().len(), 1);
    }
}
