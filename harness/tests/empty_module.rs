//! The test-only `empty` module (harness/modules/empty) that `cargo xtask bench`
//! takes as the floor of a wasm filter: it passes every request untouched, and
//! each cost its configuration names really happens, so `bench --costs` prices
//! what it says it prices.

use harness::envoy::{test_module, wasm_filter_at, LOG_WAIT};
use harness::{Envoy, Stack};

fn empty(probes: &str) -> Stack {
    Stack::new().filter(wasm_filter_at("empty", &test_module("empty"), probes))
}

fn passes(envoy: &Envoy) -> harness::Response {
    let resp = envoy.get("/x", &[("allow", "true")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echoed = resp.echoed();
    assert_eq!(echoed.header_value("allow"), Some("true"));
    resp
}

#[test]
fn the_empty_filter_passes_requests_untouched() {
    let envoy = empty("").start();
    let resp = passes(&envoy);
    assert_eq!(resp.header("x-empty"), None);
    assert!(!envoy.log().contains("empty: request headers"));
}

#[test]
fn every_request_probe_runs_and_passes_the_request() {
    // At debug (the harness's default for wasm) the checked log line is written.
    let envoy = empty("box,header-pairs,header-value,header-value-absent,debug-log").start();
    passes(&envoy);
    assert!(envoy.wait_log("empty: request headers", LOG_WAIT).is_some());
    let envoy = empty("debug-log-call").start();
    passes(&envoy);
    assert!(envoy.wait_log("empty: request headers", LOG_WAIT).is_some());
}

#[test]
fn response_probes_and_the_sdk_http_context_pass_too() {
    let resp = passes(&empty("add-response-header").start());
    assert_eq!(resp.header("x-empty"), Some("1"));
    for probes in ["on-response-headers", "sdk-http-context"] {
        let resp = passes(&empty(probes).start());
        assert_eq!(resp.header("x-empty"), None, "{probes}");
    }
}

#[test]
fn an_unknown_probe_is_refused_at_load() {
    for (probes, error) in [
        ("header-pairs,nope", "empty: unknown probe 'nope'"),
        ("box,on-response-headers", "empty: response probes go alone"),
        ("header-pairs,times=0", "empty: times=0: expected 1..=100"),
    ] {
        let log = match empty(probes).try_start() {
            Ok(_) => panic!("Envoy served the empty module with {probes:?}"),
            Err(log) => log,
        };
        assert!(log.contains(error), "{probes}: {log}");
    }
}
