//! response-headers: sets, appends, adds-if-absent, overwrites and removes headers
//! on responses (and requests). This file is the wasm adapter; the configuration
//! is compiled in `config` into `plan`s that run against the host's header maps.

pub mod config;
pub mod plan;

mod host;

use common::host::{HostHeaders, Plugin};
use config::Config;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

// Only the wasm module has an entry point: xtask links every plugin natively (for
// their config types), where one `_initialize` per plugin would clash.
#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(common::host::Root::<ResponseHeaders>::new()));
}}

pub struct ResponseHeaders;

impl Plugin for ResponseHeaders {
    const NAME: &'static str = "response-headers";
    type Config = Config;

    fn configure(bytes: &[u8]) -> Result<Config, common::ConfigError> {
        Config::parse(bytes)
    }

    fn http_context(config: Rc<Config>, _id: u32) -> Box<dyn HttpContext> {
        Box::new(Filter { config })
    }
}

struct Filter {
    config: Rc<Config>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.config.request.apply(&mut { HostHeaders::REQUEST });
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.config.response.apply(&mut { HostHeaders::RESPONSE });
        Action::Continue
    }
}
