//! What `run` hands Envoy: the clusters, each filter's extension config (ECDS) and
//! the listener that chains them, as files Envoy watches, replaced by atomic
//! rename; each update passes `envoy --mode validate` first and is confirmed from
//! Envoy's own counters.

use super::chain_names;
use crate::build::{self, module_info, module_path};
use crate::gateway::fuse::Filter;
use crate::gateway::{self, Gateway};
use crate::local::{self, demo_auth_service, envoy_name, plugin_config, ECHO, WASM_TYPE};
use crate::plugins::Checked;
use crate::util::Result;
use harness::envoy::{bootstrap, static_cluster};
use harness::{Envoy, Request, Server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What Envoy runs and the files it reads it from.
pub struct Stack {
    envoy_bin: PathBuf,
    pub dir: PathBuf,
    port: u16,
    /// `--modules DIR`: prebuilt modules instead of building from source.
    prebuilt: Option<PathBuf>,
    /// plugin -> its module, copied under a name made of its sha256.
    modules: BTreeMap<String, PathBuf>,
    echo: Option<Server>,
    pub echo_addr: SocketAddr,
    pub auth: Option<Server>,
    /// What each xDS file holds now, so unchanged files are not rewritten.
    written: HashMap<PathBuf, String>,
}

/// The files one apply changed, so the swap can be confirmed from Envoy's stats.
#[derive(Default)]
pub struct Changed {
    clusters: bool,
    listener: bool,
    filters: Vec<String>,
    files: Vec<PathBuf>,
}

impl Stack {
    pub fn new(
        envoy_bin: &Path,
        dir: &Path,
        port: u16,
        prebuilt: Option<PathBuf>,
    ) -> Result<Stack> {
        for sub in ["xds", "modules"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let echo = Server::echo();
        Ok(Stack {
            envoy_bin: envoy_bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            prebuilt,
            modules: BTreeMap::new(),
            echo_addr: echo.addr(),
            echo: Some(echo),
            auth: None,
            written: HashMap::new(),
        })
    }

    /// Makes sure every plugin `gateway` uses has a module: built from source (when
    /// `rebuild`, or when one is missing) or read from `--modules`.
    pub fn prepare_modules(&mut self, gateway: &Gateway, rebuild: bool) -> Result<()> {
        let plugins = gateway.modules();
        let missing = plugins.iter().any(|p| !self.modules.contains_key(p));
        let source = match &self.prebuilt {
            Some(dir) => dir.clone(),
            None => {
                if rebuild || missing {
                    build::build_with_chain(&plugins, Some(&gateway.chained_plugins()))?;
                }
                build::dist_dir()
            }
        };
        let mut modules = self.modules.clone();
        for plugin in &plugins {
            let path = module_path(&source, plugin);
            let info = module_info(plugin, &path)?;
            let sha = info.sha256.get(..16).unwrap_or(&info.sha256);
            let named = self
                .dir
                .join("modules")
                .join(format!("{plugin}-{sha}.wasm"));
            if !named.is_file() {
                let tmp = named.with_extension("tmp");
                std::fs::copy(&path, &tmp).map_err(|e| format!("{}: {e}", path.display()))?;
                std::fs::rename(&tmp, &named).map_err(|e| format!("{}: {e}", named.display()))?;
            }
            modules.insert(plugin.clone(), named);
        }
        self.modules = modules;
        Ok(())
    }

    fn xds(&self, name: &str) -> PathBuf {
        self.dir.join("xds").join(name)
    }

    /// Writes what Envoy should run for `gateway`: clusters, then each filter's
    /// extension config, then the listener that chains them, so Envoy never sees a
    /// listener naming a filter or cluster it cannot find.
    pub fn apply(&mut self, gateway: &Gateway) -> Result<Changed> {
        let plan = gateway.filters();
        let checked: Vec<Checked> = plan.filters.iter().map(Filter::checked).collect();
        if checked.iter().any(|c| !c.auth_clusters.is_empty()) && self.auth.is_none() {
            self.auth = Some(demo_auth_service());
        }
        let auth_addr = self.auth.as_ref().map(Server::addr);
        let clusters = clusters(&checked, self.echo_addr, auth_addr)?;
        let mut inline = Vec::new();
        let mut discovered = Vec::new();
        let mut ecds = Vec::new();
        for filter in &plan.filters {
            let name = envoy_name(gateway, filter);
            let module = self
                .modules
                .get(filter.module())
                .ok_or_else(|| format!("no module for {}", filter.module()))?;
            let config = plugin_config(&name, filter, module);
            let typed_config = json!({"@type": WASM_TYPE, "config": config});
            inline.push(json!({"name": name, "typed_config": typed_config}));
            let file = self.xds(&format!("ecds-{name}.json"));
            discovered.push(json!({
                "name": name,
                "config_discovery": {
                    "config_source": file_source(&file),
                    "type_urls": [WASM_TYPE],
                }
            }));
            let resource = json!({"resources": [{
                "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                "name": name,
                "typed_config": typed_config,
            }]});
            ecds.push((name, file, resource));
        }
        let listener = {
            let mut config = bootstrap(&discovered, ECHO, &[]);
            let mut listener = config["static_resources"]["listeners"][0].take();
            listener["address"]["socket_address"]["port_value"] = json!(self.port);
            listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
            listener
        };
        let typed_clusters: Vec<Value> = clusters
            .iter()
            .cloned()
            .map(|mut c| {
                c["@type"] = json!("type.googleapis.com/envoy.config.cluster.v3.Cluster");
                c
            })
            .collect();

        // The same stack as one static config: `envoy --mode validate` checks it
        // (config and modules) before anything reaches the running Envoy, and it is
        // a starting point for running the gateway's filters in plain Envoy.
        let mut inline_config = bootstrap(&inline, ECHO, &clusters);
        inline_config["static_resources"]["listeners"][0]["address"]["socket_address"]
            ["port_value"] = json!(self.port);
        let candidate = self.dir.join("envoy-static.json.candidate");
        let text = serde_json::to_string_pretty(&inline_config).map_err(|e| e.to_string())?;
        std::fs::write(&candidate, text).map_err(|e| format!("{}: {e}", candidate.display()))?;
        validate(&self.envoy_bin, &candidate)?;

        let mut changed = Changed {
            clusters: self.write(&self.xds("cds.json"), &json!({"resources": typed_clusters}))?,
            ..Default::default()
        };
        for (name, file, resource) in &ecds {
            if self.write(file, resource)? {
                changed.filters.push(name.clone());
                changed.files.push(file.clone());
            }
        }
        changed.listener = self.write(&self.xds("lds.json"), &json!({"resources": [listener]}))?;
        Ok(changed)
    }

    /// Keeps the static config of what Envoy now runs, once it took the update.
    pub fn commit(&self) {
        let _ = std::fs::rename(
            self.dir.join("envoy-static.json.candidate"),
            self.dir.join("envoy-static.json"),
        );
    }

    /// Forgets what was written for a refused update, so the next try rewrites it.
    fn forget(&mut self, changed: &Changed) {
        for file in &changed.files {
            self.written.remove(file);
        }
        if changed.clusters {
            self.written.remove(&self.xds("cds.json"));
        }
        if changed.listener {
            self.written.remove(&self.xds("lds.json"));
        }
    }

    /// Replaces `path` by atomic rename when its content changes; true if it did.
    fn write(&mut self, path: &Path, value: &Value) -> Result<bool> {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        if self.written.get(path) == Some(&text) {
            return Ok(false);
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.written.insert(path.to_path_buf(), text);
        Ok(true)
    }

    pub fn launch(&mut self) -> Result<Envoy> {
        let config = json!({
            "node": {"id": "mesh-plugins-run", "cluster": "mesh-plugins-run"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "dynamic_resources": {
                "lds_config": file_source(&self.xds("lds.json")),
                "cds_config": file_source(&self.xds("cds.json")),
            },
        });
        Envoy::launch(&self.dir.join("envoy"), &config, 2, self.echo.take())
            .map_err(|log| format!("Envoy did not start:\n{log}"))
    }

    /// Rebuilds (when sources changed) and swaps what changed into the running Envoy.
    /// Any error leaves the running stack as it was.
    pub fn reload(&mut self, file: &Path, sources: bool, envoy: &Envoy) -> Result<()> {
        let gateway = gateway::load(file)?;
        self.prepare_modules(&gateway, sources)?;
        let before = Counters::read(envoy);
        let started = Instant::now();
        let changed = self.apply(&gateway)?;
        if !changed.clusters && !changed.listener && changed.filters.is_empty() {
            println!("nothing to swap: the running stack already is this");
            return Ok(());
        }
        let what = describe(&changed);
        let log_before = std::fs::metadata(self.log_path())
            .map(|m| m.len())
            .unwrap_or(0);
        match before.wait_applied(envoy, &changed, Duration::from_secs(15)) {
            Ok(()) => {
                self.commit();
                println!(
                    "swapped {what} in {} ms; chain now: {}",
                    started.elapsed().as_millis(),
                    chain_names(&gateway)
                );
                Ok(())
            }
            Err(e) => {
                self.forget(&changed);
                let log = std::fs::read(self.log_path()).unwrap_or_default();
                let new =
                    String::from_utf8_lossy(log.get(log_before as usize..).unwrap_or_default())
                        .lines()
                        .filter(|l| l.contains("[error]") || l.contains("rejected"))
                        .map(|l| format!("\n  envoy: {l}"))
                        .collect::<String>();
                Err(format!("{e} (swapping {what}){new}"))
            }
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy").join("envoy.log")
    }
}

/// `envoy --mode validate`: parses the config and loads every module, without
/// serving. The error is Envoy's own line saying what is wrong.
fn validate(envoy_bin: &Path, config: &Path) -> Result<()> {
    let out = std::process::Command::new(envoy_bin)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(config)
        .output()
        .map_err(|e| format!("cannot start {}: {e}", envoy_bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("[critical]") || l.contains("[error]"))
        .collect();
    Err(format!(
        "envoy --mode validate refused the generated config ({}):\n  {}",
        gateway::display(config),
        if lines.is_empty() {
            text.trim().to_string()
        } else {
            lines.join("\n  ")
        }
    ))
}

fn file_source(path: &Path) -> Value {
    json!({
        "path_config_source": {"path": path.display().to_string()},
        "resource_api_version": "V3",
    })
}

/// The echo upstream's cluster, and one cluster for each auth cluster name the
/// filters call, all pointing at the demo auth service.
fn clusters(filters: &[Checked], echo: SocketAddr, auth: Option<SocketAddr>) -> Result<Vec<Value>> {
    let mut clusters = vec![static_cluster(ECHO, echo)];
    clusters.extend(local::auth_clusters(filters, auth)?);
    Ok(clusters)
}

fn describe(changed: &Changed) -> String {
    let mut parts = Vec::new();
    if changed.clusters {
        parts.push("clusters".to_string());
    }
    if !changed.filters.is_empty() {
        parts.push(format!("filter {}", changed.filters.join(", ")));
    }
    if changed.listener {
        parts.push("listener (filter set or order)".to_string());
    }
    parts.join(" + ")
}

/// Envoy's xDS counters, to tell when a file update was taken or refused.
struct Counters(BTreeMap<String, u64>);

impl Counters {
    fn read(envoy: &Envoy) -> Counters {
        let stats = Request::get("/stats?filter=(lds|cds|extension_config_discovery)\\.")
            .send(envoy.admin());
        Counters(
            stats
                .text()
                .lines()
                .filter_map(|l| {
                    let (name, value) = l.split_once(": ")?;
                    Some((name.to_string(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Waits until Envoy took every changed file, or says which it refused.
    fn wait_applied(&self, envoy: &Envoy, changed: &Changed, limit: Duration) -> Result<()> {
        // (counter that grows when Envoy took the update, one that grows when it refused)
        let mut wanted: Vec<(String, String)> = Vec::new();
        if changed.clusters {
            wanted.push((
                "cluster_manager.cds.update_success".into(),
                "cluster_manager.cds.update_rejected".into(),
            ));
        }
        for name in &changed.filters {
            let prefix = format!("extension_config_discovery.http_filter.{name}");
            wanted.push((
                format!("{prefix}.config_reload"),
                format!("{prefix}.config_fail"),
            ));
        }
        if changed.listener {
            wanted.push((
                "listener_manager.lds.update_success".into(),
                "listener_manager.lds.update_rejected".into(),
            ));
        }
        let start = Instant::now();
        loop {
            let now = Counters::read(envoy);
            let mut pending = false;
            for (ok, bad) in &wanted {
                if now.get(bad) > self.get(bad) {
                    return Err(format!("Envoy refused the update ({bad})"));
                }
                if now.get(ok) <= self.get(ok) {
                    pending = true;
                }
            }
            if !pending {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("Envoy did not take the update within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests;
