//! The one wasm adapter: the proxy-wasm ABI's entry points of a module, its roots
//! (one per filter Envoy configures in the VM, each building its instances from
//! the configuration once) and its streams, which run the instances through
//! `plugin::Chain` over the real host. A plugin on its own (a chain of one) and
//! the chain module both use it; `export_plugin!` and `export_module!` (in
//! `export`) make a module's entry points call in here.
//!
//! Written here rather than taken from the proxy-wasm SDK's dispatcher because
//! Envoy skips every callback a module does not export, and each one it makes is
//! a VM entry per stream. The SDK exports them all: an SDK filter is entered seven
//! times for a request whose response has a body (context create, request
//! headers, response headers, response body per chunk, log, done, delete). A
//! plugin here is entered three times (four with a response side), and keeps no
//! per-stream state unless a response side or a call needs it. `cargo xtask
//! bench` sets the `idle` test module (this adapter doing nothing) beside the
//! SDK's empty filter.

use crate::config::{parse_json, ConfigError};
use crate::deny::DenyResponse;
use crate::headers::HeaderMap;
use crate::host::{self, Action, HostHeaders, LogLevel, MapType};
use crate::logger;
use crate::plugin::{
    CallResponse, Chain, Configured, DispatchError, Host, Instance, Instances, Map, Plugin, Step,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// Builds a filter's instances from its raw `pluginConfig` bytes.
pub type Build = fn(&[u8]) -> Result<Vec<Box<dyn Instance>>, ConfigError>;

/// A wasm module: its name (which opens its configuration errors and names its
/// memory gauge) and how a root builds its instances.
pub struct Module {
    pub name: &'static str,
    pub build: Build,
}

impl Module {
    pub const fn new(name: &'static str, build: Build) -> Self {
        Module { name, build }
    }

    /// The module that is plugin `P` on its own.
    pub const fn single<P: Plugin>() -> Self {
        Module {
            name: P::NAME,
            build: build_single::<P>,
        }
    }
}

fn build_single<P: Plugin>(bytes: &[u8]) -> Result<Vec<Box<dyn Instance>>, ConfigError> {
    let doc = parse_json(bytes)?;
    let instance: Box<dyn Instance> = Box::new(Configured::<P>::new("", &doc)?);
    Ok(vec![instance])
}

/// A root context: one filter's configuration in this VM.
struct Root {
    id: u32,
    /// `None` until configured, and when the configuration was refused.
    instances: Option<Instances>,
}

/// Stream context ids are unique per VM: hashing them needs no SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
struct State {
    roots: Vec<Root>,
    /// Streams with more to do after their request headers (a response side or
    /// a call out), until their response headers or their end.
    streams: HashMap<u32, Chain, BuildHasherDefault<IdHasher>>,
    /// The stream each call out was made for, by token: Envoy makes a module's
    /// calls from its root context and delivers the answer there. An entry
    /// lives until the answer (a timeout is one), whether or not its stream does.
    calls: HashMap<u32, u32, BuildHasherDefault<IdHasher>>,
    /// The stream context created last and its root: Envoy creates a stream's
    /// context right before its request headers, the only callback that needs
    /// to know its root.
    created: (u32, u32),
}

impl State {
    /// The instances of the filter stream `id` runs through. `Err` holds why
    /// there are none (the reply's details).
    fn instances(&self, id: u32) -> Result<Instances, &'static str> {
        let root = if self.created.0 == id {
            self.roots.iter().find(|r| r.id == self.created.1)
        } else if let [only] = self.roots.as_slice() {
            Some(only)
        } else {
            None
        };
        match root {
            Some(Root {
                instances: Some(instances),
                ..
            }) => Ok(instances.clone()),
            Some(_) => Err("wasm_plugin_not_configured"),
            None => Err("wasm_plugin_stream_without_root"),
        }
    }
}

thread_local! {
    // Each VM runs on one thread, and no callback runs inside another: the host
    // re-enters the module during a callback only to allocate.
    static STATE: RefCell<State> = RefCell::default();
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.with(|state| state.try_borrow_mut().ok().map(|mut s| f(&mut s)))
}

pub fn on_context_create(context_id: u32, root_id: u32) {
    with_state(|state| {
        if root_id == 0 {
            state.roots.retain(|r| r.id != context_id);
            state.roots.push(Root {
                id: context_id,
                instances: None,
            });
        } else {
            state.created = (context_id, root_id);
        }
    });
    if root_id != 0 {
        host::report_memory();
    }
}

pub fn on_configure(module: &Module, root_id: u32, size: usize) -> bool {
    // Installed on the first configure; later ones (a new config, a level
    // changed through the admin `/logging`) only set the level again.
    logger::install(logger::filter_for(host::refresh_log_level()));
    host::define_memory_gauge(module.name);
    let bytes = host::plugin_configuration(size);
    let instances = match (module.build)(&bytes) {
        Ok(instances) => Rc::new(instances),
        Err(e) => {
            host::log(
                LogLevel::Error,
                format_args!("{}: invalid configuration: {e}", module.name),
            );
            return false;
        }
    };
    let stored = with_state(
        |state| match state.roots.iter_mut().find(|r| r.id == root_id) {
            Some(root) => root.instances = Some(instances.clone()),
            None => state.roots.push(Root {
                id: root_id,
                instances: Some(instances.clone()),
            }),
        },
    );
    if stored.is_none() {
        return false;
    }
    host::log(
        LogLevel::Debug,
        format_args!("{}: configuration loaded", module.name),
    );
    true
}

pub fn on_request_headers(module: &Module, id: u32) -> Action {
    let instances = with_state(|state| state.instances(id)).unwrap_or(Err("wasm_plugin_busy"));
    let instances = match instances {
        Ok(instances) => instances,
        Err(details) => {
            // Without a valid configuration Envoy does not create streams for
            // us; if it ever does, or a stream cannot be told apart, it is
            // refused: never let through unchecked.
            host::log(
                LogLevel::Warn,
                format_args!(
                    "{}: #{id} no configured filter ({details}): request refused",
                    module.name
                ),
            );
            host::send_response(503, details, &[], b"plugin not configured\n");
            return Action::Pause;
        }
    };
    let mut chain = Chain::new(instances);
    let step = chain.on_request_headers(&mut EnvoyHost { id }, id);
    keep_or_drop(id, chain);
    run_wakes();
    action(step)
}

/// The response headers: the last callback a stream's instances need, so its
/// state goes here.
pub fn on_response_headers(id: u32) -> Action {
    let step = match with_state(|state| state.streams.remove(&id)).flatten() {
        Some(mut chain) => chain.on_response_headers(&mut EnvoyHost { id }, id),
        // No instance that saw the request acts on responses.
        None => return Action::Continue,
    };
    run_wakes();
    action(step)
}

/// A call's answer, delivered to the root context (`_context_id`): it goes to the
/// stream that made the call, if that stream is still there.
pub fn on_http_call_response(_context_id: u32, token: u32, headers: usize, body_size: usize) {
    let taken = with_state(|state| {
        let id = state.calls.remove(&token)?;
        Some((id, state.streams.remove(&id)?))
    });
    let Some((id, mut chain)) = taken.flatten() else {
        return;
    };
    // Replies and resumption are for the stream, not the root the answer came to.
    if !host::set_effective_context(id) {
        return;
    }
    let call = CallResponse {
        token,
        headers,
        body_size,
    };
    let step = chain.on_call_response(&mut EnvoyHost { id }, id, call);
    keep_or_drop(id, chain);
    if step == Step::Continue {
        host::resume_request();
    }
    run_wakes();
}

/// Keeps a stream that has more to do; drops any other now, before the wakes
/// its state's `Drop` may ask for are run.
fn keep_or_drop(id: u32, chain: Chain) {
    if chain.keeps() {
        with_state(|state| state.streams.insert(id, chain));
    } else {
        drop(chain);
    }
}

/// The most streams woken at the end of one callback: each wake is bounded by
/// the streams that wait, this by any loop of wakes that would never end.
const MAX_WAKES: usize = 4096;

/// Runs the streams [`plugin::wake`](crate::plugin::wake) named during the
/// callback that is ending, each in its own context: a waiting instance's
/// `on_wake`, then the rest of its chain. A woken stream's own calls are routed
/// to it like any other (their answers come to the root, by token). Called at the
/// end of every callback that runs plugin code or drops a stream's state (whose
/// `Drop` may wake the streams that waited on it).
fn run_wakes() {
    let mut woken = 0;
    while crate::plugin::wakes_pending() && woken < MAX_WAKES {
        for id in crate::plugin::take_wakes() {
            woken += 1;
            let Some(mut chain) = with_state(|state| state.streams.remove(&id)).flatten() else {
                continue;
            };
            if !host::set_effective_context(id) {
                continue;
            }
            let step = chain.on_wake(&mut EnvoyHost { id }, id);
            keep_or_drop(id, chain);
            if step == Step::Continue {
                host::resume_request();
            }
        }
    }
}

/// While an instance waits for its call, request body and trailers are held: a
/// Continue from them would let Envoy resume the stream before the decision.
pub fn hold(id: u32) -> Action {
    let waiting = with_state(|state| state.streams.get(&id).is_some_and(Chain::waiting));
    if waiting == Some(true) {
        Action::Pause
    } else {
        Action::Continue
    }
}

pub fn on_delete(id: u32) {
    // Dropped outside the state's borrow: a stream's state may wake others.
    let gone = with_state(|state| {
        let stream = state.streams.remove(&id);
        if stream.is_none() {
            state.roots.retain(|r| r.id != id);
        }
        stream
    });
    drop(gone);
    run_wakes();
}

/// A local reply or a wait holds the stream (after a local reply the filter must
/// not return Continue: rust-sdk#105).
fn action(step: Step) -> Action {
    match step {
        Step::Continue => Action::Continue,
        Step::Pause | Step::Stop => Action::Pause,
    }
}

/// The proxy-wasm host, for the stream whose callback is running (the chain keeps
/// the request headers it reads between edits).
struct EnvoyHost {
    /// The stream's context id, which its calls' answers are routed to.
    id: u32,
}

fn map_type(map: Map) -> MapType {
    match map {
        Map::Request => MapType::HttpRequestHeaders,
        Map::Response => MapType::HttpResponseHeaders,
    }
}

impl Host for EnvoyHost {
    fn request_headers(&mut self) -> Rc<HeaderMap> {
        Rc::new(host::read_map(MapType::HttpRequestHeaders))
    }

    fn contains(&mut self, map: Map, name: &str) -> bool {
        HostHeaders(map_type(map)).contains(name)
    }

    fn add(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        HostHeaders(map_type(map)).add(name, value)
    }

    fn replace(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        HostHeaders(map_type(map)).replace(name, value)
    }

    fn remove(&mut self, map: Map, name: &str) -> bool {
        HostHeaders(map_type(map)).remove(name)
    }

    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        host::send_response(status, details, headers, body);
    }

    fn send_deny(&mut self, deny: &DenyResponse) {
        host::send_deny(deny);
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError> {
        let token = host::dispatch(cluster, headers, timeout_ms)?;
        let id = self.id;
        with_state(|state| state.calls.insert(token, id));
        Ok(token)
    }

    /// Nothing to note: a stream whose instance waits (for its call, or to be
    /// woken) is kept until its answer or its wake.
    fn await_wake(&mut self) {}

    fn call_response_headers(&mut self) -> HeaderMap {
        host::read_map(MapType::HttpCallResponseHeaders)
    }

    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        host::call_response_body(size)
    }

    fn now_ms(&self) -> u64 {
        host::now_ms()
    }
}
