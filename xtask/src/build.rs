//! `cargo xtask build-all`: every plugin to a size-optimized wasm32-wasip1 module
//! at `target/dist/<plugin>.wasm`, with its sha256 beside it.

use crate::toolchain::{self, Toolchain, TARGET};
use crate::util::{root, run, target_dir, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;

/// A built module.
pub struct Module {
    pub plugin: String,
    pub size: u64,
    pub sha256: String,
}

pub fn run_command(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        return Err(format!("build-all: unexpected argument '{arg}'"));
    }
    let modules = build(&plugins()?)?;
    for m in &modules {
        println!(
            "{:<24} {:>7.1} KB  sha256:{}",
            m.plugin,
            m.size as f64 / 1024.0,
            m.sha256
        );
    }
    Ok(())
}

/// The plugins: directories under `plugins/` with a Cargo.toml, sorted by name.
pub fn plugins() -> Result<Vec<String>> {
    let dir = root().join("plugins");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
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

/// Builds `plugins` in one cargo invocation (so std is built once), then shrinks and
/// copies each module to `target/dist`.
pub fn build(plugins: &[String]) -> Result<Vec<Module>> {
    let toolchain = Toolchain::find()?;
    let mut cmd = toolchain.cargo_build();
    cmd.current_dir(root());
    for p in plugins {
        cmd.args(["-p", p]);
    }
    run(&mut cmd)?;

    let wasm_opt = toolchain::wasm_opt();
    if wasm_opt.is_none() {
        println!("note: wasm-opt (binaryen) not found; modules are not shrunk further");
    }
    let out_dir = target_dir().join(TARGET).join("release");
    let dist = dist_dir();
    std::fs::create_dir_all(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    plugins
        .iter()
        .map(|plugin| {
            let built = out_dir.join(format!("{}.wasm", plugin.replace('-', "_")));
            let path = dist.join(format!("{plugin}.wasm"));
            // Write beside the final name and rename, so an Envoy watching the file
            // never sees half a module.
            let tmp = dist.join(format!(".{plugin}.wasm.tmp"));
            shrink(wasm_opt.as_deref(), &built, &tmp)?;
            std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let sha256 = hex(&Sha256::digest(&bytes));
            let sum = dist.join(format!("{plugin}.wasm.sha256"));
            std::fs::write(&sum, format!("{sha256}  {plugin}.wasm\n"))
                .map_err(|e| format!("{}: {e}", sum.display()))?;
            Ok(Module {
                plugin: plugin.clone(),
                size: bytes.len() as u64,
                sha256,
            })
        })
        .collect()
}

fn shrink(
    wasm_opt: Option<&std::path::Path>,
    from: &std::path::Path,
    to: &std::path::Path,
) -> Result<()> {
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
            Ok(()) => return Ok(()),
            Err(e) => println!("warning: {e}; keeping the unshrunk module"),
        }
    }
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
