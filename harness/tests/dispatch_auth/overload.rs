//! Calls that outlive their clients: clients that send and hang up at once leave
//! their auth calls running in Envoy (proxy-wasm cannot cancel them). Under that
//! attack, with a small `max_pending_calls` and with a small circuit breaker on
//! the auth cluster, both ways of failure_mode_allow: a denied token is never let
//! through, the calls active on the auth cluster stay within the limit, and
//! honest requests recover soon after the attack stops.

use super::{wait_warnings, MARGIN, PLUGIN};
use harness::envoy::static_cluster;
use harness::{Envoy, Reply, Request, Response, Server, Stack};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the auth service takes to answer.
const AUTH_DELAY: Duration = Duration::from_millis(400);
/// The plugin's timeout: the longest a call of a departed client is counted.
const TIMEOUT_MS: u64 = 1000;
/// Attacking clients, each sending one request and hanging up.
const ATTACKERS: usize = 4;
const CLIENTS_PER_ATTACKER: usize = 60;
/// How long an attacking client stays connected after sending.
const HANG_UP_AFTER: Duration = Duration::from_millis(20);
/// Status the plugin answers when it refuses: apart from the auth service's 403.
const STATUS_ON_ERROR: u16 = 503;

/// Denies token `bad`, allows token `good` (as user `alice`), slowly.
fn slow_auth() -> Server {
    Server::start(|req| {
        let good = req.header_value("authorization") == Some("Bearer good");
        let response = if good {
            Response {
                status: 200,
                headers: vec![("x-user-id".into(), "alice".into())],
                body: Vec::new(),
            }
        } else {
            Response {
                status: 403,
                body: b"denied\n".to_vec(),
                ..Default::default()
            }
        };
        Reply::Delay(AUTH_DELAY, response)
    })
}

fn config(failure_mode_allow: bool, max_pending_calls: Option<u64>) -> Value {
    let mut config = json!({
        "cluster": "auth",
        "timeout_ms": TIMEOUT_MS,
        "allowed_upstream_headers": ["x-user-id"],
        "failure_mode_allow": failure_mode_allow,
        "status_on_error": STATUS_ON_ERROR,
    });
    if let Some(cap) = max_pending_calls {
        config["max_pending_calls"] = json!(cap);
    }
    config
}

/// An Envoy whose auth cluster may carry `thresholds` as its circuit breaker.
fn envoy(auth: SocketAddr, config: Value, thresholds: Option<Value>) -> Envoy {
    let mut cluster = static_cluster("auth", auth);
    if let Some(thresholds) = thresholds {
        cluster["circuit_breakers"] = json!({"thresholds": [thresholds]});
    }
    Stack::new().cluster(cluster).plugin(PLUGIN, config).start()
}

/// One attacking client: sends a request with token `bad` and hangs up before
/// any answer can come.
fn hit_and_run(addr: SocketAddr) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return;
    };
    let _ = stream
        .write_all(b"GET /attack HTTP/1.1\r\nhost: shop\r\nauthorization: Bearer bad\r\n\r\n");
    std::thread::sleep(HANG_UP_AFTER);
}

fn send(addr: SocketAddr, token: &str) -> Response {
    Request::get("/api")
        .header("authorization", &format!("Bearer {token}"))
        .send(addr)
}

/// What one attack showed.
#[derive(Debug)]
struct Seen {
    /// The most calls Envoy had active on the auth cluster at any sample.
    max_active: u64,
    /// Statuses the `bad` and `good` clients got during the attack.
    bad: Vec<u16>,
    good: Vec<u16>,
    /// From the end of the attack until a `good` request went through.
    recovered_after: Duration,
}

/// Runs the drop attack while sampling the auth cluster's active calls and
/// sending honest requests, then waits for a `good` request to go through.
fn attack(envoy: &Envoy) -> Seen {
    let addr = envoy.addr();
    let attacking = AtomicBool::new(true);
    let max_active = AtomicU64::new(0);
    let bad = Mutex::new(Vec::new());
    let good = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            while attacking.load(Ordering::SeqCst) {
                let active = envoy.stat("cluster.auth.upstream_rq_active").unwrap_or(0);
                max_active.fetch_max(active, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        for (token, statuses) in [("bad", &bad), ("good", &good)] {
            let attacking = &attacking;
            s.spawn(move || {
                while attacking.load(Ordering::SeqCst) {
                    let status = send(addr, token).status;
                    statuses.lock().unwrap().push(status);
                }
            });
        }
        let attackers: Vec<_> = (0..ATTACKERS)
            .map(|_| {
                s.spawn(move || {
                    for _ in 0..CLIENTS_PER_ATTACKER {
                        hit_and_run(addr);
                    }
                })
            })
            .collect();
        for a in attackers {
            a.join().unwrap();
        }
        attacking.store(false, Ordering::SeqCst);
    });
    let over = Instant::now();
    // Bounded: ten times what recovery may take.
    let mut recovered_after = None;
    while over.elapsed() < Duration::from_secs(20) {
        let resp = send(addr, "good");
        if resp.status == 200 {
            recovered_after = Some(over.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = Seen {
        max_active: max_active.load(Ordering::SeqCst),
        bad: bad.into_inner().unwrap(),
        good: good.into_inner().unwrap(),
        recovered_after: recovered_after.expect("good requests never went through again"),
    };
    // Sampled once more after the attack: Envoy's count also settles.
    let active = envoy.stat("cluster.auth.upstream_rq_active").unwrap_or(0);
    Seen {
        max_active: seen.max_active.max(active),
        ..seen
    }
}

/// A test's figures, written to `target/e2e/<file>` when the test ends, pass or
/// fail, for reading afterwards.
struct Report(Vec<String>, &'static str);

impl Report {
    fn new(file: &'static str) -> Self {
        Report(Vec::new(), file)
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let path = harness::envoy::target_dir().join("e2e").join(self.1);
        let _ = std::fs::write(path, self.0.join("\n") + "\n");
    }
}

/// What every attack must show, whatever limited it. Its figures are added to
/// `report`, which is written to `target/e2e/<file>` first.
fn assert_safe(envoy: &Envoy, seen: &Seen, limit: u64, what: &str, report: &mut Vec<String>) {
    let count = |statuses: &[u16], status: u16| statuses.iter().filter(|&&s| s == status).count();
    let line = format!(
        "{what}: max active {}, bad: {} x 403, {} x {STATUS_ON_ERROR}, {} other; \
         good: {} x 200, {} x {STATUS_ON_ERROR}; recovered {:?} after the attack",
        seen.max_active,
        count(&seen.bad, 403),
        count(&seen.bad, STATUS_ON_ERROR),
        seen.bad.len() - count(&seen.bad, 403) - count(&seen.bad, STATUS_ON_ERROR),
        count(&seen.good, 200),
        count(&seen.good, STATUS_ON_ERROR),
        seen.recovered_after,
    );
    println!("{line}");
    report.push(line.clone());
    assert!(
        seen.bad.iter().all(|s| [403, STATUS_ON_ERROR].contains(s)),
        "{what}: a bad token was let through: {line}"
    );
    assert!(!seen.bad.is_empty(), "{what}: no bad request was sent");
    let upstream_bad = envoy
        .echo()
        .received()
        .iter()
        .filter(|r| r.header_value("authorization") == Some("Bearer bad"))
        .count();
    assert_eq!(upstream_bad, 0, "{what}: a bad token reached upstream");
    assert!(
        seen.good.iter().all(|s| [200, STATUS_ON_ERROR].contains(s)),
        "{what}: {seen:?}"
    );
    assert!(
        seen.max_active <= limit,
        "{what}: {} calls active on the auth cluster, over {limit}",
        seen.max_active
    );
    // The calls of departed clients count for at most timeout_ms (and a 50 ms
    // grace); then a good request takes the auth service's delay.
    let bound = Duration::from_millis(TIMEOUT_MS) + AUTH_DELAY + MARGIN;
    assert!(
        seen.recovered_after < bound,
        "{what}: recovered after {:?}, over {bound:?}",
        seen.recovered_after
    );
}

#[test]
fn the_plugins_cap_bounds_calls_left_by_departed_clients() {
    const CAP: u64 = 8;
    let mut report = Report::new("dispatch-auth-cap.txt");
    for allow in [false, true] {
        let auth = slow_auth();
        let envoy = envoy(auth.addr(), config(allow, Some(CAP)), None);
        let seen = attack(&envoy);
        let what = format!("max_pending_calls {CAP}, failure_mode_allow {allow}");
        assert_safe(&envoy, &seen, CAP, &what, &mut report.0);
        // The cap was what refused, and the warn line says so.
        let lines = wait_warnings(&envoy, 1);
        let line = lines
            .iter()
            .find(|l| l.contains("the max_pending_calls cap"))
            .unwrap_or_else(|| panic!("{what}: no warn line names the cap: {lines:?}"));
        assert!(line.contains(&format!("{CAP} calls are out")), "{line}");
        assert!(line.contains("(overload never fails open)"), "{line}");
    }
}

#[test]
fn a_full_circuit_breaker_never_fails_open() {
    // The plugin's cap (the default, 100) is far above the cluster's breaker.
    const BREAKER: u64 = 4;
    let thresholds = json!({"max_requests": BREAKER, "max_pending_requests": BREAKER});
    let mut report = Report::new("dispatch-auth-breaker.txt");
    for allow in [false, true] {
        let auth = slow_auth();
        let envoy = envoy(auth.addr(), config(allow, None), Some(thresholds.clone()));
        let seen = attack(&envoy);
        let what = format!("circuit breaker {BREAKER}, failure_mode_allow {allow}");
        assert_safe(&envoy, &seen, BREAKER, &what, &mut report.0);
        let lines = wait_warnings(&envoy, 1);
        assert!(
            lines.iter().any(|l| l.contains("circuit breaker")
                && l.contains("(overload never fails open)")),
            "{what}: {lines:?}"
        );
        assert!(
            envoy
                .stat("cluster.auth.upstream_rq_pending_overflow")
                .unwrap_or(0)
                + envoy
                    .stat("cluster.auth.upstream_rq_active_overflow")
                    .unwrap_or(0)
                > 0,
            "{what}: the breaker never overflowed"
        );
    }
}
