//! `cargo xtask bench --costs`: where a plugin's cost over the empty filter goes.
//! Each case is the empty module (`harness/modules/empty`) doing one thing per
//! request that a plugin does (read the header map, read one header, log below the
//! level, allocate its stream context, answer one more callback, ...), priced
//! against the empty filter in the same rounds, once and, where it can repeat, ten
//! times per request; then header-authorization itself, and six empty filters with
//! one VM or one each (five filters more than the floor: their "per time" is one
//! more filter's cost), for their memory too.

use super::{empty_filter, idle_filter, own_vm, Case, Filter};
use serde_json::json;

/// The differences sought are tenths of a µs: more requests and rounds than the
/// plugin table needs.
pub const REQUESTS: usize = 40_000;
pub const ROUNDS: usize = 7;

/// Each repeatable cost is also done this many times per request, so that its
/// cost per time stands out of the noise; once is what a plugin pays.
const TIMES: u32 = 10;

pub fn cases() -> Vec<Case> {
    let probe = |name: &str, probes: &str| Case::new(name, vec![empty_filter("empty", probes)]);
    let times = |name: &str, probes: &str| {
        let probes = format!("{probes},times={TIMES}");
        probe(&format!("{name}, x{TIMES}"), &probes).times(TIMES)
    };
    let six = |name: &str, share: bool| {
        let filters = (0..6)
            .map(|i| {
                let name = format!("empty-{i}");
                let filter = empty_filter(&name, "");
                if share {
                    filter
                } else {
                    own_vm(filter, &name)
                }
            })
            .collect();
        Case::new(name, filters).times(5)
    };
    let cases = vec![
        Case::new("no filter (baseline)", vec![]),
        probe("empty filter (floor)", "").floor(),
        Case::new("our adapter, idle", vec![idle_filter("idle")]),
        probe("(f) streams from set_http_context", "sdk-http-context"),
        probe("(e) implements on_response_headers", "on-response-headers"),
        probe("    and adds a response header", "add-response-header"),
        probe("(d) a Box per stream (Rc + id)", "box"),
        times("(d) allocate and free 16 bytes", "alloc"),
        times("(c) debug log, level off, checked", "debug-log"),
        times("(c) proxy_log at debug, host drops", "debug-log-call"),
        times("(b) one header value, present", "header-value"),
        times("(b) one header value, absent", "header-value-absent"),
        probe("(a) the header map's pairs", "header-pairs"),
        times("(a) the header map's pairs", "header-pairs"),
        probe(
            "(a+c+d) header-authorization's work",
            "box,header-pairs,debug-log",
        ),
        Case::new(
            "header-authorization",
            vec![Filter::Plugin("header-authorization", json!({}))],
        ),
        six("six empty filters, one VM (Istio)", true),
        six("six empty filters, a VM each", false),
    ];
    // Every case gets the request header-authorization and `header-value` want.
    cases
        .into_iter()
        .map(|case| case.headers(&[("allow", "true")]))
        .collect()
}
