//! The decision cache: a bounded map from a request's key to the auth service's
//! decision, with a fixed time to live. Pure logic over an injected clock (the
//! host's time in milliseconds), so expiry and eviction are tested natively.

use std::collections::{HashMap, VecDeque};

/// A cache key: the SHA-256 of what the decision depends on. Fixed size whatever
/// the credentials' length, and no credential is kept in memory in clear.
pub type Key = [u8; 32];

struct Slot<V> {
    stored_at: u64,
    value: V,
}

/// Entries expire `ttl_ms` after they were stored. At `max_entries` the oldest
/// entry goes first: with one fixed TTL, the oldest is also the nearest to expiry.
pub struct Cache<V> {
    ttl_ms: u64,
    max_entries: usize,
    map: HashMap<Key, Slot<V>>,
    /// Keys in the order they were stored, with the time they were stored; a record
    /// whose slot has since been replaced or removed is skipped when it comes up.
    order: VecDeque<(Key, u64)>,
}

impl<V: Clone> Cache<V> {
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        Cache {
            ttl_ms,
            max_entries: max_entries.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// A TTL of 0 turns the cache off.
    pub fn enabled(&self) -> bool {
        self.ttl_ms > 0
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// An entry stored in the future (the host clock went back) counts as expired:
    /// a decision is never kept longer than asked for.
    fn fresh(&self, stored_at: u64, now: u64) -> bool {
        now >= stored_at && now - stored_at < self.ttl_ms
    }

    /// The live value for `key`, if any; an expired entry is dropped.
    pub fn get(&mut self, key: &Key, now: u64) -> Option<V> {
        let stored_at = self.map.get(key)?.stored_at;
        if self.fresh(stored_at, now) {
            return self.map.get(key).map(|slot| slot.value.clone());
        }
        self.map.remove(key);
        None
    }

    /// Stores `value` under `key`. A key already live keeps its expiry time (it was
    /// decided twice concurrently); the new value replaces the old.
    pub fn insert(&mut self, key: Key, value: V, now: u64) {
        if !self.enabled() {
            return;
        }
        self.drop_expired(now);
        if let Some(stored_at) = self.map.get(&key).map(|slot| slot.stored_at) {
            if self.fresh(stored_at, now) {
                self.map.insert(key, Slot { stored_at, value });
                return;
            }
            self.map.remove(&key);
        }
        while self.map.len() >= self.max_entries {
            if !self.evict_oldest() {
                break;
            }
        }
        self.map.insert(
            key,
            Slot {
                stored_at: now,
                value,
            },
        );
        self.order.push_back((key, now));
        // Records of removed entries wait for their turn at the front; if the clock
        // jumped, they may not reach it soon. Bound the queue regardless.
        if self.order.len() > self.max_entries.saturating_mul(2) {
            let map = &self.map;
            self.order
                .retain(|(k, at)| map.get(k).is_some_and(|slot| slot.stored_at == *at));
        }
    }

    /// True when `record` still describes the entry stored under its key.
    fn live(&self, record: &(Key, u64)) -> bool {
        self.map
            .get(&record.0)
            .is_some_and(|slot| slot.stored_at == record.1)
    }

    fn drop_expired(&mut self, now: u64) {
        while let Some(front) = self.order.front().copied() {
            let live = self.live(&front);
            if live && self.fresh(front.1, now) {
                break;
            }
            self.order.pop_front();
            if live {
                self.map.remove(&front.0);
            }
        }
    }

    /// Removes the oldest live entry; false when there was none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(front) = self.order.pop_front() {
            if self.live(&front) {
                self.map.remove(&front.0);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn hit_within_ttl_miss_after() {
        let mut c = Cache::new(1000, 10);
        c.insert(key(1), "allow", 5_000);
        let cases = [
            (5_000, Some("allow")),
            (5_999, Some("allow")),
            (6_000, None),
            (5_500, None), // dropped at 6_000, stays dropped
        ];
        for (now, expected) in cases {
            assert_eq!(c.get(&key(1), now), expected, "at {now}");
        }
        assert!(c.is_empty());
    }

    #[test]
    fn off_when_ttl_is_zero() {
        let mut c = Cache::new(0, 10);
        assert!(!c.enabled());
        c.insert(key(1), 1, 0);
        assert_eq!(c.get(&key(1), 0), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_clock_going_back_expires_the_entry() {
        let mut c = Cache::new(1000, 10);
        c.insert(key(1), 1, 5_000);
        assert_eq!(c.get(&key(1), 4_999), None);
    }

    #[test]
    fn evicts_the_oldest_at_max_entries() {
        let mut c = Cache::new(10_000, 3);
        for n in 1..=3 {
            c.insert(key(n), n, u64::from(n));
        }
        c.insert(key(4), 4, 10);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(1), 11), None);
        for n in 2..=4 {
            assert_eq!(c.get(&key(n), 11), Some(n), "key {n}");
        }
        // Expired entries are dropped before anything live is evicted.
        c.insert(key(5), 5, 10_003); // 2 and 3 are expired by now
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(4), 10_003), Some(4));
        assert_eq!(c.get(&key(5), 10_003), Some(5));
    }

    #[test]
    fn a_live_key_stored_again_keeps_its_expiry() {
        let mut c = Cache::new(1000, 10);
        c.insert(key(1), "first", 0);
        c.insert(key(1), "second", 500);
        assert_eq!(c.get(&key(1), 999), Some("second"));
        assert_eq!(c.get(&key(1), 1000), None);
        // Once expired, storing it again starts a new TTL.
        c.insert(key(1), "third", 1000);
        assert_eq!(c.get(&key(1), 1999), Some("third"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_queue_stays_bounded_under_churn() {
        let mut c = Cache::new(1_000_000, 4);
        let mut now = 0;
        for round in 0..1000u32 {
            let n = (round % 7) as u8;
            // Reads of expired entries and a clock that jumps back and forth leave
            // stale records behind; they must not pile up.
            now = if round % 5 == 0 {
                now + 2_000_000
            } else {
                now + 1
            };
            let _ = c.get(&key(n), now);
            c.insert(key(n), round, now);
            assert!(c.len() <= 4, "round {round}");
            assert!(c.order.len() <= 9, "round {round}: {}", c.order.len());
        }
        now -= 1_500_000;
        c.insert(key(9), 9, now);
        assert!(c.len() <= 4);
        assert_eq!(c.get(&key(9), now), Some(9));
    }
}
