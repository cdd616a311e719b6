//! The one plugin interface: a plugin is its config type plus host-free logic that
//! sees a stream through the [`Host`] trait and answers each callback with a
//! [`Step`]. [`Chain`] runs a list of configured instances in one filter exactly as
//! Envoy runs separate filters; a plugin on its own is a chain of one. The wasm
//! edge (`host`) implements `Host` over proxy-wasm; tests use [`testing::Mock`].

use crate::config::ConfigError;
use crate::deny::DenyResponse;
use crate::headers::HeaderMap;
use crate::logger::with_label;
use serde_json::Value;
use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

/// What an instance answers a callback with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Done with this callback: the next instance runs.
    Continue,
    /// Waiting for an auth call this instance made; the chain stops here until
    /// its answer comes back.
    Pause,
    /// A local reply was sent: no later instance sees the request.
    Stop,
}

/// Which of the stream's header maps an edit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    Request,
    Response,
}

/// Why the host did not start a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchError {
    /// Unknown cluster or invalid call headers.
    BadArgument,
    /// The call failed as it was made (in Envoy 1.40: a circuit breaker that
    /// overflows, or a cluster without a healthy host).
    InternalFailure,
    /// Any other status, as the host gave it.
    Other(u32),
}

/// Everything a plugin asks of the proxy, for the stream whose callback runs.
/// Header edits return false when the host refused them; the caller decides
/// whether that fails closed.
pub trait Host {
    /// The request headers as they are now (edits by earlier instances included),
    /// read from the host at most once between edits.
    fn request_headers(&mut self) -> Rc<HeaderMap>;
    fn contains(&mut self, map: Map, name: &str) -> bool;
    /// Adds one more value of `name`, keeping existing ones.
    fn add(&mut self, map: Map, name: &str, value: &[u8]) -> bool;
    /// Replaces every value of `name` with `value` (adds it when absent).
    fn replace(&mut self, map: Map, name: &str, value: &[u8]) -> bool;
    /// Removes every value of `name`.
    fn remove(&mut self, map: Map, name: &str) -> bool;
    /// Answers the request locally; `details` names why in Envoy's access log.
    fn send_response(&mut self, status: u32, details: &str, headers: &[(&str, &[u8])], body: &[u8]);
    /// Answers with a configured denial (its headers serialized once, at
    /// configure time).
    fn send_deny(&mut self, deny: &DenyResponse);
    /// Starts an HTTP call to `cluster`; returns the host's token for it.
    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError>;
    /// Asks that this stream be woken with [`wake`] by another stream (whose call
    /// answered what this one waits for); the instance then returns
    /// [`Step::Pause`], and its `on_wake` runs when woken.
    fn await_wake(&mut self);
    /// The headers of the call response being delivered.
    fn call_response_headers(&mut self) -> HeaderMap;
    /// Up to `size` bytes of the body of the call response being delivered.
    fn call_response_body(&mut self, size: usize) -> Vec<u8>;
    /// Wall-clock time in milliseconds (only differences matter).
    fn now_ms(&self) -> u64;
}

/// A call response being delivered to the instance that made the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallResponse {
    pub token: u32,
    /// Headers in the response; 0 when the call failed without one.
    pub headers: usize,
    pub body_size: usize,
}

/// One callback's view of the stream: the host and the stream's id. Plugins log
/// with the `log` macros (see `logger`); inside a chain their lines start with
/// the instance's name.
pub struct Cx<'a> {
    pub host: &'a mut dyn Host,
    pub id: u32,
}

impl<'a> Cx<'a> {
    pub fn new(host: &'a mut dyn Host, id: u32) -> Self {
        Cx { host, id }
    }
}

/// A plugin: its configuration, built once per configure, and its per-stream
/// logic. Every callback has a default that does nothing.
pub trait Plugin: 'static {
    /// The plugin's name, as in `plugins/<name>` and the chain's `plugin` field.
    const NAME: &'static str;
    /// Everything the plugin builds from its configuration.
    type Config: 'static;
    /// What one stream keeps between callbacks (`()` for most plugins: a
    /// zero-sized state costs no allocation).
    type Stream: Default + 'static;
    /// Whether the plugin acts on responses (implements `on_response_headers`).
    /// Only then is it called for them, and only then does its own module take
    /// Envoy's response callback: each callback a module exports is a VM entry
    /// per stream (see `adapter`). `export_plugin!` checks it against the
    /// callbacks the module exports.
    const RESPONSE: bool = false;
    /// Whether the plugin makes calls out (returns [`Step::Pause`] and implements
    /// `on_call_response`).
    const CALLS: bool = false;

    /// Builds the configuration from `pluginConfig` (`{}` when none was given).
    fn configure(doc: &Value) -> Result<Self::Config, ConfigError>;

    fn on_request_headers(
        config: &Self::Config,
        stream: &mut Self::Stream,
        cx: &mut Cx<'_>,
    ) -> Step;

    fn on_response_headers(
        _config: &Self::Config,
        _stream: &mut Self::Stream,
        _cx: &mut Cx<'_>,
    ) -> Step {
        Step::Continue
    }

    /// The answer to a call this instance made while it returned [`Step::Pause`].
    fn on_call_response(
        _config: &Self::Config,
        _stream: &mut Self::Stream,
        _cx: &mut Cx<'_>,
        _call: CallResponse,
    ) -> Step {
        Step::Continue
    }

    /// Another stream woke this one (see [`Host::await_wake`]) while it returned
    /// [`Step::Pause`]. By default it keeps waiting: a plugin that never asks to
    /// be woken waits for its own call.
    fn on_wake(_config: &Self::Config, _stream: &mut Self::Stream, _cx: &mut Cx<'_>) -> Step {
        Step::Pause
    }

    /// What `cargo xtask run` needs to host an instance on a laptop (see
    /// [`LocalRun`]), from its configuration and the document it was built
    /// from. Only xtask asks, natively; the module never calls it. By default
    /// the plugin never denies a request.
    fn local_run(_config: &Self::Config, _doc: &Value) -> LocalRun {
        LocalRun::Passive
    }
}

/// What a configured instance means for `cargo xtask run`, which hosts a
/// gateway's plugins in a local Envoy with an echo upstream and prints curl
/// commands that get a `GET /` past each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalRun {
    /// It never denies a request.
    #[default]
    Passive,
    /// A `GET /` gets past it with these request headers; with none, no header
    /// xtask could write does (a token only the issuer can sign, say), and the
    /// curl commands stop at its denial.
    Gate(Vec<(String, String)>),
    /// It asks the auth service behind this Envoy cluster: locally, xtask's demo
    /// auth service, which allows what it documents.
    AuthCluster(String),
}

thread_local! {
    /// Streams to wake once the callback under way is done.
    static WAKES: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Wakes stream `id` (one that asked with [`Host::await_wake`]) once the
/// callback under way is done (in the wasm adapter: at the end of that callback,
/// in the stream's own context): the instance it waits in gets `on_wake`. Callable
/// without a host (from a stream state's `Drop`, when the stream that was to
/// answer goes away).
pub fn wake(id: u32) {
    WAKES.with(|w| {
        if let Ok(mut w) = w.try_borrow_mut() {
            w.push(id);
        }
    });
}

/// Whether [`wake`] named streams not yet taken.
pub fn wakes_pending() -> bool {
    WAKES.with(|w| w.try_borrow().is_ok_and(|w| !w.is_empty()))
}

/// The streams [`wake`] asked for since the last call, drained.
pub fn take_wakes() -> Vec<u32> {
    WAKES.with(|w| {
        w.try_borrow_mut()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    })
}

/// A configured instance of some plugin, its type erased so that one chain can
/// hold instances of different plugins.
pub trait Instance {
    /// The instance's name (empty for a plugin running on its own).
    fn label(&self) -> &str;
    /// A fresh per-stream state.
    fn new_stream(&self) -> Box<dyn Any>;
    /// Whether it acts on responses ([`Plugin::RESPONSE`]).
    fn response(&self) -> bool;
    fn on_request_headers(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step;
    fn on_response_headers(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step;
    fn on_call_response(&self, stream: &mut dyn Any, cx: &mut Cx<'_>, call: CallResponse) -> Step;
    fn on_wake(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step;
}

/// An instance of plugin `P` with its configuration.
pub struct Configured<P: Plugin> {
    label: String,
    config: P::Config,
}

impl<P: Plugin> Configured<P> {
    /// Parses `doc` with the plugin's own configuration code.
    pub fn new(label: impl Into<String>, doc: &Value) -> Result<Self, ConfigError> {
        Ok(Configured {
            label: label.into(),
            config: P::configure(doc)?,
        })
    }

    pub fn config(&self) -> &P::Config {
        &self.config
    }

    /// Runs `f` on the stream state; a state of another type (which the chain
    /// never hands over) fails closed with a 500.
    fn with<F>(&self, stream: &mut dyn Any, cx: &mut Cx<'_>, f: F) -> Step
    where
        F: FnOnce(&P::Config, &mut P::Stream, &mut Cx<'_>) -> Step,
    {
        match stream.downcast_mut::<P::Stream>() {
            Some(stream) => f(&self.config, stream, cx),
            None => {
                cx.host.send_response(
                    500,
                    "plugin_stream_state_mismatch",
                    &[],
                    b"Internal error\n",
                );
                Step::Stop
            }
        }
    }
}

impl<P: Plugin> Instance for Configured<P> {
    fn label(&self) -> &str {
        &self.label
    }

    fn new_stream(&self) -> Box<dyn Any> {
        Box::new(P::Stream::default())
    }

    fn response(&self) -> bool {
        P::RESPONSE
    }

    fn on_request_headers(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step {
        self.with(stream, cx, P::on_request_headers)
    }

    fn on_response_headers(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step {
        if !P::RESPONSE {
            return Step::Continue;
        }
        self.with(stream, cx, P::on_response_headers)
    }

    fn on_call_response(&self, stream: &mut dyn Any, cx: &mut Cx<'_>, call: CallResponse) -> Step {
        self.with(stream, cx, |config, stream, cx| {
            P::on_call_response(config, stream, cx, call)
        })
    }

    fn on_wake(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step {
        self.with(stream, cx, P::on_wake)
    }
}

mod chain;
pub use chain::{Chain, Instances};

/// A host that records what plugins do, for native tests of plugins and chains.
pub mod testing;

#[cfg(test)]
mod tests;
