//! What Envoy 1.40 does after a plugin crashes its wasm VM (a Rust panic, a trap,
//! a heap that reached V8's 1 GiB limit) under each `failure_policy`, pinned with
//! the test-only `trap` module (harness/modules/trap): what the crashing request
//! gets, what every later request gets, how FAIL_RELOAD recovers and what a request
//! that crashes every time costs, which stats and log lines show it, and how far one
//! crash reaches when filters have VMs of their own or share one (as in Istio).
//! The README's "Crash policy" section reports these findings; the measured numbers
//! are written to `target/e2e/crash-policy/<test>.txt`. Every test's name holds
//! `vm_crash`, so `cargo xtask test -- vm_crash` runs just these.

use harness::envoy::{
    hcm, own_vm, plugin_config, target_dir, test_module, wasm_filter_at, LOG_WAIT,
};
use harness::{Envoy, Response, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The ways the trap module can kill its VM (request header `x-trap`).
const KINDS: [&str; 3] = ["panic", "unreachable", "oom"];

/// What every crash logs, whatever its kind: V8's trap, at error level. (Not "Wasm
/// VM failed", which older write-ups quote; 1.40 does not log that.)
const TRAP_LINE: &str =
    "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable";

/// How many requests after a crash each policy is checked on: bounded, and enough
/// to show the pattern is not a one-off.
const LATER: usize = 10;

/// FAIL_RELOAD's backoff without `reload_config` (Istio sets none): a failed VM is
/// reloaded by the first request that comes at least a random 1–1.5 s after the
/// VM's last load (Envoy's JitteredLowerBoundBackOffStrategy on a 1 s base).
const RELOAD_BACKOFF_MAX: Duration = Duration::from_millis(1500);

/// Upper bound on any wait for a reload; only a failing test waits this long.
const RECOVERY_LIMIT: Duration = Duration::from_secs(10);

/// Spacing of requests while waiting for a reload: fine enough to count how many
/// requests a user would see fail, coarse enough to stay cheap.
const POLL: Duration = Duration::from_millis(50);

/// When a bystander's request goes out after a leak started: well inside the
/// leak's 0.4 s or more of filling memory.
const BYSTANDER_DELAY: Duration = Duration::from_millis(100);

/// 1 GiB in KiB. A VM that reached V8's limit has written 15 of the trap module's
/// 64 MiB chunks (960 MiB); a fresh Envoy with one small module uses about 90 MiB.
const GIB_KB: u64 = 1 << 20;

/// One instance of the trap module, named `name` (also its `vm_id`, so it has a VM
/// of its own, and its configuration, so its response header is
/// `x-trap-module-<name>`), with `policy` as its `failure_policy`.
fn trap(name: &str, policy: &str) -> Value {
    let mut filter = wasm_filter_at(name, &test_module("trap"), name);
    plugin_config(&mut filter)["failure_policy"] = json!(policy);
    own_vm(&mut filter, name);
    filter
}

/// `filter` without a `vm_id`, as Istio configures every WasmPlugin: instances of
/// one module then share one VM per worker.
fn shared(mut filter: Value) -> Value {
    if let Some(vm) = plugin_config(&mut filter)["vm_config"].as_object_mut() {
        vm.remove("vm_id");
    }
    filter
}

/// Envoy with `filters` on `workers` worker threads, and an access log on stderr
/// (so in Envoy's log) that says why each response was sent.
fn start(filters: Vec<Value>, workers: usize) -> Envoy {
    let mut stack = Stack::new().concurrency(workers);
    for filter in filters {
        stack = stack.filter(filter);
    }
    stack
        .patch(|config| {
            hcm(config)["access_log"] = json!([{
                "name": "envoy.access_loggers.stderr",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
                    "log_format": {"text_format_source": {"inline_string":
                        "access: %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% x-trap=%REQ(X-TRAP)%\n"}}
                }
            }]);
        })
        .start()
}

/// What a client saw, in the terms of an auth plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The upstream answered and the filter ran: `x-trap-module` was N.
    Checked(u32),
    /// The upstream answered but no filter ran: for an auth plugin, unauthenticated.
    Unchecked,
    /// Envoy's reply for a failed VM: 503, empty body, no filter header.
    Refused,
    Other(u16, String),
}

fn seen(r: &Response) -> Seen {
    let counts = r.headers_named("x-trap-module");
    match (r.status, counts.as_slice()) {
        (200, []) if r.header("x-envoy-upstream-service-time").is_some() => Seen::Unchecked,
        (200, [n]) => n
            .parse()
            .map(Seen::Checked)
            .unwrap_or_else(|_| Seen::Other(200, format!("x-trap-module: {n}"))),
        (503, []) if r.body.is_empty() && r.header("content-length") == Some("0") => Seen::Refused,
        (status, _) => Seen::Other(status, format!("{:?} {}", r.headers, r.text())),
    }
}

/// The count instance `name` put on a response, if it ran.
fn count(r: &Response, name: &str) -> Option<u32> {
    r.header(&format!("x-trap-module-{name}"))
        .and_then(|n| n.parse().ok())
}

fn get(envoy: &Envoy) -> Response {
    envoy.get("/", &[])
}

/// Sends a request that crashes the VM with `kind` (in every instance, or only in
/// `instance`); returns the response and how long it took.
fn crash(envoy: &Envoy, kind: &str, instance: Option<&str>) -> (Response, Duration) {
    let mut headers = vec![("x-trap", kind)];
    if let Some(name) = instance {
        headers.push(("x-trap-instance", name));
    }
    let started = Instant::now();
    let response = envoy.get("/", &headers);
    (response, started.elapsed())
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(name).unwrap_or_else(|| panic!("no stat {name}"))
}

/// The reload counters of instance `name`: (success, backoff, failure).
fn reloads(envoy: &Envoy, name: &str) -> (u64, u64, u64) {
    (
        stat(envoy, &format!("wasm.{name}.vm_reload_success")),
        stat(envoy, &format!("wasm.{name}.vm_reload_backoff")),
        stat(envoy, &format!("wasm.{name}.vm_reload_failure")),
    )
}

fn vms_created(envoy: &Envoy) -> u64 {
    stat(envoy, "wasm.envoy.wasm.runtime.v8.created")
}

/// Envoy's resident memory in KiB.
fn rss_kb(envoy: &Envoy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", envoy.pid()))
        .unwrap_or_else(|e| panic!("Envoy's /proc status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// The access log's lines so far, waiting (bounded) until there are `n`.
fn access_log(envoy: &Envoy, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines: Vec<String> = envoy
            .log()
            .lines()
            .filter_map(|l| l.strip_prefix("access: "))
            .map(str::to_string)
            .collect();
        if lines.len() >= n || started.elapsed() > LOG_WAIT {
            return lines;
        }
        std::thread::sleep(POLL);
    }
}

/// Checks what a crash of `kind` logged: V8's trap line at error level, plus what
/// the Rust side wrote to stderr on the way down (the panic message, the failed
/// allocation), and nothing else claiming a VM failure.
fn assert_crash_logged(envoy: &Envoy, kind: &str) {
    let line = envoy
        .wait_log(TRAP_LINE, LOG_WAIT)
        .unwrap_or_else(|| panic!("{kind}: no trap line:\n{}", envoy.log()));
    assert!(line.contains("[error][wasm]"), "{kind}: {line}");
    let log = envoy.log();
    assert_eq!(
        log.matches(TRAP_LINE).count(),
        1,
        "{kind}: one crash:\n{log}"
    );
    assert!(!log.contains("Wasm VM failed"), "{kind}:\n{log}");
    let panicked = log.contains("panicked at harness/modules/trap/src/lib.rs")
        && log.contains("\nx-trap: panic\n");
    let out_of_memory = log.contains("memory allocation of ") && log.contains(" bytes failed");
    match kind {
        "panic" => assert!(panicked && !out_of_memory, "{kind}:\n{log}"),
        "oom" => assert!(out_of_memory && !panicked, "{kind}:\n{log}"),
        _ => assert!(!panicked && !out_of_memory, "{kind}:\n{log}"),
    }
}

/// Requests pass checked, counting 1, 2, 3: the VM is alive and fresh.
fn assert_serves_fresh(envoy: &Envoy, context: &str) {
    for n in 1..=3 {
        assert_eq!(seen(&get(envoy)), Seen::Checked(n), "{context}");
    }
}

/// Writes a test's measurements to `target/e2e/crash-policy/<test>.txt` and prints
/// them (`cargo xtask test -- crash_policy --nocapture` shows them).
fn report(test: &str, lines: &[String]) {
    let dir = target_dir().join("e2e").join("crash-policy");
    let text = lines.join("\n") + "\n";
    print!("{test}:\n{text}");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{test}.txt")), &text))
    {
        panic!("{}: {e}", dir.display());
    }
}

#[test]
fn fail_closed_refuses_everything_after_a_vm_crash_and_never_retries() {
    let mut lines = Vec::new();
    for kind in KINDS {
        let envoy = start(vec![trap("auth", "FAIL_CLOSED")], 1);
        assert_serves_fresh(&envoy, kind);
        let created = vms_created(&envoy);
        let rss_before = rss_kb(&envoy);

        let (crashed, took) = crash(&envoy, kind, None);
        assert_eq!(
            seen(&crashed),
            Seen::Refused,
            "{kind}: the crashing request"
        );
        assert_crash_logged(&envoy, kind);
        let upstream_before = envoy.echo().count();
        for i in 0..LATER {
            assert_eq!(seen(&get(&envoy)), Seen::Refused, "{kind}: later #{i}");
        }
        // Well past any backoff: FAIL_CLOSED never tries again.
        std::thread::sleep(RELOAD_BACKOFF_MAX + Duration::from_millis(500));
        assert_eq!(seen(&get(&envoy)), Seen::Refused, "{kind}: after 2 s");
        let (again, _) = crash(&envoy, kind, None);
        assert_eq!(
            seen(&again),
            Seen::Refused,
            "{kind}: crashing request again"
        );
        assert_eq!(
            envoy.echo().count(),
            upstream_before,
            "{kind}: none reached upstream"
        );

        let log = access_log(&envoy, 3 + 1 + LATER + 2);
        assert_eq!(log.len(), 3 + 1 + LATER + 2, "{kind}: {log:?}");
        let refused = &log[3..];
        assert!(
            refused
                .iter()
                .all(|l| l.starts_with("503 wasm_fail_stream ")),
            "{kind}: {log:?}"
        );
        // No counter moves: the error line is the only trace of the crash.
        assert_eq!(reloads(&envoy, "auth"), (0, 0, 0), "{kind}");
        assert_eq!(vms_created(&envoy), created, "{kind}: no new VM");
        let rss_after = rss_kb(&envoy);
        if kind == "oom" {
            // The dead VM keeps its whole heap for as long as Envoy runs.
            assert!(
                rss_after > rss_before + GIB_KB * 3 / 4,
                "{kind}: {rss_after} kB"
            );
        }
        lines.push(format!(
            "{kind}: crashing request {} in {:.1} ms, then {} of {} later requests 503 \
             wasm_fail_stream (also 2 s later); RSS {} -> {} MiB",
            crashed.status,
            took.as_secs_f64() * 1000.0,
            LATER,
            LATER,
            rss_before / 1024,
            rss_after / 1024
        ));
    }
    report("fail_closed", &lines);
}

#[test]
fn fail_open_lets_everything_through_unchecked_after_a_vm_crash() {
    let mut lines = Vec::new();
    for kind in KINDS {
        let envoy = start(vec![trap("auth", "FAIL_OPEN")], 1);
        assert_serves_fresh(&envoy, kind);
        let created = vms_created(&envoy);
        let rss_before = rss_kb(&envoy);

        // The crashing request itself is refused like under FAIL_CLOSED: Envoy
        // skips a fail-open filter only from the next request on.
        let (crashed, took) = crash(&envoy, kind, None);
        assert_eq!(
            seen(&crashed),
            Seen::Refused,
            "{kind}: the crashing request"
        );
        assert_crash_logged(&envoy, kind);
        for i in 0..LATER {
            assert_eq!(seen(&get(&envoy)), Seen::Unchecked, "{kind}: later #{i}");
        }
        // The request that crashed it now reaches the upstream as it is.
        let (again, _) = crash(&envoy, kind, None);
        assert_eq!(
            seen(&again),
            Seen::Unchecked,
            "{kind}: crashing request again"
        );
        assert_eq!(again.echoed().header_value("x-trap"), Some(kind));
        std::thread::sleep(RELOAD_BACKOFF_MAX + Duration::from_millis(500));
        assert_eq!(seen(&get(&envoy)), Seen::Unchecked, "{kind}: after 2 s");

        let log = access_log(&envoy, 3 + 1 + LATER + 2);
        assert_eq!(log.len(), 3 + 1 + LATER + 2, "{kind}: {log:?}");
        assert!(
            log[3].starts_with("503 wasm_fail_stream "),
            "{kind}: {log:?}"
        );
        assert!(
            log[4..].iter().all(|l| l.starts_with("200 via_upstream ")),
            "{kind}: {log:?}"
        );
        assert_eq!(reloads(&envoy, "auth"), (0, 0, 0), "{kind}");
        assert_eq!(vms_created(&envoy), created, "{kind}: no new VM");
        let rss_after = rss_kb(&envoy);
        if kind == "oom" {
            assert!(
                rss_after > rss_before + GIB_KB * 3 / 4,
                "{kind}: {rss_after} kB"
            );
        }
        lines.push(format!(
            "{kind}: crashing request {} in {:.1} ms, then {} of {} later requests 200 \
             without the filter (the crashing request too); RSS {} -> {} MiB",
            crashed.status,
            took.as_secs_f64() * 1000.0,
            LATER,
            LATER,
            rss_before / 1024,
            rss_after / 1024
        ));
    }
    report("fail_open", &lines);
}

/// What [`until_recovered`] saw.
struct Recovery {
    /// The first response that was not refused.
    first: Seen,
    /// Requests refused before it.
    refused: usize,
    /// From the crash to that response.
    after: Duration,
    /// How long that request took (it paid for the reload).
    reloading_request: Duration,
}

/// Polls until a request is no longer refused, counting those that were.
fn until_recovered(envoy: &Envoy, since: Instant, context: &str) -> Recovery {
    let mut refused = 0;
    while since.elapsed() < RECOVERY_LIMIT {
        let sent = Instant::now();
        match seen(&get(envoy)) {
            Seen::Refused => refused += 1,
            first => {
                return Recovery {
                    first,
                    refused,
                    after: since.elapsed(),
                    reloading_request: sent.elapsed(),
                }
            }
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "{context}: not recovered after {RECOVERY_LIMIT:?}:\n{}",
        envoy.log()
    )
}

#[test]
fn fail_reload_replaces_the_vm_after_a_vm_crash_once_the_backoff_has_passed() {
    let mut lines = Vec::new();
    for kind in KINDS {
        let envoy = start(vec![trap("auth", "FAIL_RELOAD")], 1);
        assert_serves_fresh(&envoy, kind);
        let created = vms_created(&envoy);
        let rss_before = rss_kb(&envoy);

        // A crash moments after the VM was loaded: requests are refused until the
        // backoff, counted from that load, has passed.
        let (crashed, took) = crash(&envoy, kind, None);
        let crashed_at = Instant::now();
        assert_eq!(
            seen(&crashed),
            Seen::Refused,
            "{kind}: the crashing request"
        );
        assert_crash_logged(&envoy, kind);
        let rss_dead = rss_kb(&envoy);
        let recovery = until_recovered(&envoy, crashed_at, kind);
        let refused = recovery.refused;
        assert_eq!(recovery.first, Seen::Checked(1), "{kind}: a fresh VM");
        assert_eq!(
            reloads(&envoy, "auth"),
            (1, refused as u64, 0),
            "{kind}: one reload, each refused request counted as backoff"
        );
        assert_eq!(vms_created(&envoy), created + 1, "{kind}");
        let rss_reloaded = rss_kb(&envoy);
        if kind == "oom" {
            assert!(
                rss_dead > rss_before + GIB_KB * 3 / 4,
                "{kind}: {rss_dead} kB"
            );
            // The reload frees the dead VM's heap.
            assert!(
                rss_reloaded < rss_before + GIB_KB / 2,
                "{kind}: {rss_reloaded} kB"
            );
        }
        let log = access_log(&envoy, 3 + 1 + refused + 1);
        assert_eq!(log.len(), 3 + 1 + refused + 1, "{kind}: {log:?}");
        assert!(
            log[3..3 + 1 + refused]
                .iter()
                .all(|l| l.starts_with("503 wasm_fail_stream ")),
            "{kind}: {log:?}"
        );

        // A crash in a VM older than the backoff: the very next request gets a
        // fresh VM, so only the crashing request fails.
        std::thread::sleep(RELOAD_BACKOFF_MAX + Duration::from_millis(500));
        let (crashed_old, _) = crash(&envoy, kind, None);
        assert_eq!(seen(&crashed_old), Seen::Refused, "{kind}: old VM's crash");
        assert_eq!(
            seen(&get(&envoy)),
            Seen::Checked(1),
            "{kind}: reloaded at once"
        );
        assert_eq!(reloads(&envoy, "auth"), (2, refused as u64, 0), "{kind}");
        lines.push(format!(
            "{kind}: crashing request {} in {:.1} ms; crash just after a load: {} requests \
             (one per {} ms) refused 503 wasm_fail_stream, fresh VM after {:.0} ms (the \
             reloading request took {:.1} ms); crash in an old VM: 0 refused, fresh VM on the \
             next request; RSS {} -> {} (dead) -> {} (reloaded) MiB",
            crashed.status,
            took.as_secs_f64() * 1000.0,
            refused,
            POLL.as_millis(),
            recovery.after.as_secs_f64() * 1000.0,
            recovery.reloading_request.as_secs_f64() * 1000.0,
            rss_before / 1024,
            rss_dead / 1024,
            rss_reloaded / 1024
        ));
    }
    report("fail_reload", &lines);
}

#[test]
fn fail_reload_a_vm_crash_on_every_request_gets_one_reload_per_backoff() {
    let mut lines = Vec::new();
    let envoy = start(vec![trap("auth", "FAIL_RELOAD")], 1);
    assert_serves_fresh(&envoy, "crash loop");

    // An attacker's crashing request interleaved with a user's request, for 4 s.
    let started = Instant::now();
    let (mut rounds, mut passed, mut refused) = (0, 0, 0);
    while started.elapsed() < Duration::from_secs(4) && rounds < 200 {
        rounds += 1;
        let (crashed, _) = crash(&envoy, "panic", None);
        assert_eq!(
            seen(&crashed),
            Seen::Refused,
            "round {rounds}: crashing request"
        );
        match seen(&get(&envoy)) {
            Seen::Checked(1) => passed += 1,
            Seen::Refused => refused += 1,
            other => panic!("round {rounds}: {other:?}"),
        }
        std::thread::sleep(POLL);
    }
    let elapsed = started.elapsed();
    let (success, backoff, failure) = reloads(&envoy, "auth");
    assert_eq!(failure, 0);
    // The backoff (at least 1 s from each load) is the only limit on reloads.
    assert!(
        success as f64 <= elapsed.as_secs_f64() + 1.0,
        "{success} reloads in {elapsed:?}"
    );
    assert!(success >= 1, "no reload in {elapsed:?}");
    // A user's request passes only on a fresh VM that the next crash kills.
    assert!(passed <= success, "{passed} passed, {success} reloads");
    // The attacker's last word, so the VM is dead even if the last user request
    // had just reloaded it; then it stops.
    let (crashed, _) = crash(&envoy, "panic", None);
    assert_eq!(seen(&crashed), Seen::Refused);
    std::thread::sleep(RELOAD_BACKOFF_MAX + Duration::from_millis(500));
    assert_eq!(
        seen(&get(&envoy)),
        Seen::Checked(1),
        "recovered once it stopped"
    );
    lines.push(format!(
        "panic every round: {rounds} rounds in {:.1} s; a user's request passed {passed}, \
         refused {refused}; {success} reloads, {backoff} requests refused in backoff",
        elapsed.as_secs_f64()
    ));

    // The same with a leak: each crash first fills 1 GiB, which the reload frees.
    for round in 1..=3 {
        let since = Instant::now();
        let recovery = until_recovered(&envoy, since, "before an oom round");
        assert!(
            matches!(recovery.first, Seen::Checked(_)),
            "{:?}",
            recovery.first
        );
        let rss_alive = rss_kb(&envoy);
        let cpu = envoy.cpu_time();
        // A bystander's request sent while the leak runs: the VM runs on the one
        // worker thread, which serves nothing else until the crash is over.
        let ((crashed, took), (bystander, waited)) = std::thread::scope(|s| {
            let crashing = s.spawn(|| crash(&envoy, "oom", None));
            std::thread::sleep(BYSTANDER_DELAY);
            let sent = Instant::now();
            let bystander = seen(&get(&envoy));
            let crashed = crashing.join().expect("the crashing request's thread");
            (crashed, (bystander, sent.elapsed()))
        });
        let cpu = envoy.cpu_time() - cpu;
        assert_eq!(seen(&crashed), Seen::Refused, "oom round {round}");
        // No heap piles up: each round starts from a freed one.
        assert!(
            rss_alive < GIB_KB / 2,
            "oom round {round}: {rss_alive} kB alive"
        );
        lines.push(format!(
            "oom round {round}: the crashing request took {:.0} ms and {:.0} ms of Envoy CPU; \
             a request sent {} ms into it waited {:.0} ms and saw {bystander:?}; RSS before \
             it {} MiB",
            took.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0,
            BYSTANDER_DELAY.as_millis(),
            waited.as_secs_f64() * 1000.0,
            rss_alive / 1024
        ));
    }
    report("fail_reload_crash_loop", &lines);
}

#[test]
fn a_vm_crash_leaves_filters_with_vms_of_their_own_running() {
    // Both fail open: the crashed one is skipped, the other goes on counting.
    let envoy = start(vec![trap("a", "FAIL_OPEN"), trap("b", "FAIL_OPEN")], 1);
    for n in 1..=2 {
        let r = get(&envoy);
        assert_eq!((count(&r, "a"), count(&r, "b")), (Some(n), Some(n)));
    }
    let (crashed, _) = crash(&envoy, "panic", Some("a"));
    assert_eq!(seen(&crashed), Seen::Refused);
    for n in 3..=5 {
        let r = get(&envoy);
        assert_eq!(r.status, 200);
        assert_eq!(
            (count(&r, "a"), count(&r, "b")),
            (None, Some(n)),
            "b's VM lives on"
        );
    }

    // Both fail closed, the second crashes: the first still runs (its header is on
    // the 503 the dead second one sends back through it).
    let envoy = start(vec![trap("a", "FAIL_CLOSED"), trap("b", "FAIL_CLOSED")], 1);
    for n in 1..=2 {
        let r = get(&envoy);
        assert_eq!((count(&r, "a"), count(&r, "b")), (Some(n), Some(n)));
    }
    let (crashed, _) = crash(&envoy, "panic", Some("b"));
    assert_eq!(crashed.status, 503);
    assert_eq!(
        (count(&crashed, "a"), count(&crashed, "b")),
        (Some(3), None)
    );
    for n in 4..=6 {
        let r = get(&envoy);
        assert_eq!(r.status, 503);
        assert_eq!(
            (count(&r, "a"), count(&r, "b")),
            (Some(n), None),
            "a's VM lives on"
        );
    }
}

#[test]
fn a_vm_crash_takes_down_every_instance_sharing_the_vm() {
    // One VM: the two instances count on one counter.
    let fresh = |envoy: &Envoy| {
        let r = get(envoy);
        assert_eq!(
            (count(&r, "a"), count(&r, "b")),
            (Some(1), Some(2)),
            "one fresh VM"
        );
    };

    // Both fail open: a crash in one skips both.
    let envoy = start(
        vec![
            shared(trap("a", "FAIL_OPEN")),
            shared(trap("b", "FAIL_OPEN")),
        ],
        1,
    );
    fresh(&envoy);
    let (crashed, _) = crash(&envoy, "panic", Some("b"));
    assert_eq!(seen(&crashed), Seen::Refused);
    for _ in 0..3 {
        assert_eq!(seen(&get(&envoy)), Seen::Unchecked, "neither runs");
    }

    // Both fail closed: a crash in the second takes the first with it.
    let envoy = start(
        vec![
            shared(trap("a", "FAIL_CLOSED")),
            shared(trap("b", "FAIL_CLOSED")),
        ],
        1,
    );
    fresh(&envoy);
    let (crashed, _) = crash(&envoy, "panic", Some("b"));
    assert_eq!(seen(&crashed), Seen::Refused);
    for _ in 0..3 {
        assert_eq!(seen(&get(&envoy)), Seen::Refused, "a is dead too");
    }

    // A fail-open instance's crash closes its fail-closed sibling: in Istio, a
    // FAIL_OPEN and a FAIL_CLOSE WasmPlugin of one module share a VM.
    let envoy = start(
        vec![
            shared(trap("a", "FAIL_OPEN")),
            shared(trap("b", "FAIL_CLOSED")),
        ],
        1,
    );
    fresh(&envoy);
    let (crashed, _) = crash(&envoy, "panic", Some("a"));
    assert_eq!(seen(&crashed), Seen::Refused);
    for _ in 0..3 {
        assert_eq!(seen(&get(&envoy)), Seen::Refused, "b fails closed");
    }

    // Both reload: each instance reloads on its own (its own backoff draw, its own
    // counters), and both land in one new shared VM.
    let envoy = start(
        vec![
            shared(trap("a", "FAIL_RELOAD")),
            shared(trap("b", "FAIL_RELOAD")),
        ],
        1,
    );
    fresh(&envoy);
    let created = vms_created(&envoy);
    let (crashed, _) = crash(&envoy, "panic", Some("a"));
    assert_eq!(seen(&crashed), Seen::Refused);
    let started = Instant::now();
    let (a, b) = loop {
        let r = get(&envoy);
        if let (Some(a), Some(b)) = (count(&r, "a"), count(&r, "b")) {
            break (a, b);
        }
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "not back:\n{}",
            envoy.log()
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(b, a + 1, "one VM, one counter");
    assert_eq!(
        (reloads(&envoy, "a").0, reloads(&envoy, "b").0),
        (1, 1),
        "each instance reloaded once"
    );
    assert_eq!(vms_created(&envoy), created + 1, "one new VM for both");
}

#[test]
fn a_vm_crash_takes_down_only_the_vm_of_the_worker_that_ran_it() {
    // Each worker thread has its own copy of the VM; connections are spread over
    // the workers by the kernel, so after one crash some requests still pass.
    let envoy = start(vec![trap("auth", "FAIL_CLOSED")], 2);
    let (crashed, _) = crash(&envoy, "panic", None);
    assert_eq!(seen(&crashed), Seen::Refused);
    let later: Vec<Seen> = (0..40).map(|_| seen(&get(&envoy))).collect();
    let refused = later.iter().filter(|s| **s == Seen::Refused).count();
    let checked = later
        .iter()
        .filter(|s| matches!(s, Seen::Checked(_)))
        .count();
    assert_eq!(refused + checked, later.len(), "{later:?}");
    assert!(refused > 0 && checked > 0, "{later:?}");
    report(
        "two_workers",
        &[format!(
            "FAIL_CLOSED, 2 workers, one crash: {refused} of {} later requests refused, \
             {checked} passed checked",
            later.len()
        )],
    );
}
