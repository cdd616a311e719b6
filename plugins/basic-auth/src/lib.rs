//! basic-auth: path- and method-scoped HTTP Basic authentication, configured with
//! the istio-ecosystem `basic_auth` schema. This file is the wasm adapter; the
//! decision is in `auth`, the config in `config`.

pub mod auth;
pub mod config;
pub mod secret;

use auth::{Decision, MAX_OVERRIDES, METHOD_OVERRIDES};
use common::headers::is_spelling_of;
use common::host::{self, HeaderMap, HostHeaders, Plugin};
use common::path::{BAD_PATH_BODY, BAD_PATH_STATUS};
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
        let (mut method, mut path): (&[u8], &[u8]) = (b"", b"");
        // The first two Authorization values: `decide` refuses a second one, and
        // needs no more.
        let mut authorization: [Option<&[u8]>; 2] = [None, None];
        let mut overrides: [&[u8]; MAX_OVERRIDES] = [b""; MAX_OVERRIDES];
        let mut override_count = 0;
        // Client-sent copies of the user-name header, in any spelling; almost
        // always none, so this allocates nothing.
        let mut spoofed: Vec<&[u8]> = Vec::new();
        for (name, value) in headers.pairs() {
            match name {
                b":method" => method = value,
                b":path" => path = value,
                b"authorization" => match authorization {
                    [None, _] => authorization = [Some(value), None],
                    [first, None] => authorization = [first, Some(value)],
                    _ => {}
                },
                _ => {
                    if forward.is_some_and(|f| is_spelling_of(name, f)) && !spoofed.contains(&name)
                    {
                        spoofed.push(name);
                    }
                    if METHOD_OVERRIDES.iter().any(|o| is_spelling_of(name, o)) {
                        if let Some(slot) = overrides.get_mut(override_count) {
                            *slot = value;
                            override_count += 1;
                        }
                    }
                }
            }
        }
        for name in spoofed {
            // A spelling of a valid token is ASCII.
            let name = std::str::from_utf8(name).unwrap_or_default();
            if !HostHeaders::REQUEST.remove(name) {
                return self.fail("remove", name);
            }
        }
        // Logs below name the decision only: never the header or any part of it.
        let authorization = authorization.into_iter().flatten();
        let overrides = overrides.get(..override_count).unwrap_or_default();
        match auth::decide(&self.config, method, overrides, path, authorization) {
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
            Decision::BadPath(why) => {
                host::debug(format_args!("#{} refused: {}", self.id, why.reason()));
                host::send_response(
                    BAD_PATH_STATUS,
                    "basic_auth_bad_path",
                    &[],
                    BAD_PATH_BODY.as_bytes(),
                );
                Action::Pause
            }
        }
    }
}
