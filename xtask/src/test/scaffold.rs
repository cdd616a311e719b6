//! The scaffold phase of `cargo xtask test`: proof that `cargo xtask new` makes a
//! plugin that works with no other edit. In a copy of the workspace (without
//! `target/` and `.git`) it runs `cargo xtask new demo-plugin`, then `build-all`
//! on a gateway file that uses the new plugin alone and fused into a chain
//! (checking the manifests and JSON Schemas), `build-all` on a gateway file whose config for it
//! is bad (refused, the field named), the new crate's unit tests, and its
//! end-to-end test in a real Envoy, as its own filter and inside the chain.
//!
//! Speed: the copy gets a target directory of its own whose compiled crates.io
//! dependencies are hard links to the real one's, so only the workspace's own
//! crates are compiled. Cargo hashes a path crate by its path relative to the
//! workspace root, so the copy's crates would have the very file names of the
//! real ones and their builds would write through the links into the real
//! target directory; the copy's workspace version gets a `-scaffold` suffix,
//! which gives them names of their own and leaves every linked file as it was.

use crate::util::{describe, root, Result};
use harness::envoy::target_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The plugin the phase makes.
const NAME: &str = "demo-plugin";

/// What the gateway files of the phase say: one instance on its own (its own
/// module), two fused into a chain (the chain module holding the new plugin).
const GATEWAY: &str = "\
name: demo
namespace: istio-system
selector: {istio: ingressgateway}
url: file:///opt/filters
chain: true
plugins:
  - {plugin: demo-plugin, name: alone, phase: AUTHN, config: {header: x-tenant}}
  - {plugin: demo-plugin, name: tenant, phase: AUTHZ, config: {header: x-tenant, status: 401}}
  - {plugin: header-authorization, name: team, phase: AUTHZ, config: {header: x-team, values: [red]}}
";

const BAD_GATEWAY: &str = "\
name: bad
namespace: istio-system
selector: {istio: ingressgateway}
url: file:///opt/filters
plugins:
  - {plugin: demo-plugin, config: {header: x-tenant, status: 700}}
";

/// Runs the phase with `envoy`; leaves nothing behind when it passes, and the
/// copied workspace (named in the error, without its target directory, which
/// holds gigabytes) when it fails.
pub fn run(cargo: &str, envoy: &Path) -> Result<()> {
    let base = target_dir().join("tmp");
    // What a failed run kept.
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("scaffold-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("scaffold-{}", std::process::id()));
    let result = steps(cargo, envoy, &dir);
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir.join("target"));
            println!(
                "scaffold: {e}\n(the copied workspace is kept in {})",
                dir.display()
            );
        }
    }
    result
}

fn steps(cargo: &str, envoy: &Path, dir: &Path) -> Result<()> {
    let ws = dir.join("workspace");
    let target = dir.join("target");
    let skip = [
        root().join(".git"),
        root().join("target"),
        root().join(".envoy"),
        target_dir(),
    ];
    copy_tree(&root(), &ws, &skip)?;
    own_version(&ws.join("Cargo.toml"))?;
    let linked = link_dependencies(&target_dir(), &target);
    println!(
        "copied the workspace to {} ({} compiled files linked from {})",
        ws.display(),
        linked.len(),
        target_dir().display()
    );
    let result = in_copy(cargo, envoy, &ws, &target);
    unchanged(&linked).and(result)
}

/// The commands, in the copy `ws` with its target directory `target`.
fn in_copy(cargo: &str, envoy: &Path, ws: &Path, target: &Path) -> Result<()> {
    let command = |args: &[&str]| {
        let mut c = Command::new(cargo);
        c.current_dir(ws)
            .args(args)
            .env("CARGO_TARGET_DIR", target)
            // A build made once: incremental caches would only cost time and
            // hundreds of MB.
            .env("CARGO_INCREMENTAL", "0")
            .env("ENVOY_BIN", envoy)
            .env_remove("PLUGIN_DIST")
            .env_remove("XTASK_PLUGIN_LISTS_REFRESHED");
        c
    };
    let xtask = |args: &[&str]| {
        let mut c = command(&["run", "--quiet", "--package", "xtask", "--"]);
        c.args(args);
        c
    };

    let out = succeed(xtask(&["new", NAME]))?;
    expect(&out, &format!("wrote plugins/{NAME}/src/config.rs"))?;

    let gateways = ws.join("scaffold-gateways");
    write(&gateways.join("demo.yaml"), GATEWAY)?;
    let out = succeed(xtask(&[
        "build-all",
        "--gateways",
        &gateways.display().to_string(),
    ]))?;
    expect(&out, &format!("\n{NAME} "))?;
    expect(&out, "chain demo-team: team + tenant")?;
    let manifests = ws.join("manifests").join("demo");
    let alone = read(&manifests.join("alone.yaml"))?;
    expect(&alone, &format!("url: file:///opt/filters/{NAME}.wasm"))?;
    let chain = read(&manifests.join("team.yaml"))?;
    expect(&chain, "url: file:///opt/filters/chain.wasm")?;
    expect(&chain, &format!("plugin: {NAME}"))?;
    // Its config's JSON Schema, and the gateway file's, which names it.
    let schema = read(&ws.join("schemas").join(format!("{NAME}.json")))?;
    expect(&schema, &format!("\"title\": \"{NAME} config\""))?;
    expect(
        &read(&ws.join("schemas").join("gateway.json"))?,
        &format!("\"const\": \"{NAME}\""),
    )?;

    let bad = ws.join("scaffold-bad");
    write(&bad.join("bad.yaml"), BAD_GATEWAY)?;
    let out = xtask(&["build-all", "--gateways", &bad.display().to_string()])
        .output()
        .map_err(|e| format!("build-all: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success()
        || !stderr.contains(
            "bad.yaml: plugins[0] (demo-plugin): config.status: must be 200..=599, got 700",
        )
    {
        return Err(format!(
            "a bad config for {NAME} was not refused with its field named:\n{stderr}"
        ));
    }
    println!("refused as it should be: {}", stderr.trim());

    succeed(command(&["test", "--quiet", "--package", NAME]))?;
    let krate = NAME.replace('-', "_");
    for form in ["separate", "chain"] {
        let mut test = command(&["test", "--quiet", "--package", "harness", "--test", &krate]);
        test.env("PLUGIN_DIST", target.join("dist"))
            .env("HARNESS_HTTP", "1.1")
            .env("HARNESS_FORM", form);
        succeed(test)?;
    }
    Ok(())
}

/// Runs `cmd`, its stderr passed through; its stdout, which is also printed.
fn succeed(mut cmd: Command) -> Result<String> {
    let described = describe(&cmd);
    println!("$ {described}");
    let started = std::time::Instant::now();
    let out: Output = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {described}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    println!("({:.1} s)", started.elapsed().as_secs_f64());
    if !out.status.success() {
        return Err(format!("{described} failed ({})", out.status));
    }
    Ok(stdout)
}

fn expect(text: &str, needle: &str) -> Result<()> {
    match text.contains(needle) {
        true => Ok(()),
        false => Err(format!("expected {needle:?} in:\n{text}")),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Copies the files under `from` to `to`, leaving out `skip` (and symlinks).
fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path) {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&path, &dest, skip)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &dest).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Gives the copy's workspace crates a version of their own (see the module's
/// doc).
fn own_version(manifest: &Path) -> Result<()> {
    let text = read(manifest)?;
    let mut in_package = false;
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                in_package = line.trim() == "[workspace.package]";
            } else if in_package && !done && line.starts_with("version = \"") {
                if let Some(version) = line
                    .trim_end()
                    .strip_prefix("version = \"")
                    .and_then(|v| v.strip_suffix('"'))
                {
                    done = true;
                    let mark = if version.contains('-') {
                        ".scaffold"
                    } else {
                        "-scaffold"
                    };
                    return format!("version = \"{version}{mark}\"");
                }
            }
            line.to_string()
        })
        .collect();
    if !done {
        return Err(format!(
            "{}: no version in [workspace.package]",
            manifest.display()
        ));
    }
    write(manifest, &(lines.join("\n") + "\n"))
}

/// Seeds `copy` with the compiled units of `real`; returns how many files it
/// linked. Cargo, rustc and the linker replace a compiled unit (an `.rlib`,
/// `.rmeta`, `.so` or executable) with a new file, so those are hard links
/// (the copy's workspace crates never take their names: see the module's doc).
/// What is written in place is copied: rustc's dep-info (`.d`), cargo's
/// fingerprints, and what build scripts wrote (their `OUT_DIR`s and outputs),
/// which a build script run again in the copy writes (its `OUT_DIR` path
/// differs, so some are). Each
/// linked file's size and mtime are kept, and [`unchanged`] checks them after
/// the phase. Where links cannot be made, nothing is seeded: the copy then
/// builds everything.
fn link_dependencies(real: &Path, copy: &Path) -> Vec<Linked> {
    let mut linked = Vec::new();
    for profile in ["debug", "release", "wasm32-wasip1/release"] {
        let (real, copy) = (real.join(profile), copy.join(profile));
        seed(&real.join("deps"), &copy.join("deps"), false, &mut linked);
        seed(&real.join("build"), &copy.join("build"), true, &mut linked);
        seed(
            &real.join(".fingerprint"),
            &copy.join(".fingerprint"),
            true,
            &mut linked,
        );
    }
    linked
}

/// A file of the real target directory linked into the copy, as it was.
type Linked = (PathBuf, Option<(u64, std::time::SystemTime)>);

fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Links (or, with `copy`, and for a `.d` file, copies) the files under `from`
/// to `to`, noting each link in `linked`.
fn seed(from: &Path, to: &Path, copy: bool, linked: &mut Vec<Linked>) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    if std::fs::create_dir_all(to).is_err() {
        return;
    }
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let (path, dest) = (entry.path(), to.join(entry.file_name()));
        if kind.is_dir() {
            seed(&path, &dest, copy, linked);
        } else if !kind.is_file() {
            continue;
        } else if (copy && !is_build_script(&path)) || path.extension().is_some_and(|e| e == "d") {
            copy_file(&path, &dest);
        } else if std::fs::hard_link(&path, &dest).is_ok() {
            let was = stamp(&path);
            linked.push((path, was));
        }
    }
}

/// A compiled build script (which the linker replaces, as any executable): in
/// a `build/` directory everything else is written in place.
fn is_build_script(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with("build-script-") || name.starts_with("build_script_")
}

/// Copies a file with its mtime: cargo compares the times of a unit's
/// fingerprint and outputs with those of its dependencies, and a fingerprint
/// newer than the linked outputs would make it build every dependent again.
fn copy_file(from: &Path, to: &Path) {
    let copied = std::fs::copy(from, to).is_ok();
    if let (true, Ok(meta)) = (copied, std::fs::metadata(from)) {
        if let (Ok(mtime), Ok(file)) = (
            meta.modified(),
            std::fs::File::options().write(true).open(to),
        ) {
            let _ = file.set_modified(mtime);
        }
    }
}

/// Refuses when the copy wrote through a link into the real target directory.
fn unchanged(linked: &[Linked]) -> Result<()> {
    let changed: Vec<String> = linked
        .iter()
        .filter(|(path, was)| stamp(path) != *was)
        .map(|(path, _)| path.display().to_string())
        .take(5)
        .collect();
    match changed.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "the copy wrote through hard links into the real target directory: {}",
            changed.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_gets_a_version_of_its_own() {
        let dir = std::env::temp_dir().join(format!("scaffold-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("Cargo.toml");
        let text = "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[x]\nversion = \"1\"\n";
        std::fs::write(&manifest, text).unwrap();
        own_version(&manifest).unwrap();
        assert_eq!(
            std::fs::read_to_string(&manifest).unwrap(),
            text.replace("\"0.1.0\"", "\"0.1.0-scaffold\"")
        );
        std::fs::write(&manifest, "[workspace]\n").unwrap();
        assert!(own_version(&manifest)
            .unwrap_err()
            .ends_with("no version in [workspace.package]"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
