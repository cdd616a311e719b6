//! A remote provider's keys in one VM: the set fetched last, when, and the one
//! fetch under way with the streams waiting for it. Pure logic over an injected
//! clock; the flow asks [`KeyState::plan`] what a request should do and reports
//! what its fetch brought.
//!
//! Proxy-wasm cannot cancel a call, and the adapter drops the answer to a call
//! whose stream is gone: a fetch whose stream left is forgotten at once (the stream's
//! state says so as it goes, see `Stream` in lib.rs), and in any case at its
//! deadline.

use crate::jwks::Key;
use std::rc::Rc;

/// A token naming a `kid` the keys lack, or keys past their TTL, cause a new
/// fetch only if none started in this long.
pub const REFETCH_AFTER_MS: u64 = 30_000;
/// How long after its timeout a fetch still counts as under way: Envoy ends it on
/// a timer of the same thread, so its answer may come a little after.
pub const GRACE_MS: u64 = 50;
/// The most streams waiting for one fetch; more are refused (fail closed). Each
/// keeps its token (up to 32 KiB) while it waits: 32 MiB at most.
pub const MAX_WAITERS: usize = 1024;
/// The largest JWKS body read (Google's is about 2 KB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// At most one fetch-failure warning per provider this often.
pub const WARN_EVERY_MS: u64 = 10_000;

/// What a request does about its provider's keys.
#[derive(Clone)]
pub enum Plan {
    /// Verify with these keys (fresh, or the last known while a refresh is
    /// throttled or under way).
    Use(Rc<Vec<Key>>),
    /// Start a fetch and wait for it.
    Fetch,
    /// Wait for the fetch under way.
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fetch {
    token: u32,
    deadline: u64,
}

#[derive(Default)]
pub struct KeyState {
    keys: Option<Rc<Vec<Key>>>,
    fetched_at: u64,
    last_start: Option<u64>,
    /// The last fetch that ended failed.
    failed: bool,
    in_flight: Option<Fetch>,
    waiters: Vec<u32>,
    last_warn: Option<u64>,
    held_warnings: u64,
}

impl KeyState {
    /// The keys last fetched, fresh or not.
    pub fn keys(&self) -> Option<Rc<Vec<Key>>> {
        self.keys.clone()
    }

    /// Forgets a fetch past its deadline (its answer will never come); returns
    /// the streams that waited for it, to be woken (and refused).
    pub fn expire(&mut self, now: u64) -> Vec<u32> {
        match self.in_flight {
            Some(f)
                if now >= f.deadline
                    || f.deadline - now > crate::config::MAX_TIMEOUT_MS as u64 + GRACE_MS =>
            {
                self.in_flight = None;
                std::mem::take(&mut self.waiters)
            }
            _ => Vec::new(),
        }
    }

    /// What a request whose token names `kid` does at `now` (call [`expire`]
    /// first).
    ///
    /// [`expire`]: KeyState::expire
    pub fn plan(&self, now: u64, ttl_ms: u64, kid: Option<&str>) -> Plan {
        let recent = self
            .last_start
            .is_some_and(|at| now >= at && now - at < REFETCH_AFTER_MS);
        let Some(keys) = &self.keys else {
            // No keys at all: every request tries (one fetch at a time).
            return if self.in_flight.is_some() {
                Plan::Wait
            } else {
                Plan::Fetch
            };
        };
        let fresh = now >= self.fetched_at && now - self.fetched_at < ttl_ms;
        let knows = kid.is_none_or(|kid| keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        let in_flight = self.in_flight.is_some();
        // An early fetch (a kid the keys lack), or another try after a refresh
        // failed, waits 30 s after the last start; a refresh at the TTL does not.
        let throttled = recent && (fresh || self.failed);
        match (fresh, knows, in_flight, throttled) {
            (true, true, _, _) => Plan::Use(keys.clone()),
            // Stale keys that know the kid serve while a refresh is under way.
            (false, true, true, _) => Plan::Use(keys.clone()),
            (_, false, true, _) => Plan::Wait,
            (_, _, false, true) => Plan::Use(keys.clone()),
            (_, _, false, false) => Plan::Fetch,
        }
    }

    /// A fetch went out as call `token` at `now`.
    pub fn started(&mut self, token: u32, now: u64, timeout_ms: u64) {
        self.in_flight = Some(Fetch {
            token,
            deadline: now.saturating_add(timeout_ms + GRACE_MS),
        });
        self.last_start = Some(now);
    }

    /// Whether call `token` is the fetch under way.
    pub fn is_in_flight(&self, token: u32) -> bool {
        self.in_flight.is_some_and(|f| f.token == token)
    }

    /// Stream `id` waits for the fetch under way; false when too many do.
    pub fn wait(&mut self, id: u32) -> bool {
        if self.waiters.len() >= MAX_WAITERS {
            return false;
        }
        self.waiters.push(id);
        true
    }

    /// Fetch `token` ended with `keys` (`None`: it failed; the keys held stay).
    /// Returns the streams to wake.
    pub fn finished(&mut self, token: u32, keys: Option<Vec<Key>>, now: u64) -> Vec<u32> {
        self.failed = keys.is_none();
        if let Some(keys) = keys {
            self.keys = Some(Rc::new(keys));
            self.fetched_at = now;
        }
        if self.is_in_flight(token) {
            self.in_flight = None;
            std::mem::take(&mut self.waiters)
        } else {
            Vec::new()
        }
    }

    /// The stream that made fetch `token` left: its answer will not come.
    /// Returns the streams to wake.
    pub fn lost(&mut self, token: u32) -> Vec<u32> {
        if self.is_in_flight(token) {
            self.failed = true;
            self.in_flight = None;
            std::mem::take(&mut self.waiters)
        } else {
            Vec::new()
        }
    }

    /// Whether to warn about a failed fetch at `now`: `Some(warnings held back
    /// since the last one)` at most once per [`WARN_EVERY_MS`].
    pub fn warning(&mut self, now: u64) -> Option<u64> {
        let due = self
            .last_warn
            .is_none_or(|at| now < at || now - at >= WARN_EVERY_MS);
        if due {
            self.last_warn = Some(now);
            Some(std::mem::take(&mut self.held_warnings))
        } else {
            self.held_warnings += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{Key, Material};

    fn key(kid: &str) -> Key {
        Key {
            kid: Some(kid.into()),
            alg: None,
            material: Material::Oct(vec![0; 32]),
        }
    }

    fn name(plan: &Plan) -> String {
        match plan {
            Plan::Use(keys) => format!(
                "use {}",
                keys.iter()
                    .filter_map(|k| k.kid.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Plan::Fetch => "fetch".into(),
            Plan::Wait => "wait".into(),
        }
    }

    #[test]
    fn the_first_request_fetches_and_the_next_wait_for_it() {
        let mut s = KeyState::default();
        assert_eq!(name(&s.plan(0, 600_000, Some("a"))), "fetch");
        s.started(7, 0, 1000);
        assert_eq!(name(&s.plan(1, 600_000, Some("a"))), "wait");
        assert!(s.wait(11) && s.wait(12));
        assert_eq!(s.finished(7, Some(vec![key("a")]), 100), [11, 12]);
        assert_eq!(name(&s.plan(101, 600_000, Some("a"))), "use a");
        assert_eq!(name(&s.plan(101, 600_000, None)), "use a");
    }

    #[test]
    fn plans_over_time_kids_and_failures() {
        let ttl = 600_000;
        let mut s = KeyState::default();
        s.started(1, 0, 1000);
        s.finished(1, Some(vec![key("a")]), 0);
        let cases: &[(u64, Option<&str>, &str)] = &[
            (1_000, Some("a"), "use a"),
            // An unknown kid within 30 s of the last fetch: no new fetch.
            (29_999, Some("b"), "use a"),
            (30_000, Some("b"), "fetch"),
            // Stale keys: refreshed (the request waits), even within 30 s of
            // the last fetch.
            (ttl, Some("a"), "fetch"),
            (ttl, Some("b"), "fetch"),
        ];
        let mut quick = KeyState::default();
        quick.started(1, 0, 1000);
        quick.finished(1, Some(vec![key("a")]), 0);
        assert_eq!(name(&quick.plan(1_000, 1_000, Some("b"))), "fetch");
        for (now, kid, expected) in cases {
            assert_eq!(
                name(&s.plan(*now, ttl, *kid)),
                *expected,
                "at {now} {kid:?}"
            );
        }
        // A refresh under way: stale keys that know the kid serve; others wait.
        s.started(2, ttl, 1000);
        assert_eq!(name(&s.plan(ttl + 1, ttl, Some("a"))), "use a");
        assert_eq!(name(&s.plan(ttl + 1, ttl, Some("b"))), "wait");
        // It fails: the old keys stay, and serve until the next try 30 s later.
        assert!(s.finished(2, None, ttl + 5).is_empty());
        assert_eq!(name(&s.plan(ttl + 10, ttl, Some("a"))), "use a");
        assert_eq!(name(&s.plan(ttl + 30_000, ttl, Some("a"))), "fetch");
        // Without keys, a failed fetch is retried by the next request at once.
        let mut empty = KeyState::default();
        empty.started(3, 0, 1000);
        empty.finished(3, None, 10);
        assert_eq!(name(&empty.plan(11, ttl, None)), "fetch");
    }

    #[test]
    fn a_lost_or_expired_fetch_frees_its_waiters() {
        let mut s = KeyState::default();
        s.started(5, 1_000, 1_000);
        s.wait(1);
        assert!(s.expire(2_049).is_empty());
        assert_eq!(s.expire(2_050), [1]);
        assert_eq!(name(&s.plan(2_050, 1, None)), "fetch");
        s.started(6, 3_000, 1_000);
        s.wait(2);
        assert!(s.lost(5).is_empty(), "not the fetch under way");
        assert_eq!(s.lost(6), [2]);
        // Its late answer, should one come, changes nothing but the keys.
        assert!(s.finished(6, None, 3_500).is_empty());
        // A clock gone back cannot hold a fetch for ever.
        s.started(7, 10_000_000, 1_000);
        s.wait(3);
        assert_eq!(s.expire(1_000), [3]);
    }

    #[test]
    fn waiters_are_bounded_and_warnings_spaced() {
        let mut s = KeyState::default();
        s.started(1, 0, 1000);
        for id in 0..MAX_WAITERS as u32 {
            assert!(s.wait(id));
        }
        assert!(!s.wait(99_999));
        assert_eq!(s.warning(0), Some(0));
        assert_eq!(s.warning(1), None);
        assert_eq!(s.warning(2), None);
        assert_eq!(s.warning(WARN_EVERY_MS), Some(2));
    }
}
