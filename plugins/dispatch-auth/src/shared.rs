//! What one plugin instance keeps in a VM from request to request: its
//! configuration, its decision cache, the VM's count of calls out to its
//! cluster, and the gauges that show both to an operator.

use crate::cache::{Cache, Key};
use crate::config::Config;
use crate::pending::PendingCalls;
use crate::verdict::Verdict;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The plugin's gauges, `wasmcustom.dispatch-auth.<name>` in Envoy's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Decisions cached.
    CacheEntries,
    /// What the cached decisions are charged against `cache.max_bytes`.
    CacheBytes,
    /// Auth calls counted against `max_pending_calls`.
    PendingCalls,
}

impl Metric {
    /// Every metric, in declaration order: `metric as usize` is its index here.
    pub const ALL: [Metric; 3] = [
        Metric::CacheEntries,
        Metric::CacheBytes,
        Metric::PendingCalls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::CacheEntries => "cache_entries",
            Metric::CacheBytes => "cache_bytes",
            Metric::PendingCalls => "pending_calls",
        }
    }
}

/// Where the gauges go: Envoy's stats in the module, a recorder in tests. They
/// move by differences, so the VMs of all workers and every instance in them add
/// up to one total per gauge.
pub trait Gauges {
    fn add(&self, metric: Metric, delta: i64);
}

/// Gauges that go nowhere.
pub struct NoGauges;

impl Gauges for NoGauges {
    fn add(&self, _: Metric, _: i64) {}
}

/// At most one overload warning per this many milliseconds: an attack that
/// overloads the auth cluster must not also flood the log.
pub const OVERLOAD_LOG_EVERY_MS: u64 = 1000;

pub struct Shared {
    pub config: Config,
    cache: RefCell<Cache<Rc<Verdict>>>,
    calls: Rc<RefCell<PendingCalls>>,
    gauges: Box<dyn Gauges>,
    /// When the last overload warning was logged, and how many were held back
    /// since.
    overload_log: Cell<(Option<u64>, u64)>,
}

fn delta(after: usize, before: usize) -> i64 {
    after as i64 - before as i64
}

impl Shared {
    /// An instance counting its calls in `calls` (the VM's counter for its
    /// cluster) and reporting to `gauges`.
    pub fn new(config: Config, calls: Rc<RefCell<PendingCalls>>, gauges: Box<dyn Gauges>) -> Self {
        let cache = Cache::new(
            config.cache.ttl_ms,
            config.cache.max_entries,
            config.cache.max_bytes,
        );
        Shared {
            config,
            cache: RefCell::new(cache),
            calls,
            gauges,
            overload_log: Cell::new((None, 0)),
        }
    }

    /// An instance with a counter of its own and no gauges.
    pub fn standalone(config: Config) -> Self {
        Self::new(config, Rc::default(), Box::new(NoGauges))
    }

    /// Runs `f` on the cache and reports what it changed.
    fn with_cache<R>(&self, f: impl FnOnce(&mut Cache<Rc<Verdict>>) -> R) -> Option<R> {
        let mut cache = self.cache.try_borrow_mut().ok()?;
        let before = (cache.len(), cache.bytes());
        let result = f(&mut cache);
        let (len, bytes) = (cache.len(), cache.bytes());
        drop(cache);
        if len != before.0 {
            self.gauges.add(Metric::CacheEntries, delta(len, before.0));
        }
        if bytes != before.1 {
            self.gauges.add(Metric::CacheBytes, delta(bytes, before.1));
        }
        Some(result)
    }

    pub(crate) fn cached(&self, key: &Key, now: u64) -> Option<Rc<Verdict>> {
        self.with_cache(|cache| cache.get(key, now)).flatten()
    }

    pub(crate) fn store(&self, key: Key, verdict: Rc<Verdict>, now: u64) {
        self.with_cache(|cache| cache.insert(key, verdict, now));
    }

    /// Whether another call may go out now; `Err` holds the calls out. Calls past
    /// their deadline are forgotten first.
    pub(crate) fn admit(&self, now: u64) -> Result<(), usize> {
        let Ok(mut calls) = self.calls.try_borrow_mut() else {
            return Ok(());
        };
        let expired = calls.expire(now);
        let out = calls.len();
        drop(calls);
        if expired > 0 {
            self.gauges.add(Metric::PendingCalls, -(expired as i64));
        }
        if out >= self.config.max_pending_calls {
            Err(out)
        } else {
            Ok(())
        }
    }

    pub(crate) fn started(&self, token: u32, deadline: u64) {
        if let Ok(mut calls) = self.calls.try_borrow_mut() {
            calls.start(token, deadline);
            drop(calls);
            self.gauges.add(Metric::PendingCalls, 1);
        }
    }

    pub(crate) fn finished(&self, token: u32, deadline: u64) {
        let counted = self
            .calls
            .try_borrow_mut()
            .is_ok_and(|mut calls| calls.finish(token, deadline));
        if counted {
            self.gauges.add(Metric::PendingCalls, -1);
        }
    }

    /// Whether to log an overload warning at `now`: `Some(held back since the
    /// last one)` at most once per [`OVERLOAD_LOG_EVERY_MS`].
    pub(crate) fn overload_warning(&self, now: u64) -> Option<u64> {
        let (last, held) = self.overload_log.get();
        // A clock that went back logs at once rather than after the gap.
        let due = last.is_none_or(|at| now < at || now - at >= OVERLOAD_LOG_EVERY_MS);
        if due {
            self.overload_log.set((Some(now), 0));
            Some(held)
        } else {
            self.overload_log.set((last, held.saturating_add(1)));
            None
        }
    }

    /// Live entries in this instance's cache.
    pub fn cache_len(&self) -> usize {
        self.cache.try_borrow().map_or(0, |c| c.len())
    }

    /// What this instance's cache entries are charged.
    pub fn cache_bytes(&self) -> usize {
        self.cache.try_borrow().map_or(0, |c| c.bytes())
    }

    /// Calls counted out to the cluster, by every instance in the VM.
    pub fn pending_calls(&self) -> usize {
        self.calls.try_borrow().map_or(0, |c| c.len())
    }
}

/// The cache goes with its instance (a new configuration makes a new one): its
/// entries leave the totals. Calls out stay counted in the VM's counter, where
/// the next instance finds them.
impl Drop for Shared {
    fn drop(&mut self) {
        let (len, bytes) = (self.cache_len(), self.cache_bytes());
        if len > 0 {
            self.gauges.add(Metric::CacheEntries, -(len as i64));
        }
        if bytes > 0 {
            self.gauges.add(Metric::CacheBytes, -(bytes as i64));
        }
    }
}
