//! One request's way through the plugin: forged headers out, cache lookup, the
//! cap on calls out, the call, the answer, and carrying the decision out. Every
//! effect goes through the small [`Host`] trait, implemented over proxy-wasm in
//! `proxy.rs` and by a recording mock in the tests, so the whole flow runs
//! natively.

use crate::cache::Key;
use crate::call::{self, NotUtf8, Request};
use crate::config::{Config, FAILURE_MODE_HEADER};
use crate::pending::GRACE_MS;
use crate::verdict::{classify, Failure, Outcome, Overload, Verdict};
use common::host::Action;
use std::fmt;
use std::rc::Rc;

pub use crate::shared::Shared;

/// Decisions larger than this (denial bodies, mostly) are not cached, so one
/// entry never takes more than a small part of the cache's bytes.
pub const MAX_CACHED_BYTES: usize = 8 * 1024;

/// The body of the answer when a failed call is denied.
pub const ERROR_BODY: &str = "external authorization failed\n";

/// Everything the flow asks of the proxy.
pub trait Host {
    /// Wall-clock time in milliseconds (only differences matter).
    fn now_ms(&self) -> u64;
    /// Sends the auth call and returns the host's token for it; its answer comes
    /// back through [`Stream::on_call_response`]. An error, saying why, means no
    /// call was made.
    fn dispatch(
        &mut self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        timeout_ms: u64,
    ) -> Result<u32, Failure>;
    /// Replaces every value of request header `name` with `value`, or removes the
    /// header when `value` is `None`. False when the host refused.
    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> bool;
    /// Adds one more value of request header `name`. False when the host refused.
    fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool;
    /// Answers the request locally; `details` names why in Envoy's access log.
    fn send_response(&mut self, status: u32, details: &str, headers: &[(&str, &[u8])], body: &[u8]);
    /// Up to `size` bytes of the body of the call response being delivered.
    fn call_response_body(&mut self, size: usize) -> Vec<u8>;
    /// Lets a paused request continue.
    fn resume_request(&mut self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    /// The call is out: the key to store its decision under (when caching), the
    /// call's token and until when it is counted.
    Waiting {
        key: Option<Key>,
        token: u32,
        deadline: u64,
    },
    Done,
}

/// The state of one HTTP stream.
pub struct Stream {
    id: u32,
    phase: Phase,
}

impl Stream {
    pub fn new(id: u32) -> Self {
        Stream {
            id,
            phase: Phase::Start,
        }
    }

    /// True while the request waits for the auth service.
    pub fn waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. })
    }

    /// What to answer for request body and trailers. While the call is out they
    /// are held: Envoy's filter contract lets a Continue from a later callback
    /// resume a chain stopped at the headers, and only the decision may do that.
    pub fn hold(&self) -> Action {
        if self.waiting() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    pub fn on_request_headers<'a, H: Host>(
        &mut self,
        shared: &'a Shared,
        host: &mut H,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Action {
        self.phase = Phase::Done;
        let config = &shared.config;
        let request = Request::read(config, pairs);
        // Before any way on: what only the plugin sets upstream, a client may not
        // send, in any spelling. Every later path then only adds.
        for name in &request.forged {
            if !host.set_request_header(name, None) {
                return self.edit_refused(host, name);
            }
        }
        let key = (config.cache.ttl_ms > 0).then(|| call::key(&request));
        let now = host.now_ms();
        if let Some(key) = &key {
            if let Some(verdict) = shared.cached(key, now) {
                log::debug!("#{} cache hit", self.id);
                return self.carry_out(config, host, &verdict);
            }
        }
        let mut joined = String::new();
        let headers = match call::headers(config, &request, &mut joined) {
            Ok(headers) => headers,
            Err(NotUtf8(name)) => {
                log::debug!(
                    "#{} header '{name}' is not UTF-8 and cannot be forwarded: 400",
                    self.id
                );
                host.send_response(
                    400,
                    "dispatch_auth_bad_request",
                    &[],
                    b"bad request: a header value is not valid UTF-8\n",
                );
                return Action::Pause;
            }
        };
        if let Err(out) = shared.admit(now) {
            return self.fail(shared, host, &Failure::Overloaded(Overload::Cap(out)));
        }
        match host.dispatch(&config.cluster, headers, config.timeout_ms) {
            Ok(token) => {
                // Envoy ends the call at its timeout, counted from just after `now`.
                let deadline = now.saturating_add(config.timeout_ms + GRACE_MS);
                shared.started(token, deadline);
                self.phase = Phase::Waiting {
                    key,
                    token,
                    deadline,
                };
                Action::Pause
            }
            Err(failure) => self.fail(shared, host, &failure),
        }
    }

    /// The auth service's answer: `headers` empty when the call failed without
    /// one; its body (`body_size` bytes) is read only when the answer needs it.
    pub fn on_call_response<'a, H: Host>(
        &mut self,
        shared: &Shared,
        host: &mut H,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        body_size: usize,
    ) {
        let Phase::Waiting {
            key,
            token,
            deadline,
        } = self.phase
        else {
            return;
        };
        self.phase = Phase::Done;
        shared.finished(token, deadline);
        let config = &shared.config;
        let headers: Vec<(&[u8], &[u8])> = headers.into_iter().collect();
        let action = match classify(config, &headers, || host.call_response_body(body_size)) {
            Outcome::Decided(verdict) => {
                let verdict = Rc::new(verdict);
                if let Some(key) = key {
                    if verdict.size() <= MAX_CACHED_BYTES {
                        shared.store(key, verdict.clone(), host.now_ms());
                    }
                }
                self.carry_out(config, host, &verdict)
            }
            Outcome::Failed(failure) => self.fail(shared, host, &failure),
        };
        if action == Action::Continue {
            host.resume_request();
        }
    }

    /// Applies a decision; returns whether the request goes on. The client's
    /// copies of the upstream headers are already gone (see `on_request_headers`).
    fn carry_out<H: Host>(&self, config: &Config, host: &mut H, verdict: &Verdict) -> Action {
        match verdict {
            Verdict::Allow { headers } => {
                for name in &config.allowed_upstream_headers {
                    let mut values = headers
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, v)| v.as_slice());
                    let Some(first) = values.next() else {
                        continue;
                    };
                    let mut applied = host.set_request_header(name, Some(first));
                    for value in values {
                        applied = applied && host.add_request_header(name, value);
                    }
                    if !applied {
                        return self.edit_refused(host, name);
                    }
                }
                log::debug!("#{} allowed", self.id);
                Action::Continue
            }
            Verdict::Deny {
                status,
                headers,
                body,
            } => {
                log::debug!("#{} denied: {status}", self.id);
                let headers: Vec<(&str, &[u8])> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                host.send_response(*status, "dispatch_auth_denied", &headers, body);
                Action::Pause
            }
        }
    }

    /// The host refused a change of the request's headers: forwarding the request
    /// could pass a client-sent identity upstream, so it is answered instead.
    fn edit_refused<H: Host>(&self, host: &mut H, name: &str) -> Action {
        log::warn!(
            "#{} cannot update request header '{name}': answered 500",
            self.id
        );
        host.send_response(
            500,
            "dispatch_auth_header_update_failed",
            &[],
            b"Internal error\n",
        );
        Action::Pause
    }

    /// A call without a decision: logged, then allowed or denied by config.
    /// Overload is always denied, and logged at most once a second.
    fn fail<H: Host>(&self, shared: &Shared, host: &mut H, failure: &Failure) -> Action {
        let config = &shared.config;
        if config.failure_mode_allow && !failure.is_overload() {
            log::warn!(
                "#{} auth call to cluster '{}' failed: {failure}; request allowed (failure_mode_allow)",
                self.id, config.cluster
            );
            if !host.set_request_header(FAILURE_MODE_HEADER, Some(b"true")) {
                return self.edit_refused(host, FAILURE_MODE_HEADER);
            }
            return Action::Continue;
        }
        let details = if failure.is_overload() {
            if let Some(held) = shared.overload_warning(host.now_ms()) {
                let held = Held(held);
                log::warn!(
                    "#{} auth call to cluster '{}' failed: {failure}; answered {} \
                     (overload never fails open){held}",
                    self.id,
                    config.cluster,
                    config.status_on_error
                );
            }
            "dispatch_auth_overloaded"
        } else {
            log::warn!(
                "#{} auth call to cluster '{}' failed: {failure}; answered {}",
                self.id,
                config.cluster,
                config.status_on_error
            );
            "dispatch_auth_error"
        };
        host.send_response(config.status_on_error, details, &[], ERROR_BODY.as_bytes());
        Action::Pause
    }
}

/// How many overload warnings were held back, as the end of the next one.
struct Held(u64);

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, "; {n} more since the last such line"),
        }
    }
}

#[cfg(test)]
mod mock;
#[cfg(test)]
mod overload_tests;
#[cfg(test)]
mod tests;
