//! `cargo xtask <command>`: the project's commands, one module each.

mod bench;
mod build;
mod envoy;
mod test;
#[cfg(test)]
mod tidy;
mod toolchain;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build-all    build every plugin to target/dist/<plugin>.wasm (+ .sha256)
  test         native unit tests, then end-to-end tests in a real Envoy
  bench        per-request Envoy CPU cost of each plugin beside its native twin
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-all") => build::run_command(&args[1..]),
        Some("test") => test::run_command(&args[1..]),
        Some("bench") => bench::run_command(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
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
