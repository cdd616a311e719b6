//! jwt-auth: verifies JWTs inside the gateway against each provider's keys,
//! given in the config (`local_jwks`) or fetched with `dispatch_http_call`
//! (`remote_jwks`, shared per VM, one fetch at a time per provider), with rules
//! by path and method and claims copied to request headers. This file joins the
//! plugin interface; a request's way is in `flow`, its reading and the rules in
//! `request`, the token in `token`, keys in `jwks` and `remote`, the checks in
//! `verify` and `alg`.

pub mod alg;
pub mod config;
pub mod flow;
pub mod jwks;
pub mod remote;
pub mod request;
pub mod token;
pub mod verify;

use common::cache::{heap, Cache, Key as CacheKey, Weight};
use common::path::{BAD_PATH_BODY, BAD_PATH_STATUS};
use common::plugin::{CallResponse, Cx, LocalRun, Map, Plugin, Step};
use config::{Config, Keys};
use flow::{check, edit_refused, fetched_keys, refuse, resume};
use remote::KeyState;
use request::{Decision, Request};
use serde_json::Value;
use siphasher::sip128::Hasher128;
use std::cell::RefCell;
use std::hash::Hasher;
use std::rc::Rc;
use token::Refusal;

common::export_plugin!(JwtAuth, calls);

/// Verified tokens kept per instance and VM: at most `cache_entries` (1024 by
/// default), charged at most this many bytes...
pub const CACHE_BYTES: usize = 1024 * 1024;
/// ...each for at most this long (and never past the token's `exp`).
pub const CACHE_TTL_MS: u64 = 300_000;

pub struct JwtAuth;

/// A token already verified: its provider, until when it holds, and the claim
/// header values it sets (by index into the provider's `claim_to_headers`).
pub struct Verified {
    pub provider: usize,
    pub until_ms: u64,
    pub headers: Vec<(usize, Vec<u8>)>,
}

impl Weight for Verified {
    fn weight(&self) -> usize {
        heap::<(usize, Vec<u8>)>(self.headers.capacity())
            + self
                .headers
                .iter()
                .map(|(_, v)| heap::<u8>(v.capacity()))
                .sum::<usize>()
    }
}

/// An instance: its configuration and its cache of verified tokens.
pub struct Shared {
    pub config: Config,
    cache: RefCell<Cache<Rc<Verified>>>,
}

impl Shared {
    pub fn new(config: Config) -> Self {
        // A TTL of 0 turns the cache off.
        let ttl = if config.cache_entries == 0 {
            0
        } else {
            CACHE_TTL_MS
        };
        let cache = Cache::new(ttl, config.cache_entries, CACHE_BYTES);
        Shared {
            config,
            cache: RefCell::new(cache),
        }
    }

    /// Live verified tokens.
    pub fn cache_len(&self) -> usize {
        self.cache.try_borrow().map_or(0, |c| c.len())
    }
}

/// A stream waiting for its provider's keys: the token, where it was, who may
/// have issued it, and (for the stream that fetches) the fetch.
pub struct Pending {
    token: Vec<u8>,
    location: usize,
    provider: usize,
    fetch: Option<(Rc<RefCell<KeyState>>, u32)>,
}

#[derive(Default)]
pub struct Stream {
    pending: Option<Pending>,
}

/// A stream that leaves while its fetch is out takes the answer with it (the
/// adapter drops an answer whose stream is gone): the streams waiting for that
/// fetch are woken now, and refused, rather than left hanging.
impl Drop for Stream {
    fn drop(&mut self) {
        if let Some((state, token)) = self.pending.as_ref().and_then(|p| p.fetch.as_ref()) {
            if let Ok(mut state) = state.try_borrow_mut() {
                for id in state.lost(*token) {
                    common::plugin::wake(id);
                }
            }
        }
    }
}

fn cache_key(token: &[u8]) -> CacheKey {
    let mut hash = common::cache::hasher();
    hash.write(token);
    hash.finish128().as_bytes()
}

impl Plugin for JwtAuth {
    const NAME: &'static str = "jwt-auth";
    type Config = Shared;
    type Stream = Stream;
    const CALLS: bool = true;

    fn configure(doc: &Value) -> Result<Shared, common::ConfigError> {
        Ok(Shared::new(Config::from_value(doc)?))
    }

    fn on_request_headers(shared: &Shared, stream: &mut Stream, cx: &mut Cx<'_>) -> Step {
        let headers = cx.host.request_headers();
        let config = &shared.config;
        let request = Request::read(config, headers.pairs());
        // Before anything else: a client never sets a claim header, in any
        // spelling, whatever rule applies.
        for name in &request.spoofed {
            let name = std::str::from_utf8(name).unwrap_or_default();
            if !cx.host.remove(Map::Request, name) {
                return edit_refused(cx, name);
            }
        }
        let id = cx.id;
        match request::decide(config, request.method, &request.overrides, request.path) {
            Decision::Pass => {
                log::debug!("#{id} no token needed");
                Step::Continue
            }
            Decision::BadPath(why) => {
                log::debug!("#{id} refused: {}", why.reason());
                cx.host.send_response(
                    BAD_PATH_STATUS,
                    "jwt_auth_bad_path",
                    &[],
                    BAD_PATH_BODY.as_bytes(),
                );
                Step::Stop
            }
            Decision::Check { allowed, required } => {
                match request::find_token(config, &request, allowed) {
                    Some((location, token)) => check(shared, stream, cx, location, token, allowed),
                    None if required => refuse(config, cx, Refusal::Missing),
                    None => {
                        log::debug!("#{id} no token, allowed missing");
                        Step::Continue
                    }
                }
            }
        }
    }

    fn on_call_response(
        shared: &Shared,
        stream: &mut Stream,
        cx: &mut Cx<'_>,
        call: CallResponse,
    ) -> Step {
        let Some(mut pending) = stream.pending.take() else {
            return Step::Continue;
        };
        let Some((state, token)) = pending.fetch.take() else {
            return resume(shared, cx, &pending);
        };
        let config = &shared.config;
        let Some(provider) = config.providers.get(pending.provider) else {
            return refuse(config, cx, Refusal::KeysUnavailable);
        };
        let fetched = fetched_keys(cx, call);
        let now = cx.host.now_ms();
        let Ok(mut keys) = state.try_borrow_mut() else {
            return refuse(config, cx, Refusal::KeysUnavailable);
        };
        let (set, why) = match fetched {
            Ok(set) => (Some(set), None),
            Err(why) => (None, Some(why)),
        };
        let count = set.as_ref().map_or(0, Vec::len);
        let waiters = keys.finished(token, set, now);
        let warn = why.as_ref().and_then(|_| keys.warning(now));
        drop(keys);
        let waiting = waiters.len();
        let id = cx.id;
        for id in waiters {
            common::plugin::wake(id);
        }
        match (why, warn) {
            (None, _) => log::debug!(
                "#{id} provider '{}': fetched {count} keys, {waiting} requests waited",
                provider.name
            ),
            (Some(why), Some(held)) => {
                let cluster = match &provider.keys {
                    Keys::Remote(r) => r.cluster.as_str(),
                    Keys::Local(_) => "",
                };
                log::warn!(
                    "provider '{}': JWKS fetch from cluster '{cluster}' failed: {why}; \
                     requests fail closed until a fetch succeeds unless keys were fetched before \
                     ({held} more failures since the last warning)",
                    provider.name
                );
            }
            (Some(why), None) => log::debug!("#{id} JWKS fetch failed: {why}"),
        }
        resume(shared, cx, &pending)
    }

    fn on_wake(shared: &Shared, stream: &mut Stream, cx: &mut Cx<'_>) -> Step {
        match stream.pending.take() {
            Some(pending) => resume(shared, cx, &pending),
            None => Step::Continue,
        }
    }

    /// It guards `GET /` when a rule needs a token there; no header xtask could
    /// write gets a request past it (a token needs the issuer's key).
    fn local_run(shared: &Shared, _doc: &Value) -> LocalRun {
        match request::decide(&shared.config, b"GET", &[], b"/") {
            Decision::Check { required: true, .. } => LocalRun::Gate(Vec::new()),
            _ => LocalRun::Passive,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
