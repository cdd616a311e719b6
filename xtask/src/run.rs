//! `cargo xtask run`: one gateway's plugins in a real Envoy on 127.0.0.1, chained
//! the way Istio chains them, with the echo upstream behind (and the demo auth
//! service for plugins that call one). Envoy reads its listener, clusters and each
//! filter from files (xDS from the file system), so `--watch` can rebuild and swap
//! filters in the running Envoy (a chain of fused instances is one filter): a module
//! or config change rewrites one filter's extension config (ECDS, what Istio uses
//! for WasmPlugins); a change to the set or order of filters, or to what is fused,
//! rewrites the listener (LDS). Files are replaced by atomic rename,
//! and modules are named by their content so Envoy sees a new file for new code.

mod stack;
mod watch;

use crate::build::CHAIN;
use crate::envoy;
use crate::gateway::{self, Gateway};
use crate::plugins::DEMO_TOKEN;
use crate::util::{Args, Result};
use harness::envoy::target_dir;
use harness::Envoy;
use stack::Stack;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use watch::Watcher;

const POLL: Duration = Duration::from_millis(200);

struct Options {
    gateways: PathBuf,
    gateway: Option<String>,
    port: u16,
    watch: bool,
    modules: Option<PathBuf>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        gateways: gateway::default_dir(),
        gateway: None,
        port: 10000,
        watch: false,
        modules: None,
    };
    let mut args = Args::new("run", args);
    while let Some(flag) = args.flag() {
        match flag {
            "--gateways" => opts.gateways = gateway::given(args.value(flag)?)?,
            "--gateway" => opts.gateway = Some(args.value(flag)?),
            "--port" => opts.port = args.parsed(flag, "0..=65535")?,
            "--watch" => opts.watch = true,
            "--modules" => opts.modules = Some(PathBuf::from(args.value(flag)?)),
            other => return Err(args.unexpected(other)),
        }
    }
    Ok(opts)
}

pub fn run_command(args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let mut gateways = gateway::select(&opts.gateways, opts.gateway.as_deref())?;
    if gateways.is_empty() {
        return Err(format!(
            "run: no gateway files in {}",
            gateway::display(&opts.gateways)
        ));
    }
    if gateways.len() > 1 {
        let others: Vec<&str> = gateways.iter().skip(1).map(|g| g.name.as_str()).collect();
        println!(
            "running gateway '{}' (also found: {}; pick one with --gateway NAME)",
            gateways[0].name,
            others.join(", ")
        );
    }
    let gateway = gateways.swap_remove(0);
    let port = match opts.port {
        0 => free_port()?,
        p => {
            // Envoy would only log a refused listener; say it up front.
            TcpListener::bind(("127.0.0.1", p)).map_err(|e| {
                format!("run: cannot listen on 127.0.0.1:{p} ({e}); pick another --port (0 picks a free one)")
            })?;
            p
        }
    };
    let bin = envoy::find()?;
    // The harness starts the Envoy that ENVOY_BIN names.
    std::env::set_var("ENVOY_BIN", &bin);
    stop_on_signals();

    let dir = target_dir().join("run").join(&gateway.name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut stack = Stack::new(&bin, &dir, port, opts.modules.clone())?;
    stack.prepare_modules(&gateway, true)?;
    stack.apply(&gateway)?;
    println!("envoy --mode validate: the generated config and modules are valid");
    let mut envoy = stack.launch()?;
    stack.commit();
    print(&stack, &gateway, &envoy);

    let mut watcher = opts
        .watch
        .then(|| Watcher::new(&gateway.file, opts.modules.as_deref()));
    if let Some(w) = &watcher {
        println!(
            "watching {} for changes; Ctrl-C stops Envoy and exits",
            w.describe()
        );
    } else {
        println!("Ctrl-C stops Envoy and exits");
    }
    let file = gateway.file.clone();
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        if let Some(status) = envoy.exited() {
            let log = envoy.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "Envoy exited ({status}); the end of its log:\n{}",
                tail.join("\n")
            ));
        }
        let Some(w) = watcher.as_mut() else { continue };
        let Some(change) = w.poll() else { continue };
        println!("\n== change: {}", change.what);
        match stack.reload(&file, change.sources, &envoy) {
            Ok(()) => {}
            Err(e) => println!("error: {e}\nthe running stack is unchanged"),
        }
    }
    println!("stopping Envoy");
    drop(envoy);
    Ok(())
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
fn stop_on_signals() {
    extern "C" fn on_signal(_: i32) {
        STOP.store(true, Ordering::SeqCst);
    }
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

#[cfg(not(unix))]
fn stop_on_signals() {}

/// The filters in chain order, a chain's instances in brackets: `a -> [b c] -> d`.
fn chain_names(gateway: &Gateway) -> String {
    let plan = gateway.filters();
    let names: Vec<String> = plan
        .filters
        .iter()
        .map(|f| {
            if f.is_chain() {
                format!("[{}]", f.names(" "))
            } else {
                f.names("")
            }
        })
        .collect();
    names.join(" -> ")
}

/// What `run` started and how to try it: the filters (each chain with its
/// instances, and why neighbours were not fused), the servers, curl commands.
fn print(stack: &Stack, gateway: &Gateway, envoy: &Envoy) {
    let url = format!("http://{}", envoy.addr());
    let plan = gateway.filters();
    let chains = plan.filters.iter().filter(|f| f.is_chain()).count();
    let fused = match chains {
        0 => String::new(),
        n => format!(
            " ({} instances fused into {n} chain filter{})",
            plan.fused(),
            if n == 1 { "" } else { "s" }
        ),
    };
    println!(
        "\ngateway {} ({}): filters in chain order{fused}",
        gateway.name, gateway.display
    );
    let width = gateway
        .instances
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or(0);
    let mut n = 0;
    let mut splits = plan.splits.iter();
    for filter in &plan.filters {
        let indent = if filter.is_chain() {
            println!(
                "  chain {}: one filter running {CHAIN}.wasm",
                crate::local::envoy_name(gateway, filter)
            );
            "    "
        } else {
            "  "
        };
        for i in &filter.instances {
            n += 1;
            let matches = if i.matches.is_some() {
                "  (match is Istio's: run applies the filter to all traffic)"
            } else {
                ""
            };
            println!(
                "{indent}{n}. {:<width$}  {:<22} {:<17} priority {:<6} {}{matches}",
                i.name,
                i.plugin,
                i.phase.as_str(),
                i.priority,
                i.fail_strategy.as_str(),
            );
        }
        if n < gateway.instances.len() {
            if let Some(split) = splits.next().filter(|s| s.wanted(gateway)) {
                println!(
                    "  ({} not fused with {}: {})",
                    split.after.name,
                    split.before.name,
                    split.reasons()
                );
            }
        }
    }
    println!("  -> echo upstream http://{}", stack.echo_addr);
    if let Some(auth) = &stack.auth {
        println!(
            "  demo auth service http://{} (allows Authorization: {DEMO_TOKEN})",
            auth.addr()
        );
    }
    println!("\nlistening on {url} (admin http://{})", envoy.admin());
    println!("try:");
    for (command, note) in curl_commands(&url, gateway) {
        println!("  {command}\n      # {note}");
    }
    println!(
        "files: {} (envoy-static.json is the same stack as one static Envoy config; \
         Envoy's log: {})",
        gateway::display(&stack.dir),
        gateway::display(&stack.log_path())
    );
}

/// Curl commands that show each plugin at work: with no headers, then adding what
/// gets past each denying instance in chain order (inside a chain as well),
/// ending with a request the whole chain lets through to the echo upstream.
pub fn curl_commands(url: &str, gateway: &Gateway) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut commands = Vec::new();
    let command = |headers: &[(String, String)]| {
        let mut c = format!("curl -i {url}/");
        for (n, v) in headers {
            c.push_str(&format!(" -H {}", shell_quote(&format!("{n}: {v}"))));
        }
        c
    };
    for instance in gateway.chain() {
        let Some(pass) = &instance.checked.pass_headers else {
            continue;
        };
        commands.push((command(&headers), format!("denied by {}", instance.name)));
        for header in pass {
            if !headers.contains(header) {
                headers.push(header.clone());
            }
        }
    }
    commands.push((
        command(&headers),
        "passes every filter: the echo upstream answers with the request it saw".into(),
    ));
    commands
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A gateway from YAML text; the tests of `run`'s modules share it and [`GW`].
    pub(super) fn gateway(text: &str) -> Gateway {
        gateway::parse(Path::new("gw.yaml"), "gw.yaml", text).unwrap()
    }

    pub(super) const GW: &str = "\
name: gw
namespace: d
selector: {app: a}
url: oci://r/p
plugins:
  - plugin: header-authorization
    name: team
    phase: AUTHZ
    config: {header: x-team, values: [red, blue]}
  - plugin: header-authorization
    name: tenant
    phase: AUTHN
    failStrategy: FAIL_OPEN
    config: {header: x-tenant, values: [\"it's\"]}
    env: [{name: A, value: '1'}, {name: PATH, valueFrom: HOST}]
";

    #[test]
    fn curl_commands_walk_the_chain() {
        let commands = curl_commands("http://127.0.0.1:1", &gateway(GW));
        let expected = [
            ("curl -i http://127.0.0.1:1/", "denied by tenant"),
            (
                r"curl -i http://127.0.0.1:1/ -H 'x-tenant: it'\''s'",
                "denied by team",
            ),
            (
                r"curl -i http://127.0.0.1:1/ -H 'x-tenant: it'\''s' -H 'x-team: red'",
                "passes every filter: the echo upstream answers with the request it saw",
            ),
        ];
        let got: Vec<(&str, &str)> = commands
            .iter()
            .map(|(c, n)| (c.as_str(), n.as_str()))
            .collect();
        assert_eq!(got, expected);
        // Fused, the instances are walked the same: each still denies on its own.
        let fused = GW
            .replace("plugins:", "chain: true\nplugins:")
            .replace("    phase: AUTHZ\n", "    phase: AUTHN\n    priority: -1\n    failStrategy: FAIL_OPEN\n    env: [{name: A, value: '1'}, {name: PATH, valueFrom: HOST}]\n");
        let fused = gateway(&fused);
        assert_eq!(fused.filters().filters.len(), 1);
        assert_eq!(curl_commands("http://127.0.0.1:1", &fused), commands);
    }
}
