//! A real Envoy for a test: the pieces of its config (wasm filters, clusters, the
//! bootstrap; `stack` puts them together), the process on free loopback ports
//! (hot restart off, so any number run at once and none leaves shared memory
//! behind), readiness, its log, and teardown.

use crate::http::{Protocol, Request, Response};
use crate::server::Server;
use crate::stack::Form;
use serde_json::{json, Value};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// How long a test waits for a log line (or a count of them) before failing. Envoy
/// writes a line moments after the event, but a busy two-core machine can delay
/// that by seconds; only a failing test waits this long.
pub const LOG_WAIT: Duration = Duration::from_secs(15);

/// The Envoy binary: `ENVOY_BIN`, as `cargo xtask test` sets it.
pub fn envoy_bin() -> PathBuf {
    match std::env::var_os("ENVOY_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => panic!("ENVOY_BIN is not set: run the end-to-end tests with `cargo xtask test`"),
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (which `cargo xtask` makes
/// absolute before running anything), else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where the built modules are: `PLUGIN_DIST`, else `<target>/dist`.
pub fn dist_dir() -> PathBuf {
    std::env::var_os("PLUGIN_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("dist"))
}

/// Where `cargo xtask test` puts the test-only modules (`harness/modules/*`): beside
/// `dist`, not in it, so they are never taken for plugins.
pub fn test_modules_dir() -> PathBuf {
    target_dir().join("test-modules")
}

/// A fresh, empty directory for one test's files, `<target>/e2e/<name>-<pid>`,
/// left in place afterwards for reading.
pub fn scratch(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    dir
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The module of `plugin`, which must have been built.
pub fn module(plugin: &str) -> PathBuf {
    let path = dist_dir().join(format!("{plugin}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask test` (it builds the modules first)",
        path.display()
    );
    path
}

/// The test-only module `name` (from `harness/modules/`), which must have been built.
pub fn test_module(name: &str) -> PathBuf {
    let path = test_modules_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask test` (it builds the test modules first)",
        path.display()
    );
    path
}

/// A wasm HTTP filter entry running `plugin` with `configuration` as its
/// `pluginConfig` (a JSON text, passed as-is so tests can send invalid JSON too).
pub fn wasm_filter(name: &str, plugin: &str, configuration: &str) -> Value {
    wasm_filter_at(name, &module(plugin), configuration)
}

/// [`wasm_filter`] for the module at `module` (a test module, say).
pub fn wasm_filter_at(name: &str, module: &Path, configuration: &str) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": WASM_TYPE,
            "config": wasm_plugin_config(name, module, configuration, &[]),
        }
    })
}

/// The `PluginConfig` inside a [`wasm_filter`] entry, to edit: its
/// `failure_policy`, or its `vm_config` (see [`own_vm`]).
pub fn plugin_config(filter: &mut Value) -> &mut Value {
    &mut filter["typed_config"]["config"]
}

/// Gives the instance of a [`wasm_filter`] entry a VM of its own, `vm_id`: for
/// what only separate VMs show (one VM's crash leaving another running). Without
/// it, instances of one module share a VM per worker, as in Istio.
pub fn own_vm(filter: &mut Value, vm_id: &str) {
    plugin_config(filter)["vm_config"]["vm_id"] = json!(vm_id);
}

/// The `envoy.extensions.wasm.v3.PluginConfig` for one instance: V8, env vars for
/// the VM, and no `vm_id`, as Istio configures a WasmPlugin, so instances of one
/// module with the same env share one VM per worker thread, each with a root
/// context (and configuration) of its own.
pub fn wasm_plugin_config(
    name: &str,
    module: &Path,
    configuration: &str,
    env: &[(String, String)],
) -> Value {
    let mut vm_config = json!({
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": module.display().to_string()}},
    });
    if !env.is_empty() {
        let vars: serde_json::Map<String, Value> =
            env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        vm_config["environment_variables"] = json!({"key_values": vars});
    }
    json!({
        "name": name,
        "root_id": name,
        "vm_config": vm_config,
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": configuration,
        },
    })
}

/// A STATIC cluster of one loopback endpoint.
pub fn static_cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "connect_timeout": "1s",
        "type": "STATIC",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": addr.ip().to_string(), "port_value": addr.port()
            }}}}]}]
        }
    })
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

/// A bootstrap with one loopback listener (port 0) whose HTTP filters are `filters`
/// followed by the router, routing everything to cluster `upstream`.
pub fn bootstrap(filters: &[Value], upstream: &str, clusters: &[Value]) -> Value {
    let mut http_filters = filters.to_vec();
    http_filters.push(router());
    json!({
        "node": {"id": "plugins-test", "cluster": "plugins-test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "main",
                        // Envoy's default, said out loud: the tests speak HTTP/1.1
                        // and h2c prior knowledge to this one listener.
                        "codec_type": "AUTO",
                        "route_config": {"virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": upstream, "timeout": "30s"}}]
                        }]},
                        "http_filters": http_filters,
                    }
                }]}]
            }],
            "clusters": clusters,
        }
    })
}

/// The HTTP connection manager's config inside a [`bootstrap`], to edit.
pub fn hcm(config: &mut Value) -> &mut Value {
    &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]
}

/// Signal numbers for [`end_with_parent`] (the same on every Linux architecture).
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// Has the kernel send `signal` to the child once the thread that spawns it ends.
/// `Drop` stops what a test started, panics included; this covers the parent that
/// never gets to run it (killed by a CI timeout or SIGKILL), which would otherwise
/// leave an Envoy serving on its port for good. So the child must be owned by the
/// thread that spawns it. Does nothing outside Linux.
pub fn end_with_parent(command: &mut Command, signal: i32) {
    #[cfg(target_os = "linux")]
    {
        use std::os::raw::{c_int, c_ulong};
        use std::os::unix::process::CommandExt;
        extern "C" {
            fn prctl(option: c_int, ...) -> c_int;
        }
        const PR_SET_PDEATHSIG: c_int = 1;
        let signal = signal as c_ulong;
        // SAFETY: runs in the forked child before exec; prctl is async-signal-safe
        // and changes only the child's own process attributes.
        unsafe {
            command.pre_exec(move || {
                prctl(PR_SET_PDEATHSIG, signal);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (command, signal);
}

/// A running Envoy; killed (with its servers stopped) when dropped.
pub struct Envoy {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log_path: PathBuf,
    echo: Option<Server>,
    /// How its stack's plugins became filters (`Separate` unless a [`crate::Stack`]
    /// said otherwise).
    pub(crate) form: Form,
}

impl Envoy {
    /// Starts Envoy with `config` in `dir` and waits until its listener is up.
    /// Returns Envoy's log if it exits or is not ready within 30 s.
    pub fn launch(
        dir: &Path,
        config: &Value,
        concurrency: usize,
        echo: Option<Server>,
    ) -> Result<Envoy, String> {
        Self::launch_with(dir, config, concurrency, "debug", echo)
    }

    /// [`Envoy::launch`] with the log level of the `wasm` component (the plugins').
    pub fn launch_with(
        dir: &Path,
        config: &Value,
        concurrency: usize,
        wasm_level: &str,
        echo: Option<Server>,
    ) -> Result<Envoy, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config_path = dir.join("envoy.json");
        let admin_path = dir.join("admin.txt");
        let log_path = dir.join("envoy.log");
        let text = serde_json::to_string_pretty(config).map_err(|e| e.to_string())?;
        std::fs::write(&config_path, text).map_err(|e| e.to_string())?;
        let log = File::create(&log_path).map_err(|e| e.to_string())?;
        let mut command = Command::new(envoy_bin());
        end_with_parent(&mut command, SIGKILL);
        let child = command
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            // Hot restart is what base ids and /dev/shm/envoy_shared_memory_* are
            // for; a killed Envoy never removes its segment, so without this every
            // test run would leave files behind.
            .args(["--disable-hot-restart", "--concurrency"])
            .arg(concurrency.to_string())
            // Access logs are flushed every 10 s by default: a test that adds one
            // (to read %RESPONSE_CODE_DETAILS%, say) would wait that long.
            .args(["--file-flush-interval-msec", "100"])
            .args(["--log-level", "info", "--component-log-level"])
            .arg(format!("wasm:{wasm_level}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", envoy_bin().display()))?;
        let mut envoy = Envoy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            echo,
            form: Form::Separate,
        };
        match envoy.wait_ready(&admin_path, Duration::from_secs(30)) {
            Ok(()) => Ok(envoy),
            Err(why) => {
                let _ = envoy.child.kill();
                let _ = envoy.child.wait();
                Err(format!("{why}\n{}", envoy.log()))
            }
        }
    }

    fn wait_ready(&mut self, admin_path: &Path, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("Envoy exited ({status})"));
            }
            if self.admin.port() == 0 {
                if let Some(addr) = std::fs::read_to_string(admin_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    self.admin = addr;
                }
            }
            if self.admin.port() != 0 {
                let ready = Request::get("/ready").send(self.admin);
                if ready.status == 200 {
                    let listeners = Request::get("/listeners?format=json").send(self.admin);
                    if let Some(addr) = listener_addr(&listeners) {
                        self.addr = addr;
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("Envoy not ready after {limit:?}"))
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time Envoy has used so far, all threads, from the kernel's schedstat
    /// (`perf` counters are not available on every machine; this always is on Linux).
    pub fn cpu_time(&self) -> Duration {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return Duration::ZERO;
        };
        let nanos: u64 = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(nanos)
    }

    /// The listener address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The echo upstream behind this Envoy.
    pub fn echo(&self) -> &Server {
        self.echo.as_ref().expect("this Envoy has an echo upstream")
    }

    /// Sends `request` through Envoy over the protocol `HARNESS_HTTP` names
    /// (HTTP/1.1 by default), so the same test runs over each.
    pub fn send(&self, request: &Request) -> Response {
        self.send_over(Protocol::from_env(), request)
    }

    /// Sends `request` through Envoy over `protocol`, whatever `HARNESS_HTTP`
    /// says: for what only one protocol can express, and for comparing the two.
    pub fn send_over(&self, protocol: Protocol, request: &Request) -> Response {
        request.send_over(protocol, self.addr)
    }

    /// `GET path` with `headers`, over the protocol `HARNESS_HTTP` names.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.get_over(Protocol::from_env(), path, headers)
    }

    /// `GET path` with `headers`, over `protocol`.
    pub fn get_over(&self, protocol: Protocol, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(path);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        self.send_over(protocol, &req)
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits up to `limit` for a log line containing `needle`; returns the line.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the plugins of this Envoy's stack were made into filters.
    pub fn form(&self) -> Form {
        self.form
    }

    /// The name of the gauge that holds the memory of the VM running `plugin`:
    /// the plugin's own module's, or the chain's in the chain form.
    pub fn memory_gauge(&self, plugin: &str) -> String {
        self.form.memory_gauge(plugin)
    }

    /// Envoy's counter or gauge `name` from the admin stats, if it exists.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = Request::get(&format!("/stats?filter=^{name}$")).send(self.admin);
        stats.text().lines().find_map(|l| {
            l.strip_prefix(&format!("{name}: "))
                .and_then(|v| v.trim().parse().ok())
        })
    }
}

impl Envoy {
    /// Envoy's exit status if it has exited (a long-running user of the harness, such
    /// as `cargo xtask run`, watches for that).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

fn listener_addr(listeners: &Response) -> Option<SocketAddr> {
    let doc: Value = serde_json::from_slice(&listeners.body).ok()?;
    let socket = &doc["listener_statuses"][0]["local_address"]["socket_address"];
    let ip = socket["address"].as_str()?;
    let port = socket["port_value"].as_u64()?;
    format!("{ip}:{port}").parse().ok()
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
