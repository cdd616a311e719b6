//! A test's Envoy as a list of filters, and the two forms its plugins can take
//! (`HARNESS_FORM`): each plugin a wasm filter of its own (`separate`, the
//! default) or each run of consecutive plugins one filter of the chain module
//! (`chain`). A plugin test written once runs in both; the few answers that
//! depend on the form (a refused configuration's error line, the VM's memory
//! gauge) come from [`Form`].

use crate::envoy::{bootstrap, static_cluster, target_dir, wasm_filter, Envoy};
use crate::server::Server;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The module that runs a list of plugin instances in one filter.
pub const CHAIN: &str = "chain";

/// How a stack's plugins become Envoy filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Each plugin a wasm filter running its own module, named `<plugin>-<i>`
    /// (`i`: its place among the stack's filters), as a gateway with one
    /// WasmPlugin per instance runs them.
    Separate,
    /// Each run of consecutive plugins one wasm filter of the chain module,
    /// `chain-<i>` (`i`: the first instance's place), whose instances are named
    /// as the separate filters would be. A native filter (anything added with
    /// [`Stack::filter`]) ends a run.
    Chain,
}

impl Form {
    /// What `HARNESS_FORM` asks for: `separate` (the default) or `chain`. `cargo
    /// xtask test` runs the plugin tests once in the chain form. Panics on
    /// anything else, so a typo cannot quietly test the separate form twice.
    pub fn from_env() -> Self {
        match std::env::var("HARNESS_FORM") {
            Err(std::env::VarError::NotPresent) => Form::Separate,
            Ok(v) if v.is_empty() || v == "separate" => Form::Separate,
            Ok(v) if v == "chain" => Form::Chain,
            other => panic!("HARNESS_FORM must be separate or chain, got {other:?}"),
        }
    }

    /// The module whose VM runs `plugin` in this form: its own, or the chain's.
    pub fn module(self, plugin: &str) -> &str {
        match self {
            Form::Separate => plugin,
            Form::Chain => CHAIN,
        }
    }

    /// The gauge with the memory of the VM that runs `plugin`.
    pub fn memory_gauge(self, plugin: &str) -> String {
        format!("wasmcustom.{}.wasm_memory_bytes", self.module(plugin))
    }

    /// The start of the error line Envoy logs when it refuses a stack of `plugin`
    /// alone, configured with the text `configuration`, for the plugin's own
    /// error `expected`. In the chain form the chain names the instance; text
    /// that is not JSON reaches the chain inside its configuration (see
    /// [`chain_configuration`]), so the chain refuses its whole configuration as
    /// invalid JSON, naming no instance.
    pub fn refusal(self, plugin: &str, configuration: &str, expected: &str) -> String {
        match self {
            Form::Separate => format!("{plugin}: invalid configuration: {expected}"),
            Form::Chain if is_json(configuration) => {
                format!("{CHAIN}: invalid configuration: chain[0] ({plugin}-0): {expected}")
            }
            Form::Chain => format!("{CHAIN}: invalid configuration: {expected}"),
        }
    }
}

/// What a plugin on its own reads as a JSON document: blank text means `{}`.
fn is_json(configuration: &str) -> bool {
    is_blank(configuration) || serde_json::from_str::<Value>(configuration).is_ok()
}

fn is_blank(configuration: &str) -> bool {
    configuration.bytes().all(|b| b.is_ascii_whitespace())
}

/// One instance the chain module runs: its plugin, name and configuration text.
#[derive(Debug, Clone)]
pub struct ChainInstance<'a> {
    pub plugin: &'a str,
    pub name: &'a str,
    pub configuration: &'a str,
}

/// The chain module's configuration for `instances`, in order. Each
/// configuration text is spliced in as written, not parsed and written again:
/// a key given twice reaches the chain as it would reach the plugin on its own,
/// and so does text that is not JSON (which then makes the chain's whole
/// configuration invalid JSON). Blank text leaves `config` out, which the chain
/// reads as `{}`, as the plugin on its own reads blank text.
pub fn chain_configuration(instances: &[ChainInstance<'_>]) -> String {
    let entries: Vec<String> = instances
        .iter()
        .map(|i| {
            let mut entry = format!(
                "{{\"plugin\": {}, \"name\": {}",
                Value::from(i.plugin),
                Value::from(i.name)
            );
            if !is_blank(i.configuration) {
                entry.push_str(", \"config\": ");
                entry.push_str(i.configuration);
            }
            entry.push('}');
            entry
        })
        .collect();
    let text = format!("{{\"{CHAIN}\": [{}]}}", entries.join(", "));
    // Text that is not JSON on its own could still splice into JSON that means
    // something else (`1, "x": 2`): that would test another refusal.
    let all_json = instances.iter().all(|i| is_json(i.configuration));
    assert!(
        all_json || !is_json(&text),
        "a configuration that is not JSON became valid JSON in the chain's: {text}"
    );
    text
}

/// An edit of the bootstrap, see [`Stack::patch`].
type Patch = Box<dyn FnOnce(&mut Value)>;

/// One filter of a stack, as added.
enum Layer {
    /// A plugin, made a filter (or a chain instance) as the form says.
    Plugin {
        plugin: String,
        name: String,
        configuration: String,
    },
    /// Any other filter entry, as given.
    Filter(Value),
}

/// The filters (and extra clusters) of one test Envoy, in chain order.
pub struct Stack {
    layers: Vec<Layer>,
    clusters: Vec<Value>,
    patches: Vec<Patch>,
    concurrency: usize,
    wasm_level: String,
    form: Form,
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

static INSTANCE: AtomicUsize = AtomicUsize::new(0);

impl Stack {
    /// An empty stack in the form `HARNESS_FORM` names.
    pub fn new() -> Self {
        Stack {
            layers: Vec::new(),
            clusters: Vec::new(),
            patches: Vec::new(),
            concurrency: 1,
            wasm_level: "debug".into(),
            form: Form::from_env(),
        }
    }

    /// Makes the plugins filters in `form`, whatever `HARNESS_FORM` says: for
    /// tests that compare the forms, or that mean something in one form only.
    pub fn form(mut self, form: Form) -> Self {
        self.form = form;
        self
    }

    /// Adds `plugin` with a JSON configuration.
    pub fn plugin(self, plugin: &str, config: Value) -> Self {
        self.plugin_raw(plugin, &config.to_string())
    }

    /// Adds `plugin` with a configuration text sent as-is.
    pub fn plugin_raw(mut self, plugin: &str, configuration: &str) -> Self {
        let name = format!("{plugin}-{}", self.layers.len());
        self.layers.push(Layer::Plugin {
            plugin: plugin.into(),
            name,
            configuration: configuration.into(),
        });
        self
    }

    /// Adds any HTTP filter entry (a native one to compare against, say).
    pub fn filter(mut self, filter: Value) -> Self {
        self.layers.push(Layer::Filter(filter));
        self
    }

    pub fn cluster(mut self, cluster: Value) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Edits the bootstrap before Envoy starts, for what the builder does not cover:
    /// connection-manager options ([`crate::envoy::hcm`]), routes, an upstream
    /// that is down.
    pub fn patch(mut self, patch: impl FnOnce(&mut Value) + 'static) -> Self {
        self.patches.push(Box::new(patch));
        self
    }

    /// Logs the plugins at info instead of debug: for measuring, where formatting and
    /// writing a debug line per request would be most of what is measured.
    pub fn quiet(self) -> Self {
        self.wasm_log_level("info")
    }

    /// The log level of Envoy's `wasm` component, the plugins' (default `debug`;
    /// `off` shows what a plugin does when the host logs nothing).
    pub fn wasm_log_level(mut self, level: &str) -> Self {
        self.wasm_level = level.into();
        self
    }

    /// Worker threads (default 1, so per-worker state like caches is predictable).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The HTTP filters, before the router, in this stack's form.
    pub fn filters(&self) -> Vec<Value> {
        let mut filters = Vec::new();
        let mut run: Vec<(usize, ChainInstance<'_>)> = Vec::new();
        for (at, layer) in self.layers.iter().enumerate() {
            match layer {
                Layer::Plugin {
                    plugin,
                    name,
                    configuration,
                } => {
                    let instance = ChainInstance {
                        plugin,
                        name,
                        configuration,
                    };
                    if self.form == Form::Chain && plugin != CHAIN {
                        run.push((at, instance));
                    } else {
                        end_run(&mut run, &mut filters);
                        filters.push(wasm_filter(name, plugin, configuration));
                    }
                }
                Layer::Filter(filter) => {
                    end_run(&mut run, &mut filters);
                    filters.push(filter.clone());
                }
            }
        }
        end_run(&mut run, &mut filters);
        filters
    }

    /// Starts Envoy with an echo upstream behind it; panics with Envoy's log if it
    /// does not come up.
    pub fn start(self) -> Envoy {
        match self.try_start() {
            Ok(envoy) => envoy,
            Err(log) => panic!("Envoy did not start. Its log:\n{log}"),
        }
    }

    /// Starts Envoy, or returns its log when it refuses the config or exits.
    pub fn try_start(self) -> Result<Envoy, String> {
        let echo = Server::echo();
        let mut clusters = vec![static_cluster("echo", echo.addr())];
        clusters.extend(self.clusters.iter().cloned());
        let mut config = bootstrap(&self.filters(), "echo", &clusters);
        for patch in self.patches {
            patch(&mut config);
        }
        let dir = target_dir().join("e2e").join(format!(
            "{}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::SeqCst)
        ));
        let mut envoy = Envoy::launch_with(
            &dir,
            &config,
            self.concurrency,
            &self.wasm_level,
            Some(echo),
        )?;
        envoy.form = self.form;
        // Envoy took every plugin's config: so must the plugin's schema.
        for layer in &self.layers {
            if let Layer::Plugin {
                plugin,
                configuration,
                ..
            } = layer
            {
                crate::schema::assert_schema_accepts(plugin, configuration);
            }
        }
        Ok(envoy)
    }
}

/// Ends a run of chain instances: one chain filter, named after its first.
fn end_run(run: &mut Vec<(usize, ChainInstance<'_>)>, filters: &mut Vec<Value>) {
    let Some((first, _)) = run.first() else {
        return;
    };
    let name = format!("{CHAIN}-{first}");
    let instances: Vec<ChainInstance<'_>> = run.drain(..).map(|(_, i)| i).collect();
    filters.push(wasm_filter(&name, CHAIN, &chain_configuration(&instances)));
}

/// Asserts that Envoy refuses to serve `plugin` configured with `configuration`
/// (sent as-is) in the form `HARNESS_FORM` names: it must not start, and its log
/// must hold one error-level line with [`Form::refusal`] (`<plugin>: invalid
/// configuration: <expected>...`, or the chain's, which names the instance).
/// Returns Envoy's log.
pub fn assert_config_refused(plugin: &str, configuration: &str, expected: &str) -> String {
    let stack = Stack::new().plugin_raw(plugin, configuration);
    let wanted = stack.form.refusal(plugin, configuration, expected);
    let log = match stack.try_start() {
        Ok(_) => panic!("Envoy served {plugin} with {configuration:?} instead of refusing it"),
        Err(log) => log,
    };
    let line = log
        .lines()
        .find(|l| l.contains("invalid configuration"))
        .unwrap_or_else(|| panic!("no error line for {configuration:?}:\n{log}"));
    assert!(line.contains("[error]"), "not at error level: {line}");
    assert!(line.contains(&wanted), "{configuration:?}: {line}");
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance<'a>(plugin: &'a str, name: &'a str, configuration: &'a str) -> ChainInstance<'a> {
        ChainInstance {
            plugin,
            name,
            configuration,
        }
    }

    #[test]
    fn configurations_are_spliced_as_written() {
        let text = chain_configuration(&[
            instance("header-authorization", "header-authorization-0", ""),
            instance("basic-auth", "basic-auth-1", r#"{"a": 1, "a": 2}"#),
        ]);
        assert_eq!(
            text,
            r#"{"chain": [{"plugin": "header-authorization", "name": "header-authorization-0"}, {"plugin": "basic-auth", "name": "basic-auth-1", "config": {"a": 1, "a": 2}}]}"#
        );
        let broken = chain_configuration(&[instance("basic-auth", "b", "{not json")]);
        assert!(!is_json(&broken), "{broken}");
    }

    #[test]
    #[should_panic(expected = "became valid JSON")]
    fn text_that_would_change_the_chain_is_refused() {
        chain_configuration(&[instance("basic-auth", "b", r#"1, "x": 2"#)]);
    }

    #[test]
    fn refusals_in_each_form() {
        let cases = [
            (
                Form::Separate,
                "{}",
                "x: y",
                "p: invalid configuration: x: y",
            ),
            (
                Form::Chain,
                "{}",
                "x: y",
                "chain: invalid configuration: chain[0] (p-0): x: y",
            ),
            (
                Form::Chain,
                " ",
                "x: y",
                "chain: invalid configuration: chain[0] (p-0): x: y",
            ),
            (
                Form::Chain,
                "{not json",
                "invalid JSON",
                "chain: invalid configuration: invalid JSON",
            ),
        ];
        for (form, configuration, expected, line) in cases {
            assert_eq!(form.refusal("p", configuration, expected), line);
        }
    }

    /// Needs the built modules (`wasm_filter` checks they exist), as every
    /// harness test does: `cargo xtask test` runs it.
    #[test]
    fn runs_of_plugins_become_one_chain_filter_each() {
        let native = serde_json::json!({"name": "native"});
        let stack = |form| {
            Stack::new()
                .form(form)
                .plugin_raw("header-authorization", "{}")
                .plugin_raw("basic-auth", "")
                .filter(native.clone())
                .plugin_raw("header-authorization", "{}")
        };
        let names = |form| -> Vec<String> {
            stack(form)
                .filters()
                .iter()
                .map(|f| f["name"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(
            names(Form::Separate),
            [
                "header-authorization-0",
                "basic-auth-1",
                "native",
                "header-authorization-3"
            ]
        );
        assert_eq!(names(Form::Chain), ["chain-0", "native", "chain-3"]);
        let filters = stack(Form::Chain).filters();
        let configuration = |at: usize| {
            filters[at]["typed_config"]["config"]["configuration"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            configuration(0),
            r#"{"chain": [{"plugin": "header-authorization", "name": "header-authorization-0", "config": {}}, {"plugin": "basic-auth", "name": "basic-auth-1"}]}"#
        );
        assert_eq!(
            configuration(2),
            r#"{"chain": [{"plugin": "header-authorization", "name": "header-authorization-3", "config": {}}]}"#
        );
    }
}
