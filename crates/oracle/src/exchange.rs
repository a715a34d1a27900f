//! Observations as oracles exchange them: signed rows for one epoch, served over HTTP
//! (`GET /v1/observations/{epoch}`) and checked before they count toward a report.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use alloy::primitives::{Address, Bytes};
use alloy::sol_types::Eip712Domain;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use wirepact_proto::{recover_observations, Observations};

/// One oracle's signed observations of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedObservations {
    pub oracle: Address,
    pub epoch: u64,
    /// Audited provider ids, u32 big-endian each, ascending.
    pub providers: Bytes,
    /// 8 bytes per provider (throughput kbit/s u32, latency ms u24, flags).
    pub row: Bytes,
    pub signature: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("for epoch {got}, expected {want}")]
    WrongEpoch { got: u64, want: u64 },
    #[error("names other providers than this oracle audited")]
    OtherProviders,
    #[error("row of {0} bytes for the listed providers")]
    Malformed(usize),
    #[error("signature does not recover to the claimed oracle {0}")]
    BadSignature(Address),
    #[error("{0} is not an active oracle")]
    NotAnOracle(Address),
}

/// Checks a peer's observations against what this oracle expects for `epoch`.
///
/// # Errors
/// The first [`Rejected`] reason.
pub fn verify(
    o: &SignedObservations,
    domain: &Eip712Domain,
    epoch: u64,
    providers: &[u8],
    oracles: &[Address],
) -> Result<(), Rejected> {
    if o.epoch != epoch {
        return Err(Rejected::WrongEpoch { got: o.epoch, want: epoch });
    }
    if o.providers.as_ref() != providers {
        return Err(Rejected::OtherProviders);
    }
    if o.row.len() != providers.len() * 2 {
        return Err(Rejected::Malformed(o.row.len()));
    }
    if !oracles.contains(&o.oracle) {
        return Err(Rejected::NotAnOracle(o.oracle));
    }
    let msg = Observations { epoch, providers: o.providers.clone(), measurements: o.row.clone() };
    match recover_observations(domain, &msg, &o.signature) {
        Ok(a) if a == o.oracle => Ok(()),
        _ => Err(Rejected::BadSignature(o.oracle)),
    }
}

/// What this oracle publishes, by epoch (a bounded number of recent epochs).
#[derive(Debug, Clone, Default)]
pub struct Published {
    inner: Arc<RwLock<BTreeMap<u64, SignedObservations>>>,
}

/// Epochs kept for peers to fetch.
const KEEP_EPOCHS: usize = 64;

impl Published {
    pub fn put(&self, o: SignedObservations) {
        if let Ok(mut m) = self.inner.write() {
            m.insert(o.epoch, o);
            while m.len() > KEEP_EPOCHS {
                m.pop_first();
            }
        }
    }

    #[must_use]
    pub fn get(&self, epoch: u64) -> Option<SignedObservations> {
        self.inner.read().ok().and_then(|m| m.get(&epoch).cloned())
    }

    /// The HTTP routes peers fetch from.
    pub fn router(&self) -> Router {
        Router::new().route("/v1/observations/{epoch}", get(serve)).with_state(self.clone())
    }
}

async fn serve(State(p): State<Published>, Path(epoch): Path<u64>) -> Result<Json<SignedObservations>, StatusCode> {
    p.get(epoch).map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// Fetches a peer's observations for `epoch` (`None` if it has none yet or is unreachable).
pub async fn fetch(client: &reqwest::Client, endpoint: &str, epoch: u64) -> Option<SignedObservations> {
    let url = format!("http://{endpoint}/v1/observations/{epoch}");
    let r = client.get(&url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Verified observations of one epoch, one per oracle.
#[derive(Debug, Default)]
pub struct Collected {
    pub by_oracle: HashMap<Address, SignedObservations>,
}

impl Collected {
    /// Rows and signatures in ascending signer order, as `submitReport` wants them.
    #[must_use]
    pub fn ordered(&self) -> Vec<&SignedObservations> {
        let mut v: Vec<&SignedObservations> = self.by_oracle.values().collect();
        v.sort_by_key(|o| o.oracle);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;
    use wirepact_proto::{domain, sign_observations};

    fn signed(
        key: &PrivateKeySigner,
        dom: &Eip712Domain,
        epoch: u64,
        providers: &[u8],
        row: &[u8],
    ) -> SignedObservations {
        let msg = Observations { epoch, providers: providers.to_vec().into(), measurements: row.to_vec().into() };
        SignedObservations {
            oracle: key.address(),
            epoch,
            providers: providers.to_vec().into(),
            row: row.to_vec().into(),
            signature: sign_observations(key, dom, &msg).expect("sign"),
        }
    }

    #[test]
    fn only_well_formed_signed_rows_of_active_oracles_for_this_epoch_count() {
        let dom = domain(31337, Address::repeat_byte(9));
        let (a, b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let providers = [0, 0, 0, 1, 0, 0, 0, 2];
        let row = [0u8; 16];
        let oracles = [a.address(), b.address()];
        let ok = signed(&a, &dom, 7, &providers, &row);
        assert_eq!(verify(&ok, &dom, 7, &providers, &oracles), Ok(()));
        assert_eq!(verify(&ok, &dom, 8, &providers, &oracles), Err(Rejected::WrongEpoch { got: 7, want: 8 }));
        assert_eq!(verify(&ok, &dom, 7, &providers[..4], &oracles), Err(Rejected::OtherProviders));
        assert_eq!(verify(&ok, &dom, 7, &providers, &oracles[1..]), Err(Rejected::NotAnOracle(a.address())));
        let forged = SignedObservations { oracle: b.address(), ..ok.clone() };
        assert_eq!(verify(&forged, &dom, 7, &providers, &oracles), Err(Rejected::BadSignature(b.address())));
        let mut tampered = ok.clone();
        tampered.row = [1u8; 16].to_vec().into();
        assert_eq!(verify(&tampered, &dom, 7, &providers, &oracles), Err(Rejected::BadSignature(a.address())));
        let short = signed(&a, &dom, 7, &providers, &row[..8]);
        assert_eq!(verify(&short, &dom, 7, &providers, &oracles), Err(Rejected::Malformed(8)));
        let other_market = signed(&a, &domain(31337, Address::repeat_byte(8)), 7, &providers, &row);
        assert!(verify(&other_market, &dom, 7, &providers, &oracles).is_err(), "signed for another market");
    }
}
