//! A cache from a keyed hash to a value (dispatch-auth's decisions, jwt-auth's
//! verified tokens), with a fixed time to live, bounded both in entries and in
//! bytes, and the VM's secret hash that makes its keys. Pure logic over an
//! injected clock (the host's time in milliseconds), so expiry and eviction are
//! tested natively.

use siphasher::sip128::SipHasher24;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::mem::size_of;

/// A cache key: a keyed 128-bit hash of what the value depends on (see
/// [`hasher`]). Fixed size whatever the credentials' length, and no credential
/// is kept in memory in clear.
pub type Key = [u8; 16];

thread_local! {
    /// This VM's secret for cache keys: 128 bits drawn from std's RandomState,
    /// which the host seeds from its randomness (WASI `random_get`).
    static SECRET: (u64, u64) = {
        let random = RandomState::new();
        (random.hash_one(1u8), random.hash_one(2u8))
    };
}

/// SipHash-2-4 with a 128-bit output under this VM's secret key: a client cannot
/// compute keys, so it cannot craft an input that lands on another's entry
/// (finding a collision blind takes about 2^64 tries). SHA-256 did the same
/// without a secret at ten times the cost in wasm (0.9 µs for 120 bytes).
pub fn hasher() -> SipHasher24 {
    let (k0, k1) = SECRET.with(|secret| *secret);
    SipHasher24::new_with_keys(k0, k1)
}

/// What a value costs on the heap, in bytes, allocator overhead included.
pub trait Weight {
    fn weight(&self) -> usize;
}

/// A value in an `Rc` costs its box (two counts and the value) and what the
/// value holds.
impl<T: Weight> Weight for std::rc::Rc<T> {
    fn weight(&self) -> usize {
        heap::<(usize, usize, T)>(1) + T::weight(self)
    }
}

/// What one heap allocation costs beyond its bytes. The module's allocator
/// (wasi-libc's dlmalloc) puts a header before each chunk and rounds chunks up to
/// 8 bytes, with 16 as the smallest; 16 per allocation covers both on wasm32.
pub const ALLOC_OVERHEAD: usize = 16;

/// The heap bytes of an allocation of `capacity` items of `T` (none when empty).
pub fn heap<T>(capacity: usize) -> usize {
    match capacity.saturating_mul(size_of::<T>()) {
        0 => 0,
        bytes => bytes.saturating_add(ALLOC_OVERHEAD),
    }
}

struct Slot<V> {
    stored_at: u64,
    /// What this entry was charged, given back when it goes.
    cost: usize,
    value: V,
}

/// A record in the order queue: a key and when it was stored.
type Record = (Key, u64);

/// Bytes an entry costs besides its value: its hash-table bucket (with its
/// control byte) and its order records, each counted at the worst the
/// containers hold them. The table keeps at most 7 of 8 buckets full and doubles
/// when it grows, the old table living until the new one is filled: up to 24/7
/// buckets per entry at that moment. The order queue keeps at most two records
/// per entry (plus a few, see `insert`) and also doubles, so four. Neither
/// container shrinks: the budget is what they may reach, not what they hold at
/// one moment. Measured in Envoy 1.40: a 4 MiB budget of the smallest entries
/// (allows without headers) grew the VM by 4.1 MiB, 334 bytes per entry.
pub fn entry_overhead<V>() -> usize {
    let bucket = size_of::<(Key, Slot<V>)>() + 1;
    bucket * 24 / 7 + 4 * size_of::<Record>()
}

/// Hashes a [`Key`] by its first eight bytes. A key is already the output of a
/// keyed hash under the VM's secret, uniform and unknown to clients, so hashing
/// it again (std's SipHash, a tenth of a lookup's work) would buy nothing.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A Key hashes as its length, then its bytes: keep the first eight of
        // those, whatever else comes.
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
}

/// Entries expire `ttl_ms` after they were stored. At `max_entries`, or when a
/// new entry would take the charged bytes past `max_bytes`, the oldest entries go
/// first: with one fixed TTL, the oldest is also the nearest to expiry.
pub struct Cache<V> {
    ttl_ms: u64,
    max_entries: usize,
    max_bytes: usize,
    /// What the live entries are charged, overhead included.
    bytes: usize,
    map: HashMap<Key, Slot<V>, BuildHasherDefault<KeyHasher>>,
    /// Keys in the order they were stored, with the time they were stored; a record
    /// whose slot has since been replaced or removed is skipped when it comes up.
    order: VecDeque<Record>,
}

/// Stale records the queue may hold beyond two per live entry, so that a nearly
/// empty cache does not sweep its queue on every insert.
const SLACK_RECORDS: usize = 16;

impl<V: Clone + Weight> Cache<V> {
    pub fn new(ttl_ms: u64, max_entries: usize, max_bytes: usize) -> Self {
        Cache {
            ttl_ms,
            max_entries: max_entries.max(1),
            max_bytes,
            bytes: 0,
            map: HashMap::default(),
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

    /// What the live entries are charged; never above `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What storing `value` would be charged.
    pub fn cost(value: &V) -> usize {
        entry_overhead::<V>().saturating_add(value.weight())
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
        self.remove(key);
        None
    }

    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(slot.cost);
        }
    }

    /// Stores `value` under `key`, evicting the oldest entries until it fits. A
    /// value that could never fit is not stored. A key already live keeps its
    /// expiry time and its place in the order (it was decided twice concurrently);
    /// the new value replaces the old.
    pub fn insert(&mut self, key: Key, value: V, now: u64) {
        let cost = Self::cost(&value);
        if !self.enabled() || cost > self.max_bytes {
            return;
        }
        self.drop_expired(now);
        match self.map.get(&key).map(|slot| slot.stored_at) {
            Some(at) if self.fresh(at, now) => {
                if let Some(slot) = self.map.get_mut(&key) {
                    self.bytes = self.bytes.saturating_sub(slot.cost).saturating_add(cost);
                    slot.cost = cost;
                    slot.value = value;
                }
                while self.bytes > self.max_bytes && self.evict_oldest() {}
                return;
            }
            Some(_) => self.remove(&key),
            None => {}
        }
        while self.map.len() >= self.max_entries || self.bytes.saturating_add(cost) > self.max_bytes
        {
            if !self.evict_oldest() {
                break;
            }
        }
        self.map.insert(
            key,
            Slot {
                stored_at: now,
                cost,
                value,
            },
        );
        self.bytes = self.bytes.saturating_add(cost);
        self.order.push_back((key, now));
        // Records of removed entries wait for their turn at the front; if the clock
        // jumped, they may not reach it soon. Keep at most two per live entry.
        if self.order.len() > 2 * self.map.len() + SLACK_RECORDS {
            let map = &self.map;
            self.order
                .retain(|(k, at)| map.get(k).is_some_and(|slot| slot.stored_at == *at));
        }
    }

    /// True when `record` still describes the entry stored under its key.
    fn live(&self, record: &Record) -> bool {
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
                self.remove(&front.0);
            }
        }
    }

    /// Removes the oldest live entry; false when there was none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(front) = self.order.pop_front() {
            if self.live(&front) {
                self.remove(&front.0);
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
        [n; 16]
    }

    /// A value that weighs what it says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct W(u32, usize);

    impl Weight for W {
        fn weight(&self) -> usize {
            self.1
        }
    }

    impl Weight for &str {
        fn weight(&self) -> usize {
            0
        }
    }

    impl Weight for u32 {
        fn weight(&self) -> usize {
            0
        }
    }

    const NO_BYTE_LIMIT: usize = usize::MAX / 2;

    fn cache<V: Clone + Weight>(ttl: u64, max_entries: usize) -> Cache<V> {
        Cache::new(ttl, max_entries, NO_BYTE_LIMIT)
    }

    #[test]
    fn hit_within_ttl_miss_after() {
        let mut c = cache(1000, 10);
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
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn off_when_ttl_is_zero() {
        let mut c = cache(0, 10);
        assert!(!c.enabled());
        c.insert(key(1), 1u32, 0);
        assert_eq!(c.get(&key(1), 0), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_clock_going_back_expires_the_entry() {
        let mut c = cache(1000, 10);
        c.insert(key(1), 1u32, 5_000);
        assert_eq!(c.get(&key(1), 4_999), None);
    }

    #[test]
    fn evicts_the_oldest_at_max_entries() {
        let mut c = cache(10_000, 3);
        for n in 1..=3 {
            c.insert(key(n), u32::from(n), u64::from(n));
        }
        c.insert(key(4), 4, 10);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(1), 11), None);
        for n in 2..=4 {
            assert_eq!(c.get(&key(n), 11), Some(u32::from(n)), "key {n}");
        }
        // Expired entries are dropped before anything live is evicted.
        c.insert(key(5), 5, 10_003); // 2 and 3 are expired by now
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(4), 10_003), Some(4));
        assert_eq!(c.get(&key(5), 10_003), Some(5));
    }

    #[test]
    fn a_live_key_stored_again_keeps_its_expiry() {
        let mut c = cache(1000, 10);
        c.insert(key(1), "first", 0);
        c.insert(key(1), "second", 500);
        assert_eq!(c.get(&key(1), 999), Some("second"));
        assert_eq!(c.get(&key(1), 1000), None);
        // Once expired, storing it again starts a new TTL.
        c.insert(key(1), "third", 1000);
        assert_eq!(c.get(&key(1), 1999), Some("third"));
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), Cache::<&str>::cost(&"third"));
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_first() {
        let overhead = entry_overhead::<W>();
        let entry = overhead + 1000;
        // Room for three entries of 1000 bytes, not four.
        let mut c = Cache::new(1_000_000, 1_000_000, 4 * entry - 1);
        for n in 1..=3u8 {
            c.insert(key(n), W(n.into(), 1000), u64::from(n));
        }
        assert_eq!((c.len(), c.bytes()), (3, 3 * entry));
        c.insert(key(4), W(4, 1000), 10);
        assert_eq!((c.len(), c.bytes()), (3, 3 * entry));
        assert_eq!(c.get(&key(1), 11), None, "the oldest went");
        assert!(c.get(&key(2), 11).is_some());
        // A large one pushes out as many as it needs, oldest first.
        c.insert(key(5), W(5, 2 * entry), 12);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(3), 13), None);
        assert!(c.get(&key(4), 13).is_some());
        assert_eq!(c.get(&key(5), 13), Some(W(5, 2 * entry)));
        assert!(c.bytes() < 4 * entry);
        // One that could never fit is not stored, and evicts nothing.
        c.insert(key(6), W(6, 4 * entry), 14);
        assert_eq!(c.get(&key(6), 15), None);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn replacing_a_value_recharges_it() {
        let overhead = entry_overhead::<W>();
        let mut c = Cache::new(1000, 10, 10 * overhead);
        c.insert(key(1), W(1, 100), 0);
        c.insert(key(1), W(2, 300), 10);
        assert_eq!(c.bytes(), overhead + 300);
        assert_eq!(c.len(), 1);
        c.insert(key(2), W(3, 0), 20);
        assert_eq!(c.bytes(), 2 * overhead + 300);
        assert_eq!(c.get(&key(1), 1000), None, "kept the first expiry");
        assert_eq!(c.bytes(), overhead);
    }

    /// Whatever the order of stores, reads, expiries and clock jumps, the charged
    /// bytes equal the live entries' costs and stay within the budget, and the
    /// order queue stays bounded.
    #[test]
    fn the_accounting_holds_under_churn() {
        let overhead = entry_overhead::<W>();
        let budget = 6 * overhead + 5000;
        let mut c = Cache::new(1_000_000, 5, budget);
        let mut now = 0u64;
        for round in 0..3000u32 {
            let n = (round.wrapping_mul(7919) % 11) as u8;
            now = match round % 13 {
                0 => now + 2_000_000,
                1 => now.saturating_sub(1_500_000),
                _ => now + 1,
            };
            let _ = c.get(&key(n), now);
            c.insert(key(n), W(round, (round as usize * 37) % 3000), now);
            let live: usize = c.map.values().map(|s| s.cost).sum();
            assert_eq!(c.bytes(), live, "round {round}");
            assert!(c.bytes() <= budget, "round {round}");
            assert!(c.len() <= 5, "round {round}");
            assert!(
                c.order.len() <= 2 * c.len() + SLACK_RECORDS + 1,
                "round {round}: {}",
                c.order.len()
            );
        }
    }

    #[test]
    fn the_queue_stays_bounded_under_churn() {
        let mut c = cache(1_000_000, 4);
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
            assert!(
                c.order.len() <= 2 * 4 + SLACK_RECORDS + 1,
                "round {round}: {}",
                c.order.len()
            );
        }
        now -= 1_500_000;
        c.insert(key(9), 9, now);
        assert!(c.len() <= 4);
        assert_eq!(c.get(&key(9), now), Some(9));
    }

    #[test]
    fn a_key_hashes_as_its_first_eight_bytes() {
        use std::hash::BuildHasher;
        let key: Key = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let hash = BuildHasherDefault::<KeyHasher>::default().hash_one(key);
        assert_eq!(hash, u64::from_be_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
    }

    #[test]
    fn the_overhead_covers_the_containers() {
        // On wasm32 a bucket is the 16-byte key and a 16-byte slot (with an Rc,
        // 4 bytes), plus a control byte; a record is 24 bytes.
        let overhead = entry_overhead::<std::rc::Rc<u8>>();
        assert!(overhead >= (16 + 16 + 1) * 3 + 4 * 24, "{overhead}");
        assert_eq!(heap::<u8>(0), 0);
        assert_eq!(heap::<u8>(10), 10 + ALLOC_OVERHEAD);
        assert_eq!(heap::<u32>(10), 40 + ALLOC_OVERHEAD);
    }
}
