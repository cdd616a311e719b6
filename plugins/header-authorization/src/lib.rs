//! header-authorization: denies a request unless a request header carries an
//! allowed value. This file is the wasm adapter; the decision is in `authorize`.

pub mod authorize;
pub mod config;

use authorize::Decision;
use common::host::{self, HeaderMap, Plugin};
use config::Config;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

// Only the wasm module has an entry point: xtask links every plugin natively (for
// their config types), where one `_initialize` per plugin would clash.
#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(common::host::Root::<HeaderAuthorization>::new()));
}}

pub struct HeaderAuthorization;

impl Plugin for HeaderAuthorization {
    const NAME: &'static str = "header-authorization";
    type Config = Config;

    fn configure(bytes: &[u8]) -> Result<Config, common::ConfigError> {
        Config::parse(bytes)
    }

    fn http_context(config: Rc<Config>, id: u32) -> Box<dyn HttpContext> {
        Box::new(Filter { config, id })
    }
}

struct Filter {
    config: Rc<Config>,
    id: u32,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = HeaderMap::request();
        let header = &self.config.header;
        let outcome = match authorize::decide(&self.config, headers.values(header)) {
            Decision::Allow => {
                host::debug(format_args!("#{} header '{header}' allowed", self.id));
                return Action::Continue;
            }
            Decision::Missing => "missing",
            Decision::NotAllowed => "not allowed",
        };
        host::debug(format_args!(
            "#{} header '{header}' {outcome}: denied",
            self.id
        ));
        host::send_deny(&self.config.deny);
        Action::Pause
    }
}
