//! The one wasm adapter: a root context that builds its filter's instances from
//! the configuration once, and an HTTP context that runs them through
//! `plugin::Chain` over the real host. A plugin on its own (a chain of one) and
//! the chain module both use it; `export_plugin!` is a plugin crate's entry point.

use crate::config::{parse_json, ConfigError};
use crate::deny::DenyResponse;
use crate::headers::HeaderMap;
use crate::host::{self, HostHeaders};
use crate::plugin::{
    CallResponse, Chain, Configured, DispatchError, Host, Instance, Instances, Level, Map, Plugin,
    Step,
};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};

/// Builds a filter's instances from its raw `pluginConfig` bytes.
pub type Build = fn(&[u8]) -> Result<Vec<Box<dyn Instance>>, ConfigError>;

/// The root context of a module: it owns the configured instances and hands an
/// `Rc` of them to each stream, so nothing is parsed per request.
pub struct Root {
    name: &'static str,
    build: Build,
    instances: Option<Instances>,
}

impl Root {
    /// A root named `name` (it opens the module's configuration errors and names
    /// its memory gauge) whose instances `build` makes.
    pub fn new(name: &'static str, build: Build) -> Self {
        Root {
            name,
            build,
            instances: None,
        }
    }

    /// The root of a module that is plugin `P` on its own.
    pub fn single<P: Plugin>() -> Self {
        Root::new(P::NAME, |bytes| {
            let doc = parse_json(bytes)?;
            let instance: Box<dyn Instance> = Box::new(Configured::<P>::new("", &doc)?);
            Ok(vec![instance])
        })
    }
}

/// The entry point of a plugin crate's wasm module: `common::export_plugin!(MyPlugin);`.
/// Only the crate's own wasm module has one, under the crate's `module` feature:
/// xtask links every plugin natively (for their config types) and the chain
/// module links them all, where one `_initialize` per plugin would clash.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(all(target_arch = "wasm32", feature = "module"))]
        $crate::proxy_wasm::main! {{
            $crate::proxy_wasm::set_root_context(|_| {
                Box::new($crate::adapter::Root::single::<$plugin>())
            });
        }}
    };
}

/// The root wakes the streams others woke, on a tick asked for only then, and
/// passes the answers to their calls on.
impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        let routed = ROUTED.with(|r| {
            let mut r = r.try_borrow_mut().ok()?;
            let at = r.iter().position(|(t, _)| *t == token)?;
            Some(r.swap_remove(at).1)
        });
        let Some(id) = routed else { return };
        if let Some(chain) = sleeper(id) {
            let call = CallResponse {
                token,
                headers,
                body_size,
            };
            in_context(id, &chain, |chain, host| {
                chain.on_call_response(host, id, call)
            });
        }
        schedule_wakes();
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        host::refresh_log_level();
        host::define_memory_gauge(self.name);
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match (self.build)(&bytes) {
            Ok(instances) => {
                self.instances = Some(Rc::new(instances));
                host::log(
                    LogLevel::Debug,
                    format_args!("{}: configuration loaded", self.name),
                );
                true
            }
            Err(e) => {
                host::log(
                    LogLevel::Error,
                    format_args!("{}: invalid configuration: {e}", self.name),
                );
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        host::set_tick_period_ms(0);
        wake_sleepers();
        schedule_wakes();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        host::report_memory();
        // Without a valid configuration Envoy does not create streams for us. If it
        // ever did, the stream is refused with a local reply: returning `None` here
        // would make the SDK panic, killing the VM for every later request.
        Some(match self.instances.clone() {
            Some(instances) => Box::new(Stream {
                id: context_id,
                chain: Held::Own(Chain::new(instances)),
                host: EnvoyHost::default(),
            }),
            None => Box::new(Unconfigured(self.name)),
        })
    }
}

/// The stream of a module that has no configuration: fails closed.
struct Unconfigured(&'static str);

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        host::warn(format_args!(
            "{}: no configuration: request refused",
            self.0
        ));
        host::send_response(
            503,
            "wasm_plugin_not_configured",
            &[],
            b"plugin not configured\n",
        );
        Action::Pause
    }
}

/// One HTTP stream through the module's instances.
struct Stream {
    id: u32,
    chain: Held,
    host: EnvoyHost,
}

/// A stream's chain: its own, or shared with [`SLEEPERS`] while it waits to be
/// woken by another stream (only then does it cost an allocation).
enum Held {
    Own(Chain),
    Shared(Rc<RefCell<Chain>>),
    Gone,
}

thread_local! {
    /// The streams of this VM waiting to be woken, or for a call they made while
    /// woken, by context id.
    static SLEEPERS: RefCell<Sleepers> = const { RefCell::new(Sleepers(Vec::new())) };
    /// Calls made by woken streams, as (token, stream id): their answers come to
    /// the root context (see [`Root::on_tick`]).
    static ROUTED: RefCell<Vec<(u32, u32)>> = const { RefCell::new(Vec::new()) };
}

/// The waiting streams, by context id. A list: they are few (one provider's
/// cold start), and a map's code would grow every module by kilobytes.
struct Sleepers(Vec<(u32, Weak<RefCell<Chain>>)>);

impl Sleepers {
    fn insert(&mut self, id: u32, chain: Weak<RefCell<Chain>>) {
        self.remove(&id);
        // Streams that went away without being woken leave dead entries.
        if self.0.len() >= MAX_WAKES {
            self.0.retain(|(_, c)| c.strong_count() > 0);
        }
        self.0.push((id, chain));
    }

    fn remove(&mut self, id: &u32) -> Option<Weak<RefCell<Chain>>> {
        let at = self.0.iter().position(|(i, _)| i == id)?;
        Some(self.0.swap_remove(at).1)
    }
}

fn sleeper(id: u32) -> Option<Rc<RefCell<Chain>>> {
    SLEEPERS
        .with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.remove(&id)))
        .and_then(|weak| weak.upgrade())
}

fn keep_sleeping(id: u32, chain: &Rc<RefCell<Chain>>) {
    SLEEPERS.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.insert(id, Rc::downgrade(chain));
        }
    });
}

/// The most wakes handled in one tick, and routed calls kept (each bounded by
/// the streams that wait).
const MAX_WAKES: usize = 4096;

impl Stream {
    /// Runs `f` on the chain, then, if an instance asked to be woken, moves the
    /// chain where a waking stream finds it.
    fn run(&mut self, f: impl FnOnce(&mut Chain, &mut EnvoyHost) -> Step) -> Step {
        let step = match &mut self.chain {
            Held::Own(chain) => f(chain, &mut self.host),
            Held::Shared(chain) => match chain.try_borrow_mut() {
                Ok(mut chain) => f(&mut chain, &mut self.host),
                Err(_) => Step::Pause,
            },
            Held::Gone => Step::Continue,
        };
        if std::mem::take(&mut self.host.awaiting) && step != Step::Continue {
            let shared = match std::mem::replace(&mut self.chain, Held::Gone) {
                Held::Own(chain) => Rc::new(RefCell::new(chain)),
                Held::Shared(chain) => chain,
                Held::Gone => return step,
            };
            keep_sleeping(self.id, &shared);
            self.chain = Held::Shared(shared);
        }
        schedule_wakes();
        step
    }
}

/// Streams to wake are woken from the root context's next tick, not inside the
/// callback that woke them: a woken stream may go on into an instance that
/// makes a call, and the SDK sends a call's answer to the context whose callback
/// made it. Made from the root's tick, it comes to the root, which passes it on
/// (a stream's own callback would lose it when that stream ends first).
fn schedule_wakes() {
    if crate::plugin::wakes_pending() {
        host::set_tick_period_ms(1);
    }
}

/// Runs a woken (or routed-to) stream's chain in its own context; a chain that
/// waits again stays where the next wake or answer finds it.
fn in_context(
    id: u32,
    chain: &Rc<RefCell<Chain>>,
    f: impl FnOnce(&mut Chain, &mut EnvoyHost) -> Step,
) {
    if !host::set_effective_context(id) {
        return;
    }
    let mut host = EnvoyHost {
        awaiting: false,
        woken: Some(id),
    };
    let (step, waiting) = match chain.try_borrow_mut() {
        Ok(mut chain) => {
            let step = f(&mut chain, &mut host);
            (step, chain.waiting())
        }
        Err(_) => return,
    };
    if step != Step::Continue && waiting {
        keep_sleeping(id, chain);
    }
    if step == Step::Continue {
        host::resume_request();
    }
}

/// Wakes the streams `plugin::wake` named, each in its own context.
fn wake_sleepers() {
    let mut woken = 0;
    loop {
        let ids = crate::plugin::take_wakes();
        if ids.is_empty() || woken >= MAX_WAKES {
            break;
        }
        for id in ids {
            woken += 1;
            if let Some(chain) = sleeper(id) {
                in_context(id, &chain, |chain, host| chain.on_wake(host, id));
            }
        }
    }
}

/// A stream that goes away may leave others waiting on it (its state's `Drop`
/// wakes them): their wake is scheduled, as no later callback of its comes.
impl Drop for Stream {
    fn drop(&mut self) {
        let id = self.id;
        SLEEPERS.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.remove(&id);
            }
        });
        drop(std::mem::replace(&mut self.chain, Held::Gone));
        schedule_wakes();
    }
}

/// A local reply or a wait holds the stream (after a local reply the filter must
/// not return Continue: rust-sdk#105).
fn action(step: Step) -> Action {
    match step {
        Step::Continue => Action::Continue,
        Step::Pause | Step::Stop => Action::Pause,
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        let call = CallResponse {
            token,
            headers,
            body_size,
        };
        let id = self.id;
        if self.run(|chain, host| chain.on_call_response(host, id, call)) == Step::Continue {
            host::resume_request();
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let id = self.id;
        action(self.run(|chain, host| chain.on_request_headers(host, id)))
    }

    fn on_http_request_body(&mut self, _size: usize, _end_of_stream: bool) -> Action {
        self.hold()
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.hold()
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let id = self.id;
        action(self.run(|chain, host| chain.on_response_headers(host, id)))
    }
}

impl Stream {
    /// While an instance waits for its call, body and trailers are held: a
    /// Continue from them would let Envoy resume the stream before the decision.
    fn hold(&self) -> Action {
        let waiting = match &self.chain {
            Held::Own(chain) => chain.waiting(),
            Held::Shared(chain) => chain.try_borrow().map_or(true, |c| c.waiting()),
            Held::Gone => false,
        };
        if waiting {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

/// The proxy-wasm host, for the stream whose callback is running (the chain keeps
/// the request headers it reads between edits); `awaiting` notes an instance's
/// ask to be woken; `woken` is the stream run from the root's tick, whose calls
/// are answered to the root.
#[derive(Default)]
struct EnvoyHost {
    awaiting: bool,
    woken: Option<u32>,
}

fn map_type(map: Map) -> MapType {
    match map {
        Map::Request => MapType::HttpRequestHeaders,
        Map::Response => MapType::HttpResponseHeaders,
    }
}

fn log_level(level: Level) -> LogLevel {
    match level {
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
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
        if let Some(id) = self.woken {
            ROUTED.with(|r| {
                if let Ok(mut r) = r.try_borrow_mut() {
                    if r.len() >= MAX_WAKES {
                        r.remove(0);
                    }
                    r.push((token, id));
                }
            });
        }
        Ok(token)
    }

    fn await_wake(&mut self) {
        self.awaiting = true;
    }

    fn call_response_headers(&mut self) -> HeaderMap {
        host::read_map(MapType::HttpCallResponseHeaders)
    }

    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        host::call_response_body(size)
    }

    fn now_ms(&self) -> u64 {
        host::now_ms()
    }

    fn log_enabled(&self, level: Level) -> bool {
        host::log_enabled(log_level(level))
    }

    fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        host::log(log_level(level), message);
    }
}
