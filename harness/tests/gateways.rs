//! Gateways end to end, through the real `cargo xtask` binary: `run` chains a
//! gateway's plugins the way Istio does (phase, priority, name), and a gateway
//! answers alike with its instances as separate filters and fused into chains
//! (`forms`); its Envoy config passes `envoy --mode validate`, Ctrl-C stops
//! everything, `run --watch` swaps configs, filter sets, chains and modules under
//! load without failing a request (`swap`), and `build-all` writes manifests (with
//! the real modules' sha256) or refuses bad files.

use harness::envoy::{dist_dir, end_with_parent, envoy_bin, target_dir, SIGTERM};
use harness::scratch;
use harness::Request;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The same gateways with and without chains: ordering and the example ingress.
#[path = "gateways/forms.rs"]
mod forms;
// run --watch: configs, filter sets and modules swapped under load.
#[path = "gateways/swap.rs"]
mod swap;
// run --watch with a chain: one instance's config, the chain module, refusals.
#[path = "gateways/swap_chain.rs"]
mod swap_chain;

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
    gateway_file_with(dir, name, "", plugins)
}

/// A gateway file with gateway-level lines `head` (`chain: true\n`, say).
fn gateway_file_with(dir: &Path, name: &str, head: &str, plugins: &str) -> PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    replace(
        &file,
        format!(
            "name: {name}\nnamespace: test\nselector: {{app: test}}\nurl: oci://r.example.com/p\n{head}plugins:\n{plugins}"
        )
        .as_bytes(),
    );
    file
}

/// Envoy's counters whose names start with one of `prefixes`, from its admin.
fn counters(admin: SocketAddr, prefixes: &[&str]) -> BTreeMap<String, u64> {
    let stats = Request::get("/stats").send(admin).text();
    stats
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            prefixes
                .iter()
                .any(|p| name.starts_with(p))
                .then(|| Some((name.to_string(), value.trim().parse().ok()?)))?
        })
        .collect()
}

/// `cargo xtask run` as a child process, its output collected as it comes.
struct Run {
    child: Child,
    output: Arc<Mutex<String>>,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Run {
    /// Starts `xtask run` and waits until it is listening.
    fn start(gateway: &Path, modules: &Path, watch: bool) -> Run {
        Run::spawn(gateway, modules, watch).listening()
    }

    /// Starts `xtask run` without waiting for it, so several can start at once.
    /// From this thread: xtask ends (its Ctrl-C) when the thread that started it
    /// does, so never from a helper thread.
    fn spawn(gateway: &Path, modules: &Path, watch: bool) -> Run {
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
        Run {
            child,
            output,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Waits until xtask says where it listens.
    fn listening(mut self) -> Run {
        let run = &mut self;
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
                return self;
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
            .arg("--schemas")
            .arg(out.with_file_name("schemas"))
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
        stderr.contains("edge.yaml: plugins[0] (team): config.values: must list at least one item"),
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
