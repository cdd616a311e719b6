//! The fuzz targets: every parser of configuration and every parser on a request's
//! path, each with the invariants it must keep, not only "does not panic" (a panic
//! inside the wasm VM kills it for every later request). `cargo xtask fuzz` builds
//! each `fuzz_targets/<target>.rs` with libFuzzer; a plain build of the same binary
//! replays files instead, which is how a crash is reproduced with a backtrace.

pub mod basic_auth;
pub mod configs;
pub mod dispatch_auth;
pub mod headers;
pub mod json;
pub mod jwt_auth;
pub mod path;

#[cfg(fuzzing)]
pub use libfuzzer_sys;

use std::path::Path;
use std::process::ExitCode;

/// A target's entry point: one input, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target: its name (that of its binary and of its seed directory) and the
/// function that takes one input.
pub const TARGETS: &[(&str, Target)] = &[
    ("config_json", json::run),
    ("config_header_authorization", configs::header_authorization),
    ("config_basic_auth", configs::basic_auth),
    ("config_response_headers", configs::response_headers),
    ("config_dispatch_auth", configs::dispatch_auth),
    ("config_chain", configs::chain),
    ("header_pairs", headers::run),
    ("path", path::run),
    ("basic_auth_decide", basic_auth::decide),
    ("dispatch_auth_verdict", dispatch_auth::verdict),
    ("dispatch_auth_call", dispatch_auth::call),
    ("jwt_auth_token", jwt_auth::token),
];

/// The body of a target's binary: libFuzzer's entry point under `--cfg fuzzing`,
/// else a `main` that runs the target on the files and directories it is given.
#[macro_export]
macro_rules! main {
    ($run:path) => {
        #[cfg(fuzzing)]
        $crate::libfuzzer_sys::fuzz_target!(|data: &[u8]| $run(data));

        #[cfg(not(fuzzing))]
        fn main() -> std::process::ExitCode {
            $crate::replay($run)
        }
    };
}

/// Runs `run` on every file named on the command line (a directory: every file in
/// it). A failing input panics like it did under libFuzzer, with a backtrace
/// when `RUST_BACKTRACE=1`.
pub fn replay(run: Target) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: <target> FILE|DIR... (runs the target on each input)");
        return ExitCode::from(2);
    }
    for arg in args {
        for file in inputs(Path::new(&arg)) {
            match std::fs::read(&file) {
                Ok(data) => {
                    run(&data);
                    println!("ok {}", file.display());
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// `path` itself, or the files in it when it is a directory, sorted.
pub fn inputs(path: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return vec![path.to_path_buf()];
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Lines of a structured input. Text seeds stay readable and editable, and a
/// field may hold any byte but the newline (which no header value holds either).
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}

/// `name: value` as a header line: the name ends at the first `:` after its first
/// byte (so `:status: 200` is `:status`), one space after the colon is dropped. A
/// line without a colon is a name with an empty value.
pub fn header_line(line: &[u8]) -> (&[u8], &[u8]) {
    let colon = line
        .iter()
        .skip(1)
        .position(|&b| b == b':')
        .map(|at| at + 1);
    match colon {
        Some(at) => {
            let (name, rest) = line.split_at(at);
            let value = &rest[1..];
            (name, value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, b""),
    }
}

/// A cheap hash of the input, for choices that should vary with it but need no
/// bytes of their own (which header an input starts with, say).
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fuzz_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The committed seeds are the first corpus of every run: each must pass, or
    /// libFuzzer would stop at the seed instead of fuzzing.
    #[test]
    fn every_seed_passes_its_target() {
        for (name, run) in TARGETS {
            let dir = fuzz_dir().join("seeds").join(name);
            let seeds = inputs(&dir);
            assert!(
                seeds.iter().any(|s| s.is_file()),
                "no seeds in {}",
                dir.display()
            );
            for seed in seeds {
                let data = std::fs::read(&seed).unwrap();
                run(&data);
            }
        }
    }

    /// A target needs its binary, its `[[bin]]` entry and its seeds; a binary
    /// without an entry here would never be checked by the test above.
    #[test]
    fn targets_binaries_and_manifest_agree() {
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
        let mut binaries: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
            .iter()
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        binaries.sort();
        let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        assert_eq!(binaries, names);
        for name in names {
            assert!(
                manifest.contains(&format!(
                    "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\""
                )),
                "no [[bin]] for {name} in fuzz/Cargo.toml"
            );
        }
    }

    #[test]
    fn header_lines() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b":status: 200", b":status", b"200"),
            (b"x-a:b", b"x-a", b"b"),
            (b"x-a:  b", b"x-a", b" b"),
            (b"x-a", b"x-a", b""),
            (b":", b":", b""),
            (b"", b"", b""),
        ];
        for (line, name, value) in cases {
            assert_eq!(header_line(line), (*name, *value), "{line:?}");
        }
    }
}
