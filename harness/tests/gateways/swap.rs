//! `run --watch` under load: a config change swaps one filter's extension config,
//! a change of the filter set or order swaps the listener, new code swaps the
//! filters that run it, and a config or module that is refused leaves the running
//! stack as it was; no request fails meanwhile. The load loop lives here.

use super::{gateway_file, plugin_module, replace, Run};
use harness::envoy::target_dir;
use harness::{scratch, Request};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one request got: a status, and the body of a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Denied(String),
    Failed(String),
}

/// A bounded request loop (time and count) recording every outcome.
pub struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, Outcome)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Sends `GET /` with `headers` again and again to `addr`.
    pub fn start(addr: SocketAddr, headers: &[(&str, &str)]) -> Load {
        let request = headers
            .iter()
            .fold(Request::get("/"), |r, (n, v)| r.header(n, v));
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            let request = request.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                for _ in 0..200_000 {
                    if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(180) {
                        break;
                    }
                    // Stamped when sent: the log is in sending order, and a request
                    // sent after a moment is one Envoy saw after it.
                    let sent = Instant::now();
                    let resp = request.send(addr);
                    let outcome = match resp.status {
                        200 if resp.echoed().path == "/" => Outcome::Passed,
                        403 => Outcome::Denied(resp.text()),
                        _ => Outcome::Failed(format!("{} {}", resp.status, resp.text())),
                    };
                    log.lock().unwrap().push((sent, outcome));
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Load {
            stop,
            log,
            thread: Some(thread),
        }
    }

    pub fn since(&self, t: Instant) -> Vec<(Instant, Outcome)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .cloned()
            .collect()
    }

    /// Waits for the first request sent after `t` and answered with `new`; how long
    /// after `t` it was sent.
    pub fn wait_for(&self, t: Instant, new: &Outcome, limit: Duration) -> Duration {
        loop {
            if let Some((at, _)) = self.since(t).iter().find(|(_, o)| o == new) {
                return *at - t;
            }
            assert!(
                t.elapsed() < limit,
                "{new:?} not seen within {limit:?}; last: {:?}",
                self.since(t).last()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the last `run` requests sent after `t` were all answered with
    /// `new`, and returns when the first of them was sent. Each request opens a new
    /// connection, which the kernel hands to either of Envoy's two workers, so
    /// from then on both run the new filter: each takes it at its own pace,
    /// which on a busy machine can be a while after the first.
    pub fn wait_steady(&self, t: Instant, new: &Outcome, run: usize, limit: Duration) -> Instant {
        loop {
            let since = self.since(t);
            let tail = since.len().checked_sub(run).and_then(|i| since.get(i..));
            if let Some(tail) = tail.filter(|tail| tail.iter().all(|(_, o)| o == new)) {
                return tail[0].0;
            }
            assert!(
                t.elapsed() < limit,
                "not {run} answers in a row with {new:?} within {limit:?}; last: {:?}",
                since.last()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the loop; every outcome, in order.
    pub fn finish(mut self) -> Vec<(Instant, Outcome)> {
        self.stop();
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The module with a custom section appended: different bytes (so a new
/// content-addressed file, a new VM), same behaviour.
pub fn rebuilt(module: &[u8], tag: &str) -> Vec<u8> {
    let mut section = vec![tag.len() as u8];
    section.extend_from_slice(tag.as_bytes());
    section.extend_from_slice(b"swap");
    let mut out = module.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

#[test]
fn run_watch_swaps_configs_filter_sets_and_modules_without_failing_a_request() {
    let dir = scratch("gateways-swap");
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let module = std::fs::read(plugin_module()).unwrap();
    let module_file = modules.join("header-authorization.wasm");
    replace(&module_file, &module);
    let team = |values: &str, body: &str| {
        format!(
            "  - plugin: header-authorization\n    name: team\n    phase: AUTHZ\n    config: {{header: x-team, values: [{values}], deny: {{body: \"{body}\\n\"}}}}\n"
        )
    };
    let level = |phase: &str| {
        format!(
            "  - plugin: header-authorization\n    name: level\n    phase: {phase}\n    config: {{header: x-level, values: [gold], deny: {{body: \"level\\n\"}}}}\n"
        )
    };
    let file = gateway_file(&dir, "swap", &team("red", "team v1"));
    let run = Run::start(&file, &modules, true);
    run.wait_output("watching", 1, Duration::from_secs(10));
    let load = Load::start(run.addr, &[("x-team", "red")]);
    let start = Instant::now();
    let denied = |body: &str| Outcome::Denied(format!("{body}\n"));
    let limit = Duration::from_secs(30);
    let mut swaps: Vec<(&str, Duration)> = Vec::new();
    load.wait_for(start, &Outcome::Passed, limit);

    // (what, new gateway plugins, outcome before, outcome after)
    let behaviour_changes = [
        (
            "config change (one filter's ECDS)",
            team("blue", "team v2"),
            Outcome::Passed,
            denied("team v2"),
        ),
        (
            "filter added in AUTHN (listener + new ECDS)",
            team("blue", "team v2") + &level("AUTHN"),
            denied("team v2"),
            denied("level"),
        ),
        (
            "filter moved to STATS (listener, new order)",
            team("blue", "team v2") + &level("STATS"),
            denied("level"),
            denied("team v2"),
        ),
    ];
    let mut swaps_seen = 0;
    for (what, plugins, before, after) in behaviour_changes {
        let t = Instant::now();
        gateway_file(&dir, "swap", &plugins);
        let took = load.wait_for(t, &after, limit);
        swaps_seen += 1;
        run.wait_output("swapped", swaps_seen, limit);
        // Once every worker has the new behaviour, hold it a moment.
        let settled = load.wait_steady(t, &after, 40, limit);
        std::thread::sleep(Duration::from_millis(700));
        for (at, outcome) in load.since(t) {
            assert!(
                outcome == before || outcome == after,
                "{what}: unexpected {outcome:?}"
            );
            if at >= settled {
                assert_eq!(outcome, after, "{what}: old behaviour came back");
            }
        }
        swaps.push((what, took));
    }
    let steady = denied("team v2");

    // A config the plugin refuses: an error naming the field, nothing swapped.
    let t = Instant::now();
    gateway_file(
        &dir,
        "swap",
        &(team("blue", "team v2").replace("deny: {", "deny: {stauts: 1, ") + &level("STATS")),
    );
    run.wait_output(
        "plugins[0] (team): config.deny.stauts: unknown field",
        1,
        limit,
    );
    run.wait_output("the running stack is unchanged", 1, limit);
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));
    gateway_file(&dir, "swap", &(team("blue", "team v2") + &level("STATS")));
    run.wait_output("nothing to swap", 1, limit);

    // New code: both filters move to the new module; behaviour stays.
    let t = Instant::now();
    let new_module = rebuilt(&module, "v2");
    replace(&module_file, &new_module);
    swaps_seen += 1;
    run.wait_output("swapped", swaps_seen, limit);
    let code_swap = t.elapsed();
    let sha = {
        use std::fmt::Write;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&new_module);
        digest.iter().take(8).fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    let dump = Request::get("/config_dump?resource=ecds_filters")
        .send(run.admin)
        .text();
    assert_eq!(
        dump.matches(&format!("header-authorization-{sha}.wasm"))
            .count(),
        2,
        "both filters run the new module:\n{dump}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));

    // A broken module: refused before Envoy sees it, the running stack stays.
    let t = Instant::now();
    replace(&module_file, &module[..module.len() / 2]);
    run.wait_output("the running stack is unchanged", 2, limit);
    assert!(
        run.output()
            .contains("envoy --mode validate refused the generated config"),
        "{}",
        run.output()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));

    // Back to a good module and a config that lets the request through.
    let t = Instant::now();
    replace(&module_file, &module);
    gateway_file(&dir, "swap", &team("red, blue", "team v3"));
    let back = load.wait_for(t, &Outcome::Passed, limit);
    swaps.push(("module back + filter removed + config", back));

    // Stop the load before Envoy, so every request counted had a running stack.
    let outcomes = load.finish();
    drop(run);
    let total = outcomes.len();
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .map(|(_, o)| o)
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .collect();
    let mut report = format!("hot swap: {total} requests sent, {} failed\n", failed.len());
    for (what, took) in &swaps {
        report += &format!(
            "hot swap: {what}: new behaviour live after {} ms\n",
            took.as_millis()
        );
    }
    report += &format!(
        "hot swap: module swap confirmed by xtask after {} ms\n",
        code_swap.as_millis()
    );
    // Also kept in a file: cargo test shows a passing test's output only with --nocapture.
    print!("{report}");
    let _ = std::fs::write(target_dir().join("e2e").join("hot-swap.txt"), &report);
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(total > 100, "only {total} requests were sent");
}
