//! Measuring the cases: each round runs every case in its own Envoy, drives it
//! over keep-alive connections, reads its CPU time and RSS, and the table of
//! medians. Apart from the cases and the command's options, which change more
//! often than how a case is measured.

use super::{Case, Filter, Floor, CONNECTIONS, WARMUP};
use crate::util::Result;
use harness::envoy::{hcm, static_cluster};
use harness::http::Connection;
use harness::stack::Form;
use harness::{Request, Server, Stack};
use serde_json::json;
use std::time::{Duration, Instant};

/// What one round of one case measured.
#[derive(Clone, Copy)]
pub(super) struct Sample {
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
pub(super) fn measure(
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
pub(super) fn report(cases: &[Case], samples: &[Vec<Sample>], compare: Floor) {
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

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// An Envoy running `case`'s filters in front of a direct 200 response.
pub(super) fn start(case: &Case, auth: &Server) -> Result<harness::Envoy> {
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
pub(super) fn drive(envoy: &harness::Envoy, request: &Request, total: usize) -> Result<()> {
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

/// Envoy's resident set (`VmRSS`) in KiB, 0 when it cannot be read.
pub(super) fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub(super) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
