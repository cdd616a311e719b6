//! basic-auth: path- and method-scoped HTTP Basic authentication, configured with
//! the istio-ecosystem `basic_auth` schema. This file is the wasm adapter; the
//! decision is in `auth`, the config in `config`.

pub mod auth;
pub mod config;
pub mod secret;

use auth::Decision;
use common::host::{self, HeaderMap, HostHeaders, Plugin};
use config::Config;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

// Only the wasm module has an entry point: xtask links every plugin natively (for
// their config types), where one `_initialize` per plugin would clash.
#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(common::host::Root::<BasicAuth>::new()));
}}

pub struct BasicAuth;

impl Plugin for BasicAuth {
    const NAME: &'static str = "basic-auth";
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

impl Filter {
    /// Fails closed when the host refuses a header change: forwarding the request
    /// could let a spoofed user name through.
    fn fail(&self, what: &str, name: &str) -> Action {
        host::warn(format_args!("#{} cannot {what} '{name}': denied", self.id));
        host::send_response(
            500,
            "basic_auth_header_update_failed",
            &[],
            b"Internal error\n",
        );
        Action::Pause
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = HeaderMap::request();
        let forward = self.config.forward_username_header.as_deref();
        let (mut method, mut path, mut spoofed): (&[u8], &[u8], bool) = (b"", b"", false);
        // The first two Authorization values: `decide` refuses a second one, and
        // needs no more.
        let mut authorization: [Option<&[u8]>; 2] = [None, None];
        for (name, value) in headers.pairs() {
            match name {
                b":method" => method = value,
                b":path" => path = value,
                b"authorization" => match authorization {
                    [None, _] => authorization = [Some(value), None],
                    [first, None] => authorization = [first, Some(value)],
                    _ => {}
                },
                _ => spoofed |= forward.is_some_and(|f| f.as_bytes() == name),
            }
        }
        // Logs below name the decision only: never the header or any part of it.
        let authorization = authorization.into_iter().flatten();
        let decision = auth::decide(&self.config, method, path, authorization);
        if let (Some(name), true) = (forward, spoofed) {
            if !HostHeaders::REQUEST.remove(name) {
                return self.fail("remove", name);
            }
        }
        match decision {
            Decision::Pass => {
                host::debug(format_args!("#{} no rule applies", self.id));
                Action::Continue
            }
            Decision::Allow(user) => {
                if let Some(name) = forward {
                    if !HostHeaders::REQUEST.add(name, user.as_bytes()) {
                        return self.fail("set", name);
                    }
                }
                host::debug(format_args!("#{} credentials accepted", self.id));
                Action::Continue
            }
            Decision::Deny(denial) => {
                host::debug(format_args!("#{} denied: {}", self.id, denial.reason()));
                let deny = if denial.is_missing() {
                    &self.config.missing
                } else {
                    &self.config.wrong
                };
                host::send_deny(deny);
                Action::Pause
            }
        }
    }
}
