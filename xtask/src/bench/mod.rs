//! `cargo xtask bench`: what each plugin costs per request, in Envoy CPU time,
//! beside the native Envoy filter that does the same job. Each case runs in its own
//! Envoy (one worker) under 16 keep-alive connections; the cost is Envoy's CPU time
//! (all threads, from /proc schedstat) divided by the requests sent, minus the same
//! figure for an Envoy with no filter. `--soak` (in `soak/`) watches memory instead.

use crate::util::{Args, Result};
use crate::{build, envoy};
use harness::envoy::{hcm, static_cluster};
use harness::http::Connection;
use harness::{Reply, Request, Server, Stack};

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod soak;

const WARMUP: usize = 1000;
const CONNECTIONS: usize = 16;
const ROUNDS: usize = 3;

/// A user `alice` with password `secret`, as htpasswd `{SHA}` and as Basic credentials.
const ALICE_SHA: &str = "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
const ALICE_BASIC: &str = "Basic YWxpY2U6c2VjcmV0";

struct Case {
    name: &'static str,
    filters: Vec<Filter>,
    /// Request headers that make every filter of the case let the request through.
    headers: &'static [(&'static str, &'static str)],
}

enum Filter {
    Plugin(&'static str, Value),
    Native(Value),
}

fn cases() -> Vec<Case> {
    use Filter::{Native, Plugin};
    let ext_authz = json!({
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "http_service": {"server_uri": {"uri": "http://auth", "cluster": "auth", "timeout": "1s"}},
            "allowed_headers": {"patterns": [{"exact": "authorization"}]},
        }
    });
    let dispatch = |ttl_ms: u64| json!({"cluster": "auth", "allowed_headers": ["authorization"], "cache": {"ttl_ms": ttl_ms}});
    vec![
        Case {
            name: "no filter (baseline)",
            filters: vec![],
            headers: &[],
        },
        Case {
            name: "header-authorization",
            filters: vec![Plugin("header-authorization", json!({}))],
            headers: &[("allow", "true")],
        },
        Case {
            name: "  native rbac (header match)",
            filters: vec![Native(json!({
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {"action": "ALLOW", "policies": {"allow": {
                        "permissions": [{"any": true}],
                        "principals": [{"header": {"name": "allow", "string_match": {"exact": "true"}}}]
                    }}}
                }
            }))],
            headers: &[("allow", "true")],
        },
        Case {
            name: "basic-auth ({SHA} user)",
            filters: vec![Plugin(
                "basic-auth",
                json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": [ALICE_SHA]}]}),
            )],
            headers: &[("authorization", ALICE_BASIC)],
        },
        Case {
            name: "  native basic_auth",
            filters: vec![Native(json!({
                "name": "envoy.filters.http.basic_auth",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
                    "users": {"inline_string": ALICE_SHA}
                }
            }))],
            headers: &[("authorization", ALICE_BASIC)],
        },
        Case {
            name: "response-headers (set one)",
            filters: vec![Plugin(
                "response-headers",
                json!({"response_headers": [{"name": "hello", "value": "world"}]}),
            )],
            headers: &[],
        },
        Case {
            name: "  native header_mutation",
            filters: vec![Native(json!({
                "name": "envoy.filters.http.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {"response_mutations": [{"append": {
                        "header": {"key": "hello", "value": "world"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
                    }}]}
                }
            }))],
            headers: &[],
        },
        Case {
            name: "dispatch-auth (call per request)",
            filters: vec![Plugin("dispatch-auth", dispatch(0))],
            headers: &[("authorization", "Bearer demo")],
        },
        Case {
            name: "dispatch-auth (cache hits)",
            filters: vec![Plugin("dispatch-auth", dispatch(600_000))],
            headers: &[("authorization", "Bearer demo")],
        },
        Case {
            name: "  native ext_authz",
            filters: vec![Native(ext_authz)],
            headers: &[("authorization", "Bearer demo")],
        },
        Case {
            name: "all four plugins stacked",
            filters: stacked(),
            headers: STACKED_HEADERS,
        },
    ]
}

/// The four plugins in one chain, as a gateway would run them; the soak runs the same.
fn stacked() -> Vec<Filter> {
    vec![
        Filter::Plugin(
            "response-headers",
            json!({"response_headers": [{"name": "hello", "value": "world"}]}),
        ),
        Filter::Plugin("header-authorization", json!({})),
        Filter::Plugin(
            "basic-auth",
            json!({"basic_auth_rules": [{"prefix": "/", "request_methods": ["GET"], "credentials": [ALICE_SHA]}]}),
        ),
        Filter::Plugin(
            "dispatch-auth",
            json!({"cluster": "auth", "allowed_headers": ["x-token"], "cache": {"ttl_ms": 600_000}}),
        ),
    ]
}

/// Request headers that every filter of [`stacked`] lets through.
const STACKED_HEADERS: &[(&str, &str)] = &[
    ("allow", "true"),
    ("authorization", ALICE_BASIC),
    ("x-token", "demo"),
];

pub fn run_command(args: &[String]) -> Result<()> {
    let mut requests = None;
    let mut soak = false;
    let mut only = None;
    let mut args = Args::new("bench", args);
    while let Some(flag) = args.flag() {
        match flag {
            "--requests" => {
                requests = Some(
                    args.parsed::<std::num::NonZeroUsize>(flag, "a positive number")?
                        .get(),
                )
            }
            "--soak" => soak = true,
            "--plugins" => only = Some(args.value(flag)?),
            other => return Err(args.unexpected(other)),
        }
    }
    if only.is_some() && !soak {
        return Err("bench: --plugins goes with --soak".into());
    }
    if soak {
        soak::check(only.as_deref())?;
    }
    build::build(&build::plugins()?)?;
    let envoy_bin = envoy::find()?;
    std::env::set_var("ENVOY_BIN", envoy_bin);
    std::env::set_var("PLUGIN_DIST", build::dist_dir());
    if soak {
        return soak::run(requests.unwrap_or(soak::REQUESTS), only.as_deref());
    }
    let requests = requests.unwrap_or(10000);

    // The auth service answers from this process, so its CPU is not Envoy's; the
    // route answers directly, so no upstream shares the machine's two cores either.
    let auth = Server::start(|_| Reply::status(200));
    let cases = cases();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut rates: Vec<f64> = vec![0.0; cases.len()];
    // Rounds interleave the cases, so a burst of other load on the machine spreads
    // over all of them instead of skewing one; the median of the rounds is shown.
    for _ in 0..ROUNDS {
        for (i, case) in cases.iter().enumerate() {
            let envoy = start(case, &auth)?;
            let mut request = Request::get("/bench");
            for (name, value) in case.headers {
                request = request.header(name, value);
            }
            drive(&envoy, &request, WARMUP).map_err(|e| format!("{}: {e}", case.name))?;
            let (cpu0, t0) = (envoy.cpu_time(), Instant::now());
            drive(&envoy, &request, requests).map_err(|e| format!("{}: {e}", case.name))?;
            let (cpu, wall) = (envoy.cpu_time() - cpu0, t0.elapsed());
            samples[i].push(cpu / requests as u32);
            rates[i] += requests as f64 / wall.as_secs_f64() / ROUNDS as f64;
        }
    }
    println!(
        "\n{requests} requests per case and round, {ROUNDS} rounds, {CONNECTIONS} keep-alive \
         connections, Envoy --concurrency 1, direct response"
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "case", "CPU/request", "added", "req/s"
    );
    let mut baseline = None;
    for ((case, mut per_request), rate) in cases.iter().zip(samples).zip(rates) {
        per_request.sort();
        let median = per_request[per_request.len() / 2];
        let base = *baseline.get_or_insert(median);
        println!(
            "{:<34} {:>9.1} µs {:>+9.1} µs {:>10.0}",
            case.name,
            micros(median),
            micros(median) - micros(base),
            rate
        );
    }
    Ok(())
}

/// An Envoy running `case`'s filters in front of a direct 200 response.
fn start(case: &Case, auth: &Server) -> Result<harness::Envoy> {
    let mut stack = Stack::new()
        .quiet()
        .cluster(static_cluster("auth", auth.addr()))
        .patch(|config| {
            hcm(config)["route_config"]["virtual_hosts"][0]["routes"][0] = json!({
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}
            });
        });
    for filter in &case.filters {
        stack = match filter {
            Filter::Plugin(plugin, config) => stack.plugin(plugin, config.clone()),
            Filter::Native(filter) => stack.filter(filter.clone()),
        };
    }
    stack
        .try_start()
        .map_err(|log| format!("{}: Envoy did not start:\n{log}", case.name))
}

/// Sends `total` requests over [`CONNECTIONS`] keep-alive connections at once, so
/// Envoy's worker is kept busy and batches its wake-ups as under real load; one
/// sequential client would mostly measure the cost of waking Envoy up.
fn drive(envoy: &harness::Envoy, request: &Request, total: usize) -> Result<()> {
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

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
