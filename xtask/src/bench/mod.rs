//! `cargo xtask bench`: what each plugin costs per request, in Envoy CPU time,
//! beside the native Envoy filter that does the same job, an empty wasm filter
//! (the floor every wasm filter pays) and the example ingress gateway's stack.
//! Each case runs in its own Envoy (one worker) under 16 keep-alive connections;
//! the cost is Envoy's CPU time (all threads, from /proc schedstat) divided by the
//! requests sent, beside the same figure for an Envoy with no filter, with the
//! throughput and Envoy's RSS. `--costs` (in `costs.rs`) prices what a filter does
//! per request against the empty one; `--soak` (in `soak/`) watches memory instead.
//! How a case is run, driven and read is in `measure.rs`, shared by all three.

use crate::util::{Args, Result};
use crate::{build, envoy};
use harness::envoy::test_modules_dir;
use harness::{Reply, Server};

use serde_json::Value;
use std::path::PathBuf;

mod cases;
mod costs;
mod ingress;
mod measure;
mod soak;

pub use cases::{stacked, ALICE_BASIC};
use measure::{measure, report, start};

const WARMUP: usize = 1000;
const CONNECTIONS: usize = 16;
const ROUNDS: usize = 3;
/// The test-only module of `harness/modules/empty`.
const EMPTY: &str = "empty";
/// The test-only module of `harness/modules/idle`: the adapter doing nothing.
const IDLE: &str = "idle";

/// One Envoy to measure: its filters, and the request that passes all of them.
pub struct Case {
    pub name: String,
    pub filters: Vec<Filter>,
    /// Request headers that make every filter of the case let the request through.
    pub headers: Vec<(String, String)>,
    /// Clusters besides `auth` (the auth service that allows everything): the ones
    /// a gateway's instances call.
    pub clusters: Vec<Value>,
    /// How many times per request the case does what it prices (`--costs`).
    pub times: u32,
    /// Plugin instances it runs, when a filter runs more than one (a chain).
    pub instances: Option<usize>,
    /// Whether its filters are all empty ones, which the others are compared with.
    pub floor: bool,
}

impl Case {
    pub fn new(name: &str, filters: Vec<Filter>) -> Case {
        Case {
            name: name.to_string(),
            filters,
            headers: Vec::new(),
            clusters: Vec::new(),
            times: 1,
            instances: None,
            floor: false,
        }
    }

    /// Marks the case as one of the floor's: its filters are all empty ones.
    pub fn floor(mut self) -> Case {
        self.floor = true;
        self
    }

    pub fn times(mut self, times: u32) -> Case {
        self.times = times;
        self
    }

    pub fn headers(mut self, headers: &[(&str, &str)]) -> Case {
        self.headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self
    }
}

pub enum Filter {
    /// A plugin of `target/dist` with its config, in a VM of its own.
    Plugin(&'static str, Value),
    Native(Value),
    /// A whole filter entry, built elsewhere (the empty module, a gateway instance).
    Entry(Value),
}

/// What the cases of one run are compared with, beside the case without a filter.
enum Floor {
    /// Added CPU as a multiple of one empty filter's, for the cases of one filter
    /// running one plugin. Not an empty filter's share of six: the first filter
    /// on a stream costs more than each one after it (about 2 µs against 1.2 to
    /// 1.7 here), so that share would flatter every single plugin.
    Multiple,
    /// CPU over the first floor case's, in µs, for every case.
    Over,
}

pub fn run_command(args: &[String]) -> Result<()> {
    let mut requests = None;
    let mut rounds = None;
    let mut soak = false;
    let mut costs = false;
    let mut only = None;
    let mut pick = None;
    let mut args = Args::new("bench", args);
    while let Some(flag) = args.flag() {
        match flag {
            "--requests" => {
                requests = Some(
                    args.parsed::<std::num::NonZeroUsize>(flag, "a positive number")?
                        .get(),
                )
            }
            "--rounds" => {
                rounds = Some(
                    args.parsed::<std::num::NonZeroUsize>(flag, "a positive number")?
                        .get(),
                )
            }
            "--soak" => soak = true,
            "--costs" => costs = true,
            "--plugins" => only = Some(args.value(flag)?),
            "--cases" => pick = Some(args.value(flag)?),
            other => return Err(args.unexpected(other)),
        }
    }
    if only.is_some() && !soak {
        return Err("bench: --plugins goes with --soak".into());
    }
    if soak && (costs || rounds.is_some() || pick.is_some()) {
        return Err("bench: --soak takes no --costs, --rounds or --cases".into());
    }
    if soak {
        soak::check(only.as_deref())?;
        build::build(&build::plugins()?)?;
    } else {
        let empty = [EMPTY.to_string(), IDLE.to_string()];
        // The chain module as build-all builds it for the example gateways,
        // whose ingress the gateway cases run.
        let examples = crate::gateway::select(&crate::gateway::default_dir(), None)?;
        let chained = crate::gateway::chained_plugins(&examples);
        build::build_sets(
            &[
                (&build::plugins()?, build::dist_dir()),
                (&empty, test_modules_dir()),
            ],
            Some(&chained),
        )?;
    }
    let envoy_bin = envoy::find()?;
    std::env::set_var("ENVOY_BIN", envoy_bin);
    std::env::set_var("PLUGIN_DIST", build::dist_dir());
    if soak {
        return soak::run(requests.unwrap_or(soak::REQUESTS), only.as_deref());
    }

    // The auth services answer from this process, so their CPU is not Envoy's; the
    // route answers directly, so no upstream shares the machine's two cores either.
    let auth = Server::start(|_| Reply::status(200));
    let demo = crate::local::demo_auth_service();
    let (cases, skipped, compare) = if costs {
        (costs::cases(), Vec::new(), Floor::Over)
    } else {
        let (cases, skipped) = cases::cases(demo.addr())?;
        (cases, skipped, Floor::Multiple)
    };
    let cases = pick_cases(cases, pick.as_deref())?;
    let requests = requests.unwrap_or(if costs { costs::REQUESTS } else { 10000 });
    let rounds = rounds.unwrap_or(if costs { costs::ROUNDS } else { ROUNDS });
    let samples = measure(&cases, &auth, requests, rounds)?;
    println!(
        "\n{requests} requests per case and round, {rounds} rounds, {CONNECTIONS} keep-alive \
         connections, Envoy --concurrency 1, direct response; medians of the rounds"
    );
    report(&cases, &samples, compare);
    for note in skipped {
        println!("skipped: {note}");
    }
    Ok(())
}

/// The cases whose names hold one of the comma-separated words of `pick`, with the
/// case without a filter (the first) and the floor's, which the others are
/// compared with.
fn pick_cases(cases: Vec<Case>, pick: Option<&str>) -> Result<Vec<Case>> {
    let Some(pick) = pick else {
        return Ok(cases);
    };
    let words: Vec<&str> = pick
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    let named = |case: &Case| words.iter().any(|w| case.name.contains(w));
    if !cases.iter().any(named) {
        let names: Vec<&str> = cases.iter().map(|c| c.name.trim()).collect();
        return Err(format!(
            "bench: --cases {pick}: no case name holds it (cases: {})",
            names.join("; ")
        ));
    }
    Ok(cases
        .into_iter()
        .enumerate()
        .filter(|(i, c)| *i == 0 || c.floor || named(c))
        .map(|(_, c)| c)
        .collect())
}

/// The empty module's filter entry `name`, doing what `probes` names (see
/// `harness/modules/empty`). Without a `vm_id`, as Istio: filters of the same code
/// and VM config share one VM per worker.
fn empty_filter(name: &str, probes: &str) -> Filter {
    Filter::Entry(harness::envoy::wasm_filter_at(
        name,
        &empty_module(),
        probes,
    ))
}

/// The idle module's filter entry `name`: this project's adapter doing nothing.
fn idle_filter(name: &str) -> Filter {
    let module = test_modules_dir().join(format!("{IDLE}.wasm"));
    Filter::Entry(harness::envoy::wasm_filter_at(name, &module, ""))
}

fn empty_module() -> PathBuf {
    test_modules_dir().join(format!("{EMPTY}.wasm"))
}

/// `filter` with a VM of its own, `vm_id`, instead of sharing one with the other
/// filters of its module.
fn own_vm(mut filter: Filter, vm_id: &str) -> Filter {
    if let Filter::Entry(entry) | Filter::Native(entry) = &mut filter {
        harness::envoy::own_vm(entry, vm_id);
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_cases_keep_the_baseline_and_the_floor() {
        let cases = || {
            ["none", "floor", "alpha", "beta", "gamma"]
                .map(|n| {
                    let case = Case::new(n, vec![]);
                    if n == "floor" {
                        case.floor()
                    } else {
                        case
                    }
                })
                .into_iter()
                .collect::<Vec<_>>()
        };
        let names = |cases: Vec<Case>| cases.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(
            names(pick_cases(cases(), Some("gam, alp")).unwrap()),
            ["none", "floor", "alpha", "gamma"]
        );
        assert_eq!(names(pick_cases(cases(), None).unwrap()).len(), 5);
        assert!(pick_cases(cases(), Some("delta")).is_err_and(|e| e.contains("alpha")));
    }
}
