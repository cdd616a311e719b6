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

impl Context for Root {}

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
    /// The streams of this VM waiting to be woken, by context id.
    static SLEEPERS: RefCell<Sleepers> = const { RefCell::new(Sleepers(Vec::new())) };
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

/// The most wakes handled after one callback (each may ask for more).
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
            SLEEPERS.with(|s| {
                if let Ok(mut s) = s.try_borrow_mut() {
                    s.insert(self.id, Rc::downgrade(&shared));
                }
            });
            self.chain = Held::Shared(shared);
        }
        step
    }
}

/// Wakes the streams `plugin::wake` named, each in its own context, then makes
/// `current` (the stream whose callback this is, if it lives) the effective
/// context again.
fn wake_sleepers(current: Option<u32>) {
    let mut woken = 0;
    loop {
        let ids = crate::plugin::take_wakes();
        if ids.is_empty() || woken >= MAX_WAKES {
            break;
        }
        for id in ids {
            woken += 1;
            let sleeper = SLEEPERS
                .with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.remove(&id)))
                .and_then(|weak| weak.upgrade());
            let Some(chain) = sleeper else { continue };
            if !host::set_effective_context(id) {
                continue;
            }
            let mut host = EnvoyHost::default();
            let step = match chain.try_borrow_mut() {
                Ok(mut chain) => chain.on_wake(&mut host, id),
                Err(_) => continue,
            };
            if host.awaiting && step != Step::Continue {
                SLEEPERS.with(|s| {
                    if let Ok(mut s) = s.try_borrow_mut() {
                        s.insert(id, Rc::downgrade(&chain));
                    }
                });
            }
            if step == Step::Continue {
                host::resume_request();
            }
        }
    }
    if let Some(id) = current {
        host::set_effective_context(id);
    }
}

/// A stream that goes away may leave others waiting on it (its state's `Drop`
/// wakes them): they are woken now, as no later callback of its comes.
impl Drop for Stream {
    fn drop(&mut self) {
        let id = self.id;
        SLEEPERS.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.remove(&id);
            }
        });
        drop(std::mem::replace(&mut self.chain, Held::Gone));
        wake_sleepers(None);
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
        wake_sleepers(Some(id));
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
/// ask to be woken.
#[derive(Default)]
struct EnvoyHost {
    awaiting: bool,
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
        host::dispatch(cluster, headers, timeout_ms)
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
