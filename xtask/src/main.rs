//! `cargo xtask <command>`: the project's commands, one module each.
//!
//! A command module (what `main` dispatches to, and `tidy`) is imported by no
//! other module, so one command can change without breaking another; what
//! commands share lives in the shared modules, which import no command and no
//! shared module in a cycle (`tidy` checks both).

// Commands.
mod bench;
mod build_all;
mod fuzz;
mod new;
mod push;
mod run;
mod test;
#[cfg(test)]
mod tidy;

// Shared by the commands.
mod build;
mod envoy;
mod fuzzing;
mod gateway;
mod local;
mod manifests;
mod oci;
mod plugin_lists;
mod plugins;
mod registry;
mod schemas;
mod toolchain;
mod util;
mod yaml;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build-all [--gateways PATH] [--gateway NAME] [--out DIR] [--modules DIR] [--schemas DIR]
               build every plugin (and chain.wasm, with what the gateways'
               chains run, when a gateway fuses instances into chains) to
               target/dist/<plugin>.wasm (+ .sha256) and each as an OCI image
               (Istio's compat form) in target/dist/oci/, then write each
               gateway's Istio WasmPlugins to manifests/<gateway>/, each pinned
               by sha256 (for oci:// urls, the image manifest's digest)
               (gateway files: PATH, a file or a directory, default
               examples/gateways; --modules DIR: use prebuilt modules
               DIR/<plugin>.wasm instead of building, images to DIR/oci);
               also the JSON Schema of each plugin's config and of gateway
               files to schemas/ (or --schemas DIR), for editors
  push [--gateways PATH] [--gateway NAME] [--insecure] [--modules DIR]
               push the OCI images build-all wrote (target/dist/oci, or
               DIR/oci) to the registries the gateways' oci:// urls name, as
               oci://<base>/<plugin>:<version>; prints each reference with its
               digest. Credentials: MESH_PLUGINS_REGISTRY_USERNAME and
               MESH_PLUGINS_REGISTRY_PASSWORD, else the auths of
               $DOCKER_CONFIG/config.json or ~/.docker/config.json. HTTPS,
               except plain HTTP for a loopback registry or with --insecure
  run [--gateways PATH] [--gateway NAME] [--port 10000] [--watch] [--modules DIR]
               run one gateway's plugins in a local Envoy, chained as Istio
               chains them (instances fused into a chain: one filter running
               chain.wasm), with an echo upstream; --watch rebuilds and swaps
               filters in the running Envoy when plugins/, common/ or the
               gateway file change (--port 0 picks a free port)
  test [-- ARGS]
               native unit tests, clippy on the plugins and common, a few
               seconds of fuzzing per fuzz target, then the end-to-end tests in
               a real Envoy (ARGS go to that cargo test: a test name filter,
               --nocapture)
  bench [--requests N] [--rounds R] [--cases WORDS]
               per-request Envoy CPU, throughput and memory of no filter, one
               and six empty wasm filters, each plugin beside its native twin,
               the four stacked, and the ingress gateway (six filters, VMs
               shared or own; fused as its file says; one chain); N requests
               per case and round (default 10000), R interleaved rounds (default
               3), medians shown; --cases a,b: only cases whose names hold a or b
  bench --costs [--requests N] [--rounds R] [--cases WORDS]
               what a filter pays per request beyond the empty one: the empty
               module reading headers, logging below the level, boxing its
               context, answering one more callback; header-authorization; six
               empty filters sharing one VM or a VM each (default 40000
               requests, 7 rounds)
  bench --soak [--requests N] [--plugins LIST]
               N requests (default 1000000, at most 20 minutes) through the four
               plugins stacked, with allowed, denied, cache-missing and abandoned
               requests mixed in; Envoy's RSS and each plugin VM's wasm memory
               every 100k requests, their growth and a flat/growing verdict, also
               written to target/bench/soak.txt (--plugins a,b or none: a sub-stack)
  new NAME     a new plugin: plugins/NAME/ (config type, host-free logic
               with its unit test, the adapter, README, a gateway file to try
               it) and its end-to-end test harness/tests/NAME.rs ('-' as '_');
               then the Cargo.toml sections that list every plugin
  fuzz [TARGET...] [--runs N | --seconds S]
               build the fuzz targets (fuzz/) with libFuzzer and run each (all
               by default) for N executions (default 1000000) or S seconds;
               corpus in target/fuzz/corpus/<target>, a crash's input in
               target/fuzz/artifacts/<target>/
";

fn main() -> ExitCode {
    // Cargo reads a relative CARGO_TARGET_DIR from the directory it was run in, and
    // built xtask there; xtask runs cargo and the tests from the workspace root (and
    // the tests from their crate's), so it pins the directory down for all of them.
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        if let (true, Ok(cwd)) = (Path::new(&dir).is_relative(), std::env::current_dir()) {
            std::env::set_var("CARGO_TARGET_DIR", cwd.join(dir));
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-all") => build_all::run_command(&args[1..]),
        Some("run") => run::run_command(&args[1..]),
        Some("push") => push::run_command(&args[1..]),
        Some("test") => test::run_command(&args[1..]),
        Some("bench") => bench::run_command(&args[1..]),
        Some("fuzz") => fuzz::run_command(&args[1..]),
        Some("new") => new::run_command(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            if let Some(command) = other {
                eprintln!("error: unknown command '{command}'\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
