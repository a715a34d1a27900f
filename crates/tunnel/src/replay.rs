//! A bounded memory of what a provider accepted recently, so the same bytes are refused a
//! second time: session auths, ClientHello proofs and veil first flights all keep one.
//!
//! Each entry carries the time it vouches for (`at`, in the caller's unit: seconds or
//! minutes); once `at + window` is behind `now` the clock check refuses it anyway and the
//! entry may go. A full memory whose entries are all still fresh either drops its oldest
//! (where an evicted entry's replay is harmless or cannot be produced in bulk) or refuses the
//! new one (where forgetting would let a replay through).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// What a full memory does with a new entry when nothing in it has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Forget the oldest entry to make room.
    EvictOldest,
    /// Keep every entry; the new one is refused ([`Full`]).
    Refuse,
}

/// The memory is full of entries still inside their window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the replay memory is full of fresh entries")]
pub struct Full;

/// See the module documentation.
#[derive(Debug)]
pub struct Replays<K> {
    set: HashSet<K>,
    order: VecDeque<(K, u64)>,
    capacity: usize,
    window: u64,
    when_full: WhenFull,
}

impl<K: Hash + Eq + Clone> Replays<K> {
    /// At most `capacity` entries, each kept until `window` after the time it vouches for.
    #[must_use]
    pub fn new(capacity: usize, window: u64, when_full: WhenFull) -> Self {
        Self { set: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1), window, when_full }
    }

    /// Whether `k` was accepted (and not yet forgotten).
    #[must_use]
    pub fn contains(&self, k: &K) -> bool {
        self.set.contains(k)
    }

    /// How many entries are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether nothing is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Remembers `k`, which vouches for time `at`, at time `now`: expired entries go first,
    /// then, if still full, the oldest (or the new one is refused, per [`WhenFull`]).
    ///
    /// # Errors
    /// [`Full`] under [`WhenFull::Refuse`] when every kept entry is still fresh.
    pub fn insert(&mut self, k: K, at: u64, now: u64) -> Result<(), Full> {
        let expired = |t: u64| t.saturating_add(self.window) < now;
        while self.order.front().is_some_and(|(_, t)| expired(*t)) {
            if let Some((old, _)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        if self.order.len() >= self.capacity {
            // Times arrive out of order (clients' clocks differ): look past the front.
            let before = self.order.len();
            self.order.retain(|(_, t)| !expired(*t));
            if self.order.len() != before {
                self.set = self.order.iter().map(|(k, _)| k.clone()).collect();
            }
        }
        if self.order.len() >= self.capacity {
            match self.when_full {
                WhenFull::Refuse => return Err(Full),
                WhenFull::EvictOldest => {
                    while self.order.len() >= self.capacity {
                        if let Some((old, _)) = self.order.pop_front() {
                            self.set.remove(&old);
                        }
                    }
                }
            }
        }
        if self.set.insert(k.clone()) {
            self.order.push_back((k, at));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was accepted is refused again until its window passes; a full memory of fresh
    /// entries refuses or evicts as told, and expired entries always make room first, even
    /// behind a fresher one.
    #[test]
    fn a_memory_refuses_repeats_and_stays_bounded() {
        let mut r = Replays::new(3, 10, WhenFull::Refuse);
        r.insert(1u8, 100, 100).expect("room");
        assert!(r.contains(&1));
        r.insert(2, 105, 105).expect("room");
        r.insert(3, 95, 105).expect("room");
        assert_eq!(r.insert(4, 105, 105), Err(Full), "all fresh: refused, nothing forgotten");
        assert!(r.contains(&1) && r.contains(&2) && r.contains(&3) && !r.contains(&4));
        // At 106 entry 3 (vouching for 95) expired although it sits behind 1 and 2.
        assert_eq!(r.insert(4, 106, 106), Ok(()), "95 + 10 < 106: 3 makes room");
        assert!(!r.contains(&3) && r.contains(&4));
        // Much later everything old goes.
        r.insert(5, 200, 200).expect("room");
        assert_eq!(r.len(), 1);

        let mut e = Replays::new(2, 1_000, WhenFull::EvictOldest);
        for k in 0..5u8 {
            e.insert(k, 0, 0).expect("evicting never refuses");
        }
        assert_eq!(e.len(), 2);
        assert!(e.contains(&3) && e.contains(&4) && !e.contains(&0));
    }
}
