//! dispatch-auth: asks an external authorization service about each request
//! with `dispatch_http_call`, with Envoy ext_authz semantics (allowed headers
//! both ways, failure_mode_allow, status_on_error), a per-VM decision cache and
//! a per-VM cap on calls out. This file joins the plugin interface; the flow is
//! in `flow`, over its own small `Host` trait, which [`FlowHost`] carries onto
//! the stream's host.

/// The decision cache lives in `common` (jwt-auth's verified tokens use it too).
pub use common::cache;
pub mod call;
pub mod config;
pub mod flow;
pub mod pending;
pub mod proxy;
pub mod shared;
pub mod verdict;

use common::host::Action;
use common::plugin::{CallResponse, Cx, DispatchError, LocalRun, Map, Plugin, Step};
use flow::{Shared, Stream};
use pending::Registry;
use serde_json::Value;
use verdict::{Failure, Overload};

common::export_plugin!(DispatchAuth, calls);

thread_local! {
    /// This VM's calls out, per cluster, shared by every instance in it.
    static CALLS: Registry = Registry::default();
}

pub struct DispatchAuth;

impl Plugin for DispatchAuth {
    const NAME: &'static str = "dispatch-auth";
    type Config = Shared;
    /// Made at the request headers, with the stream's id for its log lines.
    type Stream = Option<Stream>;
    const CALLS: bool = true;

    fn configure(doc: &Value) -> Result<Shared, common::ConfigError> {
        let config = config::Config::from_value(doc)?;
        let calls = CALLS.with(|registry| registry.for_cluster(&config.cluster));
        Ok(Shared::new(
            config,
            calls,
            Box::new(proxy::EnvoyGauges::define()),
        ))
    }

    fn on_request_headers(shared: &Shared, stream: &mut Option<Stream>, cx: &mut Cx<'_>) -> Step {
        let headers = cx.host.request_headers();
        let stream = stream.get_or_insert_with(|| Stream::new(cx.id));
        let mut host = FlowHost::new(cx);
        let action = stream.on_request_headers(shared, &mut host, headers.pairs());
        step(stream, action == Action::Continue)
    }

    fn on_call_response(
        shared: &Shared,
        stream: &mut Option<Stream>,
        cx: &mut Cx<'_>,
        call: CallResponse,
    ) -> Step {
        let Some(stream) = stream else {
            return Step::Continue;
        };
        // No headers: the call failed without a response; reading would find none.
        let map = (call.headers > 0).then(|| cx.host.call_response_headers());
        let mut host = FlowHost::new(cx);
        let pairs = map.iter().flat_map(|m| m.pairs());
        stream.on_call_response(shared, &mut host, pairs, call.body_size);
        let resumed = host.resumed;
        step(stream, resumed)
    }

    /// Every request asks the auth service behind `cluster`.
    fn local_run(shared: &Shared, _doc: &Value) -> LocalRun {
        LocalRun::AuthCluster(shared.config.cluster.clone())
    }
}

/// What the flow's outcome means for the chain: on, waiting for the call, or
/// answered.
fn step(stream: &Stream, goes_on: bool) -> Step {
    if goes_on {
        Step::Continue
    } else if stream.waiting() {
        Step::Pause
    } else {
        Step::Stop
    }
}

/// The flow's [`flow::Host`] over the stream's host. Resuming the request is the
/// chain's business (later instances run first), so it is only noted here.
pub struct FlowHost<'a, 'b> {
    cx: &'a mut Cx<'b>,
    resumed: bool,
}

impl<'a, 'b> FlowHost<'a, 'b> {
    fn new(cx: &'a mut Cx<'b>) -> Self {
        FlowHost { cx, resumed: false }
    }
}

impl flow::Host for FlowHost<'_, '_> {
    fn now_ms(&self) -> u64 {
        self.cx.host.now_ms()
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        timeout_ms: u64,
    ) -> Result<u32, Failure> {
        self.cx
            .host
            .dispatch(cluster, &headers, timeout_ms)
            .map_err(|e| match e {
                DispatchError::BadArgument => {
                    Failure::Dispatch("unknown cluster or invalid call headers (BadArgument)")
                }
                DispatchError::InternalFailure => Failure::Overloaded(Overload::Refused),
                DispatchError::Other(_) => Failure::Dispatch("unexpected host status"),
            })
    }

    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> bool {
        match value {
            Some(v) => self.cx.host.replace(Map::Request, name, v),
            None => self.cx.host.remove(Map::Request, name),
        }
    }

    fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.cx.host.add(Map::Request, name, value)
    }

    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        self.cx.host.send_response(status, details, headers, body);
    }

    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        self.cx.host.call_response_body(size)
    }

    fn resume_request(&mut self) {
        self.resumed = true;
    }
}
