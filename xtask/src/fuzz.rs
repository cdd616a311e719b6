//! `cargo xtask fuzz`: runs the targets in `fuzz/` (all, or those named) for a
//! number of executions or seconds; the build and the runs are in `fuzzing`,
//! which `cargo xtask test` shares for its smoke phase.

use crate::fuzzing::{fuzz, targets, Budget};
use crate::util::{Args, Result};

const USAGE_ERROR: &str = "fuzz: give --runs N or --seconds S, not both";

/// Executions per target when neither `--runs` nor `--seconds` is given.
const DEFAULT_RUNS: u64 = 1_000_000;

pub fn run_command(args: &[String]) -> Result<()> {
    let mut args = Args::new("fuzz", args);
    let (mut names, mut runs, mut seconds) = (Vec::new(), None, None);
    while let Some(arg) = args.flag() {
        match arg {
            "--runs" => runs = Some(args.parsed("--runs", "a number of executions")?),
            "--seconds" => seconds = Some(args.parsed("--seconds", "a number of seconds")?),
            flag if flag.starts_with('-') => return Err(args.unexpected(flag)),
            name => names.push(name.to_string()),
        }
    }
    let budget = match (runs, seconds) {
        (Some(_), Some(_)) => return Err(USAGE_ERROR.into()),
        (_, Some(0)) | (Some(0), _) => return Err("fuzz: the budget must be above 0".into()),
        (Some(n), None) => Budget::Runs(n),
        (None, Some(s)) => Budget::Seconds(s),
        (None, None) => Budget::Runs(DEFAULT_RUNS),
    };
    let all = targets()?;
    for name in &names {
        if !all.contains(name) {
            return Err(format!(
                "fuzz: unknown target '{name}' (targets: {})",
                all.join(", ")
            ));
        }
    }
    fuzz(if names.is_empty() { &all } else { &names }, budget)
}
