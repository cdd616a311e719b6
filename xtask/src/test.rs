//! `cargo xtask test`: native unit tests, then the plugins built to wasm and the
//! end-to-end tests run against them in a real Envoy.

use crate::util::{output, root, run, Result};
use crate::{build, envoy};
use std::process::Command;
use std::time::{Duration, Instant};

/// Arguments after `--` go to the end-to-end `cargo test` (a test name filter, say).
pub fn run_command(args: &[String]) -> Result<()> {
    let extra: &[String] = match args.split_first() {
        None => &[],
        Some((first, rest)) if first == "--" => rest,
        Some((first, _)) => return Err(format!("test: unexpected argument '{first}'")),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut phases = Phases::default();

    phases.start("unit tests", "unit tests (native)");
    run(Command::new(&cargo).current_dir(root()).args([
        "test",
        "--workspace",
        "--exclude",
        "harness",
    ]))?;

    // The plugin and common crates deny unwrap/expect/panic/indexing (a panic
    // kills the VM for every later request); clippy is what enforces it.
    let plugins = build::plugins()?;
    phases.start("clippy", "clippy (plugins and common)");
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

    phases.start("wasm build", "building plugins");
    let modules = build::build(&plugins)?;
    for m in &modules {
        println!("{:<24} {:>7.1} KB", m.plugin, m.size as f64 / 1024.0);
    }
    phases.start("envoy", "finding Envoy");
    let envoy = envoy::find()?;

    phases.start("end-to-end", "end-to-end tests (real Envoy)");
    let result = run(Command::new(&cargo)
        .current_dir(root())
        .args(["test", "--package", "harness", "--"])
        .args(extra)
        .env("ENVOY_BIN", envoy)
        // The gateway tests drive `run` and `build-all` through this very binary.
        .env(
            "XTASK_BIN",
            std::env::current_exe().map_err(|e| e.to_string())?,
        )
        .env("PLUGIN_DIST", build::dist_dir()));
    // Printed whether or not the end-to-end tests passed.
    println!("{}", phases.summary());
    result
}

/// Wall time per phase, so a CI log shows where the time goes.
#[derive(Default)]
struct Phases {
    current: Option<(&'static str, Instant)>,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    /// Ends the phase under way and starts `label`, announced as `== heading`.
    fn start(&mut self, label: &'static str, heading: &str) {
        self.end();
        println!("== {heading}");
        self.current = Some((label, Instant::now()));
    }

    fn end(&mut self) {
        if let Some((label, started)) = self.current.take() {
            self.done.push((label, started.elapsed()));
        }
    }

    fn summary(mut self) -> String {
        self.end();
        let total: Duration = self.done.iter().map(|(_, d)| *d).sum();
        let parts: Vec<String> = self
            .done
            .iter()
            .map(|(label, d)| format!("{label} {:.1} s", d.as_secs_f64()))
            .collect();
        format!(
            "== time: {} (total {:.1} s)",
            parts.join(", "),
            total.as_secs_f64()
        )
    }
}
