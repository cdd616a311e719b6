//! `cargo xtask build-all`: every plugin (and the chain module, when a gateway
//! fuses instances or there are no gateway files) to size-optimized
//! wasm32-wasip1 modules at `target/dist/<plugin>.wasm`, with their sha256
//! beside them, each as an OCI image Istio pulls in the layout
//! `target/dist/oci/`, then each gateway's Istio manifests in
//! `manifests/<gateway>/`, pinned to those digests, and the JSON Schemas of the
//! plugins' configs and of gateway files in `schemas/`. First it brings the
//! Cargo.toml sections that name every plugin up to date with `plugins/`.

use crate::build::{self, dist_dir, module_info, module_path, Module};
use crate::gateway::{self, Gateway, Url};
use crate::manifests;
use crate::oci::{self, Image};
use crate::plugin_lists;
use crate::schemas;
use crate::util::{root, run, Args, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Set when build-all runs itself again after refreshing the plugin lists, so
/// it never loops.
const REFRESHED: &str = "XTASK_PLUGIN_LISTS_REFRESHED";

pub fn run_command(args: &[String]) -> Result<()> {
    // A plugin directory added (or copied) by hand: the lists follow the
    // directory. This binary was built from the old lists, so cargo builds
    // xtask again with the new ones and that one does the work.
    let refreshed = plugin_lists::refresh(&root())?;
    if !refreshed.is_empty() {
        let files: Vec<String> = refreshed
            .iter()
            .map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string())
            .collect();
        println!(
            "plugins/ changed: refreshed the plugin lists in {}",
            files.join(", ")
        );
        if std::env::var_os(REFRESHED).is_some() {
            return Err("build-all: the plugin lists changed again after a refresh".into());
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        return run(Command::new(cargo)
            .current_dir(root())
            .args(["run", "--quiet", "--package", "xtask", "--", "build-all"])
            .args(args)
            .env(REFRESHED, "1"));
    }
    let mut gateways_path = gateway::default_dir();
    let mut only: Option<String> = None;
    let mut out = root().join("manifests");
    let mut modules_dir: Option<PathBuf> = None;
    let mut schemas_dir = schemas::default_dir();
    let mut args = Args::new("build-all", args);
    while let Some(flag) = args.flag() {
        match flag {
            "--gateways" => gateways_path = gateway::given(args.value(flag)?)?,
            "--gateway" => only = Some(args.value(flag)?),
            "--out" => out = PathBuf::from(args.value(flag)?),
            "--modules" => modules_dir = Some(PathBuf::from(args.value(flag)?)),
            "--schemas" => schemas_dir = PathBuf::from(args.value(flag)?),
            other => return Err(args.unexpected(other)),
        }
    }
    // Every config is checked before anything is built or written.
    let gateways = gateway::select(&gateways_path, only.as_deref())?;
    let written = schemas::write(&schemas_dir)?;
    println!(
        "{}/: JSON Schemas {}",
        gateway::display(&schemas_dir),
        written.join(", ")
    );
    let all = build::plugins()?;
    let used = if gateways.is_empty() {
        all.clone()
    } else {
        let mut used: Vec<String> = gateways.iter().flat_map(Gateway::modules).collect();
        used.sort();
        used.dedup();
        used
    };
    let plugins = match modules_dir {
        // Prebuilt modules: those the gateways need.
        Some(_) => used,
        // Every plugin, used yet or not (a new one included); the chain when it
        // is used.
        None => all
            .into_iter()
            .filter(|p| p != build::CHAIN || used.contains(p))
            .collect(),
    };
    let dist = match modules_dir {
        Some(dir) => {
            for plugin in &plugins {
                let m = module_info(plugin, &module_path(&dir, plugin))?;
                print_module(&m);
            }
            dir
        }
        None => {
            // The chain module holds the plugins the chains of every gateway file
            // here run, whichever ones are selected: one chain image per
            // repository, whatever `--gateway` picks.
            let chained = match gateways.is_empty() {
                true => None,
                false => Some(gateway::chained_plugins(
                    &gateway::select(&gateways_path, None).unwrap_or_else(|_| gateways.clone()),
                )),
            };
            build::build_with_chain(&plugins, chained.as_deref())?
                .iter()
                .for_each(print_module);
            if let Some(chained) = chained.filter(|_| plugins.iter().any(|p| p == build::CHAIN)) {
                println!(
                    "chain module holds {} (what the gateways' chains run)",
                    chained.join(", ")
                );
            }
            dist_dir()
        }
    };
    let images = write_images(&dist, &plugins)?;
    if gateways.is_empty() {
        println!(
            "no gateway files in {}: no manifests written",
            gateways_path.display()
        );
        return Ok(());
    }
    // What Istio checks a module by: the file's sha256 for file and https URLs,
    // the image manifest's digest for oci.
    let digest = |g: &Gateway, plugin: &str| match &g.url {
        Url::Oci(_) => images
            .get(plugin)
            .map(Image::sha256)
            .ok_or_else(|| format!("no image of {plugin} was built")),
        Url::File(_) | Url::Https(_) => {
            module_info(plugin, &module_path(&dist, plugin)).map(|m| m.sha256)
        }
    };
    let rendered = gateways
        .iter()
        .map(|g| manifests::render(g, &|plugin| digest(g, plugin)))
        .collect::<Result<Vec<_>>>()?;
    for (gateway, files) in gateways.iter().zip(&rendered) {
        manifests::write(&out, &gateway.name, files)?;
        let plan = gateway.filters();
        let chains = plan.filters.iter().filter(|f| f.is_chain()).count();
        let fused = match chains {
            0 => String::new(),
            n => format!(
                " ({} instances, {} fused into {n} chain{})",
                gateway.instances.len(),
                plan.fused(),
                if n == 1 { "" } else { "s" }
            ),
        };
        let count = files.len() - 1;
        let filters = match gateway.api {
            gateway::Api::EnvoyFilter => format!(" ({} filters)", plan.filters.len()),
            _ => String::new(),
        };
        println!(
            "{}/{}/: {count} {}{}{filters} from {}{fused}",
            gateway::display(&out),
            gateway.name,
            gateway.api.as_str(),
            if count == 1 { "" } else { "s" },
            gateway.display
        );
        for line in plan.report() {
            println!("  {line}");
        }
        for (module, filters) in plan.env_clashes() {
            println!(
                "  note: {} run {module}.wasm with different vmConfig.env; in Istio they \
                 share one VM per worker, which sees one of those sets only",
                filters.join(", ")
            );
        }
    }
    Ok(())
}

/// Each module as an OCI image in the layout beside the modules (`dist/oci`),
/// one line each: the image's ref name, size and manifest digest.
fn write_images(dist: &std::path::Path, plugins: &[String]) -> Result<BTreeMap<String, Image>> {
    let mut images = BTreeMap::new();
    for plugin in plugins {
        let path = module_path(dist, plugin);
        let wasm = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        images.insert(plugin.clone(), Image::new(&wasm)?);
    }
    let layout = oci::layout_dir(dist);
    let named: Vec<(String, &Image)> = images
        .iter()
        .map(|(plugin, image)| (oci::ref_name(plugin), image))
        .collect();
    oci::write_layout(&layout, &named)?;
    println!(
        "OCI images in {} (skopeo inspect oci:{}:<name>):",
        gateway::display(&layout),
        gateway::display(&layout)
    );
    for (name, image) in &named {
        println!(
            "  {name:<30} {:>7.1} KB  {}",
            image.size() as f64 / 1024.0,
            image.digest(),
        );
    }
    Ok(images)
}

fn print_module(m: &Module) {
    println!(
        "{:<24} {:>7.1} KB  sha256:{}",
        m.plugin,
        m.size as f64 / 1024.0,
        m.sha256
    );
}

#[cfg(test)]
mod tests;
