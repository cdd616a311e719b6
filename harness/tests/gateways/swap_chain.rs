//! `run --watch` with a chain of fused instances, under load: a change of one
//! instance's config swaps its chain's filter alone, new chain code swaps the
//! chain's filter, a config the chain refuses (at load, or by Envoy's
//! validation) leaves the running stack as it was, and a change of what is fused
//! is swapped in with the listener at once: no request skips an instance.

use super::swap::{rebuilt, Load, Outcome};
use super::{counters, gateway_file_with, plugin_module, replace, Run};
use harness::envoy::{dist_dir, target_dir};
use harness::{scratch, Request};
use std::time::{Duration, Instant};

/// The digest `run` names a module copy with: the first 8 bytes of its sha256.
fn short_sha(module: &[u8]) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(module);
    digest.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The last line of xtask's output that starts with `prefix`.
fn last_line(run: &Run, prefix: &str) -> String {
    let out = run.output();
    out.lines()
        .rev()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}:\n{out}"))
        .to_string()
}

#[test]
fn run_watch_swaps_a_chain_alone_and_keeps_the_stack_when_one_is_refused() {
    let dir = scratch("gateways-swap-chain");
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let plain = std::fs::read(plugin_module()).unwrap();
    let chain_module = std::fs::read(dist_dir().join("chain.wasm")).unwrap();
    replace(&modules.join("header-authorization.wasm"), &plain);
    replace(&modules.join("chain.wasm"), &chain_module);
    let instance = |name: &str, fields: &str, values: &str, deny: &str| {
        format!(
            "  - plugin: header-authorization\n    name: {name}\n{fields}    config: {{header: x-{name}, values: [{values}], deny: {{{deny}}}}}\n"
        )
    };
    // tenant and team fuse (AUTHZ); level, in STATS, is a filter of its own.
    let plugins = |team_values: &str, team_deny: &str, team_fields: &str| {
        instance(
            "tenant",
            "    phase: AUTHZ\n    priority: 10\n",
            "acme",
            "body: \"tenant\\n\"",
        ) + &instance(
            "team",
            &format!("    phase: AUTHZ\n{team_fields}"),
            team_values,
            team_deny,
        ) + &instance("level", "    phase: STATS\n", "gold", "body: \"level\\n\"")
    };
    let file = gateway_file_with(
        &dir,
        "swap-chain",
        "chain: true\n",
        &plugins("red", "body: \"team v1\\n\"", ""),
    );
    let run = Run::start(&file, &modules, true);
    run.wait_output("watching", 1, Duration::from_secs(10));
    // The chain's filter, as printed: `  chain <name>: one filter running chain.wasm`.
    let chain = last_line(&run, "  chain swap-chain-tenant+")
        .trim_start()
        .trim_start_matches("chain ")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let load = Load::start(
        run.addr,
        &[("x-tenant", "acme"), ("x-team", "red"), ("x-level", "gold")],
    );
    let limit = Duration::from_secs(30);
    let denied = |body: &str| Outcome::Denied(format!("{body}\n"));
    let mut swaps: Vec<(&str, Duration)> = Vec::new();
    load.wait_for(Instant::now(), &Outcome::Passed, limit);
    // What Envoy reloaded: its extension config, listener and cluster counters.
    let watched = [
        "extension_config_discovery.http_filter.",
        "listener_manager.lds.",
        "cluster_manager.cds.",
    ];
    let reloads = || counters(run.admin, &watched);
    let chain_reloads = format!("extension_config_discovery.http_filter.{chain}.config_reload");
    let changed = |before: &std::collections::BTreeMap<String, u64>| -> Vec<String> {
        let now = reloads();
        now.iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    };

    // One fused instance's config: its chain's filter swaps, nothing else reloads.
    let before = reloads();
    let t = Instant::now();
    gateway_file_with(
        &dir,
        "swap-chain",
        "chain: true\n",
        &plugins("blue", "body: \"team v2\\n\"", ""),
    );
    let took = load.wait_for(t, &denied("team v2"), limit);
    run.wait_output("swapped", 1, limit);
    let settled = load.wait_steady(t, &denied("team v2"), 40, limit);
    std::thread::sleep(Duration::from_millis(500));
    for (at, outcome) in load.since(t) {
        assert!(
            outcome == Outcome::Passed || outcome == denied("team v2"),
            "config change: unexpected {outcome:?}"
        );
        if at >= settled {
            assert_eq!(
                outcome,
                denied("team v2"),
                "config change: old behaviour came back"
            );
        }
    }
    let swapped = last_line(&run, "swapped");
    assert!(
        swapped.starts_with(&format!("swapped filter {chain} in "))
            && swapped.ends_with("; chain now: [tenant team] -> level"),
        "{swapped}"
    );
    let moved = changed(&before);
    assert!(
        !moved.is_empty()
            && moved
                .iter()
                .all(|k| k.starts_with(&format!("extension_config_discovery.http_filter.{chain}."))),
        "more than the chain's filter reloaded: {moved:?}"
    );
    assert_eq!(reloads()[&chain_reloads], before[&chain_reloads] + 1);
    swaps.push((
        "one fused instance's config (the chain's ECDS): new behaviour live",
        took,
    ));
    let steady = denied("team v2");
    let good = plugins("blue", "body: \"team v2\\n\"", "");

    // A config the chain refuses (team's plugin's code, as the chain runs it): the
    // error names the instance and the field; nothing is swapped.
    let before = reloads();
    let t = Instant::now();
    gateway_file_with(
        &dir,
        "swap-chain",
        "chain: true\n",
        &plugins("blue", "stauts: 1, body: \"team v3\\n\"", ""),
    );
    run.wait_output(
        "plugins[1] (team): config.deny.stauts: unknown field",
        1,
        limit,
    );
    run.wait_output("the running stack is unchanged", 1, limit);
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));
    gateway_file_with(&dir, "swap-chain", "chain: true\n", &good);
    run.wait_output("nothing to swap", 1, limit);

    // A chain module that refuses the chain's config (here the plain plugin in its
    // place): Envoy's validation stops it, the running stack stays, level too.
    let t = Instant::now();
    replace(&modules.join("chain.wasm"), &plain);
    run.wait_output("the running stack is unchanged", 2, limit);
    let out = run.output();
    assert!(
        out.contains("envoy --mode validate refused the generated config")
            && out.contains("invalid configuration: chain: unknown field"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));
    assert_eq!(changed(&before), Vec::<String>::new());

    // New chain code: the chain's filter moves to it; level's module is the same.
    let t = Instant::now();
    let new_chain = rebuilt(&chain_module, "v2");
    replace(&modules.join("chain.wasm"), &new_chain);
    run.wait_output("swapped", 2, limit);
    let code_swap = t.elapsed();
    let swapped = last_line(&run, "swapped");
    assert!(
        swapped.starts_with(&format!("swapped filter {chain} in ")),
        "{swapped}"
    );
    let dump = Request::get("/config_dump?resource=ecds_filters")
        .send(run.admin)
        .text();
    assert_eq!(
        dump.matches(&format!("chain-{}.wasm", short_sha(&new_chain)))
            .count(),
        1,
        "the chain runs the new module:\n{dump}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));

    // team opts out: tenant and team become filters of their own, swapped in with
    // the listener at once, so no request skips team (it would then pass).
    let before = reloads();
    let t = Instant::now();
    gateway_file_with(
        &dir,
        "swap-chain",
        "chain: true\n",
        &plugins("blue", "body: \"team v2\\n\"", "    chain: false\n"),
    );
    run.wait_output("swapped", 3, limit);
    let fusion_swap = t.elapsed();
    let swapped = last_line(&run, "swapped");
    assert!(
        swapped.contains("listener") && swapped.ends_with("; chain now: tenant -> team -> level"),
        "{swapped}"
    );
    assert_eq!(
        reloads()["listener_manager.lds.update_success"],
        before["listener_manager.lds.update_success"] + 1
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(load.since(t).iter().all(|(_, o)| *o == steady));
    swaps.push((
        "fusion changed (listener + new ECDS): swap confirmed by xtask",
        fusion_swap,
    ));
    swaps.push((
        "new chain module (the chain's ECDS): swap confirmed by xtask",
        code_swap,
    ));

    let outcomes = load.finish();
    drop(run);
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .map(|(_, o)| o)
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .collect();
    let mut report = format!(
        "chain hot swap: {} requests sent, {} failed\n",
        outcomes.len(),
        failed.len()
    );
    for (what, took) in &swaps {
        report += &format!("chain hot swap: {what} after {} ms\n", took.as_millis());
    }
    print!("{report}");
    let _ = std::fs::write(target_dir().join("e2e").join("hot-swap-chain.txt"), &report);
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        outcomes.len() > 100,
        "only {} requests were sent",
        outcomes.len()
    );
}
