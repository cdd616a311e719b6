//! Building the targets in `fuzz/` with libFuzzer and coverage instrumentation,
//! then running each for a number of executions or seconds on its own corpus,
//! seeded from `fuzz/seeds/<target>`, and reporting what it covered: shared by
//! `cargo xtask fuzz` and the smoke phase of `cargo xtask test`.
//!
//! cargo-fuzz is not needed: on stable it can only build with `-s none` (its
//! sanitizers need nightly, and the targets are safe Rust), which passes these
//! same coverage flags; `cargo install cargo-fuzz` would compile 56 crates (25 s
//! on two cores) on every fresh CI machine first, and its build would use the
//! wasm-tuned release profile unless told otherwise.

use crate::util::{apt_install, can_apt_install, output, root, run, which, Result};
use harness::envoy::target_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Seconds per target in `cargo xtask test`: long enough to fuzz past the seeds,
/// short enough that the whole smoke phase, build included, stays near 90 s.
pub const SMOKE_SECONDS: u64 = 3;

/// How long each target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Runs(u64),
    Seconds(u64),
}

/// SanitizerCoverage as cargo-fuzz sets it up, minus the sanitizers: edge counters
/// and the PC table for libFuzzer's coverage feedback, compare tracing so it can
/// solve `==` on strings and numbers; `--cfg fuzzing` selects libFuzzer's entry
/// point; debug assertions and overflow checks make an overflow a crash.
const RUSTFLAGS: [&str; 9] = [
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// The workspace's release profile is tuned for small wasm (`opt-level = "z"`, fat
/// LTO, one codegen unit, stripped): slow to build and to run natively, and no
/// symbols for a crash's backtrace. Overridden for this build only, through
/// cargo's environment, so Cargo.toml keeps one release profile.
const PROFILE: [(&str, &str); 5] = [
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3"),
    ("CARGO_PROFILE_RELEASE_LTO", "false"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    ("CARGO_PROFILE_RELEASE_STRIP", "false"),
    ("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only"),
];

/// The smoke phase of `cargo xtask test`: every target, briefly.
pub fn smoke() -> Result<()> {
    fuzz(&targets()?, Budget::Seconds(SMOKE_SECONDS))
}

/// Builds the targets, then runs each of `names` for `budget`.
pub fn fuzz(names: &[String], budget: Budget) -> Result<()> {
    let bin_dir = build()?;
    let each = match budget {
        Budget::Runs(n) => format!("{n} executions"),
        Budget::Seconds(s) => format!("{s} s"),
    };
    println!(
        "fuzzing {} target(s), {each} each; corpus in {}/<target>",
        names.len(),
        display(&fuzz_dir().join("corpus"))
    );
    for name in names {
        let report = run_target(&bin_dir, name, budget)?;
        println!("{report}");
    }
    Ok(())
}

/// The targets: one binary per file in `fuzz/fuzz_targets/`, sorted.
pub fn targets() -> Result<Vec<String>> {
    let dir = root().join("fuzz").join("fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.extension()? == "rs").then_some(stem)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Everything the fuzz build and runs write: `target/fuzz`, apart from the
/// normal build so neither invalidates the other.
fn fuzz_dir() -> PathBuf {
    target_dir().join("fuzz")
}

fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Builds every target; returns the directory the binaries are in.
fn build() -> Result<PathBuf> {
    // libfuzzer-sys compiles libFuzzer's C++ sources with the `cc` crate.
    if ["c++", "g++", "clang++"].iter().all(|c| which(c).is_none())
        && std::env::var_os("CXX").is_none()
    {
        if !can_apt_install() {
            return Err("fuzz: libFuzzer needs a C++ compiler: install g++ (or set CXX)".into());
        }
        apt_install(&["g++"])?;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = output(Command::new(&rustc).arg("-vV"))
        .ok_or_else(|| format!("fuzz: `{rustc} -vV` failed"))?;
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or_else(|| format!("fuzz: no host in `{rustc} -vV`"))?
        .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // An explicit --target keeps the flags off build scripts and proc macros,
    // which would otherwise be instrumented without libFuzzer to link against.
    cmd.current_dir(root())
        .args(["build", "--release", "--package", "fuzz", "--bins"])
        .args(["--target", &host, "--target-dir"])
        .arg(fuzz_dir())
        // Cargo prefers it to RUSTFLAGS; set, it also keeps a RUSTFLAGS in the
        // environment out of this build.
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\u{1f}"));
    for (key, value) in PROFILE {
        cmd.env(key, value);
    }
    println!("== building the fuzz targets (libFuzzer, coverage instrumentation)");
    let started = Instant::now();
    run(&mut cmd)?;
    println!("built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(fuzz_dir().join(host).join("release"))
}

/// What one run of a target did.
#[derive(Debug, Default, PartialEq)]
struct Report {
    name: String,
    executions: u64,
    elapsed: Duration,
    /// Code edges reached (`cov`) and finer coverage features (`ft`).
    cov: u64,
    ft: u64,
    corpus: u64,
    new_units: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.executions as f64 / secs
        } else {
            0.0
        };
        write!(
            f,
            "{:<28} {:>10} execs {:>7.1} s {:>8.0} exec/s   cov {:>5}  ft {:>6}  corpus {:>5}  new units {:>5}  crashes 0",
            self.name, self.executions, secs, rate, self.cov, self.ft, self.corpus, self.new_units
        )
    }
}

fn run_target(bin_dir: &Path, name: &str, budget: Budget) -> Result<Report> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(name);
    let artifacts = dir.join("artifacts").join(name);
    let logs = dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log_path = logs.join(format!("{name}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;

    let bin = bin_dir.join(name);
    let mut cmd = Command::new(&bin);
    // New finds go to the first directory; the committed seeds are read only.
    cmd.arg(&corpus)
        .arg(root().join("fuzz").join("seeds").join(name))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        // A slow input is a finding too: the plugin runs inside Envoy's worker.
        .arg("-timeout=10")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    let dict = root()
        .join("fuzz")
        .join("dicts")
        .join(format!("{name}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    match budget {
        Budget::Runs(n) => cmd.arg(format!("-runs={n}")),
        Budget::Seconds(s) => cmd.arg(format!("-max_total_time={s}")),
    };
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        return Err(crash_report(name, &bin, &text, &log_path, status));
    }
    let mut report = parse_log(&text);
    report.name = name.to_string();
    report.elapsed = elapsed;
    Ok(report)
}

/// The figures of libFuzzer's final stats and its last status line.
fn parse_log(text: &str) -> Report {
    let stat = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut report = Report {
        executions: stat("stat::number_of_executed_units:"),
        new_units: stat("stat::new_units_added:"),
        ..Report::default()
    };
    if let Some(line) = text.lines().rev().find(|l| l.contains(" cov: ")) {
        let field = |key: &str| -> u64 {
            let mut words = line.split_whitespace();
            words
                .find(|w| *w == key)
                .and_then(|_| words.next())
                .and_then(|v| v.split('/').next()?.parse().ok())
                .unwrap_or(0)
        };
        report.cov = field("cov:");
        report.ft = field("ft:");
        report.corpus = field("corp:");
    }
    report
}

/// The error for a target that crashed (or timed out, or ran out of memory): what
/// broke, where the input that does it is, and how to run it again.
fn crash_report(
    name: &str,
    bin: &Path,
    text: &str,
    log: &Path,
    status: std::process::ExitStatus,
) -> String {
    let reproducer = text
        .lines()
        .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
        .map(PathBuf::from);
    let lines: Vec<&str> = text.lines().collect();
    let cause = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .map(|at| lines[at..lines.len().min(at + 2)].join(" "))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.contains("ERROR: libFuzzer"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("the target exited with {status}"));
    let mut out = format!(
        "fuzz: {name} crashed: {cause}\n  log:        {}",
        display(log)
    );
    match reproducer {
        Some(input) => {
            let input = display(&input);
            out.push_str(&format!(
                "\n  reproducer: {input}\n  reproduce:  {} {input}\n              \
                 cargo run -p fuzz --bin {name} -- {input}   (plain debug build, full backtrace)",
                display(bin)
            ));
        }
        None => out.push_str("\n  (libFuzzer wrote no reproducer; see the log)"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_and_the_last_status_line_are_read() {
        let log = "\
INFO: seed corpus: files: 25 min: 1b max: 60b total: 600b rss: 30Mb
#25\tINITED cov: 310 ft: 700 corp: 20/500b exec/s: 0 rss: 31Mb
#262144\tpulse  cov: 402 ft: 1500 corp: 120/4Kb lim: 4096 exec/s: 87381 rss: 40Mb
#1000000\tDONE   cov: 415 ft: 1620 corp: 131/5234b lim: 4096 exec/s: 90909 rss: 41Mb
Done 1000000 runs in 11 second(s)
stat::number_of_executed_units: 1000000
stat::average_exec_per_sec:     90909
stat::new_units_added:          160
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              41
";
        let report = parse_log(log);
        assert_eq!(
            report,
            Report {
                executions: 1_000_000,
                cov: 415,
                ft: 1620,
                corpus: 131,
                new_units: 160,
                ..Report::default()
            }
        );
    }

    #[test]
    fn a_crash_names_the_panic_and_the_reproducer() {
        let log = "\
thread '<unnamed>' panicked at fuzz/src/path.rs:40:5:
invariant broken: not idempotent
==1== ERROR: libFuzzer: deadly signal
artifact_prefix='/w/target/fuzz/artifacts/path/'; Test unit written to /w/target/fuzz/artifacts/path/crash-ab12
Base64: Lw==
";
        let status = Command::new("false").status().unwrap();
        let text = crash_report("path", Path::new("/b/path"), log, Path::new("/l"), status);
        assert!(text.starts_with("fuzz: path crashed: thread '<unnamed>' panicked at fuzz/src/path.rs:40:5: invariant broken: not idempotent"), "{text}");
        assert!(
            text.contains("reproducer: /w/target/fuzz/artifacts/path/crash-ab12"),
            "{text}"
        );
        assert!(
            text.contains(
                "cargo run -p fuzz --bin path -- /w/target/fuzz/artifacts/path/crash-ab12"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_target_is_found() {
        let names = targets().unwrap();
        assert!(names.contains(&"path".to_string()), "{names:?}");
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    }
}
