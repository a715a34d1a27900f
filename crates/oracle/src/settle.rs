//! Probe sessions the oracle closed, waiting out the market's claim grace before `settle`
//! returns their deposits. Without this every probe's deposit stayed locked and an oracle's
//! wallet drained in minutes. The list lives in `data_dir/probe_sessions.json` (rewritten
//! atomically), so a restart settles what the previous run left.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use alloy::primitives::Bytes;
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};
use wirepact_chain::bindings::WirepactMarket::WirepactMarketErrors as E;
use wirepact_chain::{ChainError, Market};
use wirepact_proto::SessionTerms;

/// One probe session to finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsettled {
    /// The session's terms, ABI-encoded (what `close`/`settle` take).
    pub terms: Bytes,
    /// Whether `close` has landed (if not, it is retried first).
    pub closed: bool,
    /// Unix time from which `settle` can succeed (close + the claim grace).
    pub settle_at: u64,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub settled: usize,
    pub waiting: usize,
}

#[derive(Debug)]
pub struct ProbeSessions {
    path: PathBuf,
    grace: u64,
    list: Mutex<Vec<Unsettled>>,
}

impl ProbeSessions {
    /// Loads the list left in `data_dir` (an unreadable file is logged and kept aside).
    #[must_use]
    pub fn load(data_dir: &Path, grace: u64) -> Self {
        let path = data_dir.join("probe_sessions.json");
        let list = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                let aside = path.with_extension("json.unreadable");
                tracing::error!(path = %path.display(), error = %e, aside = %aside.display(), "probe session list unreadable; kept aside, its deposits must be settled by hand");
                let _ = std::fs::rename(&path, &aside);
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Self { path, grace, list: Mutex::new(list) }
    }

    fn save(&self, list: &[Unsettled]) {
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::write(&tmp, serde_json::to_vec(list).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            tracing::error!(path = %self.path.display(), error = %e, "cannot save the probe session list");
        }
    }

    /// Records a probe session (closed or not) to settle later.
    pub fn add(&self, terms: &SessionTerms, closed: bool, now: u64) {
        let entry = Unsettled { terms: terms.abi_encode().into(), closed, settle_at: now + self.grace };
        if let Ok(mut l) = self.list.lock() {
            l.push(entry);
            self.save(&l);
        }
    }

    #[must_use]
    pub fn pending(&self) -> Vec<Unsettled> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Closes what is still open and settles what is due; keeps the rest for the next pass.
    pub async fn pass(&self, market: &impl Market, now: u64) -> Pass {
        let mut out = Pass::default();
        for mut u in self.pending() {
            let Ok(terms) = SessionTerms::abi_decode(&u.terms) else { continue };
            let mut done = false;
            if !u.closed {
                match market.close(&terms).await {
                    Ok(_) => {
                        u.closed = true;
                        u.settle_at = now + self.grace;
                    }
                    // Already closed by an earlier attempt whose confirmation was lost.
                    Err(e) if matches!(e.revert(), Some(E::Market_SessionNotOpen(_))) => {
                        u.closed = true;
                        u.settle_at = now + self.grace;
                    }
                    Err(e) => done = gone(&e),
                }
            } else if now >= u.settle_at {
                match market.settle(&terms).await {
                    Ok(_) => {
                        out.settled += 1;
                        done = true;
                    }
                    Err(e) => {
                        done = gone(&e);
                        if !done {
                            tracing::warn!(error = %e, "settling a probe session failed; will retry");
                        }
                    }
                }
            }
            if let Ok(mut l) = self.list.lock() {
                l.retain(|x| x.terms != u.terms);
                if !done {
                    l.push(u);
                    out.waiting += 1;
                }
                self.save(&l);
            }
        }
        out
    }
}

/// The session no longer exists (someone settled it, or the provider closed it): nothing to do.
fn gone(e: &ChainError) -> bool {
    matches!(e.revert(), Some(E::Market_UnknownSession(_)))
}
