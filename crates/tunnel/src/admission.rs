//! Who gets a socket on the provider: a budget for connections that have not authenticated
//! yet, fair between sources, and one for the tunnels being served.
//!
//! Anyone can open TCP connections to a provider's port and leave them idle or stop halfway
//! through the TLS handshake. Unchecked, ~500 of them exhausted a 1,024-file limit: the
//! provider could no longer open sockets to the origin, paying users lost their streams and
//! the oracles' probes failed, so the honest provider was slashed. Here:
//!
//! - connections not yet authenticated hold a *pending* slot; there are few of them
//!   ([`Limits::pending`]) and each source address (an IPv4 address, an IPv6 /64) holds at
//!   most [`Limits::per_source`];
//! - when the pending slots are full, a pending connection is closed to make room: the oldest
//!   of the same source if that source is at its share, else — among connections that have
//!   not completed a TLS handshake, if there are any — the oldest of the source holding the
//!   most. A flood from many addresses then churns among its own connections; a client or an
//!   oracle with one handshake in flight keeps it unless every source is down to one, and once
//!   its handshake is done (while the session is looked up on chain) it outlasts every idle or
//!   stalled connection;
//! - a source opens at most [`Limits::per_source_rate`] new connections a second beyond a
//!   burst, not counting those that authenticate (their token is given back); the rest are
//!   closed on arrival, before any work, so a flood cannot churn the pending slots faster than
//!   its addresses' rates allow, while a client opening many lanes is never held back;
//! - authenticated connections (sessions and their lanes) hold an *established* slot; the
//!   rest of the file limit is left to the origin side, the receipt store and the RPC.
//!
//! The bookkeeping is synchronous and does no I/O; the node closes what it is told to.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// Slot counts, usually derived from the file limit ([`Limits::for_file_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections not yet authenticated (TLS handshake, first message, decoy).
    pub pending: usize,
    /// Of those, from one source address (IPv4 address or IPv6 /64).
    pub per_source: usize,
    /// Authenticated connections (sessions and lanes).
    pub established: usize,
    /// New connections one source may open per second, sustained ...
    pub per_source_rate: u32,
    /// ... and at once (a browser's or a lane pool's burst).
    pub per_source_burst: u32,
}

impl Limits {
    /// A budget for a process allowed `nofile` open files: an eighth of them for pending
    /// connections, a quarter for established ones; the rest (at least half) stays free for
    /// the sockets to the origin (one per stream), the receipt store, the RPC and the logs.
    #[must_use]
    pub fn for_file_limit(nofile: u64) -> Self {
        let n = usize::try_from(nofile).unwrap_or(usize::MAX).max(64);
        let pending = (n / 8).clamp(8, 4096);
        Self {
            pending,
            per_source: (pending / 8).clamp(2, 64),
            established: (n / 4).clamp(8, 16_384),
            per_source_rate: 20,
            per_source_burst: 40,
        }
    }
}

/// The address bits that name one source: an IPv4 address, or an IPv6 /64 (one subscriber's
/// prefix; one host can use all of it).
fn source_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64 << 64) | (1 << 63),
        },
    }
}

#[derive(Debug, Default)]
struct Book {
    next_id: u64,
    /// Pending connections, oldest first: (id, source, how to close it, TLS handshake done).
    pending: VecDeque<(u64, u128, CancellationToken, bool)>,
    per_source: HashMap<u128, usize>,
    established: usize,
    /// Pending connections closed to make room, since start.
    evicted: u64,
    /// Authenticated connections refused because the established slots were full.
    refused: u64,
    /// New connections refused because their source opened too many too fast.
    throttled: u64,
    /// Per source: tokens left (thousandths of a connection) and when they were counted.
    buckets: HashMap<u128, (u64, Instant)>,
}

/// Sources remembered for their rate before idle ones (with full buckets) are forgotten.
const MAX_BUCKETS: usize = 65_536;

impl Book {
    /// Takes one new-connection token of `src` at `now`; false when it has none left.
    fn take_token(&mut self, src: u128, now: Instant, rate: u32, burst: u32) -> bool {
        let full = u64::from(burst.max(1)) * 1000;
        if self.buckets.len() >= MAX_BUCKETS {
            let refill = u128::from(rate.max(1));
            self.buckets.retain(|_, (t, at)| {
                let gained = now.saturating_duration_since(*at).as_millis() * refill;
                u128::from(*t) + gained < u128::from(full)
            });
        }
        let (tokens, at) = self.buckets.entry(src).or_insert((full, now));
        let gained = now.saturating_duration_since(*at).as_millis().saturating_mul(u128::from(rate));
        *tokens = u64::try_from((u128::from(*tokens) + gained).min(u128::from(full))).unwrap_or(full);
        *at = now;
        if *tokens < 1000 {
            return false;
        }
        *tokens -= 1000;
        true
    }
}

impl Book {
    /// Which pending connection to close for room: among those that have not completed a TLS
    /// handshake (if any; a completed one cost its peer a full handshake), the oldest of the
    /// source holding the most. A flood from many addresses then churns among its own
    /// connections; a source with one handshake in flight (a client, an oracle's probe) loses
    /// it only when no source holds more.
    fn victim(&self) -> usize {
        let fresh = self.pending.iter().any(|e| !e.3);
        let mut counts: HashMap<u128, usize> = HashMap::new();
        for (_, s, _, done) in &self.pending {
            if !fresh || !done {
                *counts.entry(*s).or_insert(0) += 1;
            }
        }
        let most = counts.values().copied().max().unwrap_or(0);
        self.pending
            .iter()
            .position(|(_, s, _, done)| (!fresh || !done) && counts.get(s).copied() == Some(most))
            .unwrap_or(0)
    }

    fn remove_pending(&mut self, id: u64) -> bool {
        let Some(pos) = self.pending.iter().position(|(i, _, _, _)| *i == id) else { return false };
        if let Some((_, src, _, _)) = self.pending.remove(pos) {
            if let Some(n) = self.per_source.get_mut(&src) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&src);
                }
            }
        }
        true
    }

    fn evict_at(&mut self, pos: usize) {
        if let Some((id, _, token, _)) = self.pending.get(pos).cloned() {
            token.cancel();
            self.remove_pending(id);
            self.evicted += 1;
        }
    }
}

/// The provider's connection budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: Limits,
    book: Arc<Mutex<Book>>,
}

/// What the budget holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionStats {
    pub pending: usize,
    pub established: usize,
    pub evicted: u64,
    pub refused: u64,
    pub throttled: u64,
}

impl Admission {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self { limits, book: Arc::new(Mutex::new(Book::default())) }
    }

    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Admits a new connection from `peer` at `now` as pending, closing a pending one of the
    /// same source (if it is at its share) or of all (if the budget is full) to make room; or
    /// `None` (close it at once, before any work) if its source opens connections faster than
    /// [`Limits::per_source_rate`] beyond its burst — so no flood churns the budget faster than
    /// its sources' rates allow.
    #[must_use]
    pub fn admit(&self, peer: IpAddr, now: Instant) -> Option<Pending> {
        let src = source_of(peer);
        let token = CancellationToken::new();
        let mut b = self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !b.take_token(src, now, self.limits.per_source_rate, self.limits.per_source_burst) {
            b.throttled += 1;
            return None;
        }
        if b.per_source.get(&src).copied().unwrap_or(0) >= self.limits.per_source {
            // Its oldest that has not finished a TLS handshake, else its oldest.
            let pos = b
                .pending
                .iter()
                .position(|(_, s, _, done)| *s == src && !done)
                .or_else(|| b.pending.iter().position(|(_, s, _, _)| *s == src));
            if let Some(pos) = pos {
                b.evict_at(pos);
            }
        }
        while b.pending.len() >= self.limits.pending.max(1) {
            let pos = b.victim();
            b.evict_at(pos);
        }
        let id = b.next_id;
        b.next_id += 1;
        b.pending.push_back((id, src, token.clone(), false));
        *b.per_source.entry(src).or_insert(0) += 1;
        drop(b);
        Some(Pending { admission: self.clone(), id, source: src, token, done: false })
    }

    /// Counts of what is held now.
    #[must_use]
    pub fn stats(&self) -> AdmissionStats {
        let b = self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        AdmissionStats {
            pending: b.pending.len(),
            established: b.established,
            evicted: b.evicted,
            refused: b.refused,
            throttled: b.throttled,
        }
    }
}

/// A pending connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Pending {
    admission: Admission,
    id: u64,
    source: u128,
    token: CancellationToken,
    done: bool,
}

impl Pending {
    /// Resolves when this connection was evicted to make room: close it.
    pub async fn evicted(&self) {
        self.token.cancelled().await;
    }

    #[must_use]
    pub fn is_evicted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The TLS handshake completed: this connection is closed for room only after every one
    /// that has not got that far.
    pub fn handshaken(&self) {
        let mut b = self.admission.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = b.pending.iter_mut().find(|e| e.0 == self.id) {
            e.3 = true;
        }
    }

    /// The connection authenticated: trades the pending slot for an established one, or
    /// `None` if every established slot is taken (close it; the client tries another
    /// provider). One evicted in the instant its authentication completed is kept all the
    /// same: it has done its work, and its pending slot is already free.
    #[must_use]
    pub fn establish(mut self) -> Option<Established> {
        self.done = true;
        let mut b = self.admission.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A connection that authenticates gives its source's token back: the rate holds back
        // addresses whose connections never authenticate (a flood), not a busy client opening
        // lanes or an oracle probing.
        let full = u64::from(self.admission.limits.per_source_burst.max(1)) * 1000;
        if let Some((t, _)) = b.buckets.get_mut(&self.source) {
            *t = (*t + 1000).min(full);
        }
        b.remove_pending(self.id);
        if b.established >= self.admission.limits.established {
            b.refused += 1;
            return None;
        }
        b.established += 1;
        drop(b);
        Some(Established { admission: self.admission.clone() })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let mut b = self.admission.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            b.remove_pending(self.id);
        }
    }
}

/// An authenticated connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Established {
    admission: Admission,
}

impl Drop for Established {
    fn drop(&mut self) {
        let mut b = self.admission.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        b.established = b.established.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn limits() -> Limits {
        Limits { pending: 4, per_source: 2, established: 2, per_source_rate: 1_000_000, per_source_burst: 1_000_000 }
    }

    /// Admission where rates do not matter to the test.
    trait AdmitNow {
        fn admit_now(&self, peer: IpAddr) -> Pending;
    }
    impl AdmitNow for Admission {
        fn admit_now(&self, peer: IpAddr) -> Pending {
            self.admit(peer, Instant::now()).expect("within the rate")
        }
    }

    /// The attack: one address opens idle connections without end. It only ever holds its
    /// share, evicting its own oldest; a client from elsewhere keeps its slot.
    #[test]
    fn one_source_cannot_take_the_pending_budget() {
        let a = Admission::new(limits());
        let client = a.admit_now(ip("198.51.100.7"));
        let flood: Vec<Pending> = (0..100).map(|_| a.admit_now(ip("203.0.113.9"))).collect();
        assert!(!client.is_evicted(), "the client's handshake survives the flood");
        assert_eq!(flood.iter().filter(|p| !p.is_evicted()).count(), 2, "the flooder holds its share");
        assert_eq!(a.stats().pending, 3);
        assert_eq!(a.stats().evicted, 98);
    }

    /// Many sources (a botnet) fill the budget: the oldest pending connection goes first, so a
    /// connection that just arrived always gets its chance to complete a handshake.
    #[test]
    fn a_full_budget_evicts_the_oldest_pending_connection() {
        let a = Admission::new(limits());
        let old: Vec<Pending> = (1..=4).map(|i| a.admit_now(ip(&format!("203.0.113.{i}")))).collect();
        let fresh = a.admit_now(ip("198.51.100.7"));
        assert!(old[0].is_evicted());
        assert!(old[1..].iter().all(|p| !p.is_evicted()));
        assert!(!fresh.is_evicted());
        assert_eq!(a.stats().pending, 4);
    }

    /// The attack seen in `make bench-abuse`: 100 addresses reopen every connection closed on
    /// them, thousands a second; with oldest-first eviction alone an oracle's handshake (tens of
    /// milliseconds, with the session looked up on chain) was closed before it could finish and
    /// the probe failed. A source holding one pending connection keeps it while any source
    /// holds more.
    #[test]
    fn a_many_source_flood_churns_its_own_connections_not_a_lone_clients() {
        let a = Admission::new(Limits { pending: 8, per_source: 4, established: 4, ..limits() });
        let flood_src = |i: u32| ip(&format!("203.0.113.{}", i % 5));
        let mut flood: Vec<Pending> =
            (0..8).map(flood_src).collect::<Vec<_>>().into_iter().map(|s| a.admit_now(s)).collect();
        let oracle = a.admit_now(ip("198.51.100.7"));
        for i in 0..10_000u32 {
            flood.push(a.admit_now(flood_src(i)));
            flood.retain(|p| !p.is_evicted());
        }
        assert!(!oracle.is_evicted(), "the lone handshake survives 10,000 flood connections");
        // Past its TLS handshake it outlasts them all, even from a source that holds the most.
        oracle.handshaken();
        let more: Vec<Pending> = (0..100).map(|_| a.admit_now(ip("198.51.100.7"))).collect();
        assert!(!oracle.is_evicted());
        drop(more);
        let quiet = Admission::new(Limits { pending: 8, per_source: 2, established: 4, ..limits() });
        let first = quiet.admit_now(ip("198.51.100.9"));
        first.handshaken();
        let same: Vec<Pending> = (0..10).map(|_| quiet.admit_now(ip("198.51.100.9"))).collect();
        assert!(!first.is_evicted(), "at its share, a source loses its idle connections first");
        assert_eq!(same.iter().filter(|p| !p.is_evicted()).count(), 1);
        let s = oracle.establish().expect("an established slot");
        // Established sessions are never evicted by new arrivals.
        let _more: Vec<Pending> = (0..10).map(|i| a.admit_now(ip(&format!("192.0.2.{i}")))).collect();
        assert_eq!(a.stats().established, 1);
        drop(s);
        assert_eq!(a.stats().established, 0);
    }

    /// A source past its burst is refused until its rate refills; other sources are not.
    #[test]
    fn a_source_opening_connections_too_fast_is_refused_at_once() {
        let a = Admission::new(Limits {
            pending: 64,
            per_source: 64,
            established: 4,
            per_source_rate: 10,
            per_source_burst: 5,
        });
        let t0 = Instant::now();
        let burst: Vec<Option<Pending>> = (0..8).map(|_| a.admit(ip("203.0.113.9"), t0)).collect();
        assert_eq!(burst.iter().filter(|p| p.is_some()).count(), 5, "the burst, then refused");
        assert!(a.admit(ip("198.51.100.7"), t0).is_some(), "another source is not held back");
        assert!(a.admit(ip("203.0.113.9"), t0 + Duration::from_millis(50)).is_none(), "half a token is not one");
        assert!(a.admit(ip("203.0.113.9"), t0 + Duration::from_millis(100)).is_some(), "10/s: one more after 100 ms");
        assert_eq!(a.stats().throttled, 4);
    }

    /// Found by `make soak`: a busy client opens a lane per short stream (hundreds a second)
    /// and, on loopback, the oracles dial from the same address; a plain rate refused their
    /// probes. Connections that authenticate give their token back.
    #[test]
    fn connections_that_authenticate_do_not_count_against_the_rate() {
        let a = Admission::new(Limits {
            pending: 64,
            per_source: 64,
            established: 10_000,
            per_source_rate: 10,
            per_source_burst: 5,
        });
        let t0 = Instant::now();
        let mut kept = Vec::new();
        for i in 0..1_000u64 {
            let p = a.admit(ip("198.51.100.7"), t0 + Duration::from_micros(i)).expect("never throttled");
            kept.push(p.establish().expect("slot"));
        }
        assert_eq!(a.stats().throttled, 0);
        // A flood from the same address that never authenticates is still held to the rate.
        let flood: Vec<Option<Pending>> = (0..20).map(|_| a.admit(ip("198.51.100.7"), t0)).collect();
        assert_eq!(flood.iter().filter(|p| p.is_some()).count(), 5);
    }

    #[test]
    fn established_slots_are_capped_and_freed() {
        let a = Admission::new(limits());
        let one = a.admit_now(ip("198.51.100.1")).establish().expect("slot");
        let _two = a.admit_now(ip("198.51.100.2")).establish().expect("slot");
        assert!(a.admit_now(ip("198.51.100.3")).establish().is_none(), "full: refused");
        assert_eq!(a.stats().refused, 1);
        drop(one);
        assert!(a.admit_now(ip("198.51.100.3")).establish().is_some());
        assert_eq!(a.stats().pending, 0, "establishing or dropping frees the pending slot");
    }

    #[test]
    fn a_connection_evicted_as_it_authenticates_is_kept_and_counted_once() {
        let a = Admission::new(Limits { pending: 1, per_source: 1, established: 4, ..limits() });
        let first = a.admit_now(ip("198.51.100.1"));
        let second = a.admit_now(ip("198.51.100.2"));
        assert!(first.is_evicted());
        let e = first.establish().expect("authenticated: kept");
        assert_eq!(a.stats(), AdmissionStats { pending: 1, established: 1, evicted: 1, refused: 0, throttled: 0 });
        drop((e, second));
        assert_eq!(a.stats(), AdmissionStats { pending: 0, established: 0, evicted: 1, refused: 0, throttled: 0 });
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_v4_is_its_v4() {
        assert_eq!(source_of(ip("2001:db8:1:2::1")), source_of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(source_of(ip("2001:db8:1:2::1")), source_of(ip("2001:db8:1:3::1")));
        assert_eq!(source_of(ip("::ffff:198.51.100.7")), source_of(ip("198.51.100.7")));
    }

    #[test]
    fn limits_leave_half_the_files_free() {
        let l = Limits::for_file_limit(1024);
        assert_eq!((l.pending, l.per_source, l.established), (128, 16, 256));
        assert!(l.pending + l.established <= 1024 / 2);
    }
}
