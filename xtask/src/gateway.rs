//! Gateway files: which plugins a gateway runs, in which phase and order, with which
//! configuration. Loading checks every field, each instance's config with the
//! plugin's own config type, and orders the instances the way Istio chains them;
//! `fuse` groups them into the gateway's filters (chains where the file asks).

pub mod compat;
pub mod fuse;
mod parse;
pub mod spec;

use crate::plugins::Checked;
use crate::util::{root, version};
use serde_json::Value;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

pub use parse::parse;

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
    /// `api`: which Istio resource the manifests are.
    pub api: Api,
    /// `istio`: the Istio version the manifests must work on (see [`compat`]).
    pub istio: Istio,
    /// `chain`: fuse consecutive instances that can share a filter into one chain
    /// filter (each instance may say otherwise); see [`fuse`].
    pub chain: bool,
    /// Plugin instances in file order; [`Gateway::chain`] gives Envoy's order.
    pub instances: Vec<Instance>,
}

/// Which workloads a gateway's WasmPlugins apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `selector.matchLabels`.
    Selector(Vec<(String, String)>),
    /// `targetRefs`, each as (field, value) pairs in group, kind, name order (no
    /// namespace: Istio's CRDs require the target in the resource's own).
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
    /// The URL of `plugin`'s module.
    pub fn module(&self, plugin: &str) -> String {
        match self {
            Url::Oci(base) => format!("{base}/{plugin}:{}", version()),
            Url::File(base) | Url::Https(base) => format!("{base}/{plugin}.wasm"),
        }
    }
}

/// The Istio API a gateway's manifests use (`api:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `extensions.istio.io/v1alpha1` WasmPlugin, one per filter (Istio 1.12+).
    WasmPlugin,
    /// `extensions.istio.io/v1alpha1` TrafficExtension, one per filter, the wasm
    /// fields under `spec.wasm` (Istio 1.30+, which supersedes WasmPlugin).
    TrafficExtension,
    /// One `networking.istio.io/v1alpha3` EnvoyFilter per gateway: per filter an
    /// EXTENSION_CONFIG (the Wasm filter config) and an HTTP_FILTER patch that
    /// fetches it by extension config discovery, in chain order.
    EnvoyFilter,
}

impl Api {
    pub const ALL: [Api; 3] = [Api::WasmPlugin, Api::TrafficExtension, Api::EnvoyFilter];

    pub fn as_str(self) -> &'static str {
        match self {
            Api::WasmPlugin => "WasmPlugin",
            Api::TrafficExtension => "TrafficExtension",
            Api::EnvoyFilter => "EnvoyFilter",
        }
    }
}

/// An Istio minor version, `1.<minor>` (`istio:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Istio {
    pub minor: u32,
}

impl Istio {
    /// What a gateway file without `istio:` targets: the oldest minor Istio
    /// still supports (it supports the last three), so the default manifests
    /// apply to every supported Istio.
    pub const DEFAULT: Istio = Istio { minor: 28 };

    pub const fn v(minor: u32) -> Istio {
        Istio { minor }
    }
}

impl std::fmt::Display for Istio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "1.{}", self.minor)
    }
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
    /// `chain`: whether it may be fused with its neighbours, when it says so
    /// (`None`: as the gateway says).
    pub chain: Option<bool>,
    /// What the plugin's config type said about the config.
    pub checked: Checked,
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

    /// Its filters in chain order: the instances, consecutive ones fused into
    /// chains where the gateway file asks and they can share one.
    pub fn filters(&self) -> fuse::Plan<'_> {
        fuse::plan(self)
    }

    /// The distinct modules its filters run (plugins, and the chain's), sorted.
    pub fn modules(&self) -> Vec<String> {
        let plan = self.filters();
        let mut names: Vec<String> = plan
            .filters
            .iter()
            .map(|f| f.module().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The plugins its chain filters run, sorted: what its chain module needs.
    pub fn chained_plugins(&self) -> Vec<String> {
        chained_plugins(std::slice::from_ref(self))
    }
}

/// The plugins the chain filters of `gateways` run, sorted and each once: the
/// chain module is built with exactly these (a plugin left out costs nothing,
/// jwt-auth's crypto alone doubles the module).
pub fn chained_plugins(gateways: &[Gateway]) -> Vec<String> {
    let mut names: Vec<String> = gateways
        .iter()
        .flat_map(|g| {
            g.filters()
                .filters
                .into_iter()
                .filter(|f| f.is_chain())
                .flat_map(|f| f.instances.into_iter().map(|i| i.plugin.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
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

#[cfg(test)]
pub mod tests;
