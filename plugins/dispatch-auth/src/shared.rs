//! What one plugin instance keeps in a VM from request to request: its
//! configuration, its decision cache, and the gauges that show the cache to an
//! operator.

use crate::cache::{Cache, Key};
use crate::config::Config;
use crate::verdict::Verdict;
use std::cell::RefCell;
use std::rc::Rc;

/// The plugin's gauges, `wasmcustom.dispatch-auth.<name>` in Envoy's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Decisions cached.
    CacheEntries,
    /// What the cached decisions are charged against `cache.max_bytes`.
    CacheBytes,
}

impl Metric {
    /// Every metric, in declaration order: `metric as usize` is its index here.
    pub const ALL: [Metric; 2] = [Metric::CacheEntries, Metric::CacheBytes];

    pub fn name(self) -> &'static str {
        match self {
            Metric::CacheEntries => "cache_entries",
            Metric::CacheBytes => "cache_bytes",
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

pub struct Shared {
    pub config: Config,
    cache: RefCell<Cache<Rc<Verdict>>>,
    gauges: Box<dyn Gauges>,
}

fn delta(after: usize, before: usize) -> i64 {
    after as i64 - before as i64
}

impl Shared {
    /// An instance reporting to `gauges`.
    pub fn new(config: Config, gauges: Box<dyn Gauges>) -> Self {
        let cache = Cache::new(
            config.cache.ttl_ms,
            config.cache.max_entries,
            config.cache.max_bytes,
        );
        Shared {
            config,
            cache: RefCell::new(cache),
            gauges,
        }
    }

    /// An instance without gauges.
    pub fn standalone(config: Config) -> Self {
        Self::new(config, Box::new(NoGauges))
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

    /// Live entries in this instance's cache.
    pub fn cache_len(&self) -> usize {
        self.cache.try_borrow().map_or(0, |c| c.len())
    }

    /// What this instance's cache entries are charged.
    pub fn cache_bytes(&self) -> usize {
        self.cache.try_borrow().map_or(0, |c| c.bytes())
    }
}

/// The cache goes with its instance (a new configuration makes a new one): its
/// entries leave the totals.
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
