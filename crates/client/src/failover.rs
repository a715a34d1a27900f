//! Failing over: the proxy routes new streams to the active session; when its tunnel dies the
//! warm standby (a second session, already connected to the next-ranked provider) takes over at
//! once, and a new standby is opened in the background. Dead sessions are closed on chain so
//! their unspent deposits come back.
//!
//! A session whose deposit is nearly spent is renewed before it runs out: at the client's
//! `renew_at_percent` of the bytes its deposit pays for, new streams move to the standby (or
//! to a new session, with the same provider if it is still the best), and the old session is
//! retired: it keeps carrying the streams it has until they end or its deposit is used up, then
//! gets its final receipt and is closed. A session that runs out with no successor yet is left
//! like a dead one, so streams end with an error instead of hanging.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wirepact_proto::SessionTerms;
use wirepact_tunnel::session::ClientSession;

use crate::proxy::Route;

use crate::sla::{Breach, SlaWatch};

/// One session with one provider.
#[derive(Debug)]
pub struct Link {
    pub provider_id: u32,
    pub terms: SessionTerms,
    pub session: Arc<ClientSession>,
    /// When this client gives up on the provider by its own measurements.
    pub watch: SlaWatch,
    /// When the tunnel came up.
    pub started: Instant,
    /// Bytes the session's deposit pays for at its price (`u64::MAX`: no cap).
    pub max_bytes: u64,
    /// Bytes at which its successor is opened (the client's `renew_at_percent` of `max_bytes`).
    pub renew_at: u64,
}
/// A session within this many bytes of its cap is used up (the provider stops there).
pub const USED_UP_SLACK: u64 = 64 * 1024;

impl Link {
    /// Bytes `deposit` pays for at `price_per_gib` (rounded down; no cap at price 0).
    #[must_use]
    pub fn bytes_paid_for(deposit: u128, price_per_gib: u128) -> u64 {
        if price_per_gib == 0 {
            return u64::MAX;
        }
        u64::try_from(deposit.saturating_mul(1 << 30) / price_per_gib).unwrap_or(u64::MAX)
    }

    /// Whether its successor should be opened now.
    #[must_use]
    pub fn nearly_spent(&self) -> bool {
        self.session.counted() >= self.renew_at
    }

    /// Whether the deposit is used up (the provider carries nothing more).
    #[must_use]
    pub fn used_up(&self) -> bool {
        self.session.counted().saturating_add(USED_UP_SLACK) >= self.max_bytes
    }
}

#[derive(Debug, Default)]
struct Inner {
    active: RwLock<Option<Arc<Link>>>,
    standby: RwLock<Option<Arc<Link>>>,
    /// Links whose tunnel died, waiting to be closed on chain.
    dead: Mutex<Vec<Arc<Link>>>,
    /// Links whose deposit is nearly spent: no new streams; closed once their streams end.
    retiring: Mutex<Vec<Arc<Link>>>,
    /// The active link is nearly spent and there was no standby: open its successor.
    renewal_wanted: std::sync::atomic::AtomicBool,
    renewals: AtomicU64,
    /// Providers that failed recently, and when.
    failed_at: Mutex<HashMap<u32, Instant>>,
    wake: Notify,
    failovers: AtomicU64,
    breaches: Mutex<Vec<(u32, Breach)>>,
}

/// The client's routing table: active and standby sessions.
#[derive(Debug, Clone, Default)]
pub struct Failover {
    inner: Arc<Inner>,
}

/// How long a provider that failed is not chosen again.
pub const AVOID_FOR: Duration = Duration::from_secs(10);

impl Failover {
    #[must_use]
    pub fn new(active: Link) -> Self {
        let f = Self::default();
        if let Ok(mut a) = f.inner.active.write() {
            *a = Some(Arc::new(active));
        }
        f
    }

    #[must_use]
    pub fn active(&self) -> Option<Arc<Link>> {
        self.inner.active.read().ok().and_then(|a| a.clone())
    }

    #[must_use]
    pub fn standby(&self) -> Option<Arc<Link>> {
        self.inner.standby.read().ok().and_then(|a| a.clone())
    }

    pub fn set_standby(&self, link: Link) {
        if let Ok(mut s) = self.inner.standby.write() {
            *s = Some(Arc::new(link));
        }
    }

    /// With no active link, makes the standby the active one.
    pub fn promote_standby(&self) {
        if let Ok(mut a) = self.inner.active.write() {
            if a.is_none() {
                *a = self.inner.standby.write().ok().and_then(|mut s| s.take());
            }
        }
    }

    /// Judges the active link's spending: nearly spent, it hands new streams to the standby
    /// (or asks for a successor); used up with no successor, it is left like a dead link so
    /// its streams end instead of hanging.
    pub fn judge_spending(&self) {
        let Some(a) = self.active() else { return };
        if a.used_up() && self.standby().is_none() {
            tracing::warn!(
                provider = a.provider_id,
                "the session's deposit is used up and no next session is open yet; its streams end, new ones wait for the next"
            );
            self.inner.renewal_wanted.store(false, Ordering::Relaxed);
            self.retire_active(None);
            return;
        }
        if !a.nearly_spent() {
            return;
        }
        if let Some(next) = self.inner.standby.write().ok().and_then(|mut s| s.take()) {
            tracing::info!(
                from = a.provider_id,
                to = next.provider_id,
                "the session's deposit is nearly spent; new streams go to the standby's session"
            );
            self.retire_active(Some(next));
        } else if !self.inner.renewal_wanted.swap(true, Ordering::Relaxed) {
            tracing::info!(provider = a.provider_id, "the session's deposit is nearly spent; opening the next session");
            self.inner.wake.notify_one();
        }
    }

    /// Whether the active link waits for a successor (see [`Self::judge_spending`]).
    #[must_use]
    pub fn wants_renewal(&self) -> bool {
        self.inner.renewal_wanted.load(Ordering::Relaxed)
    }

    /// `next` takes the active link's place; the old one retires.
    pub fn renew_with(&self, next: Link) {
        self.inner.renewal_wanted.store(false, Ordering::Relaxed);
        self.retire_active(Some(Arc::new(next)));
    }

    fn retire_active(&self, next: Option<Arc<Link>>) {
        let old = self.inner.active.write().ok().and_then(|mut a| std::mem::replace(&mut *a, next));
        if let Some(o) = old {
            self.inner.renewals.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut r) = self.inner.retiring.lock() {
                r.push(o);
            }
        }
        self.inner.wake.notify_one();
    }

    /// Retired links whose streams have ended, whose deposit is used up or whose tunnel died:
    /// to be closed on chain with a final receipt.
    pub fn take_retired(&self) -> Vec<Arc<Link>> {
        let Ok(mut r) = self.inner.retiring.lock() else { return Vec::new() };
        let (done, keep): (Vec<_>, Vec<_>) =
            r.drain(..).partition(|l| l.session.relaying() == 0 || l.used_up() || !l.session.is_alive());
        *r = keep;
        done
    }

    /// Every retiring link (closed at shutdown).
    pub fn take_all_retiring(&self) -> Vec<Arc<Link>> {
        self.inner.retiring.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    /// Sessions renewed so far because their deposit was nearly spent.
    #[must_use]
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// Providers recently failed, and the standby's: not candidates for the active link's
    /// successor (the active link's own provider is, if still the best).
    #[must_use]
    pub fn avoid_for_renewal(&self) -> Vec<u32> {
        let mut v = self.recently_failed();
        v.extend(self.standby().map(|l| l.provider_id));
        v
    }

    fn recently_failed(&self) -> Vec<u32> {
        self.inner
            .failed_at
            .lock()
            .map(|m| m.iter().filter(|(_, t)| t.elapsed() < AVOID_FOR).map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }

    /// Providers in use or recently failed: not candidates for a new standby.
    #[must_use]
    pub fn avoid(&self) -> Vec<u32> {
        let mut v = self.recently_failed();
        v.extend(self.active().map(|l| l.provider_id));
        v.extend(self.standby().map(|l| l.provider_id));
        v
    }

    #[must_use]
    pub fn failovers(&self) -> u64 {
        self.inner.failovers.load(Ordering::Relaxed)
    }

    /// Takes the links that died (to close them on chain).
    pub fn take_dead(&self) -> Vec<Arc<Link>> {
        self.inner.dead.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default()
    }

    /// Waits until something changed or `t` passed.
    pub async fn changed(&self, t: Duration) {
        let _ = tokio::time::timeout(t, self.inner.wake.notified()).await;
    }

    /// Checks both links; promotes the standby if the active one died. Returns whether the
    /// standby slot needs a new session.
    pub fn check(&self) -> bool {
        if let Some(a) = self.active() {
            if !a.session.is_alive() {
                self.failed(&a.session);
            }
        }
        if let Some(s) = self.standby() {
            if !s.session.is_alive() {
                if let Ok(mut w) = self.inner.standby.write() {
                    if w.as_ref().is_some_and(|l| Arc::ptr_eq(&l.session, &s.session)) {
                        *w = None;
                    }
                }
                self.bury(s);
            }
        }
        self.standby().is_none()
    }

    /// Leaves `link` (active or standby) because the client's own measurements broke its SLA:
    /// the active one fails over to the standby, a standby is dropped; either is closed with a
    /// final receipt by whoever takes the dead links.
    pub fn breached(&self, link: &Arc<Link>, breach: Breach) {
        if let Ok(mut b) = self.inner.breaches.lock() {
            b.push((link.provider_id, breach));
        }
        if self.active().is_some_and(|a| Arc::ptr_eq(&a.session, &link.session)) {
            self.failed(&link.session);
            return;
        }
        let was_standby = self
            .inner
            .standby
            .write()
            .map(|mut s| {
                let hit = s.as_ref().is_some_and(|l| Arc::ptr_eq(&l.session, &link.session));
                if hit {
                    *s = None;
                }
                hit
            })
            .unwrap_or(false);
        if was_standby {
            self.bury(link.clone());
        }
    }

    /// Every provider left for a broken SLA so far, and why.
    #[must_use]
    pub fn breaches(&self) -> Vec<(u32, Breach)> {
        self.inner.breaches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn bury(&self, link: Arc<Link>) {
        tracing::warn!(provider = link.provider_id, "provider lost");
        if let Ok(mut f) = self.inner.failed_at.lock() {
            f.insert(link.provider_id, Instant::now());
        }
        if let Ok(mut d) = self.inner.dead.lock() {
            d.push(link);
        }
        self.inner.wake.notify_one();
    }
}

impl Route for Failover {
    fn current(&self) -> Option<Arc<ClientSession>> {
        self.active().map(|l| l.session.clone())
    }

    fn failed(&self, dead: &Arc<ClientSession>) {
        let old = {
            let Ok(mut a) = self.inner.active.write() else { return };
            if !a.as_ref().is_some_and(|l| Arc::ptr_eq(&l.session, dead)) {
                return; // already replaced by another connection's report
            }
            let next = self.inner.standby.write().ok().and_then(|mut s| s.take());
            if let Some(n) = &next {
                tracing::warn!(to = n.provider_id, "failing over to the standby provider");
                self.inner.failovers.fetch_add(1, Ordering::Relaxed);
            }
            std::mem::replace(&mut *a, next)
        };
        if let Some(o) = old {
            self.bury(o);
        }
    }
}
