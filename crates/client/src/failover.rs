//! Failing over: the proxy routes new streams to the active session; when its tunnel dies the
//! warm standby (a second session, already connected to the next-ranked provider) takes over at
//! once, and a new standby is opened in the background. Dead sessions are closed on chain so
//! their unspent deposits come back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wirepact_proto::SessionTerms;
use wirepact_tunnel::session::{ClientSession, Route};

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
}

#[derive(Debug, Default)]
struct Inner {
    active: RwLock<Option<Arc<Link>>>,
    standby: RwLock<Option<Arc<Link>>>,
    /// Links whose tunnel died, waiting to be closed on chain.
    dead: Mutex<Vec<Arc<Link>>>,
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

    /// Providers in use or recently failed: not candidates for a new standby.
    #[must_use]
    pub fn avoid(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .inner
            .failed_at
            .lock()
            .map(|m| m.iter().filter(|(_, t)| t.elapsed() < AVOID_FOR).map(|(id, _)| *id).collect())
            .unwrap_or_default();
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
