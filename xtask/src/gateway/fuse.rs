//! Fusing a gateway's instances into chain filters: consecutive instances (in
//! Istio's chain order) that may share one filter become one filter running the
//! chain module, which runs them in that order as separate filters would. One
//! filter is one WasmPlugin in Istio and one wasm filter in `cargo xtask run`, and
//! a WasmPlugin carries one phase, failStrategy, match, env and image pull
//! setting, so instances fuse only when all of those agree.

use super::{FailStrategy, Gateway, Instance, Phase};
use crate::build::CHAIN;
use crate::plugins::Checked;
use serde_json::{json, Value};
use std::fmt;

/// One filter of a gateway: a plain instance of its plugin, or a chain of
/// several instances.
#[derive(Debug)]
pub struct Filter<'a> {
    /// In chain order; never empty.
    pub instances: Vec<&'a Instance>,
}

impl<'a> Filter<'a> {
    /// The first instance: a chain's phase, priority, failStrategy, match, env
    /// and pull settings are its (the others share them, but the priority).
    pub fn first(&self) -> &'a Instance {
        self.instances[0]
    }

    pub fn is_chain(&self) -> bool {
        self.instances.len() > 1
    }

    /// The module it runs: its plugin's, or the chain's.
    pub fn module(&self) -> &str {
        if self.is_chain() {
            CHAIN
        } else {
            &self.first().plugin
        }
    }

    /// Its name among the gateway's filters: its first instance's. Manifests
    /// write it to `<key>.yaml` as the WasmPlugin `<gateway>-<key>`, so a chain
    /// sorts among the other WasmPlugins where its first instance would.
    pub fn key(&self) -> &'a str {
        &self.first().name
    }

    /// The WasmPlugin's name.
    pub fn name(&self, gateway: &str) -> String {
        format!("{gateway}-{}", self.key())
    }

    /// The instances' names, in order, joined with `sep`.
    pub fn names(&self, sep: &str) -> String {
        let names: Vec<&str> = self.instances.iter().map(|i| i.name.as_str()).collect();
        names.join(sep)
    }

    /// Its `pluginConfig`: the instance's own, or the chain's list of instances
    /// (`{"chain": [{"plugin", "name", "config"}, ...]}`, in chain order).
    pub fn config(&self) -> Option<Value> {
        if !self.is_chain() {
            return self.first().config.clone();
        }
        let entries: Vec<Value> = self
            .instances
            .iter()
            .map(|i| {
                json!({
                    "plugin": i.plugin,
                    "name": i.name,
                    "config": i.config.clone().unwrap_or_else(|| json!({})),
                })
            })
            .collect();
        Some(json!({ "chain": entries }))
    }

    /// The `pluginConfig` as the JSON text Envoy hands to the module.
    pub fn config_json(&self) -> String {
        self.config()
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default()
    }

    /// What the filter does, for `run`: a chain what its instances do together.
    pub fn checked(&self) -> Checked {
        if self.is_chain() {
            Checked::chain(self.instances.iter().map(|i| i.checked.clone()))
        } else {
            self.first().checked.clone()
        }
    }
}

/// Why two neighbours in the chain order were not fused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The instance says `chain: false` (`explicit`), or says nothing in a
    /// gateway without `chain: true`.
    OptedOut {
        instance: String,
        explicit: bool,
    },
    /// The chain module does not run this plugin (a chain itself, say).
    NotInChain {
        instance: String,
        plugin: String,
    },
    Phase(Phase, Phase),
    FailStrategy(FailStrategy, FailStrategy),
    Match,
    Env,
    /// imagePullPolicy or imagePullSecret: which, and the two settings.
    Pull(&'static str, Option<String>, Option<String>),
    /// The chain before it holds the most instances a chain may.
    Full,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
        match self {
            Reason::OptedOut {
                instance,
                explicit: true,
            } => write!(f, "opted out ({instance} has chain: false)"),
            Reason::OptedOut {
                instance,
                explicit: false,
            } => write!(
                f,
                "not opted in ({instance} has no chain: true, nor has the gateway)"
            ),
            Reason::NotInChain { instance, plugin } => {
                write!(
                    f,
                    "{instance}'s plugin {plugin} does not run inside a chain"
                )
            }
            Reason::Phase(a, b) => write!(f, "different phase ({}, {})", a.as_str(), b.as_str()),
            Reason::FailStrategy(a, b) => {
                write!(f, "different failStrategy ({}, {})", a.as_str(), b.as_str())
            }
            Reason::Match => f.write_str("different match"),
            Reason::Env => f.write_str("different env (vmConfig.env)"),
            Reason::Pull(what, a, b) => {
                write!(f, "different {what} ({}, {})", or_none(a), or_none(b))
            }
            Reason::Full => write!(
                f,
                "the chain before it is full ({} instances)",
                chain::config::MAX_INSTANCES
            ),
        }
    }
}

/// Two neighbours in the chain order that were not fused, and why.
#[derive(Debug)]
pub struct Split<'a> {
    pub before: &'a Instance,
    pub after: &'a Instance,
    pub reasons: Vec<Reason>,
}

impl Split<'_> {
    /// Worth saying: one of the two wanted to be fused.
    pub fn wanted(&self, gateway: &Gateway) -> bool {
        wants(gateway, self.before) || wants(gateway, self.after)
    }

    pub fn reasons(&self) -> String {
        let reasons: Vec<String> = self.reasons.iter().map(Reason::to_string).collect();
        reasons.join("; ")
    }
}

/// A gateway's filters and, between them, why they were not fused.
#[derive(Debug)]
pub struct Plan<'a> {
    pub gateway: &'a Gateway,
    pub filters: Vec<Filter<'a>>,
    pub splits: Vec<Split<'a>>,
}

impl Plan<'_> {
    /// Which instances were fused into which chain and, for each instance not
    /// fused with its neighbour where one of them wanted to be, why; in chain
    /// order, one line each. Empty when no instance wants to be fused.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut splits = self.splits.iter();
        for (n, filter) in self.filters.iter().enumerate() {
            if filter.is_chain() {
                lines.push(format!(
                    "chain {}: {}",
                    filter.name(&self.gateway.name),
                    filter.names(" + ")
                ));
            }
            if n + 1 == self.filters.len() {
                break;
            }
            if let Some(split) = splits.next() {
                if split.wanted(self.gateway) {
                    lines.push(format!(
                        "{} not fused with {}: {}",
                        split.after.name,
                        split.before.name,
                        split.reasons()
                    ));
                }
            }
        }
        lines
    }

    /// The modules its filters run with different env vars, each with those
    /// filters: Istio sets no `vm_id`, so the WasmPlugins of one module share one
    /// VM per worker, and a VM has one set of env vars (whichever WasmPlugin's
    /// created it).
    pub fn env_clashes(&self) -> Vec<(String, Vec<String>)> {
        let mut modules: Vec<&str> = self.filters.iter().map(Filter::module).collect();
        modules.sort_unstable();
        modules.dedup();
        modules
            .into_iter()
            .filter_map(|module| {
                let filters: Vec<&Filter> = self
                    .filters
                    .iter()
                    .filter(|f| f.module() == module)
                    .collect();
                let first = sorted_env(filters.first()?.first());
                filters
                    .iter()
                    .any(|f| sorted_env(f.first()) != first)
                    .then(|| {
                        let names = filters.iter().map(|f| f.name(&self.gateway.name));
                        (module.to_string(), names.collect())
                    })
            })
            .collect()
    }

    /// How many of its instances are fused into chains.
    pub fn fused(&self) -> usize {
        self.filters
            .iter()
            .filter(|f| f.is_chain())
            .map(|f| f.instances.len())
            .sum()
    }
}

/// Whether `instance` wants to be fused with its neighbours.
fn wants(gateway: &Gateway, instance: &Instance) -> bool {
    instance.chain.unwrap_or(gateway.chain)
}

/// Why `a` and `b`, neighbours in the chain order, may not share a filter
/// (nothing when they may).
fn reasons(gateway: &Gateway, a: &Instance, b: &Instance) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for i in [a, b] {
        if !wants(gateway, i) {
            reasons.push(Reason::OptedOut {
                instance: i.name.clone(),
                explicit: i.chain.is_some(),
            });
        }
    }
    for i in [a, b] {
        if !chain::config::PLUGINS.iter().any(|(p, _)| *p == i.plugin) {
            reasons.push(Reason::NotInChain {
                instance: i.name.clone(),
                plugin: i.plugin.clone(),
            });
        }
    }
    if a.phase != b.phase {
        reasons.push(Reason::Phase(a.phase, b.phase));
    }
    if a.fail_strategy != b.fail_strategy {
        reasons.push(Reason::FailStrategy(a.fail_strategy, b.fail_strategy));
    }
    if a.matches != b.matches {
        reasons.push(Reason::Match);
    }
    if sorted_env(a) != sorted_env(b) {
        reasons.push(Reason::Env);
    }
    if a.image_pull_policy != b.image_pull_policy {
        reasons.push(Reason::Pull(
            "imagePullPolicy",
            a.image_pull_policy.clone(),
            b.image_pull_policy.clone(),
        ));
    }
    if a.image_pull_secret != b.image_pull_secret {
        reasons.push(Reason::Pull(
            "imagePullSecret",
            a.image_pull_secret.clone(),
            b.image_pull_secret.clone(),
        ));
    }
    reasons
}

/// An instance's env vars by name: the same variables in another order are the
/// same env.
fn sorted_env(i: &Instance) -> Vec<(&str, Option<&str>)> {
    let mut env: Vec<(&str, Option<&str>)> = i
        .env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_deref()))
        .collect();
    env.sort_unstable();
    env
}

/// The gateway's filters: walking the chain order, each instance joins the
/// filter before it when the two may share one and that filter has room.
pub fn plan(gateway: &Gateway) -> Plan<'_> {
    let mut filters: Vec<Filter<'_>> = Vec::new();
    let mut splits = Vec::new();
    for instance in gateway.chain() {
        let Some(filter) = filters.last_mut() else {
            filters.push(Filter {
                instances: vec![instance],
            });
            continue;
        };
        let Some(&before) = filter.instances.last() else {
            continue;
        };
        let mut why = reasons(gateway, before, instance);
        if why.is_empty() && filter.instances.len() >= chain::config::MAX_INSTANCES {
            why.push(Reason::Full);
        }
        if why.is_empty() {
            filter.instances.push(instance);
        } else {
            splits.push(Split {
                before,
                after: instance,
                reasons: why,
            });
            filters.push(Filter {
                instances: vec![instance],
            });
        }
    }
    Plan {
        gateway,
        filters,
        splits,
    }
}

/// Parses each chain's `pluginConfig` with the chain module's own code (what the
/// module runs in `on_configure`), though each instance's config already passed
/// its plugin's: an error names the chain's first instance.
pub fn check(gateway: &Gateway) -> Result<(), String> {
    for filter in gateway.filters().filters.iter().filter(|f| f.is_chain()) {
        let config = filter.config().unwrap_or_default();
        if let Err(e) = chain::config::from_value(&config) {
            let first = filter.first();
            return Err(format!(
                "plugins[{}] ({}): chain: {e}",
                first.index, first.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
