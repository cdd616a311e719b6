//! Auth calls in flight, counted per VM and cluster, so that a cap can refuse new
//! calls before they pile up in Envoy. Proxy-wasm has no way to cancel a call:
//! when the client that caused one goes away, Envoy keeps the call running until
//! it answers or times out, and the adapter drops that answer without telling
//! the plugin (its stream is gone). So a call is counted until its answer arrives or its deadline passes,
//! whichever comes first. Pure logic over an injected clock.

use crate::config::MAX_TIMEOUT_MS;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// How long after its timeout a call still counts. Envoy ends a call on a timer
/// of the worker thread the plugin runs on, so a request handled in the same
/// event-loop pass as the timer could otherwise see the call gone while Envoy
/// still has it active; a short grace keeps the count from running ahead of
/// Envoy's. It delays recovery after an attack by as much.
pub const GRACE_MS: u64 = 50;

/// No call counts longer than this: a deadline further ahead means the host
/// clock (wall time) went back, and keeping such calls would refuse requests
/// until the clock caught up again.
pub const MAX_SPAN_MS: u64 = MAX_TIMEOUT_MS + GRACE_MS;

/// The calls out, each as its deadline and token (the host's id for the call),
/// in ascending order: most calls share a timeout, so a new one goes at the back
/// and an answer or an expiry takes one from near the front.
#[derive(Debug, Default)]
pub struct PendingCalls {
    out: VecDeque<(u64, u32)>,
}

impl PendingCalls {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Forgets the calls whose deadline has come (and any no call could still
    /// have, see [`MAX_SPAN_MS`]); returns how many it forgot.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.out.len();
        while self
            .out
            .front()
            .is_some_and(|&(deadline, _)| deadline <= now)
        {
            self.out.pop_front();
        }
        let horizon = now.saturating_add(MAX_SPAN_MS);
        while self
            .out
            .back()
            .is_some_and(|&(deadline, _)| deadline > horizon)
        {
            self.out.pop_back();
        }
        before - self.out.len()
    }

    /// Counts call `token` until `deadline`.
    pub fn start(&mut self, token: u32, deadline: u64) {
        let at = self.out.partition_point(|&call| call < (deadline, token));
        self.out.insert(at, (deadline, token));
    }

    /// Call `token` answered: true when it was still counted.
    pub fn finish(&mut self, token: u32, deadline: u64) -> bool {
        match self.out.binary_search(&(deadline, token)) {
            Ok(at) => self.out.remove(at).is_some(),
            Err(_) => false,
        }
    }
}

/// The counters of one VM, one per auth cluster. Every plugin instance in the
/// VM that calls a cluster counts against the same calls (Istio runs all
/// WasmPlugins of one module in one VM per worker), and a reconfigured instance
/// finds the calls its predecessor left running.
#[derive(Debug, Default)]
pub struct Registry {
    clusters: RefCell<Vec<(String, Rc<RefCell<PendingCalls>>)>>,
}

impl Registry {
    /// The counter for `cluster`, created when it is the first to ask. Counters
    /// no instance uses any more and that count nothing are dropped here, so the
    /// list follows the configured clusters.
    pub fn for_cluster(&self, cluster: &str) -> Rc<RefCell<PendingCalls>> {
        let Ok(mut clusters) = self.clusters.try_borrow_mut() else {
            return Rc::default();
        };
        clusters.retain(|(name, calls)| {
            name == cluster
                || Rc::strong_count(calls) > 1
                || !calls.try_borrow().is_ok_and(|c| c.is_empty())
        });
        if let Some((_, calls)) = clusters.iter().find(|(name, _)| name == cluster) {
            return calls.clone();
        }
        let calls = Rc::new(RefCell::new(PendingCalls::new()));
        clusters.push((cluster.to_string(), calls.clone()));
        calls
    }

    /// Clusters with a counter.
    pub fn len(&self) -> usize {
        self.clusters.try_borrow().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_counts_until_its_answer_or_its_deadline() {
        let mut calls = PendingCalls::new();
        calls.start(1, 1_000);
        calls.start(2, 1_200);
        calls.start(3, 1_100);
        assert_eq!(calls.len(), 3);
        // The answer to 3 came: it no longer counts, and only once.
        assert!(calls.finish(3, 1_100));
        assert!(!calls.finish(3, 1_100));
        assert_eq!(calls.len(), 2);
        // The client of 1 left: its answer never reaches the plugin.
        let cases = [(999, 0, 2), (1_000, 1, 1), (1_199, 0, 1), (1_200, 1, 0)];
        for (now, expired, left) in cases {
            assert_eq!(calls.expire(now), expired, "at {now}");
            assert_eq!(calls.len(), left, "at {now}");
        }
        // An answer after the deadline finds nothing to take away.
        assert!(!calls.finish(2, 1_200));
    }

    #[test]
    fn calls_with_different_timeouts_expire_in_deadline_order() {
        let mut calls = PendingCalls::new();
        // Two instances in one VM share a cluster, one with a long timeout.
        calls.start(1, 60_000);
        calls.start(2, 500);
        calls.start(3, 700);
        calls.start(4, 700);
        assert_eq!(calls.expire(700), 3);
        assert_eq!(calls.len(), 1);
        assert!(calls.finish(1, 60_000));
        assert!(calls.is_empty());
    }

    #[test]
    fn a_clock_going_back_does_not_hold_calls_for_ever() {
        let mut calls = PendingCalls::new();
        let now = 10_000_000;
        calls.start(1, now + 1_000);
        calls.start(2, now + MAX_SPAN_MS);
        // The clock goes back an hour: deadlines an hour ahead cannot be real.
        assert_eq!(calls.expire(now - 3_600_000), 2);
        assert!(calls.is_empty());
        // Within the span, nothing is dropped early.
        calls.start(3, now + MAX_SPAN_MS);
        assert_eq!(calls.expire(now), 0);
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn the_same_token_and_deadline_twice_are_two_calls() {
        // Tokens are unique per VM; should the host ever reuse one, each start
        // still has its own finish.
        let mut calls = PendingCalls::new();
        calls.start(9, 100);
        calls.start(9, 100);
        assert!(calls.finish(9, 100));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn a_registry_shares_one_counter_per_cluster() {
        let registry = Registry::default();
        let a = registry.for_cluster("auth");
        let again = registry.for_cluster("auth");
        let other = registry.for_cluster("other");
        assert!(Rc::ptr_eq(&a, &again));
        assert!(!Rc::ptr_eq(&a, &other));
        assert_eq!(registry.len(), 2);
        // A counter nobody holds and that counts nothing goes.
        drop(other);
        let _b = registry.for_cluster("b");
        assert_eq!(registry.len(), 2);
        // One that still counts calls stays for the instance that comes next.
        a.borrow_mut().start(1, 100);
        drop((a, again));
        let _c = registry.for_cluster("c");
        assert_eq!(registry.len(), 3);
        assert_eq!(registry.for_cluster("auth").borrow().len(), 1);
    }
}
