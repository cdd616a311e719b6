//! trap: a test-only filter that kills its own VM on demand, so the end-to-end
//! tests can pin what Envoy does after a plugin crash under each `failure_policy`.
//! Not a plugin: `cargo xtask build-all` never builds it; `cargo xtask test` does.
//!
//! Request header `x-trap` picks the crash: `panic` (a Rust panic, which the
//! release profile's panic=abort turns into a wasm trap), `unreachable` (the trap
//! instruction itself) or `oom` (leaks 64 MiB chunks until the heap is exhausted,
//! as a real leak does). `x-trap-instance: NAME` limits it to the instance whose
//! configuration is NAME. Without `x-trap` the request passes and the response
//! carries `x-trap-module: N`, N counting the requests this VM has let through
//! (plus `x-trap-module-NAME: N` for a named instance), so a test sees a fresh VM
//! when the count starts again at 1.

// The whole point of this module is to crash on request: the workspace's no-panic
// lint guards the shipped plugins, not this.
#![allow(clippy::panic)]

use common::plugin::{Configured, Cx, Instance, Map, Plugin, Step};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(target_arch = "wasm32")]
common::export_module!(common::adapter::Module::new(Trap::NAME, build), response);

// The configuration is plain text (the instance's name), not JSON.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn build(bytes: &[u8]) -> Result<Vec<Box<dyn Instance>>, common::ConfigError> {
    let name = std::str::from_utf8(bytes)
        .map_err(|_| common::ConfigError::new("", "instance name must be UTF-8"))?;
    let instance: Box<dyn Instance> = Box::new(Configured::<Trap>::new(
        "",
        &Value::String(name.trim().to_string()),
    )?);
    Ok(vec![instance])
}

/// Requests let through by this VM. A static lives in the VM's linear memory, so
/// it is per VM: instances sharing a VM share it, a reloaded VM starts at zero.
static SERVED: AtomicU32 = AtomicU32::new(0);

/// What a leak grabs at a time: big enough to reach V8's 1 GiB limit in well
/// under a second, small enough that the failing allocation is a real one.
const LEAK_CHUNK: usize = 64 << 20;

pub struct Trap;

impl Plugin for Trap {
    const NAME: &'static str = "trap";
    /// The instance's name (its whole configuration, plain text, may be empty).
    type Config = String;
    /// Requests this VM had let through when this stream's went on.
    type Stream = u32;
    const RESPONSE: bool = true;

    fn configure(doc: &Value) -> Result<String, common::ConfigError> {
        Ok(doc.as_str().unwrap_or_default().to_string())
    }

    fn on_request_headers(name: &String, served: &mut u32, cx: &mut Cx<'_>) -> Step {
        let headers = cx.host.request_headers();
        let target = headers.values("x-trap-instance").next();
        let mine = target.is_none_or(|t| t == name.as_bytes());
        if let Some(kind) = headers.values("x-trap").next().filter(|_| mine) {
            return crash(kind, cx);
        }
        *served = SERVED.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        Step::Continue
    }

    fn on_response_headers(name: &String, served: &mut u32, cx: &mut Cx<'_>) -> Step {
        let n = served.to_string();
        cx.host.add(Map::Response, "x-trap-module", n.as_bytes());
        if !name.is_empty() {
            let named = format!("x-trap-module-{name}");
            cx.host.add(Map::Response, &named, n.as_bytes());
        }
        Step::Continue
    }
}

/// Kills the VM the way `kind` says. What does not crash is answered with an
/// error (400 for an unknown kind, a test's typo; 500 for a heap that never ran
/// out), so it cannot pass for a crash that did not happen.
fn crash(kind: &[u8], cx: &mut Cx<'_>) -> Step {
    match kind {
        b"panic" => panic!("x-trap: panic"),
        b"unreachable" => trap(),
        b"oom" => {
            leak_until_exhausted();
            log::warn!("trap: the heap never ran out");
            cx.host
                .send_response(500, "trap_no_oom", &[], b"heap never ran out\n");
        }
        _ => {
            cx.host
                .send_response(400, "trap_unknown_kind", &[], b"unknown x-trap\n");
        }
    }
    Step::Stop
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

// The module only runs as wasm; natively (the workspace's unit-test build) it just
// has to compile.
#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

/// Leaks written-to chunks until an allocation fails, which aborts (a trap). The
/// bound is never reached: 64 chunks are the whole 4 GiB a wasm32 memory can hold.
fn leak_until_exhausted() {
    for _ in 0..64 {
        // Every byte written, so the pages are really used, and black_box so the
        // optimizer cannot drop an allocation nobody reads.
        let chunk = std::hint::black_box(vec![0xA5u8; LEAK_CHUNK]);
        std::mem::forget(chunk);
    }
}
