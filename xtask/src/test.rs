//! `cargo xtask test`: native unit tests, then the plugins built to wasm and the
//! end-to-end tests run against them in a real Envoy.

use crate::util::{output, root, run, Result};
use crate::{build, envoy};
use std::process::Command;

/// Arguments after `--` go to the end-to-end `cargo test` (a test name filter, say).
pub fn run_command(args: &[String]) -> Result<()> {
    let extra: &[String] = match args.split_first() {
        None => &[],
        Some((first, rest)) if first == "--" => rest,
        Some((first, _)) => return Err(format!("test: unexpected argument '{first}'")),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    println!("== unit tests (native)");
    run(Command::new(&cargo).current_dir(root()).args([
        "test",
        "--workspace",
        "--exclude",
        "harness",
    ]))?;

    // The plugin and common crates deny unwrap/expect/panic/indexing (a panic
    // kills the VM for every later request); clippy is what enforces it.
    let plugins = build::plugins()?;
    println!("== clippy (plugins and common)");
    if output(Command::new(&cargo).args(["clippy", "--version"])).is_some() {
        let mut clippy = Command::new(&cargo);
        clippy
            .current_dir(root())
            .args(["clippy", "--quiet", "-p", "common"]);
        for plugin in &plugins {
            clippy.args(["-p", plugin]);
        }
        run(&mut clippy)?;
    } else {
        // A rustup `minimal` profile has no clippy, and `rustup component add`
        // needs the download server this project cannot count on.
        println!(
            "warning: clippy is not installed (rustup component add clippy): the plugins' \
             no-panic lints are NOT checked"
        );
    }

    println!("== building plugins");
    let modules = build::build(&plugins)?;
    for m in &modules {
        println!("{:<24} {:>7.1} KB", m.plugin, m.size as f64 / 1024.0);
    }
    let envoy = envoy::find()?;

    println!("== end-to-end tests (real Envoy)");
    run(Command::new(&cargo)
        .current_dir(root())
        .args(["test", "--package", "harness", "--"])
        .args(extra)
        .env("ENVOY_BIN", envoy)
        // The gateway tests drive `run` and `build-all` through this very binary.
        .env(
            "XTASK_BIN",
            std::env::current_exe().map_err(|e| e.to_string())?,
        )
        .env("PLUGIN_DIST", build::dist_dir()))
}
