//! The wasm build the commands share: plugins (and test modules) to
//! size-optimized wasm32-wasip1 modules at `target/dist/<plugin>.wasm`, with their
//! sha256 beside them, and reading a built module's size and digest.

use crate::toolchain::{self, Toolchain, TARGET};
use crate::util::{root, run, Result};
use harness::envoy::target_dir;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A built module.
pub struct Module {
    pub plugin: String,
    pub size: u64,
    pub sha256: String,
}

/// Where `plugin`'s module is in a directory of modules (`target/dist` or `--modules`).
pub fn module_path(dir: &Path, plugin: &str) -> PathBuf {
    dir.join(format!("{plugin}.wasm"))
}

/// Reads a module: its size and sha256; an error if it is missing or not wasm.
pub fn module_info(plugin: &str, path: &Path) -> Result<Module> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !bytes.starts_with(b"\0asm") {
        return Err(format!("{}: not a wasm module", path.display()));
    }
    Ok(Module {
        plugin: plugin.to_string(),
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(&bytes)),
    })
}

/// The plugins: directories under `plugins/` with a Cargo.toml, sorted by name.
pub fn plugins() -> Result<Vec<String>> {
    crates_in(&root().join("plugins"))
}

/// The subdirectories of `dir` that hold a Cargo.toml, by name, sorted.
fn crates_in(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The directory the modules land in.
pub fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// The test-only modules: directories under `harness/modules/` with a Cargo.toml,
/// sorted by name. `cargo xtask test` builds them; `build-all` never does.
pub fn test_modules() -> Result<Vec<String>> {
    crates_in(&root().join("harness").join("modules"))
}

/// Builds `plugins` in one cargo invocation (so std is built once), then shrinks and
/// copies each module to `target/dist`.
pub fn build(plugins: &[String]) -> Result<Vec<Module>> {
    build_with_chain(plugins, None)
}

/// As [`build`], with the chain module (when `plugins` has it) holding only the
/// plugins `chain` names, or every plugin when `None`.
pub fn build_with_chain(plugins: &[String], chain: Option<&[String]>) -> Result<Vec<Module>> {
    let mut built = build_sets(&[(plugins, dist_dir())], chain)?;
    Ok(built.pop().unwrap_or_default())
}

/// The module that links every plugin crate, without their own entry points.
pub const CHAIN: &str = "chain";

/// Builds every set of crates, then shrinks and copies each set's modules to its
/// own directory: plugins to `target/dist`, test modules beside it, so nothing
/// that reads `dist` mistakes a test module for a plugin. Everything but the chain
/// builds in one cargo invocation; the chain needs one of its own, because cargo
/// unifies a crate's features across one invocation and the chain links the
/// plugin crates without their `module` feature (their entry points). `chain`
/// names the plugins the chain module is built with (each a cargo feature of
/// `plugins/chain`); `None` builds it with all of them.
pub fn build_sets(
    sets: &[(&[String], PathBuf)],
    chain: Option<&[String]>,
) -> Result<Vec<Vec<Module>>> {
    let toolchain = Toolchain::find()?;
    let names: Vec<&String> = sets.iter().flat_map(|(names, _)| names.iter()).collect();
    let (chain_group, others): (Vec<&String>, Vec<&String>) =
        names.into_iter().partition(|name| *name == CHAIN);
    let chain_plugins = chain;
    for group in [others, chain_group] {
        if group.is_empty() {
            continue;
        }
        let mut cmd = toolchain.cargo_build();
        cmd.current_dir(root());
        for name in &group {
            cmd.args(["-p", name]);
        }
        if group.iter().any(|name| *name == CHAIN) {
            if let Some(plugins) = chain_plugins {
                cmd.args(["--no-default-features", "--features", &plugins.join(",")]);
            }
        }
        run(&mut cmd)?;
    }

    let wasm_opt = toolchain::wasm_opt();
    if wasm_opt.is_none() {
        println!("note: wasm-opt (binaryen) not found; modules are not shrunk further");
    }
    let out_dir = target_dir().join(TARGET).join("release");
    sets.iter()
        .map(|(names, dest)| {
            std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            names
                .iter()
                .map(|name| place(wasm_opt.as_deref(), &out_dir, dest, name))
                .collect()
        })
        .collect()
}

/// Shrinks (or copies) the freshly built module `plugin` into `dest`, with its
/// sha256 beside it.
fn place(wasm_opt: Option<&Path>, out_dir: &Path, dest: &Path, plugin: &str) -> Result<Module> {
    let built = out_dir.join(format!("{}.wasm", plugin.replace('-', "_")));
    let path = module_path(dest, plugin);
    let source = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    let source_sha = hex(&Sha256::digest(&source));
    // wasm-opt takes seconds per module on two cores and most builds change
    // one plugin at most: a module keeps its shrunk copy while the stamp
    // says it was made, the way wanted now, from the same build.
    let stamp = dest.join(format!(".{plugin}.wasm.made-from"));
    let wanted = if wasm_opt.is_some() {
        "wasm-opt"
    } else {
        "copy"
    };
    let made = std::fs::read_to_string(&stamp).unwrap_or_default();
    let module = match module_info(plugin, &path) {
        Ok(m) if made == format!("{source_sha} {wanted} {}", m.sha256) => m,
        _ => {
            // Written beside the final name and renamed, so an Envoy
            // watching the file never sees half a module.
            let tmp = dest.join(format!(".{plugin}.wasm.tmp"));
            let how = shrink(wasm_opt, &built, &tmp)?;
            std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
            let m = module_info(plugin, &path)?;
            std::fs::write(&stamp, format!("{source_sha} {how} {}", m.sha256))
                .map_err(|e| format!("{}: {e}", stamp.display()))?;
            m
        }
    };
    let sum = dest.join(format!("{plugin}.wasm.sha256"));
    std::fs::write(&sum, format!("{}  {plugin}.wasm\n", module.sha256))
        .map_err(|e| format!("{}: {e}", sum.display()))?;
    Ok(module)
}

/// Copies `from` to `to` through `wasm-opt -Oz` when there is one; says which it did.
fn shrink(wasm_opt: Option<&Path>, from: &Path, to: &Path) -> Result<&'static str> {
    if let Some(wasm_opt) = wasm_opt {
        let mut cmd = Command::new(wasm_opt);
        cmd.arg("-Oz")
            .args([
                "--enable-bulk-memory",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
                "--enable-nontrapping-float-to-int",
            ])
            .arg(from)
            .arg("-o")
            .arg(to);
        match run(&mut cmd) {
            Ok(()) => return Ok("wasm-opt"),
            Err(e) => println!("warning: {e}; keeping the unshrunk module"),
        }
    }
    std::fs::copy(from, to)
        .map(|_| "copy")
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_modules_are_neither_plugins_nor_placed_with_them() {
        let test_modules = test_modules().unwrap();
        assert!(
            test_modules.contains(&"trap".to_string()),
            "{test_modules:?}"
        );
        let plugins = plugins().unwrap();
        assert!(
            plugins.iter().all(|p| !test_modules.contains(p)),
            "{plugins:?} {test_modules:?}"
        );
        assert_ne!(harness::envoy::test_modules_dir(), dist_dir());
    }
}
