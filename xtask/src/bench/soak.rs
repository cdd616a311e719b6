//! `cargo xtask bench --soak`: a million requests (by default) through the four
//! plugins stacked in one Envoy, with Envoy's RSS and each plugin VM's wasm memory
//! read every 100k requests, to tell a flat memory profile from a slow leak.

use super::{stacked, start, Case, Filter, ALICE_BASIC, CONNECTIONS};
use crate::util::Result;
use base64::Engine;
use harness::envoy::target_dir;
use harness::http::Connection;
use harness::{Reply, Request, Response, Server};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const REQUESTS: usize = 1_000_000;
/// The run ends here even short of its request count: a slow or busy machine must
/// still get an answer, and the report says which of the two ended it.
const TIME_LIMIT: Duration = Duration::from_secs(20 * 60);
/// Sent before the first reading, with the same mix, in stretches of this many
/// until [`WARMUP_TIME`] has passed too: V8 tiers hot code up, Envoy's pools
/// connect, the decision cache fills, evicts, and sees entries expire (which
/// leaves records to sweep, so its queue only reaches its size after a TTL).
/// None of that is a leak, and all of it would look like one in the first stretch.
const WARMUP: usize = 20_000;
/// Two of the soak's cache TTLs.
const WARMUP_TIME: Duration = Duration::from_secs(10);
/// The decision cache of the soak: small and short-lived, so that after the warmup
/// it evicts and expires entries all run long instead of still filling up.
const CACHE_TTL_MS: u64 = 5000;
const CACHE_ENTRIES: usize = 1000;
/// A reading every 100k requests; a short try gets ten readings instead.
const STEP: usize = 100_000;
/// Paths that keep coming back, so the cache has keys to hit.
const HOT_KEYS: usize = 64;
/// Envoy's RSS moves by a few pages between readings for reasons that are not
/// leaks (the allocator keeping pages it has freed, connection churn): growth
/// under 8 KiB per 100k, well under the +23 KB per 100k of the leak report, or
/// under 64 KiB in all (a short try normalised to 100k would magnify a wiggle)
/// is flat.
const RSS_NOISE: Noise = Noise {
    per_100k: 8.0,
    total: 64.0,
};
/// Wasm memory grows in 64 KiB pages and never shrinks: any page added after the
/// warmup is growth.
const ANY_PAGE: Noise = Noise {
    per_100k: 0.0,
    total: 0.0,
};
/// Unexpected answers tolerated before the run is called off: past this the soak
/// would be measuring some other path than the one it claims to.
const MAX_UNEXPECTED_SHARE: f64 = 0.001;
const MAX_BROKEN: u64 = 100;
/// How long the auth service takes for a client that will be gone by then, and how
/// long that client stays: long enough for the request to pass the gate plugins
/// and the call to go out, well short of the answer.
const SLOW_AUTH: Duration = Duration::from_millis(200);
const CLIENT_STAYS: Duration = Duration::from_millis(20);

/// What one request is meant to exercise. The deny and cache-miss paths each run
/// in every stretch, not only the path that lets everything through; so does a
/// client that leaves while its auth call is pending, since the call outlives the
/// stream (proxy-wasm cannot cancel it) and state left behind there would pile up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Hit,
    NewKey,
    HeaderDenied,
    BasicDenied,
    AuthDenied,
    AuthDeniedNewKey,
    AuthFailed,
    ClientGone,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::HeaderDenied,
        Kind::BasicDenied,
        Kind::AuthDenied,
        Kind::AuthDeniedNewKey,
        Kind::AuthFailed,
        Kind::ClientGone,
        Kind::NewKey,
        Kind::Hit,
    ];

    /// Requests of this kind in every hundred.
    fn share(self) -> usize {
        match self {
            Kind::Hit => 85,
            Kind::NewKey => 5,
            Kind::HeaderDenied | Kind::BasicDenied | Kind::AuthDenied => 2,
            Kind::AuthDeniedNewKey => 2,
            Kind::AuthFailed => 1,
            Kind::ClientGone => 1,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Hit => "allowed, cached key",
            Kind::NewKey => "allowed, new key (cache miss)",
            Kind::HeaderDenied => "denied by header-authorization",
            Kind::BasicDenied => "denied by basic-auth (unknown user)",
            Kind::AuthDenied => "denied by dispatch-auth, cached key",
            Kind::AuthDeniedNewKey => "denied by dispatch-auth, new key",
            Kind::AuthFailed => "auth service fails (500), new key",
            Kind::ClientGone => "client gone while the auth call is pending",
        }
    }

    /// The plugin that answers this kind itself, and its status.
    fn answered_by(self) -> Option<(&'static str, u16)> {
        match self {
            Kind::Hit | Kind::NewKey | Kind::ClientGone => None,
            Kind::HeaderDenied => Some(("header-authorization", 403)),
            Kind::BasicDenied => Some(("basic-auth", 401)),
            Kind::AuthDenied | Kind::AuthDeniedNewKey => Some(("dispatch-auth", 401)),
            // dispatch-auth's status_on_error, 403 by default.
            Kind::AuthFailed => Some(("dispatch-auth", 403)),
        }
    }

    /// The status to expect when `plugins` run: a kind whose plugin is not in the
    /// stack passes like any other request.
    fn expected(self, plugins: &[&str]) -> u16 {
        match self.answered_by() {
            Some((plugin, status)) if plugins.contains(&plugin) => status,
            _ => 200,
        }
    }

    /// The `i`th request of the run, of this kind. Keys that must be new embed `i`.
    fn request(self, i: usize) -> Request {
        let hot = format!("/soak/hot/{}", i % HOT_KEYS);
        let (path, allow, authorization, token) = match self {
            Kind::Hit => (hot, "true", ALICE_BASIC.to_string(), "demo".to_string()),
            Kind::NewKey => (
                format!("/soak/new/{i}"),
                "true",
                ALICE_BASIC.to_string(),
                "demo".to_string(),
            ),
            Kind::HeaderDenied => (hot, "false", ALICE_BASIC.to_string(), "demo".to_string()),
            Kind::BasicDenied => {
                let user = base64::engine::general_purpose::STANDARD.encode(format!("u{i}:nope"));
                (hot, "true", format!("Basic {user}"), "demo".to_string())
            }
            Kind::AuthDenied => (hot, "true", ALICE_BASIC.to_string(), "deny".to_string()),
            Kind::AuthDeniedNewKey => (hot, "true", ALICE_BASIC.to_string(), format!("deny-{i}")),
            Kind::AuthFailed => (hot, "true", ALICE_BASIC.to_string(), format!("fail-{i}")),
            Kind::ClientGone => (hot, "true", ALICE_BASIC.to_string(), format!("slow-{i}")),
        };
        Request::get(&path)
            .header("allow", allow)
            .header("authorization", &authorization)
            .header("x-token", &token)
    }
}

/// The kind of the `i`th request: the shares laid out over each block of a hundred.
fn kind(i: usize) -> Kind {
    let mut rest = i % 100;
    for kind in Kind::ALL {
        if rest < kind.share() {
            return kind;
        }
        rest -= kind.share();
    }
    Kind::Hit
}

/// Answers by the `x-token` the plugin forwards: `demo*` allows, `fail*` fails,
/// anything else is denied with a challenge (which the cache then stores).
fn auth_service() -> Server {
    Server::start(|req| match req.header_value("x-token") {
        Some(t) if t.starts_with("demo") => Reply::status(200),
        Some(t) if t.starts_with("fail") => Reply::status(500),
        Some(t) if t.starts_with("slow") => Reply::Delay(
            SLOW_AUTH,
            Response {
                status: 200,
                ..Default::default()
            },
        ),
        _ => Reply::with(
            401,
            &[("www-authenticate", "Bearer realm=\"soak\"")],
            "denied\n",
        ),
    })
}

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
    let case = Case {
        name: "soak",
        filters: filters.into_iter().map(|(_, f)| f).collect(),
        headers: &[],
    };
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
        .map(|k| format!("{} {}", k.share(), k.label()))
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

/// The text printed as it comes and written to the report file at the end.
#[derive(Default)]
struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, line: String) {
        println!("{line}");
        self.text.push_str(&line);
        self.text.push('\n');
    }
}

fn report_path(only: Option<&str>) -> PathBuf {
    let name = match only {
        None => "soak.txt".to_string(),
        Some(only) => format!("soak-{}.txt", only.replace(',', "+")),
    };
    target_dir().join("bench").join(name)
}

fn heaps_text(plugins: &[&str], heaps: &[Option<u64>]) -> String {
    if plugins.is_empty() {
        return "none (no plugin)".into();
    }
    plugins
        .iter()
        .zip(heaps)
        .map(|(p, h)| format!("{p} {}", kib_text(*h)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kib_text(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{} KiB", b / 1024))
}

fn table_header(plugins: &[&str]) -> String {
    let mut s = format!(
        "{:>9} {:>10} {:>10} {:>10}",
        "requests", "RSS", "RssAnon", "allocated"
    );
    for p in plugins {
        let _ = write!(s, " {:>w$}", p, w = column(p));
    }
    let _ = write!(s, " {:>10} {:>8}", "auth calls", "req/s");
    s
}

fn column(plugin: &str) -> usize {
    plugin.len().max(8)
}

/// One reading; the call count and rate are those of the stretch since `previous`.
fn table_row(plugins: &[&str], r: &Reading, previous: Option<&Reading>) -> String {
    let mut s = format!(
        "{:>9} {:>10} {:>10} {:>10}",
        r.requests,
        r.rss_kib,
        r.anon_kib,
        r.allocated / 1024
    );
    for (p, heap) in plugins.iter().zip(&r.heaps) {
        let w = column(p);
        let _ = write!(
            s,
            " {:>w$}",
            heap.map_or("-".into(), |b| (b / 1024).to_string())
        );
    }
    let rate = previous
        .map(|p| {
            let secs = (r.driving - p.driving).as_secs_f64();
            format!("{:.0}", (r.requests - p.requests) as f64 / secs.max(1e-9))
        })
        .unwrap_or_else(|| "warmup".into());
    let _ = write!(s, " {:>10} {:>8}", r.auth_calls, rate);
    s
}

fn summarize(
    report: &mut Report,
    plugins: &[&str],
    readings: &[Reading],
    tally: &Tally,
    requests: usize,
    elapsed: Duration,
    driving: Duration,
) {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return;
    };
    let done = last.requests;
    let minutes = |d: Duration| format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60);
    report.line(if done >= requests {
        format!(
            "stopped at the request count: {done} requests in {} (warmup and readings included)",
            minutes(elapsed)
        )
    } else {
        format!(
            "stopped at the time limit ({}): {done} of {requests} requests",
            minutes(TIME_LIMIT)
        )
    });
    if done > 0 {
        report.line(format!(
            "throughput {:.0} requests/s; Envoy CPU {:.1} µs per request (all threads, \
             admin reads included)",
            done as f64 / driving.as_secs_f64().max(1e-9),
            (last.cpu - first.cpu).as_secs_f64() * 1e6 / done as f64
        ));
    }
    let per_kind: Vec<String> = Kind::ALL
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let unexpected = match tally.unexpected[k] {
                0 => String::new(),
                n => format!(" ({n} unexpected)"),
            };
            format!("{} {}{unexpected}", tally.sent[k], kind.label())
        })
        .collect();
    report.line(format!("sent (warmup included): {}", per_kind.join("; ")));
    if let Some(example) = &tally.first_unexpected {
        report.line(format!("first unexpected answer: {example}"));
    }
    if tally.broken > 0 {
        report.line(format!("broken connections (reopened): {}", tally.broken));
    }

    report.line(String::new());
    report.line(
        "growth per 100k requests (least-squares slope over the readings after the warmup):".into(),
    );
    let mut series: Vec<Series> = vec![
        (
            "Envoy RSS".into(),
            RSS_NOISE,
            readings
                .iter()
                .map(|r| (r.requests, r.rss_kib as f64))
                .collect(),
        ),
        (
            "Envoy RssAnon".into(),
            RSS_NOISE,
            readings
                .iter()
                .map(|r| (r.requests, r.anon_kib as f64))
                .collect(),
        ),
        (
            "Envoy allocated".into(),
            RSS_NOISE,
            readings
                .iter()
                .map(|r| (r.requests, r.allocated as f64 / 1024.0))
                .collect(),
        ),
    ];
    for (i, plugin) in plugins.iter().enumerate() {
        let points: Vec<(usize, f64)> = readings
            .iter()
            .filter_map(|r| Some((r.requests, (*r.heaps.get(i)?)? as f64 / 1024.0)))
            .collect();
        series.push((format!("{plugin} VM"), ANY_PAGE, points));
    }
    let mut growing = Vec::new();
    let mut flat = Vec::new();
    for (name, noise, points) in &series {
        let Some(t) = trend(points, noise) else {
            report.line(format!("  {name:<30} fewer than two readings"));
            continue;
        };
        let (start, end) = (points[0].1, points[points.len() - 1].1);
        report.line(format!(
            "  {name:<30} {start:>8.0} -> {end:>8.0} KiB {:>+8.1} KiB per 100k  {}",
            t.per_100k,
            if t.growing { "growing" } else { "flat" }
        ));
        // These tell where RSS growth comes from; the verdict is on RSS itself.
        if name.ends_with("RssAnon") || name.ends_with("allocated") {
            continue;
        }
        let figure = format!("{name} {:+.1}", t.per_100k);
        if t.growing {
            growing.push(figure);
        } else {
            flat.push(figure);
        }
    }
    report.line(String::new());
    report.line(if readings.len() < 2 {
        "verdict: none (fewer than two readings)".into()
    } else if growing.is_empty() {
        format!(
            "verdict: flat ({} KiB per 100k; RSS noise floor {} KiB per 100k, {} KiB in all)",
            flat.join(", "),
            RSS_NOISE.per_100k,
            RSS_NOISE.total
        )
    } else {
        format!("verdict: growing ({} KiB per 100k)", growing.join(", "))
    });
}

/// A quantity watched over the run: its name, its noise floor, and its readings
/// (requests, KiB).
type Series = (String, Noise, Vec<(usize, f64)>);

/// Growth that is not a leak, in KiB: per 100k requests, and over the whole run.
#[derive(Debug, Clone, Copy)]
struct Noise {
    per_100k: f64,
    total: f64,
}

#[derive(Debug, PartialEq)]
struct Trend {
    /// Least-squares slope, per 100k requests.
    per_100k: f64,
    growing: bool,
}

/// The trend of `points` (requests, KiB). Growing means growth above `noise`, both
/// per 100k and in all, that is still rising in the second half of the run: a
/// step early on that then held (a cache or pool reaching its size) is no leak.
fn trend(points: &[(usize, f64)], noise: &Noise) -> Option<Trend> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        let dx = x as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    if sxx == 0.0 {
        return None;
    }
    let per_100k = sxy / sxx * 100_000.0;
    let (first, last) = (points[0].1, points[points.len() - 1].1);
    let middle = points[(points.len() - 1) / 2].1;
    Some(Trend {
        per_100k,
        growing: per_100k > noise.per_100k && last - first > noise.total && last > middle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<(usize, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i * 100_000, *v))
            .collect()
    }

    #[test]
    fn trend_tells_flat_from_growing() {
        // name, readings 100k apart, noise floor, expected (slope, growing)
        type Row<'a> = (&'a str, &'a [f64], Noise, Option<(f64, bool)>);
        let cases: &[Row] = &[
            ("one reading", &[100.0], ANY_PAGE, None),
            ("steady", &[100.0; 11], ANY_PAGE, Some((0.0, false))),
            (
                "the leak report: +23 KiB per 100k",
                &[0.0, 23.0, 46.0, 69.0, 92.0, 115.0],
                RSS_NOISE,
                Some((23.0, true)),
            ),
            (
                "a slope under the floor",
                &[0.0, 4.0, 0.0, 8.0, 4.0, 12.0],
                RSS_NOISE,
                Some((34.0 / 17.5, false)),
            ),
            (
                "a slope over the floor, but less in all (a short try)",
                &[0.0, 20.0, 40.0, 60.0],
                RSS_NOISE,
                Some((20.0, false)),
            ),
            (
                "a step early on that then holds",
                &[0.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0],
                ANY_PAGE,
                Some((6.857142857142857, false)),
            ),
            (
                "a page late in the run",
                &[0.0, 0.0, 0.0, 0.0, 0.0, 64.0],
                ANY_PAGE,
                Some((64.0 / 7.0, true)),
            ),
            (
                "two readings, rising",
                &[0.0, 10.0],
                ANY_PAGE,
                Some((10.0, true)),
            ),
            (
                "shrinking",
                &[50.0, 40.0, 30.0],
                ANY_PAGE,
                Some((-10.0, false)),
            ),
        ];
        for (name, values, noise, expected) in cases {
            let got = trend(&series(values), noise);
            match (got, expected) {
                (None, None) => {}
                (Some(t), Some((slope, growing))) => {
                    assert!((t.per_100k - slope).abs() < 1e-6, "{name}: {t:?}");
                    assert_eq!(t.growing, *growing, "{name}: {t:?}");
                }
                (got, _) => panic!("{name}: {got:?} instead of {expected:?}"),
            }
        }
    }

    #[test]
    fn the_mix_has_its_shares_and_each_kind_its_answer() {
        let mut counts = [0; Kind::ALL.len()];
        for i in 0..1000 {
            let k = Kind::ALL.iter().position(|x| *x == kind(i)).unwrap_or(99);
            counts[k] += 1;
        }
        for (k, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(counts[k], kind.share() * 10, "{kind:?}");
        }
        assert_eq!(Kind::ALL.iter().map(|k| k.share()).sum::<usize>(), 100);
        let all = [
            "response-headers",
            "header-authorization",
            "basic-auth",
            "dispatch-auth",
        ];
        assert_eq!(Kind::BasicDenied.expected(&all), 401);
        assert_eq!(Kind::AuthFailed.expected(&all), 403);
        assert_eq!(Kind::AuthFailed.expected(&all[..3]), 200);
        assert_eq!(Kind::Hit.expected(&[]), 200);
        // New keys are new: two requests of the kind never share a path or token.
        let a = Kind::NewKey.request(5);
        let b = Kind::NewKey.request(105);
        assert_ne!(a.path, b.path);
        let a = Kind::AuthDeniedNewKey.request(6);
        let b = Kind::AuthDeniedNewKey.request(106);
        assert_ne!(a.header_value("x-token"), b.header_value("x-token"));
    }

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
