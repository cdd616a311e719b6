//! The one plugin interface: a plugin is its config type plus host-free logic that
//! sees a stream through the [`Host`] trait and answers each callback with a
//! [`Step`]. [`Chain`] runs a list of configured instances in one filter exactly as
//! Envoy runs separate filters; a plugin on its own is a chain of one. The wasm
//! edge (`host`) implements `Host` over proxy-wasm; tests use [`testing::Mock`].

use crate::config::ConfigError;
use crate::deny::DenyResponse;
use crate::headers::HeaderMap;
use serde_json::Value;
use std::any::Any;
use std::cell::RefCell;
use std::fmt;
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

/// Log levels a plugin uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
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
    /// True when a message at `level` would be kept: below it nothing is formatted.
    fn log_enabled(&self, level: Level) -> bool;
    fn log(&mut self, level: Level, message: fmt::Arguments<'_>);
}

/// A call response being delivered to the instance that made the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallResponse {
    pub token: u32,
    /// Headers in the response; 0 when the call failed without one.
    pub headers: usize,
    pub body_size: usize,
}

/// One callback's view of the stream: the host, the stream's id, and the
/// instance's name, which prefixes its log lines inside a chain.
pub struct Cx<'a> {
    pub host: &'a mut dyn Host,
    pub id: u32,
    label: &'a str,
}

impl<'a> Cx<'a> {
    pub fn new(host: &'a mut dyn Host, id: u32, label: &'a str) -> Self {
        Cx { host, id, label }
    }

    /// Logs `message` at `level`, prefixed with the instance's name inside a
    /// chain; formats nothing when the level is disabled.
    pub fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        if !self.host.log_enabled(level) {
            return;
        }
        if self.label.is_empty() {
            self.host.log(level, message);
        } else {
            let label = self.label;
            self.host.log(level, format_args!("{label}: {message}"));
        }
    }

    pub fn debug(&mut self, message: fmt::Arguments<'_>) {
        self.log(Level::Debug, message);
    }

    pub fn warn(&mut self, message: fmt::Arguments<'_>) {
        self.log(Level::Warn, message);
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
}

thread_local! {
    /// Streams to wake once the callback under way is done.
    static WAKES: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Wakes stream `id` (one that asked with [`Host::await_wake`]) soon after the
/// callback under way (in the wasm adapter: from the root context's next tick,
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

    fn on_request_headers(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step {
        self.with(stream, cx, P::on_request_headers)
    }

    fn on_response_headers(&self, stream: &mut dyn Any, cx: &mut Cx<'_>) -> Step {
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

/// The instances of one filter, in request order.
pub type Instances = Rc<Vec<Box<dyn Instance>>>;

/// One stream's way through a list of instances, with the semantics of separate
/// Envoy filters: requests run the instances in order; an instance that pauses
/// holds the rest until its call is answered; a local reply stops the request
/// side, and the response side (the local reply's included) runs in reverse over
/// the instances that saw the request, the one that replied among them.
pub struct Chain {
    instances: Instances,
    streams: Vec<Box<dyn Any>>,
    /// The request headers as last read, shared by the instances until one edits
    /// them: a chain of several plugins reads the map from the host once.
    request: Option<Rc<HeaderMap>>,
    /// The instance the request side is at: waiting for its call, or the one
    /// that replied; `instances.len()` once every instance let the request on.
    at: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Waiting,
    Replied,
    Passed,
}

impl Chain {
    pub fn new(instances: Instances) -> Self {
        let streams = instances.iter().map(|i| i.new_stream()).collect();
        Chain {
            instances,
            streams,
            request: None,
            at: 0,
            state: State::Start,
        }
    }

    /// True while an instance waits for its call: request body and trailers are
    /// held, since Envoy lets a Continue from a later callback resume a stream
    /// stopped at its headers.
    pub fn waiting(&self) -> bool {
        self.state == State::Waiting
    }

    /// The request headers: runs the instances from the first. `Continue` lets
    /// the request on; `Pause` holds it (waiting, or replied).
    pub fn on_request_headers(&mut self, host: &mut dyn Host, id: u32) -> Step {
        if self.state != State::Start {
            return Step::Continue;
        }
        self.run_request(0, host, id)
    }

    /// The answer to the waiting instance's call. `Continue` means the request
    /// may now go on (the caller resumes it); otherwise it stays held.
    pub fn on_call_response(&mut self, host: &mut dyn Host, id: u32, call: CallResponse) -> Step {
        self.resume_waiting(host, id, |instance, stream, cx| {
            instance.on_call_response(stream, cx, call)
        })
    }

    /// Another stream woke this one: the waiting instance's `on_wake` runs, and
    /// the answer means what [`Chain::on_call_response`]'s does.
    pub fn on_wake(&mut self, host: &mut dyn Host, id: u32) -> Step {
        self.resume_waiting(host, id, |instance, stream, cx| {
            instance.on_wake(stream, cx)
        })
    }

    fn resume_waiting(
        &mut self,
        host: &mut dyn Host,
        id: u32,
        f: impl FnOnce(&dyn Instance, &mut dyn Any, &mut Cx<'_>) -> Step,
    ) -> Step {
        if self.state != State::Waiting {
            return Step::Pause;
        }
        let at = self.at;
        let instances = self.instances.clone();
        let (Some(instance), Some(stream)) = (instances.get(at), self.streams.get_mut(at)) else {
            return Step::Pause;
        };
        let mut cached = Cached {
            host: &mut *host,
            request: &mut self.request,
        };
        let mut cx = Cx::new(&mut cached, id, instance.label());
        match f(instance.as_ref(), stream.as_mut(), &mut cx) {
            Step::Continue => self.run_request(at + 1, host, id),
            Step::Pause => Step::Pause,
            Step::Stop => {
                self.state = State::Replied;
                Step::Pause
            }
        }
    }

    fn run_request(&mut self, from: usize, host: &mut dyn Host, id: u32) -> Step {
        let instances = self.instances.clone();
        for (at, instance) in instances.iter().enumerate().skip(from) {
            let Some(stream) = self.streams.get_mut(at) else {
                break;
            };
            self.at = at;
            let mut cached = Cached {
                host: &mut *host,
                request: &mut self.request,
            };
            let mut cx = Cx::new(&mut cached, id, instance.label());
            match instance.on_request_headers(stream.as_mut(), &mut cx) {
                Step::Continue => {}
                Step::Pause => {
                    self.state = State::Waiting;
                    return Step::Pause;
                }
                Step::Stop => {
                    self.state = State::Replied;
                    return Step::Pause;
                }
            }
        }
        self.at = instances.len();
        self.state = State::Passed;
        Step::Continue
    }

    /// The response headers (the upstream's, or a local reply's): the instances
    /// that saw the request, last first.
    pub fn on_response_headers(&mut self, host: &mut dyn Host, id: u32) -> Step {
        let seen = match self.state {
            State::Passed => self.instances.len(),
            State::Replied | State::Waiting => self.at + 1,
            // A reply before the request reached this filter (an earlier filter's
            // local reply): none of these instances saw the request.
            State::Start => 0,
        };
        let instances = self.instances.clone();
        for at in (0..seen.min(instances.len())).rev() {
            let (Some(instance), Some(stream)) = (instances.get(at), self.streams.get_mut(at))
            else {
                continue;
            };
            let mut cx = Cx::new(host, id, instance.label());
            if instance.on_response_headers(stream.as_mut(), &mut cx) == Step::Stop {
                return Step::Pause;
            }
        }
        Step::Continue
    }
}

/// The stream's host with its request headers read once: an edit the host
/// accepts is carried into the kept map as Envoy carries it out, so a later
/// instance sees it without reading the map again (a host call, and a call back
/// into the VM for the buffer: most of what reading headers costs).
struct Cached<'a> {
    host: &'a mut dyn Host,
    request: &'a mut Option<Rc<HeaderMap>>,
}

impl Cached<'_> {
    fn edited(
        &mut self,
        map: Map,
        accepted: bool,
        name: &str,
        value: Option<&[u8]>,
        keep_others: bool,
    ) -> bool {
        if map == Map::Request {
            match (accepted, self.request.as_ref()) {
                (true, Some(kept)) => {
                    *self.request = Some(Rc::new(kept.edited(name, value, keep_others)));
                }
                // A refused edit may have done part of its work: read again.
                _ => *self.request = None,
            }
        }
        accepted
    }
}

impl Host for Cached<'_> {
    fn request_headers(&mut self) -> Rc<HeaderMap> {
        match self.request {
            Some(map) => map.clone(),
            None => self.request.insert(self.host.request_headers()).clone(),
        }
    }

    fn contains(&mut self, map: Map, name: &str) -> bool {
        self.host.contains(map, name)
    }

    fn add(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        let accepted = self.host.add(map, name, value);
        self.edited(map, accepted, name, Some(value), true)
    }

    fn replace(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        let accepted = self.host.replace(map, name, value);
        self.edited(map, accepted, name, Some(value), false)
    }

    fn remove(&mut self, map: Map, name: &str) -> bool {
        let accepted = self.host.remove(map, name);
        self.edited(map, accepted, name, None, false)
    }

    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        self.host.send_response(status, details, headers, body);
    }

    fn send_deny(&mut self, deny: &DenyResponse) {
        self.host.send_deny(deny);
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError> {
        self.host.dispatch(cluster, headers, timeout_ms)
    }

    fn await_wake(&mut self) {
        self.host.await_wake();
    }

    fn call_response_headers(&mut self) -> HeaderMap {
        self.host.call_response_headers()
    }

    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        self.host.call_response_body(size)
    }

    fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }

    fn log_enabled(&self, level: Level) -> bool {
        self.host.log_enabled(level)
    }

    fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        self.host.log(level, message);
    }
}

/// A host that records what plugins do, for native tests of plugins and chains.
pub mod testing {
    use super::*;
    use crate::headers::serialize;

    /// One thing a plugin did through the host.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Effect {
        Add(Map, String, String),
        Replace(Map, String, String),
        Remove(Map, String),
        Respond(u32, String, Vec<(String, String)>, String),
        Dispatch(String, Vec<(String, String)>, u64),
        Log(Level, String),
    }

    /// A recording host with request and response headers held as lists.
    #[derive(Debug, Default)]
    pub struct Mock {
        pub request: Vec<(String, Vec<u8>)>,
        pub response: Vec<(String, Vec<u8>)>,
        pub call_headers: Vec<(String, Vec<u8>)>,
        pub call_body: Vec<u8>,
        pub now: u64,
        /// What `dispatch` answers; `Ok` tokens count up from 1.
        pub refuse_dispatch: Option<DispatchError>,
        /// Refuse every header edit, as a host without the map would.
        pub refuse_edits: bool,
        /// Drop log lines below warn, as a host logging at info would.
        pub quiet: bool,
        /// The stream asked to be woken (`await_wake`).
        pub awaiting: bool,
        pub effects: Vec<Effect>,
        tokens: u32,
        reads: usize,
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    impl Mock {
        pub fn new() -> Self {
            Mock {
                now: 1_000_000,
                ..Default::default()
            }
        }

        /// A mock whose request carries these headers.
        pub fn with_request(headers: &[(&str, &str)]) -> Self {
            let mut mock = Mock::new();
            mock.request = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect();
            mock
        }

        /// Effects other than logs at debug, drained.
        pub fn take(&mut self) -> Vec<Effect> {
            std::mem::take(&mut self.effects)
                .into_iter()
                .filter(|e| !matches!(e, Effect::Log(Level::Debug, _)))
                .collect()
        }

        /// How often the request headers were read from the "host".
        pub fn header_reads(&self) -> usize {
            self.reads
        }

        /// Values of request header `name`, in order.
        pub fn request_values(&self, name: &str) -> Vec<String> {
            self.request
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| text(v))
                .collect()
        }

        fn map(&mut self, map: Map) -> &mut Vec<(String, Vec<u8>)> {
            match map {
                Map::Request => &mut self.request,
                Map::Response => &mut self.response,
            }
        }
    }

    fn to_map(list: &[(String, Vec<u8>)]) -> HeaderMap {
        let pairs: Vec<(&str, &[u8])> = list
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        HeaderMap::from_buf(serialize(&pairs))
    }

    impl Host for Mock {
        fn request_headers(&mut self) -> Rc<HeaderMap> {
            self.reads += 1;
            Rc::new(to_map(&self.request))
        }

        fn contains(&mut self, map: Map, name: &str) -> bool {
            self.map(map).iter().any(|(n, _)| n == name)
        }

        fn add(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
            self.effects
                .push(Effect::Add(map, name.into(), text(value)));
            if self.refuse_edits {
                return false;
            }
            self.map(map).push((name.into(), value.to_vec()));
            true
        }

        fn replace(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
            self.effects
                .push(Effect::Replace(map, name.into(), text(value)));
            if self.refuse_edits {
                return false;
            }
            let list = self.map(map);
            list.retain(|(n, _)| n != name);
            list.push((name.into(), value.to_vec()));
            true
        }

        fn remove(&mut self, map: Map, name: &str) -> bool {
            self.effects.push(Effect::Remove(map, name.into()));
            if self.refuse_edits {
                return false;
            }
            self.map(map).retain(|(n, _)| n != name);
            true
        }

        fn send_response(
            &mut self,
            status: u32,
            details: &str,
            headers: &[(&str, &[u8])],
            body: &[u8],
        ) {
            let headers = headers
                .iter()
                .map(|(n, v)| (n.to_string(), text(v)))
                .collect();
            self.effects
                .push(Effect::Respond(status, details.into(), headers, text(body)));
        }

        fn send_deny(&mut self, deny: &DenyResponse) {
            let headers = deny
                .headers()
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            self.effects.push(Effect::Respond(
                deny.status(),
                String::new(),
                headers,
                deny.body().to_string(),
            ));
        }

        fn dispatch(
            &mut self,
            cluster: &str,
            headers: &[(&str, &str)],
            timeout_ms: u64,
        ) -> Result<u32, DispatchError> {
            if let Some(e) = self.refuse_dispatch {
                return Err(e);
            }
            let headers = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            self.effects
                .push(Effect::Dispatch(cluster.into(), headers, timeout_ms));
            self.tokens += 1;
            Ok(self.tokens)
        }

        fn await_wake(&mut self) {
            self.awaiting = true;
        }

        fn call_response_headers(&mut self) -> HeaderMap {
            to_map(&self.call_headers)
        }

        fn call_response_body(&mut self, size: usize) -> Vec<u8> {
            self.call_body.iter().copied().take(size).collect()
        }

        fn now_ms(&self) -> u64 {
            self.now
        }

        fn log_enabled(&self, level: Level) -> bool {
            !self.quiet || level >= Level::Warn
        }

        fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
            self.effects.push(Effect::Log(level, message.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Effect, Mock};
    use super::*;
    use serde_json::json;

    /// A test plugin whose config scripts what each callback does.
    struct Script;

    #[derive(Default)]
    struct Seen {
        requests: u32,
    }

    impl Plugin for Script {
        const NAME: &'static str = "script";
        type Config = (String, String);
        type Stream = Seen;

        fn configure(doc: &Value) -> Result<Self::Config, ConfigError> {
            let field = |k: &str| doc[k].as_str().unwrap_or("continue").to_string();
            Ok((field("request"), field("response")))
        }

        fn on_request_headers(config: &Self::Config, stream: &mut Seen, cx: &mut Cx<'_>) -> Step {
            stream.requests += 1;
            cx.debug(format_args!("request"));
            let _ = cx.host.add(Map::Request, "x-seen", b"1");
            match config.0.as_str() {
                "call" => match cx.host.dispatch("auth", &[], 100) {
                    Ok(_) => Step::Pause,
                    Err(_) => Step::Stop,
                },
                "deny" => {
                    cx.host.send_response(403, "denied", &[], b"no\n");
                    Step::Stop
                }
                _ => Step::Continue,
            }
        }

        fn on_response_headers(_: &Self::Config, stream: &mut Seen, cx: &mut Cx<'_>) -> Step {
            let n = stream.requests.to_string();
            let _ = cx.host.add(Map::Response, "x-saw", n.as_bytes());
            cx.debug(format_args!("response"));
            Step::Continue
        }

        fn on_call_response(
            _: &Self::Config,
            _: &mut Seen,
            cx: &mut Cx<'_>,
            call: CallResponse,
        ) -> Step {
            cx.debug(format_args!("answer {}", call.token));
            if call.headers == 0 {
                cx.host.send_response(503, "failed", &[], b"");
                Step::Stop
            } else {
                Step::Continue
            }
        }
    }

    fn chain(scripts: &[(&str, &str)]) -> Chain {
        let instances: Vec<Box<dyn Instance>> = scripts
            .iter()
            .map(|(name, request)| {
                let doc = json!({"request": request});
                Box::new(Configured::<Script>::new(*name, &doc).unwrap()) as Box<dyn Instance>
            })
            .collect();
        Chain::new(Rc::new(instances))
    }

    fn logs(mock: &mut Mock) -> Vec<String> {
        std::mem::take(&mut mock.effects)
            .into_iter()
            .filter_map(|e| match e {
                Effect::Log(_, line) => Some(line),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn requests_in_order_responses_in_reverse() {
        let mut c = chain(&[("a", "continue"), ("b", "continue"), ("c", "continue")]);
        let mut host = Mock::new();
        assert_eq!(c.on_request_headers(&mut host, 7), Step::Continue);
        assert_eq!(c.on_response_headers(&mut host, 7), Step::Continue);
        assert_eq!(
            logs(&mut host),
            [
                "a: request",
                "b: request",
                "c: request",
                "c: response",
                "b: response",
                "a: response"
            ]
        );
        assert_eq!(host.request_values("x-seen"), ["1", "1", "1"]);
    }

    #[test]
    fn a_reply_stops_the_request_and_only_earlier_instances_and_the_sender_see_it() {
        let mut c = chain(&[("a", "continue"), ("b", "deny"), ("c", "continue")]);
        let mut host = Mock::new();
        assert_eq!(c.on_request_headers(&mut host, 1), Step::Pause);
        assert!(!c.waiting());
        assert_eq!(c.on_response_headers(&mut host, 1), Step::Continue);
        assert_eq!(
            logs(&mut host),
            ["a: request", "b: request", "b: response", "a: response"]
        );
    }

    #[test]
    fn a_call_pauses_the_chain_and_its_answer_resumes_it_at_the_next_instance() {
        let mut c = chain(&[("a", "continue"), ("b", "call"), ("c", "continue")]);
        let mut host = Mock::new();
        assert_eq!(c.on_request_headers(&mut host, 1), Step::Pause);
        assert!(c.waiting());
        assert_eq!(logs(&mut host), ["a: request", "b: request"]);
        let answer = CallResponse {
            token: 1,
            headers: 3,
            body_size: 0,
        };
        assert_eq!(c.on_call_response(&mut host, 1, answer), Step::Continue);
        assert!(!c.waiting());
        assert_eq!(logs(&mut host), ["b: answer 1", "c: request"]);
        // A second answer (never expected) changes nothing.
        assert_eq!(c.on_call_response(&mut host, 1, answer), Step::Pause);
        assert!(logs(&mut host).is_empty());
        c.on_response_headers(&mut host, 1);
        assert_eq!(
            logs(&mut host),
            ["c: response", "b: response", "a: response"]
        );
    }

    #[test]
    fn a_failed_call_replies_and_the_rest_never_run() {
        let mut c = chain(&[("a", "call"), ("b", "continue")]);
        let mut host = Mock::new();
        assert_eq!(c.on_request_headers(&mut host, 1), Step::Pause);
        let failed = CallResponse {
            token: 1,
            headers: 0,
            body_size: 0,
        };
        assert_eq!(c.on_call_response(&mut host, 1, failed), Step::Pause);
        assert!(!c.waiting());
        c.on_response_headers(&mut host, 1);
        let effects = host.effects.to_vec();
        assert!(effects.contains(&Effect::Respond(
            503,
            "failed".into(),
            vec![],
            String::new()
        )));
        assert_eq!(
            logs(&mut host),
            ["a: request", "a: answer 1", "a: response"]
        );
    }

    #[test]
    fn a_reply_from_an_earlier_filter_reaches_no_instance() {
        let mut c = chain(&[("a", "continue")]);
        let mut host = Mock::new();
        assert_eq!(c.on_response_headers(&mut host, 1), Step::Continue);
        assert!(logs(&mut host).is_empty());
        // Request headers arrive only once.
        assert_eq!(c.on_request_headers(&mut host, 1), Step::Continue);
        assert_eq!(c.on_request_headers(&mut host, 1), Step::Continue);
        assert_eq!(logs(&mut host), ["a: request"]);
    }

    #[test]
    fn the_request_headers_are_read_once_and_edits_are_carried_into_them() {
        // Every Script instance reads nothing but adds x-seen: three reads then.
        let mut c = chain(&[("a", "continue"), ("b", "continue")]);
        let mut host = Mock::new();
        c.on_request_headers(&mut host, 1);
        assert_eq!(host.header_reads(), 0);
        struct Reader;
        impl Plugin for Reader {
            const NAME: &'static str = "reader";
            type Config = bool;
            type Stream = ();
            fn configure(doc: &Value) -> Result<bool, ConfigError> {
                Ok(doc.as_bool().unwrap_or(false))
            }
            fn on_request_headers(edits: &bool, _: &mut (), cx: &mut Cx<'_>) -> Step {
                let seen = cx.host.request_headers().values("x-n").count().to_string();
                cx.debug(format_args!("{seen}"));
                if *edits {
                    cx.host.add(Map::Request, "x-n", b"1");
                }
                Step::Continue
            }
        }
        let make = |edits: bool, name: &str| -> Box<dyn Instance> {
            Box::new(Configured::<Reader>::new(name, &json!(edits)).unwrap())
        };
        let instances = vec![
            make(false, "a"),
            make(false, "b"),
            make(true, "c"),
            make(false, "d"),
        ];
        let mut c = Chain::new(Rc::new(instances));
        let mut host = Mock::new();
        c.on_request_headers(&mut host, 1);
        // One read for all: c's edit is carried into the kept map, and d sees it.
        assert_eq!(host.header_reads(), 1);
        assert_eq!(logs(&mut host), ["a: 0", "b: 0", "c: 0", "d: 1"]);
    }

    #[test]
    fn a_plugin_on_its_own_logs_without_a_prefix() {
        let mut c = chain(&[("", "continue")]);
        let mut host = Mock::new();
        c.on_request_headers(&mut host, 1);
        assert_eq!(logs(&mut host), ["request"]);
    }
}
