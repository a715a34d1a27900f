//! What oracles exchange over HTTP, and the checks before anything counts:
//! - `GET /v1/observations/{epoch}`: this oracle's signed row for the epoch;
//! - `GET /v1/report/{epoch}`: the report this oracle signed, with the observation set
//!   (the proposal) it was computed from, so peers can recompute it and sign the same digest;
//! - `GET /v1/verdicts/{epoch}`: the providers the epoch's report judged available (the leaves
//!   of its verdict tree), from which a provider builds its bonus proofs;
//! - `POST /v1/secret/{epoch}`: the audit secret of an epoch, to oracles only, sealed to the
//!   requester's key (see `secrets`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use alloy::primitives::{Address, Bytes, B256};
use alloy::sol_types::Eip712Domain;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use wirepact_proto::verdicts::Aggregate;
use wirepact_proto::{recover_observations, recover_report, Observations, Report};

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
    /// In ascending signer order: the order of a proposal.
    #[must_use]
    pub fn ordered(&self) -> Vec<SignedObservations> {
        let mut v: Vec<SignedObservations> = self.by_oracle.values().cloned().collect();
        v.sort_by_key(|o| o.oracle);
        v
    }
}

/// A report one oracle signed for an epoch, with the observation set it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReport {
    pub oracle: Address,
    pub epoch: u64,
    /// Who proposed the observation set (the epoch's leader, or a fallback).
    pub proposer: Address,
    /// The observation set, ascending by oracle.
    pub proposal: Vec<SignedObservations>,
    pub root: B256,
    pub available: u32,
    pub violations: Bytes,
    /// The proposer's commitment to the audit secret of `epoch + 2` (signed with the rest).
    #[serde(default)]
    pub seed_commit: B256,
    pub signature: Bytes,
}

impl SignedReport {
    /// The EIP-712 message signed.
    #[must_use]
    pub fn report(&self) -> Report {
        Report {
            epoch: self.epoch,
            root: self.root,
            available: self.available,
            violations: self.violations.clone(),
            seedCommit: self.seed_commit,
        }
    }

    /// Whether `agg` (with this report's commitment) is exactly what this report says.
    #[must_use]
    pub fn matches(&self, agg: &Aggregate) -> bool {
        self.report() == agg.report(self.seed_commit)
    }
}

/// Why a proposal does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalRejected {
    #[error("observation of {oracle}: {reason}")]
    Observation { oracle: Address, reason: Rejected },
    #[error("{0} appears twice or out of order")]
    NotAscending(Address),
    #[error("the set holds {signing} of the epoch's {eligible} stake (more than two thirds needed, and 3 signers)")]
    NoQuorum { signing: u128, eligible: u128 },
    #[error("the report's signature does not recover to {0}")]
    BadSignature(Address),
    #[error("the report differs from the aggregate of its own proposal")]
    WrongAggregate,
}

/// Checks a proposal: every observation verifies against `providers` and the epoch's
/// oracles (`stakes`), no oracle twice, and together they hold more than two thirds of
/// `eligible` with at least 3 signers. Returns the rows' stakes in proposal order.
///
/// # Errors
/// The first [`ProposalRejected`] reason.
pub fn verify_proposal(
    proposal: &[SignedObservations],
    domain: &Eip712Domain,
    epoch: u64,
    providers: &[u8],
    stakes: &HashMap<Address, u128>,
    eligible: u128,
) -> Result<Vec<u128>, ProposalRejected> {
    let oracles: Vec<Address> = stakes.keys().copied().collect();
    let mut last: Option<Address> = None;
    let mut weights = Vec::with_capacity(proposal.len());
    for o in proposal {
        if last.is_some_and(|l| o.oracle <= l) {
            return Err(ProposalRejected::NotAscending(o.oracle));
        }
        last = Some(o.oracle);
        verify(o, domain, epoch, providers, &oracles)
            .map_err(|reason| ProposalRejected::Observation { oracle: o.oracle, reason })?;
        weights.push(stakes.get(&o.oracle).copied().unwrap_or(0));
    }
    let signing: u128 = weights.iter().sum();
    if proposal.len() < 3 || signing * 3 <= eligible * 2 {
        return Err(ProposalRejected::NoQuorum { signing, eligible });
    }
    Ok(weights)
}

/// Checks a peer's signed report recovers to the peer.
///
/// # Errors
/// [`ProposalRejected::BadSignature`].
pub fn verify_report_signature(r: &SignedReport, domain: &Eip712Domain) -> Result<(), ProposalRejected> {
    match recover_report(domain, &r.report(), &r.signature) {
        Ok(a) if a == r.oracle => Ok(()),
        _ => Err(ProposalRejected::BadSignature(r.oracle)),
    }
}

/// The reports this oracle signed and the verdict lists of the epochs it took part in, by
/// epoch (bounded: enough for two reward periods of bonus claims).
#[derive(Debug, Clone, Default)]
pub struct Reports {
    inner: Arc<RwLock<ReportsInner>>,
}

#[derive(Debug, Default)]
struct ReportsInner {
    signed: BTreeMap<u64, SignedReport>,
    verdicts: BTreeMap<u64, Vec<(u32, u32)>>,
}

/// Epochs of verdict lists kept (two default reward periods of 144 epochs, and some).
pub const KEEP_VERDICT_EPOCHS: usize = 400;

/// The leaves of an epoch's verdict tree: `(provider, base)` for each provider judged
/// available, as served to providers and peers (who check them against the market's root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdicts {
    pub epoch: u64,
    pub leaves: Vec<(u32, u32)>,
}

impl Reports {
    /// Records what this oracle signed for an epoch and its tree's leaves.
    pub fn put(&self, r: SignedReport, leaves: Vec<(u32, u32)>) {
        if let Ok(mut m) = self.inner.write() {
            m.verdicts.insert(r.epoch, leaves);
            m.signed.insert(r.epoch, r);
            while m.signed.len() > KEEP_EPOCHS {
                m.signed.pop_first();
            }
            while m.verdicts.len() > KEEP_VERDICT_EPOCHS {
                m.verdicts.pop_first();
            }
        }
    }

    #[must_use]
    pub fn get(&self, epoch: u64) -> Option<SignedReport> {
        self.inner.read().ok().and_then(|m| m.signed.get(&epoch).cloned())
    }

    #[must_use]
    pub fn verdicts(&self, epoch: u64) -> Option<Verdicts> {
        self.inner.read().ok().and_then(|m| m.verdicts.get(&epoch).map(|l| Verdicts { epoch, leaves: l.clone() }))
    }

    /// Records the leaves of an epoch this oracle did not sign (fetched from a peer, checked).
    pub fn put_verdicts(&self, v: Verdicts) {
        if let Ok(mut m) = self.inner.write() {
            m.verdicts.insert(v.epoch, v.leaves);
            while m.verdicts.len() > KEEP_VERDICT_EPOCHS {
                m.verdicts.pop_first();
            }
        }
    }
}

/// Every route an oracle serves.
pub fn router(published: &Published, reports: &Reports, desk: &crate::secrets::SecretDesk) -> Router {
    published
        .router()
        .merge(
            Router::new()
                .route("/v1/report/{epoch}", get(serve_report))
                .route("/v1/verdicts/{epoch}", get(serve_verdicts))
                .with_state(reports.clone()),
        )
        .merge(desk.router())
}

async fn serve_report(State(r): State<Reports>, Path(epoch): Path<u64>) -> Result<Json<SignedReport>, StatusCode> {
    r.get(epoch).map(Json).ok_or(StatusCode::NOT_FOUND)
}

async fn serve_verdicts(State(r): State<Reports>, Path(epoch): Path<u64>) -> Result<Json<Verdicts>, StatusCode> {
    r.verdicts(epoch).map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// Fetches a peer's verdict leaves for `epoch` (`None` if it has none or is unreachable).
pub async fn fetch_verdicts(client: &reqwest::Client, endpoint: &str, epoch: u64) -> Option<Verdicts> {
    let r = client.get(format!("http://{endpoint}/v1/verdicts/{epoch}")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json::<Verdicts>().await.ok().filter(|v| v.epoch == epoch)
}

/// Fetches the report a peer signed for `epoch` (`None` if none yet or unreachable).
pub async fn fetch_report(client: &reqwest::Client, endpoint: &str, epoch: u64) -> Option<SignedReport> {
    let r = client.get(format!("http://{endpoint}/v1/report/{epoch}")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
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

    /// A leader's proposal counts only if every row is a valid signed row of the epoch's
    /// oracles, no oracle appears twice, and together they hold more than two thirds of the
    /// stake (3 signers at least): a leader cannot make a report out of a minority's rows.
    #[test]
    fn a_proposal_needs_valid_distinct_rows_of_more_than_two_thirds_of_the_stake() {
        let dom = domain(31337, Address::repeat_byte(9));
        let mut keys: Vec<PrivateKeySigner> = (0..4).map(|_| PrivateKeySigner::random()).collect();
        keys.sort_by_key(PrivateKeySigner::address);
        let providers = [0, 0, 0, 1];
        let row = [0, 0, 0x75, 0x30, 0, 0, 20, 1];
        let rows: Vec<SignedObservations> = keys.iter().map(|k| signed(k, &dom, 3, &providers, &row)).collect();
        let stakes: HashMap<Address, u128> = keys.iter().map(|k| (k.address(), 100)).collect();
        assert_eq!(verify_proposal(&rows, &dom, 3, &providers, &stakes, 400), Ok(vec![100; 4]));
        assert_eq!(verify_proposal(&rows[..3], &dom, 3, &providers, &stakes, 400), Ok(vec![100; 3]));
        // two of four: no quorum, however the leader counts
        assert_eq!(
            verify_proposal(&rows[..2], &dom, 3, &providers, &stakes, 400),
            Err(ProposalRejected::NoQuorum { signing: 200, eligible: 400 })
        );
        // the same oracle twice (to pad the stake), or out of order
        let twice = vec![rows[0].clone(), rows[0].clone(), rows[1].clone(), rows[2].clone()];
        assert_eq!(
            verify_proposal(&twice, &dom, 3, &providers, &stakes, 400),
            Err(ProposalRejected::NotAscending(rows[0].oracle))
        );
        // a row that is not what its oracle signed
        let mut forged = rows.clone();
        forged[1].row = vec![0u8; 8].into();
        assert!(matches!(
            verify_proposal(&forged, &dom, 3, &providers, &stakes, 400),
            Err(ProposalRejected::Observation { reason: Rejected::BadSignature(_), .. })
        ));
    }

    #[test]
    fn a_signed_report_counts_only_for_its_signer() {
        let dom = domain(31337, Address::repeat_byte(9));
        let (a, b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let report = Report {
            epoch: 3,
            root: B256::repeat_byte(1),
            available: 1,
            violations: Bytes::new(),
            seedCommit: B256::repeat_byte(4),
        };
        let sig = wirepact_proto::sign_report(&a, &dom, &report).expect("sign");
        let mine = SignedReport {
            oracle: a.address(),
            epoch: 3,
            proposer: a.address(),
            proposal: vec![],
            root: report.root,
            available: 1,
            violations: Bytes::new(),
            seed_commit: report.seedCommit,
            signature: sig,
        };
        assert_eq!(verify_report_signature(&mine, &dom), Ok(()));
        let claimed_by_b = SignedReport { oracle: b.address(), ..mine.clone() };
        assert_eq!(verify_report_signature(&claimed_by_b, &dom), Err(ProposalRejected::BadSignature(b.address())));
        let other_root = SignedReport { root: B256::repeat_byte(2), ..mine.clone() };
        assert!(verify_report_signature(&other_root, &dom).is_err());
        // the commitment is signed too: a relay cannot swap in its own
        let other_commit = SignedReport { seed_commit: B256::repeat_byte(5), ..mine };
        assert!(verify_report_signature(&other_commit, &dom).is_err());
    }
}
