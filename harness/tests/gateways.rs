//! Gateways end to end, through the real `cargo xtask` binary: `run` chains a
//! gateway's plugins the way Istio does (phase, priority, name), its Envoy config
//! passes `envoy --mode validate`, Ctrl-C stops everything, `run --watch` swaps
//! configs, filter sets and modules under load without failing a request, and
//! `build-all` writes manifests (with the real modules' sha256) or refuses bad files.

use harness::envoy::{dist_dir, end_with_parent, envoy_bin, target_dir, SIGTERM};
use harness::scratch;
use harness::Request;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The xtask binary, as `cargo xtask test` passes it.
fn xtask_bin() -> PathBuf {
    match std::env::var_os("XTASK_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => panic!("XTASK_BIN is not set: run the end-to-end tests with `cargo xtask test`"),
    }
}

/// Replaces `path` by atomic rename, as editors and build tools do.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Runs a command that should end by itself, giving up (killing it) after 60 s, so
/// a regression that leaves `xtask run` serving fails the test instead of hanging it.
fn output_within_a_minute(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{cmd:?} still running after 60 s");
        }
    }
}

fn gateway_file(dir: &Path, name: &str, plugins: &str) -> PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    replace(
        &file,
        format!(
            "name: {name}\nnamespace: test\nselector: {{app: test}}\nurl: oci://r.example.com/p\nplugins:\n{plugins}"
        )
        .as_bytes(),
    );
    file
}

/// `cargo xtask run` as a child process, its output collected as it comes.
struct Run {
    child: Child,
    output: Arc<Mutex<String>>,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Run {
    fn start(gateway: &Path, modules: &Path, watch: bool) -> Run {
        let mut cmd = Command::new(xtask_bin());
        cmd.arg("run")
            .arg("--gateways")
            .arg(gateway)
            .arg("--modules")
            .arg(modules)
            .args(["--port", "0"])
            .env("ENVOY_BIN", envoy_bin())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if watch {
            cmd.arg("--watch");
        }
        // SIGTERM is xtask's Ctrl-C: it stops its Envoy on the way out.
        end_with_parent(&mut cmd, SIGTERM);
        let mut child = cmd.spawn().expect("start xtask run");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let mut run = Run {
            child,
            output,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let start = Instant::now();
        loop {
            let text = run.output();
            if let Some(line) = text.lines().find(|l| l.starts_with("listening on http://")) {
                // listening on http://127.0.0.1:P (admin http://127.0.0.1:A)
                let mut urls = line.split("http://").skip(1).map(|s| {
                    let addr = s.split([' ', ')']).next().unwrap_or_default();
                    addr.parse().unwrap()
                });
                run.addr = urls.next().unwrap();
                run.admin = urls.next().unwrap();
                return run;
            }
            if let Ok(Some(status)) = run.child.try_wait() {
                panic!("xtask run exited ({status}):\n{text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "xtask run not listening after 90 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output holds `needle` `count` times.
    fn wait_output(&self, needle: &str, count: usize, limit: Duration) {
        let start = Instant::now();
        while self.output().matches(needle).count() < count {
            assert!(
                start.elapsed() < limit,
                "no {needle:?} (#{count}) in xtask's output within {limit:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn get(&self, headers: &[(&str, &str)]) -> harness::Response {
        let mut req = Request::get("/");
        for (n, v) in headers {
            req = req.header(n, v);
        }
        req.send(self.addr)
    }

    /// Ctrl-C: SIGINT to xtask, which must stop Envoy and exit.
    fn interrupt(&mut self) -> ExitStatus {
        assert!(self.sigint(), "could not signal xtask run");
        match self.wait_exit(Duration::from_secs(15)) {
            Some(status) => status,
            None => panic!("xtask run ignored SIGINT:\n{}", self.output()),
        }
    }

    fn sigint(&self) -> bool {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// xtask's exit status, if it exits within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Run {
    /// Ctrl-C first, so xtask stops its Envoy; SIGKILL if it does not exit.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if !self.sigint() || self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn plugin_module() -> PathBuf {
    let module = dist_dir().join("header-authorization.wasm");
    assert!(
        module.is_file(),
        "{} is missing: run `cargo xtask test`",
        module.display()
    );
    module
}

/// Two header-authorization instances, alpha and beta, each with its own header
/// and deny body, arranged in the file in the given order.
fn pair(first: (&str, &str), second: (&str, &str)) -> String {
    let instance = |(name, fields): (&str, &str)| {
        format!(
            "  - plugin: header-authorization\n    name: {name}\n{fields}    config: {{header: x-{name}, deny: {{body: \"{name}\\n\"}}}}\n"
        )
    };
    instance(first) + &instance(second)
}

#[test]
fn run_chains_filters_by_phase_then_priority_then_name() {
    let dir = scratch("gateways-order");
    let modules = plugin_module().parent().unwrap().to_path_buf();
    // (case, file's first instance, second instance, which runs first)
    let cases = [
        (
            "different phases: AUTHN before STATS, whatever the names",
            ("alpha", "    phase: STATS\n"),
            ("beta", "    phase: AUTHN\n"),
            "beta",
        ),
        (
            "different phases: STATS before unspecified",
            ("alpha", ""),
            ("beta", "    phase: STATS\n    priority: -100\n"),
            "beta",
        ),
        (
            "one phase, the higher priority first",
            ("alpha", "    phase: AUTHZ\n    priority: 1\n"),
            ("beta", "    phase: AUTHZ\n    priority: 10\n"),
            "beta",
        ),
        (
            "one phase, the higher priority first, whatever the file order",
            ("beta", "    phase: AUTHZ\n    priority: -10\n"),
            ("alpha", "    phase: AUTHZ\n    priority: 10\n"),
            "alpha",
        ),
        (
            "equal priorities: by name, not by file order",
            ("beta", "    phase: AUTHZ\n    priority: 5\n"),
            ("alpha", "    phase: AUTHZ\n    priority: 5\n"),
            "alpha",
        ),
    ];
    for (case, first, second, expected) in cases {
        let other = if expected == "alpha" { "beta" } else { "alpha" };
        let file = gateway_file(&dir, "order", &pair(first, second));
        let mut run = Run::start(&file, &modules, false);
        let output = run.output();
        assert!(
            output.contains(&format!("  1. {expected}"))
                && output.contains(&format!("  2. {other}")),
            "{case}: printed order:\n{output}"
        );
        // With no headers, the first filter in the chain answers.
        let denied = run.get(&[]);
        assert_eq!(denied.status, 403, "{case}");
        assert_eq!(denied.text(), format!("{expected}\n"), "{case}");
        // Past the first, the second answers; past both, the upstream does.
        let header = format!("x-{expected}");
        let denied = run.get(&[(&header, "true")]);
        assert_eq!(denied.text(), format!("{other}\n"), "{case}");
        let other_header = format!("x-{other}");
        let passed = run.get(&[(&header, "true"), (&other_header, "true")]);
        assert_eq!(passed.status, 200, "{case}: {}", passed.text());
        assert_eq!(passed.echoed().path, "/", "{case}");
        assert!(run.interrupt().success(), "{case}");
    }
}

#[test]
fn run_config_passes_envoy_validate_and_ctrl_c_stops_everything() {
    let dir = scratch("gateways-checks");
    let modules = plugin_module().parent().unwrap().to_path_buf();
    let file = gateway_file(
        &dir,
        "checks",
        "  - plugin: header-authorization\n    name: open\n    phase: AUTHN\n    failStrategy: FAIL_OPEN\n    env: [{name: REALM, value: demo}, {name: HOME, valueFrom: HOST}]\n    config: {header: x-a}\n\
         \x20 - plugin: header-authorization\n    name: reload\n    phase: AUTHZ\n    failStrategy: FAIL_RELOAD\n",
    );
    let mut run = Run::start(&file, &modules, false);
    let run_dir = target_dir().join("run").join("checks");
    for config in [
        run_dir.join("envoy-static.json"),
        run_dir.join("envoy").join("envoy.json"),
    ] {
        let out = Command::new(envoy_bin())
            .args(["--mode", "validate", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate:\n{}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The running Envoy got each instance's failure policy, env vars and config.
    let dump = Request::get("/config_dump?resource=ecds_filters").send(run.admin);
    let dump: Value = serde_json::from_slice(&dump.body).unwrap();
    let configs: Vec<&Value> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["ecds_filter"]["typed_config"]["config"])
        .collect();
    let find = |name: &str| {
        *configs
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no ECDS filter {name} in {dump}"))
    };
    let open = find("checks-open");
    assert_eq!(open["failure_policy"], "FAIL_OPEN");
    assert_eq!(
        open["vm_config"]["environment_variables"],
        serde_json::json!({"key_values": {"REALM": "demo"}, "host_env_keys": ["HOME"]})
    );
    assert_eq!(open["configuration"]["value"], r#"{"header":"x-a"}"#);
    assert_eq!(find("checks-reload")["failure_policy"], "FAIL_RELOAD");
    assert_eq!(run.get(&[("x-a", "true"), ("allow", "true")]).status, 200);

    let (addr, admin) = (run.addr, run.admin);
    assert!(run.interrupt().success(), "{}", run.output());
    assert!(run.output().contains("stopping Envoy"));
    for (what, a) in [("listener", addr), ("admin", admin)] {
        assert!(
            TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_err(),
            "Envoy's {what} {a} still answers after Ctrl-C"
        );
    }
}

/// What one request got: a status, and the body of a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Passed,
    Denied(String),
    Failed(String),
}

/// A bounded request loop (time and count) recording every outcome.
struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, Outcome)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                for _ in 0..200_000 {
                    if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(180) {
                        break;
                    }
                    // Stamped when sent: the log is in sending order, and a request
                    // sent after a moment is one Envoy saw after it.
                    let sent = Instant::now();
                    let resp = Request::get("/").header("x-team", "red").send(addr);
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

    fn since(&self, t: Instant) -> Vec<(Instant, Outcome)> {
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
    fn wait_for(&self, t: Instant, new: &Outcome, limit: Duration) -> Duration {
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
    fn wait_steady(&self, t: Instant, new: &Outcome, run: usize, limit: Duration) -> Instant {
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
    fn finish(mut self) -> Vec<(Instant, Outcome)> {
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
fn rebuilt(module: &[u8], tag: &str) -> Vec<u8> {
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
    let load = Load::start(run.addr);
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

#[test]
fn build_all_writes_manifests_with_the_modules_sha256_or_refuses_a_bad_file() {
    let dir = scratch("gateways-build-all");
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    let out = dir.join("out");
    std::fs::write(
        gateways.join("edge.yaml"),
        "name: edge\nnamespace: edge\nselector: {app: edge}\nurl: https://cdn.example.com/wasm\nplugins:\n  - {plugin: header-authorization, phase: AUTHZ, config: {header: x-team}}\n",
    )
    .unwrap();
    let build_all = || {
        let mut cmd = Command::new(xtask_bin());
        cmd.arg("build-all")
            .arg("--gateways")
            .arg(&gateways)
            .arg("--out")
            .arg(&out)
            .arg("--modules")
            .arg(dist_dir());
        output_within_a_minute(cmd)
    };
    let result = build_all();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let manifest =
        std::fs::read_to_string(out.join("edge").join("header-authorization.yaml")).unwrap();
    let sum = std::fs::read_to_string(dist_dir().join("header-authorization.wasm.sha256")).unwrap();
    let sha = sum.split_whitespace().next().unwrap();
    assert!(
        manifest.contains(&format!("  sha256: \"{sha}\"\n"))
            || manifest.contains(&format!("  sha256: {sha}\n")),
        "{manifest}"
    );
    assert!(manifest.contains("  url: https://cdn.example.com/wasm/header-authorization.wasm\n"));
    let before = std::fs::read(out.join("edge").join("header-authorization.yaml")).unwrap();

    std::fs::write(
        gateways.join("edge.yaml"),
        "name: edge\nnamespace: edge\nselector: {app: edge}\nurl: https://cdn.example.com/wasm\nplugins:\n  - {plugin: header-authorization, name: team, config: {values: []}}\n",
    )
    .unwrap();
    let result = build_all();
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains(
            "edge.yaml: plugins[0] (team): config.values: must list at least one accepted value"
        ),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out.join("edge").join("header-authorization.yaml")).unwrap(),
        before,
        "a refused build touched the manifests"
    );
    assert!(!out.join("edge").join("team.yaml").exists());
}

#[test]
fn run_refuses_a_bad_gateway_or_a_busy_port_up_front() {
    let dir = scratch("gateways-refusals");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(xtask_bin());
        cmd.arg("run")
            .args(args)
            .args(["--modules", &dist_dir().display().to_string()])
            .env("ENVOY_BIN", envoy_bin());
        let out = output_within_a_minute(cmd);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let bad = gateway_file(
        &dir,
        "bad",
        "  - {plugin: header-authorization, name: team, phase: AUTHN, priority: 99999999999}\n",
    );
    let (code, stderr) = run(&["--gateways", &bad.display().to_string(), "--port", "0"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("bad.yaml: plugins[0] (team): priority: must be -2147483648..=2147483647, got 99999999999"),
        "{stderr}"
    );
    let (code, stderr) = run(&[
        "--gateways",
        &dir.display().to_string(),
        "--gateway",
        "nope",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no gateway named 'nope'"), "{stderr}");

    let good = gateway_file(&dir, "good", "  - plugin: header-authorization\n");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (code, stderr) = run(&["--gateways", &good.display().to_string(), "--port", &port]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn run_hosts_the_example_ingress_with_all_four_plugins_and_the_demo_auth_service() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("gateways")
        .join("ingress.yaml");
    let run = Run::start(&examples, &dist_dir(), false);
    let out = run.output();
    for name in [
        "security-headers",
        "tenant",
        "admin-basic-auth",
        "ext-auth",
        "team",
        "api-version",
    ] {
        assert!(
            out.contains(name),
            "{name} missing from the printed chain:\n{out}"
        );
    }
    let full = [
        ("x-tenant", "acme"),
        ("authorization", "Bearer demo"),
        ("x-team", "red"),
        ("x-api-version", "v1"),
    ];
    // Every prefix of the printed curl walk is denied by the next plugin, with the
    // security headers added even to the denials (response-headers runs first).
    let denials = [
        (401, "unknown tenant\n"),
        (401, "demo auth service"),
        (403, "team not allowed"),
        (400, "unsupported API version"),
    ];
    for (n, (status, body)) in denials.iter().enumerate() {
        let resp = run.get(&full[..n]);
        assert_eq!(
            resp.status,
            *status,
            "with {:?}: {}",
            &full[..n],
            resp.text()
        );
        assert!(
            resp.text().starts_with(body),
            "with {:?}: {}",
            &full[..n],
            resp.text()
        );
        assert_eq!(
            resp.header("x-frame-options"),
            Some("DENY"),
            "{:?}",
            resp.headers
        );
    }
    // The demo auth service's denial reaches the client with its www-authenticate.
    let demo = run.get(&full[..1]);
    assert_eq!(
        demo.header("www-authenticate"),
        Some("Bearer realm=\"demo\"")
    );
    // Everything present: the echo upstream answers, and sees the identity the demo
    // auth service returned (dispatch-auth's allowed_upstream_headers).
    let resp = run.get(&full);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.echoed().header_value("x-user-id"), Some("demo"));
    // basic-auth guards /admin only, asking for its realm.
    let admin = Request::get("/admin")
        .header("x-tenant", "acme")
        .send(run.addr);
    assert_eq!(admin.status, 401);
    assert_eq!(
        admin.header("www-authenticate"),
        Some("Basic realm=\"admin\"")
    );
}
