//! `cargo xtask bench`: what each plugin costs per request, in Envoy CPU time,
//! beside the native Envoy filter that does the same job, an empty wasm filter
//! (the floor every wasm filter pays) and the example ingress gateway's stack.
//! Each case runs in its own Envoy (one worker) under 16 keep-alive connections;
//! the cost is Envoy's CPU time (all threads, from /proc schedstat) divided by the
//! requests sent, beside the same figure for an Envoy with no filter, with the
//! throughput and Envoy's RSS. `--costs` (in `costs.rs`) prices what a filter does
//! per request against the empty one; `--soak` (in `soak/`) watches memory instead.

use crate::util::{Args, Result};
use crate::{build, envoy};
use harness::envoy::{hcm, static_cluster, test_modules_dir};
use harness::http::Connection;
use harness::stack::Form;
use harness::{Reply, Request, Server, Stack};

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod cases;
mod costs;
mod ingress;
mod soak;

pub use cases::{stacked, ALICE_BASIC};

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

/// What one round of one case measured.
#[derive(Clone, Copy)]
struct Sample {
    /// Envoy's CPU time per request.
    cpu: Duration,
    /// Requests per second, wall time.
    rate: f64,
    /// Envoy's VmRSS after the warm-up, in KiB.
    rss_kib: u64,
    /// What Envoy's allocator holds for live objects then (`server.memory_allocated`),
    /// in bytes: RSS also counts pages it keeps after they were freed, such as
    /// those V8 used while compiling a module.
    allocated: u64,
}

/// Runs every case once per round, the cases interleaved, so a burst of other load
/// on the machine spreads over all of them instead of skewing one. Returns the
/// samples per case, one per round.
fn measure(
    cases: &[Case],
    auth: &Server,
    requests: usize,
    rounds: usize,
) -> Result<Vec<Vec<Sample>>> {
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); cases.len()];
    for round in 1..=rounds {
        println!("round {round} of {rounds}: {} cases", cases.len());
        for (i, case) in cases.iter().enumerate() {
            let envoy = start(case, auth)?;
            let mut request = Request::get("/bench");
            for (name, value) in &case.headers {
                request = request.header(name, value);
            }
            let fail = |e: String| format!("{}: {e}", case.name);
            drive(&envoy, &request, WARMUP).map_err(fail)?;
            let rss_kib = vm_rss_kib(envoy.pid());
            let allocated = envoy.stat("server.memory_allocated").unwrap_or(0);
            let (cpu0, t0) = (envoy.cpu_time(), Instant::now());
            drive(&envoy, &request, requests).map_err(fail)?;
            let (cpu, wall) = (envoy.cpu_time() - cpu0, t0.elapsed());
            samples[i].push(Sample {
                cpu: cpu / requests as u32,
                rate: requests as f64 / wall.as_secs_f64(),
                rss_kib,
                allocated,
            });
        }
    }
    Ok(samples)
}

/// The table: per case the medians of its rounds; the first case is the one
/// without a filter.
fn report(cases: &[Case], samples: &[Vec<Sample>], compare: Floor) {
    let cpu = |i: usize| median(samples[i].iter().map(|s| micros(s.cpu)).collect());
    let base = cpu(0);
    let floors: Vec<usize> = (0..cases.len()).filter(|i| cases[*i].floor).collect();
    let first_floor = floors.first().copied().unwrap_or(0);
    let floor_added = cpu(first_floor) - base;
    let name_width = cases.iter().map(|c| c.name.len()).max().unwrap_or(0).max(4);
    let compared = match compare {
        Floor::Multiple => format!("{:>8}", "x floor"),
        Floor::Over => format!("{:>11} {:>10}", "over floor", "per time"),
    };
    println!(
        "{:<name_width$} {:>10} {:>10} {compared} {:>8} {:>9} {:>8} {:>9}",
        "case", "CPU/req", "added", "req/s", "vs none", "RSS", "allocated"
    );
    for (i, case) in cases.iter().enumerate() {
        let cpu = cpu(i);
        let added = cpu - base;
        let compared = match compare {
            Floor::Multiple
                if case.instances.unwrap_or(case.filters.len()) == 1 && floor_added > 0.0 =>
            {
                format!("{:>7.1}x", added / floor_added)
            }
            Floor::Multiple => format!("{:>8}", ""),
            Floor::Over => {
                // Round by round, so what moved a whole round cancels out.
                let over = median(
                    samples[i]
                        .iter()
                        .zip(&samples[first_floor])
                        .map(|(s, f)| micros(s.cpu) - micros(f.cpu))
                        .collect(),
                );
                let per = if case.times > 1 {
                    format!("{:>+7.3} µs", over / f64::from(case.times))
                } else {
                    String::new()
                };
                format!("{:>+8.2} µs {per:>10}", over)
            }
        };
        // Requests per second against the case without a filter, round by round.
        let ratio = median(
            samples[i]
                .iter()
                .zip(&samples[0])
                .map(|(s, b)| s.rate / b.rate)
                .collect(),
        );
        let rate = median(samples[i].iter().map(|s| s.rate).collect());
        let rss = median(samples[i].iter().map(|s| s.rss_kib as f64).collect());
        let allocated = median(samples[i].iter().map(|s| s.allocated as f64).collect());
        println!(
            "{:<name_width$} {:>7.2} µs {:>+7.2} µs {compared} {rate:>8.0} {:>8.2}x {:>4.1} MiB {:>5.1} MiB",
            case.name,
            cpu,
            added,
            ratio,
            rss / 1024.0,
            allocated / (1024.0 * 1024.0),
        );
    }
    println!(
        "added: CPU over no filter; {}; vs none: throughput over no filter's in the same \
         rounds; RSS: Envoy's VmRSS after the warm-up; allocated: what its allocator then \
         holds for live objects (RSS also keeps freed pages, such as V8's while compiling)",
        match compare {
            Floor::Multiple => {
                // Each floor case's cost per filter, so the floor's own noise and
                // the cheaper filters after the first are in sight.
                let per_filter: Vec<String> = floors
                    .iter()
                    .map(|&i| {
                        let n = cases[i].filters.len();
                        format!("{n}: {:.2} µs each", (cpu(i) - base) / n as f64)
                    })
                    .collect();
                format!(
                    "x floor: added CPU over one empty wasm filter's, for a filter running one \
                     plugin (empty filters {})",
                    per_filter.join(", ")
                )
            }
            Floor::Over => "over floor: CPU over the empty filter's, median of the rounds' \
                 differences; per time: that over the times the case does its thing per request"
                .to_string(),
        }
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// An Envoy running `case`'s filters in front of a direct 200 response.
fn start(case: &Case, auth: &Server) -> Result<harness::Envoy> {
    // Each plugin a filter of its own, whatever HARNESS_FORM says: the chain cases
    // build their chain filters themselves.
    let mut stack = Stack::new()
        .form(Form::Separate)
        .quiet()
        .cluster(static_cluster("auth", auth.addr()))
        .patch(|config| {
            hcm(config)["route_config"]["virtual_hosts"][0]["routes"][0] = json!({
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}
            });
        });
    for cluster in &case.clusters {
        stack = stack.cluster(cluster.clone());
    }
    for filter in &case.filters {
        stack = match filter {
            Filter::Plugin(plugin, config) => stack.plugin(plugin, config.clone()),
            Filter::Native(filter) | Filter::Entry(filter) => stack.filter(filter.clone()),
        };
    }
    stack
        .try_start()
        .map_err(|log| format!("{}: Envoy did not start:\n{log}", case.name))
}

/// Sends `total` requests over [`CONNECTIONS`] keep-alive connections at once, so
/// Envoy's worker is kept busy and batches its wake-ups as under real load; one
/// sequential client would mostly measure the cost of waking Envoy up.
fn drive(envoy: &harness::Envoy, request: &Request, total: usize) -> Result<()> {
    let addr = envoy.addr();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let request = request.clone();
            let n = total / CONNECTIONS + usize::from(i < total % CONNECTIONS);
            std::thread::spawn(move || -> Result<()> {
                let mut conn = Connection::open(addr).map_err(|e| e.to_string())?;
                for _ in 0..n {
                    match conn.send(&request) {
                        Some(resp) if resp.status == 200 => {}
                        Some(resp) => return Err(format!("got {} {}", resp.status, resp.text())),
                        None => return Err("connection broke".into()),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| "client thread panicked".to_string())??;
    }
    Ok(())
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

/// Envoy's resident set (`VmRSS`) in KiB, 0 when it cannot be read.
fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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
