//! `cargo xtask test`: native unit tests, clippy, a short fuzz of every parser,
//! then the plugins (and the test-only modules of `harness/modules/`) built to
//! wasm and the end-to-end tests run against them in a real Envoy, over HTTP/1.1
//! and then, for the plugins' tests, over HTTP/2 (h2c) and with every plugin an
//! instance of the chain module, then `cargo xtask new` proved in a copy of the
//! workspace (`scaffold`), and once pushing the images to a real registry and
//! reading them back with skopeo.

mod scaffold;

use crate::util::{output, root, run, Result};
use crate::{build, envoy, fuzzing, registry};
use harness::envoy::test_modules_dir;
use std::process::Command;
use std::time::{Duration, Instant};

/// Arguments after `--` go to every end-to-end `cargo test` pass (a test name
/// filter, say): all the tests over HTTP/1.1, then the plugins' over HTTP/2,
/// then the plugins' over HTTP/1.1 in the chain form.
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
    let test_modules = build::test_modules()?;
    phases.start("clippy", "clippy (plugins, test modules and common)");
    if output(Command::new(&cargo).args(["clippy", "--version"])).is_some() {
        let mut clippy = Command::new(&cargo);
        clippy
            .current_dir(root())
            .args(["clippy", "--quiet", "-p", "common"]);
        for name in plugins.iter().chain(&test_modules) {
            clippy.args(["-p", name]);
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

    // A panic on a request path kills the VM; a few seconds of fuzzing per parser
    // catch the shallow ones on every run (`cargo xtask fuzz` goes deeper).
    phases.start(
        "fuzz smoke",
        &format!("fuzz smoke ({} s per target)", fuzzing::SMOKE_SECONDS),
    );
    fuzzing::smoke()?;

    phases.start("wasm build", "building plugins and test modules");
    // The chain with every plugin: the chain-form pass runs each plugin's tests.
    let built = build::build_sets(
        &[
            (&plugins, build::dist_dir()),
            (&test_modules, test_modules_dir()),
        ],
        None,
    )?;
    for m in built.iter().flatten() {
        println!("{:<24} {:>7.1} KB", m.plugin, m.size as f64 / 1024.0);
    }
    phases.start("envoy", "finding Envoy");
    let envoy = envoy::find()?;
    let (registry_bin, skopeo_bin) = registry::find()?;

    let xtask = std::env::current_exe().map_err(|e| e.to_string())?;
    let end_to_end = |http: &str, form: &str, tests: &[&str]| {
        let mut command = Command::new(&cargo);
        command
            .current_dir(root())
            .args(["test", "--package", "harness"]);
        for test in tests {
            // "--lib": the harness's own unit tests, which only the first pass runs.
            match *test {
                "--lib" => command.arg(test),
                _ => command.args(["--test", test]),
            };
        }
        command
            .arg("--")
            .args(extra)
            .env("ENVOY_BIN", &envoy)
            // The gateway tests drive `run` and `build-all` through this very binary.
            .env("XTASK_BIN", &xtask)
            .env("PLUGIN_DIST", build::dist_dir())
            // Set even for the defaults, so a HARNESS_HTTP or HARNESS_FORM left
            // in the caller's environment cannot make two passes the same.
            .env("HARNESS_HTTP", http)
            .env("HARNESS_FORM", form);
        command
    };

    phases.start(
        "end-to-end HTTP/1.1",
        "end-to-end tests (real Envoy, HTTP/1.1)",
    );
    let all_tests = end_to_end_tests()?;
    let chain_pass = plugin_tests(&plugins, &all_tests);
    let chain_pass: Vec<&str> = chain_pass.iter().map(String::as_str).collect();
    let http2_pass: Vec<&str> = chain_pass.iter().copied().chain([PROTOCOLS_TEST]).collect();
    let first: Vec<String> = all_tests
        .into_iter()
        .filter(|t| t != REGISTRY_TEST)
        .collect();
    let first: Vec<&str> = ["--lib"]
        .into_iter()
        .chain(first.iter().map(String::as_str))
        .collect();
    let http1 = run(&mut end_to_end("1.1", "separate", &first))
        .map_err(|e| format!("end-to-end tests over HTTP/1.1: {e}"));
    // Run even when HTTP/1.1 failed: whether a failure is protocol-specific is
    // the first thing to know about it.
    phases.start(
        "end-to-end HTTP/2",
        &format!(
            "end-to-end tests again over HTTP/2 (h2c, HARNESS_HTTP=2): {}",
            http2_pass.join(", ")
        ),
    );
    let http2 = run(&mut end_to_end("2", "separate", &http2_pass))
        .map_err(|e| format!("end-to-end tests over HTTP/2 (HARNESS_HTTP=2): {e}"));
    phases.start(
        "end-to-end chain",
        &format!(
            "end-to-end tests again with the plugins as chain instances (HTTP/1.1, \
             HARNESS_FORM=chain): {}",
            chain_pass.join(", ")
        ),
    );
    let chain = run(&mut end_to_end("1.1", "chain", &chain_pass))
        .map_err(|e| format!("end-to-end tests in the chain form (HARNESS_FORM=chain): {e}"));
    // With a test name filter, only when it names this phase.
    let scaffold = if extra.is_empty() || extra.iter().any(|a| a == SCAFFOLD) {
        phases.start(
            SCAFFOLD,
            "scaffold: `cargo xtask new demo-plugin` in a copy of the workspace, then \
             build-all, a gateway file using it, its unit and end-to-end tests",
        );
        scaffold::run(&cargo, &envoy).map_err(|e| format!("scaffold: {e}"))
    } else {
        println!("== scaffold: skipped (a test name filter was given; `-- {SCAFFOLD}` runs it)");
        Ok(())
    };
    phases.start(
        "registry",
        "registry tests (build-all's images pushed to a real registry, read back by skopeo)",
    );
    let registry = run(end_to_end("1.1", "separate", &[REGISTRY_TEST])
        .env("REGISTRY_BIN", &registry_bin)
        .env("SKOPEO_BIN", &skopeo_bin))
    .map_err(|e| format!("registry tests: {e}"));
    // Printed whether or not the end-to-end tests passed.
    println!("{}", phases.summary());
    http1.and(http2).and(chain).and(scaffold).and(registry)
}

/// The phase that proves `cargo xtask new` (see `scaffold`), and the filter word
/// that runs it alone.
const SCAFFOLD: &str = "scaffold";

/// The registry tests run once, in a phase of their own: they test pushing, not a
/// plugin, so neither the protocol nor the form changes what they check.
const REGISTRY_TEST: &str = "registry";

/// The end-to-end test binaries: `harness/tests/*.rs`, by name.
fn end_to_end_tests() -> Result<Vec<String>> {
    let dir = root().join("harness").join("tests");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The end-to-end test binaries of the plugins, found by name: every plugin's
/// test file, `harness/tests/<plugin with '_' for '-'>.rs` (the chain's own,
/// `chain.rs`, compares the forms and runs in the first pass only). They run a
/// second time with `HARNESS_HTTP=2`, with `protocols`, which checks with Envoy's
/// own counters that the pass really is HTTP/2, and a third time with
/// `HARNESS_FORM=chain`, over HTTP/1.1: each plugin then runs as an instance of
/// the chain module, so each plugin test also checks that the chain does what
/// separate filters do. Not `gateways`: it drives the xtask binary, and what it
/// checks (files, swaps, processes) does not depend on the client's protocol or
/// form. Not `crash_policy`: it pins what Envoy does with a dead VM, not what a
/// plugin does with a request, and keeps two cores busy for 25 s (1 GiB leaks)
/// per pass.
fn plugin_tests(plugins: &[String], tests: &[String]) -> Vec<String> {
    plugins
        .iter()
        .filter(|p| *p != build::CHAIN)
        .map(|p| p.replace('-', "_"))
        .filter(|t| tests.contains(t))
        .collect()
}

/// What checks, in the HTTP/2 pass, that it is one.
const PROTOCOLS_TEST: &str = "protocols";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_with_a_test_file_joins_the_http2_and_chain_passes() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plugins = names(&["basic-auth", "chain", "my-plugin", "untested"]);
        let tests = names(&["basic_auth", "chain", "gateways", "my_plugin", "protocols"]);
        assert_eq!(plugin_tests(&plugins, &tests), ["basic_auth", "my_plugin"]);
        // Today's plugins all have theirs.
        let plugins = build::plugins().unwrap();
        let found = plugin_tests(&plugins, &end_to_end_tests().unwrap());
        assert_eq!(found.len(), plugins.len() - 1, "{found:?}");
    }
}
