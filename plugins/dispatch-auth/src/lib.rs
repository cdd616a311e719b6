//! dispatch-auth: asks an external authorization service about each request
//! with `dispatch_http_call`, with Envoy ext_authz semantics (allowed headers
//! both ways, failure_mode_allow, status_on_error), a per-VM decision cache and
//! a per-VM cap on calls out. This file is the wasm adapter; the flow is in
//! `flow`, over the `Host` trait.

pub mod cache;
pub mod call;
pub mod config;
pub mod flow;
pub mod pending;
pub mod proxy;
pub mod shared;
pub mod verdict;

use common::host::{HeaderMap, Plugin};
use flow::{Shared, Stream};
use pending::Registry;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

// Only the wasm module has an entry point: xtask links every plugin natively (for
// their config types), where one `_initialize` per plugin would clash.
#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(common::host::Root::<DispatchAuth>::new()));
}}

thread_local! {
    /// This VM's calls out, per cluster, shared by every instance in it.
    static CALLS: Registry = Registry::default();
}

pub struct DispatchAuth;

impl Plugin for DispatchAuth {
    const NAME: &'static str = "dispatch-auth";
    type Config = Shared;

    fn configure(bytes: &[u8]) -> Result<Shared, common::ConfigError> {
        let config = config::Config::parse(bytes)?;
        let calls = CALLS.with(|registry| registry.for_cluster(&config.cluster));
        Ok(Shared::new(
            config,
            calls,
            Box::new(proxy::EnvoyGauges::define()),
        ))
    }

    fn http_context(shared: Rc<Shared>, id: u32) -> Box<dyn HttpContext> {
        Box::new(Filter {
            shared,
            stream: Stream::new(id),
        })
    }
}

struct Filter {
    shared: Rc<Shared>,
    stream: Stream,
}

impl Context for Filter {
    fn on_http_call_response(&mut self, _token: u32, headers: usize, body: usize, _: usize) {
        // No headers: the call failed without a response; reading would find none.
        let map = (headers > 0).then(HeaderMap::call_response);
        let pairs = map.iter().flat_map(HeaderMap::pairs);
        let body = || proxy::call_response_body(body);
        self.stream
            .on_call_response(&self.shared, &mut proxy::Envoy, pairs, body);
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = HeaderMap::request();
        self.stream
            .on_request_headers(&self.shared, &mut proxy::Envoy, headers.pairs())
    }

    fn on_http_request_body(&mut self, _size: usize, _end_of_stream: bool) -> Action {
        self.stream.hold()
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.stream.hold()
    }
}
