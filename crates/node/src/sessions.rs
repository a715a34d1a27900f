//! The provider's view of its sessions: learned from the chain on first contact, cached.
//!
//! A client authenticates with a session id; the provider needs that session's key. The
//! terms come from the session's `SessionOpened` event (they hash to the id, so they cannot be
//! forged) and are kept in memory and in the receipt database (claims need them). Unknown ids
//! are remembered as misses for a while and lookups run a few at a time, so a stranger
//! sending random ids cannot turn the listener into an RPC flood.

use std::collections::HashMap;
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

/// Sessions of one provider, resolved from the chain.
#[derive(Debug)]
pub struct ChainSessions {
    market: Arc<AlloyMarket>,
    provider: ProviderId,
    db: Arc<ReceiptDb>,
    known: RwLock<HashMap<B256, SessionTerms>>,
    misses: Mutex<HashMap<B256, Instant>>,
    lookups: Semaphore,
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
        }
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
        if let Ok(mut k) = self.known.write() {
            k.insert(id, terms);
        }
    }
}

impl SessionLookup for ChainSessions {
    fn session_key(&self, session_id: &B256) -> Option<Address> {
        self.terms(session_id).map(|t| t.sessionKey)
    }

    fn resolve(&self, session_id: B256) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if self.terms(&session_id).is_none() && !self.missed_recently(&session_id) {
                self.fetch(session_id).await;
            }
        })
    }
}
