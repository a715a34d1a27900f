//! The provider's view of its sessions: learned from the chain on first contact, cached.
//!
//! A client authenticates with a session id; the provider needs that session's key. The
//! terms come from the session's `SessionOpened` event (they hash to the id, so they cannot be
//! forged) and are kept in memory and in the receipt database (claims need them). Unknown ids
//! are remembered as misses for a while and lookups run a few at a time, so a stranger
//! sending random ids cannot turn the listener into an RPC flood.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use tokio::sync::Semaphore;
use wirepact_chain::bindings::session_status;
use wirepact_chain::{AlloyMarket, Market};
use wirepact_proto::{ProviderId, SessionId, SessionTerms};
use wirepact_tunnel::SessionLookup;

use crate::db::ReceiptDb;

/// How long an id the chain did not know is not asked about again.
pub const MISS_TTL: Duration = Duration::from_secs(5);
/// Most misses remembered (older ones are dropped first when full).
const MAX_MISSES: usize = 4096;
/// Chain lookups in flight at once.
const MAX_LOOKUPS: usize = 4;
/// Session keys remembered for the ClientHello gate (the oldest are forgotten first).
pub const MAX_SESSION_KEYS: usize = 262_144;

/// Sessions of one provider, resolved from the chain.
#[derive(Debug)]
pub struct ChainSessions {
    market: Arc<AlloyMarket>,
    provider: ProviderId,
    db: Arc<ReceiptDb>,
    known: RwLock<HashMap<B256, SessionTerms>>,
    misses: Mutex<HashMap<B256, Instant>>,
    lookups: Semaphore,
    /// The keys of sessions opened with this provider (from `SessionOpened`, whatever their
    /// state now): what the ClientHello gate lets in before TLS. The session's auth inside
    /// TLS then checks that it is open.
    keys: RwLock<SessionKeys>,
}

/// A bounded set of session keys, oldest forgotten first.
#[derive(Debug, Default)]
struct SessionKeys {
    set: HashSet<Address>,
    order: VecDeque<Address>,
}

impl SessionKeys {
    fn insert(&mut self, key: Address) {
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > MAX_SESSION_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

impl ChainSessions {
    #[must_use]
    pub fn new(market: Arc<AlloyMarket>, provider: ProviderId, db: Arc<ReceiptDb>) -> Self {
        Self {
            market,
            provider,
            db,
            known: RwLock::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            lookups: Semaphore::new(MAX_LOOKUPS),
            keys: RwLock::default(),
        }
    }

    /// Learns the sessions opened with this provider (from the chain's `SessionOpened` events):
    /// their keys pass the ClientHello gate from now on. Terms of other providers are ignored.
    pub fn learn_opened(&self, opened: &[SessionTerms]) {
        if let Ok(mut k) = self.keys.write() {
            for t in opened.iter().filter(|t| t.providerId == self.provider.0) {
                k.insert(t.sessionKey);
            }
        }
    }

    /// How many session keys the gate knows.
    #[must_use]
    pub fn known_keys(&self) -> usize {
        self.keys.read().map_or(0, |k| k.set.len())
    }

    /// The terms of a session of this provider, if known.
    #[must_use]
    pub fn terms(&self, id: &B256) -> Option<SessionTerms> {
        self.known.read().ok().and_then(|k| k.get(id).cloned())
    }

    fn missed_recently(&self, id: &B256) -> bool {
        self.misses.lock().is_ok_and(|m| m.get(id).is_some_and(|t| t.elapsed() < MISS_TTL))
    }

    fn miss(&self, id: B256) {
        if let Ok(mut m) = self.misses.lock() {
            if m.len() >= MAX_MISSES {
                m.retain(|_, t| t.elapsed() < MISS_TTL);
                if m.len() >= MAX_MISSES {
                    m.clear();
                }
            }
            m.insert(id, Instant::now());
        }
    }

    /// Fetches a session from the chain; keeps it if it is an open session of this provider.
    async fn fetch(&self, id: B256) {
        let Ok(_permit) = self.lookups.try_acquire() else {
            tracing::debug!(session = %id, "too many session lookups in flight; refusing this one");
            return;
        };
        let terms = match self.market.session_terms(SessionId(id)).await {
            Ok(Some(t)) if t.providerId == self.provider.0 => t,
            Ok(_) => return self.miss(id),
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not look the session up on chain");
                return;
            }
        };
        match self.market.session(SessionId(id)).await {
            Ok(s) if s.status == session_status::OPEN => {}
            Ok(_) => return self.miss(id),
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not read the session's state");
                return;
            }
        }
        if let Err(e) = self.db.add_session(&terms) {
            // Without stored terms its receipts could not be claimed: refuse the session.
            tracing::error!(session = %id, error = %e, "could not persist the session's terms; refusing it");
            return;
        }
        tracing::info!(session = %id, client = %terms.client, "new session");
        self.learn_opened(std::slice::from_ref(&terms));
        if let Ok(mut k) = self.known.write() {
            k.insert(id, terms);
        }
    }
}

impl SessionLookup for ChainSessions {
    fn session_key(&self, session_id: &B256) -> Option<Address> {
        self.terms(session_id).map(|t| t.sessionKey)
    }

    fn is_session_key(&self, key: &Address) -> bool {
        self.keys.read().is_ok_and(|k| k.set.contains(key))
    }

    fn resolve(&self, session_id: B256) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if self.terms(&session_id).is_none() && !self.missed_recently(&session_id) {
                self.fetch(session_id).await;
            }
        })
    }
}

/// How often the gate's watcher asks the chain for new sessions.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Blocks looked back when the node starts (sessions opened while it was down).
pub const WATCH_LOOKBACK_BLOCKS: u64 = 100_000;

/// Keeps `sessions`' key set current from the chain's `SessionOpened` events of `provider`,
/// every [`WATCH_EVERY`], for the ClientHello gate; RPC failures are said once a minute and
/// retried (no block is skipped: the range resumes where it last succeeded).
pub async fn watch_opened(market: Arc<AlloyMarket>, provider: ProviderId, sessions: Arc<ChainSessions>) {
    let mut scanned: Option<u64> = None;
    let mut failing = wirepact_proto::repeats::Repeats::default();
    loop {
        let pass = async {
            let latest = market.block_number().await?;
            let from = scanned.map_or(latest.saturating_sub(WATCH_LOOKBACK_BLOCKS), |s| s + 1);
            if from <= latest {
                let opened = market.sessions_opened_with(provider, from, latest).await?;
                sessions.learn_opened(&opened);
            }
            Ok::<u64, wirepact_chain::ChainError>(latest)
        };
        match pass.await {
            Ok(latest) => {
                if scanned.is_none() {
                    tracing::info!(keys = sessions.known_keys(), "ClientHello gate on: customers' sessions known");
                }
                scanned = Some(latest);
                failing.clear();
            }
            Err(e) => {
                let now = wirepact_tunnel::clock::unix_now_with(0);
                match failing.note(&e.to_string(), now, 60) {
                    wirepact_proto::repeats::Say::New => {
                        tracing::warn!(error = %e, "cannot read new sessions for the ClientHello gate; new customers meet the cover until this recovers");
                    }
                    wirepact_proto::repeats::Say::Again(n) => {
                        tracing::warn!(error = %e, repeats = n, "still cannot read new sessions for the ClientHello gate");
                    }
                    wirepact_proto::repeats::Say::Quiet => {}
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
