//! `cargo xtask bench --soak`: a million requests (by default) through the four
//! plugins stacked in one Envoy, with Envoy's RSS and each plugin VM's wasm memory
//! read every 100k requests, to tell a flat memory profile from a slow leak.

mod mix;
mod report;

use super::{stacked, start, Case, Filter, CONNECTIONS};
use crate::util::Result;
use harness::http::Connection;
use harness::{Request, Server};
use mix::{auth_service, kind, Kind, CLIENT_STAYS};
use report::{heaps_text, report_path, summarize, table_header, table_row, Report};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const REQUESTS: usize = 1_000_000;
/// The run ends here even short of its request count: a slow or busy machine must
/// still get an answer, and the report says which of the two ended it.
const TIME_LIMIT: Duration = Duration::from_secs(20 * 60);
/// Sent before the first reading, with the same mix, in stretches of this many
/// until [`WARMUP_TIME`] has passed too. Envoy and the VMs take a while to reach
/// their size: Envoy's own allocations step up a few seconds in (with no filter
/// at all, too), and once dispatch-auth's cache is full, its hash table doubles
/// once after enough churn (here 50k-80k requests in: +3 wasm pages). Read
/// after a short warmup, those one-time steps spread over the run read as about
/// +23 KiB per 100k of RSS.
const WARMUP: usize = 20_000;
const WARMUP_TIME: Duration = Duration::from_secs(10);
/// The decision cache of the soak: small and short-lived, so that after the warmup
/// it evicts and expires entries all run long instead of still filling up.
const CACHE_TTL_MS: u64 = 5000;
const CACHE_ENTRIES: usize = 1000;
/// A reading every 100k requests; a short try gets ten readings instead.
const STEP: usize = 100_000;
/// Unexpected answers tolerated before the run is called off: past this the soak
/// would be measuring some other path than the one it claims to.
const MAX_UNEXPECTED_SHARE: f64 = 0.001;
const MAX_BROKEN: u64 = 100;

/// The stack: [`stacked`] (or the plugins `only` names, `none` for a bare Envoy),
/// with the soak's decision cache.
fn filters(only: Option<&str>) -> Result<Vec<(&'static str, Filter)>> {
    let all: Vec<(&'static str, Filter)> = stacked()
        .into_iter()
        .map(|filter| match filter {
            Filter::Plugin("dispatch-auth", mut config) => {
                config["cache"] =
                    serde_json::json!({"ttl_ms": CACHE_TTL_MS, "max_entries": CACHE_ENTRIES});
                ("dispatch-auth", Filter::Plugin("dispatch-auth", config))
            }
            Filter::Plugin(name, config) => (name, Filter::Plugin(name, config)),
            Filter::Native(_) => ("native", filter),
            Filter::Entry(_) => ("entry", filter),
        })
        .collect();
    let Some(only) = only else { return Ok(all) };
    let wanted: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "none")
        .collect();
    let names: Vec<&str> = all.iter().map(|(name, _)| *name).collect();
    if let Some(unknown) = wanted.iter().find(|w| !names.contains(w)) {
        return Err(format!(
            "bench: --plugins: '{unknown}' is not in the stack ({}, or none)",
            names.join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|(name, _)| wanted.contains(name))
        .collect())
}

/// Checks `--plugins` before anything is built.
pub fn check(only: Option<&str>) -> Result<()> {
    filters(only).map(|_| ())
}

/// One reading of Envoy's memory and the run's counters.
struct Reading {
    requests: usize,
    rss_kib: u64,
    anon_kib: u64,
    /// What Envoy's allocator holds (its `server.memory_allocated` gauge): exact
    /// bytes, where RSS moves by pages and keeps what the allocator has freed.
    allocated: u64,
    /// Each plugin's VM memory in bytes, in stack order (None: no gauge).
    heaps: Vec<Option<u64>>,
    auth_calls: usize,
    cpu: Duration,
    driving: Duration,
}

/// What the clients saw in one stretch of requests.
#[derive(Default)]
struct Tally {
    sent: [u64; Kind::ALL.len()],
    unexpected: [u64; Kind::ALL.len()],
    first_unexpected: Option<String>,
    broken: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for k in 0..Kind::ALL.len() {
            self.sent[k] += other.sent[k];
            self.unexpected[k] += other.unexpected[k];
        }
        self.broken += other.broken;
        if self.first_unexpected.is_none() {
            self.first_unexpected = other.first_unexpected;
        }
    }

    fn total(&self) -> u64 {
        self.sent.iter().sum()
    }

    fn unexpected(&self) -> u64 {
        self.unexpected.iter().sum()
    }
}

pub fn run(requests: usize, only: Option<&str>) -> Result<()> {
    let filters = filters(only)?;
    let plugins: Vec<&str> = filters.iter().map(|(name, _)| *name).collect();
    let step = (requests / 10).clamp(1000, STEP);
    let auth = auth_service();
    let case = Case::new("soak", filters.into_iter().map(|(_, f)| f).collect());
    let envoy = start(&case, &auth)?;
    let started = Instant::now();
    let deadline = started + TIME_LIMIT;
    let mut conns = (0..CONNECTIONS)
        .map(|_| Connection::open(envoy.addr()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("soak: cannot connect to Envoy: {e}"))?;
    let before = read(&envoy, &plugins, 0, Duration::ZERO, &auth);
    let mut tally = Tally::default();
    let mut warmup = 0;
    while (warmup < WARMUP || started.elapsed() < WARMUP_TIME) && Instant::now() < deadline {
        tally.add(drive(
            &mut conns,
            envoy.addr(),
            &plugins,
            warmup,
            WARMUP,
            deadline,
        )?);
        warmup = tally.total() as usize;
        check_tally(&tally)?;
    }
    let warmed = read(&envoy, &plugins, 0, Duration::ZERO, &auth);

    let mut report = Report::default();
    report.line(format!(
        "soak: {requests} requests after a warmup of {warmup} ({:.0} s), {CONNECTIONS} \
         keep-alive connections, Envoy --concurrency 1 (pid {}), direct response",
        started.elapsed().as_secs_f64(),
        envoy.pid()
    ));
    report.line(format!(
        "stack: {} (dispatch-auth cache ttl {} s, {CACHE_ENTRIES} entries; each plugin \
         its own VM)",
        if plugins.is_empty() {
            "no filter".to_string()
        } else {
            plugins.join(" -> ")
        },
        CACHE_TTL_MS / 1000
    ));
    let mix: Vec<String> = Kind::ALL
        .iter()
        .map(|k| match k.answered_by() {
            // A sub-stack still sends the whole mix; say which kinds now pass.
            Some((plugin, _)) if !plugins.contains(&plugin) => {
                format!("{} {} (not in the stack: passes)", k.share(), k.label())
            }
            _ => format!("{} {}", k.share(), k.label()),
        })
        .collect();
    report.line(format!("mix per 100 requests: {}", mix.join("; ")));
    report.line(format!(
        "before any request: RSS {} KiB, VM memory {}",
        before.rss_kib,
        heaps_text(&plugins, &before.heaps)
    ));
    report.line(String::new());
    report.line(
        "memory in KiB: Envoy's VmRSS, RssAnon and allocated bytes (server.memory_allocated), \
         then each plugin VM's wasm memory"
            .into(),
    );
    report.line(table_header(&plugins));
    report.line(table_row(&plugins, &warmed, None));

    let mut readings = vec![warmed];
    let mut driving = Duration::ZERO;
    let mut done = 0;
    while done < requests && Instant::now() < deadline {
        let n = step.min(requests - done);
        let t0 = Instant::now();
        let stretch = drive(
            &mut conns,
            envoy.addr(),
            &plugins,
            warmup + done,
            n,
            deadline,
        )?;
        driving += t0.elapsed();
        done += stretch.total() as usize;
        tally.add(stretch);
        check_tally(&tally)?;
        let reading = read(&envoy, &plugins, done, driving, &auth);
        report.line(table_row(&plugins, &reading, readings.last()));
        readings.push(reading);
    }
    let elapsed = started.elapsed();
    report.line(String::new());
    let counters: Vec<String> = [
        ("downstream connections", "http.main.downstream_cx_total"),
        ("downstream resets", "http.main.downstream_rq_rx_reset"),
        ("auth calls", "cluster.auth.upstream_rq_total"),
        ("auth calls cancelled", "cluster.auth.upstream_rq_cancelled"),
        ("auth connections", "cluster.auth.upstream_cx_total"),
    ]
    .iter()
    .map(|(label, stat)| {
        let value = envoy.stat(stat).map_or("-".into(), |v| v.to_string());
        format!("{label} {value}")
    })
    .collect();
    report.line(format!(
        "Envoy's counters, warmup included: {}",
        counters.join(", ")
    ));
    summarize(
        &mut report,
        &plugins,
        &readings,
        &tally,
        requests,
        elapsed,
        driving,
    );

    let path = report_path(only);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, &report.text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("written to {}", path.display());
    Ok(())
}

/// Fails the run when Envoy stopped answering as the mix expects.
fn check_tally(tally: &Tally) -> Result<()> {
    if tally.broken > MAX_BROKEN
        || tally.unexpected() as f64 > tally.total() as f64 * MAX_UNEXPECTED_SHARE + 10.0
    {
        return Err(format!(
            "soak: {} unexpected answers and {} broken connections in {} requests; first: {}",
            tally.unexpected(),
            tally.broken,
            tally.total(),
            tally.first_unexpected.as_deref().unwrap_or("none")
        ));
    }
    Ok(())
}

/// Sends requests `from..from + n` of the mix over the keep-alive connections, one
/// thread each, and stops early at `deadline`.
fn drive(
    conns: &mut [Connection],
    addr: SocketAddr,
    plugins: &[&str],
    from: usize,
    n: usize,
    deadline: Instant,
) -> Result<Tally> {
    let count = conns.len();
    let tallies = std::thread::scope(|scope| {
        let threads: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(t, conn)| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for (sent, j) in (t..n).step_by(count).enumerate() {
                        // Reading the clock costs little, but not nothing per request.
                        if sent % 256 == 0 && Instant::now() >= deadline {
                            break;
                        }
                        let i = from + j;
                        let kind = kind(i);
                        let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
                        tally.sent[k] += 1;
                        if kind == Kind::ClientGone {
                            leave_early(addr, &kind.request(i));
                            continue;
                        }
                        let expected = kind.expected(plugins);
                        match conn.send(&kind.request(i)) {
                            Some(resp) => {
                                if resp.status != expected {
                                    tally.unexpected[k] += 1;
                                    tally.first_unexpected.get_or_insert_with(|| {
                                        format!(
                                            "request {i} ({}): {} instead of {expected}: {}",
                                            kind.label(),
                                            resp.status,
                                            resp.text().trim()
                                        )
                                    });
                                }
                                if resp
                                    .header("connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    reopen(conn, addr, &mut tally);
                                }
                            }
                            None => {
                                tally.broken += 1;
                                if tally.broken > MAX_BROKEN {
                                    break;
                                }
                                reopen(conn, addr, &mut tally);
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| "soak: client thread panicked".to_string())
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut total = Tally::default();
    for t in tallies {
        total.add(t);
    }
    Ok(total)
}

/// Sends `request` on a connection of its own and closes it before the answer.
fn leave_early(addr: SocketAddr, request: &Request) {
    if let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        let _ = std::io::Write::write_all(&mut stream, &request.to_bytes());
        std::thread::sleep(CLIENT_STAYS);
    }
}

fn reopen(conn: &mut Connection, addr: SocketAddr, tally: &mut Tally) {
    match Connection::open(addr) {
        Ok(fresh) => *conn = fresh,
        Err(_) => tally.broken += 1,
    }
}

fn read(
    envoy: &harness::Envoy,
    plugins: &[&str],
    requests: usize,
    driving: Duration,
    auth: &Server,
) -> Reading {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", envoy.pid())).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    // The auth service keeps every request it receives; the soak only needs the
    // count, and a million of them would be the xtask process's own leak.
    let auth_calls = auth.count();
    auth.clear();
    Reading {
        requests,
        rss_kib: kib("VmRSS:"),
        anon_kib: kib("RssAnon:"),
        allocated: envoy.stat("server.memory_allocated").unwrap_or(0),
        heaps: plugins
            .iter()
            .map(|p| envoy.stat(&format!("wasmcustom.{p}.wasm_memory_bytes")))
            .collect(),
        auth_calls,
        cpu: envoy.cpu_time(),
        driving,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_flag_picks_from_the_stack() {
        let names = |only| -> Result<Vec<&str>> {
            Ok(filters(only)?.into_iter().map(|(n, _)| n).collect())
        };
        assert_eq!(names(None).map(|n| n.len()), Ok(4));
        assert_eq!(
            names(Some("dispatch-auth,basic-auth")),
            Ok(vec!["basic-auth", "dispatch-auth"])
        );
        assert_eq!(names(Some("none")), Ok(vec![]));
        assert!(names(Some("jwt")).is_err_and(|e| e.contains("'jwt'")));
    }
}
