//! The oracles' audit secrets: the proposer of epoch e's report draws the secret of epoch
//! e + 2 and commits to it in that report; the other oracles fetch it before they sign, so the
//! quorum knows during e + 2 whom to probe while providers learn it only when e + 2's report
//! reveals it on chain (see the market's docs, "Epochs, audits, reports").
//!
//! A secret travels only to an oracle of the market, and only sealed to its key:
//! `POST /v1/secret/{epoch}` carries a [`SecretRequest`] signed by the requesting oracle (EIP-191
//! over the chain, market, epoch and a timestamp); the answer is the secret XOR
//! `keccak256(ECDH(ephemeral, requester) || "wirepact audit secret" || epoch)`, with the
//! ephemeral public key. Whoever replays or observes the exchange learns nothing; the
//! requester checks what it opened against the commitment before using it.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use alloy::primitives::{keccak256, Address, Bytes, Signature, B256};
use alloy::signers::k256::elliptic_curve::sec1::ToEncodedPoint;
use alloy::signers::k256::{ecdsa::VerifyingKey, ProjectivePoint};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use wirepact_proto::audit::seed_commit;

/// How far a request's timestamp may be from the server's clock, in seconds.
pub const REQUEST_SKEW_SECS: u64 = 120;
/// Secrets kept in memory (older epochs were revealed on chain long ago).
const KEEP_SECRETS: usize = 64;

/// The secrets this oracle drew or received, by epoch, persisted in `audit_secrets.jsonl`
/// (owner-only) before use, so a restart neither loses one nor draws a second one for an epoch.
/// An epoch may hold more than one: the one this oracle drew as a would-be proposer, and the one
/// of the proposal the quorum signed; the chain's commitment tells which counts.
#[derive(Debug, Clone)]
pub struct Secrets {
    inner: Arc<RwLock<BTreeMap<u64, Vec<B256>>>>,
    path: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    epoch: u64,
    secret: B256,
}

impl Secrets {
    /// Loads the secrets kept under `data_dir` (unreadable lines are skipped).
    #[must_use]
    pub fn load(data_dir: &Path) -> Self {
        let path = data_dir.join("audit_secrets.jsonl");
        let mut map: BTreeMap<u64, Vec<B256>> = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for l in text.lines().filter_map(|l| serde_json::from_str::<Line>(l).ok()) {
                let v = map.entry(l.epoch).or_default();
                if !v.contains(&l.secret) {
                    v.push(l.secret);
                }
            }
        }
        while map.len() > KEEP_SECRETS {
            map.pop_first();
        }
        Self { inner: Arc::new(RwLock::new(map)), path: Some(path) }
    }

    /// A store that keeps nothing on disk (tests).
    #[must_use]
    pub fn in_memory() -> Self {
        Self { inner: Arc::default(), path: None }
    }

    /// The kept secret of `epoch` that opens `commit`.
    #[must_use]
    pub fn matching(&self, epoch: u64, commit: B256) -> Option<B256> {
        let m = self.inner.read().ok()?;
        m.get(&epoch)?.iter().copied().find(|s| seed_commit(*s) == commit)
    }

    /// Keeps `secret` for `epoch`. `false` if it could not be persisted: then it must not be
    /// used (a restart would lose it).
    pub fn put(&self, epoch: u64, secret: B256) -> bool {
        if self.inner.read().is_ok_and(|m| m.get(&epoch).is_some_and(|v| v.contains(&secret))) {
            return true;
        }
        if let Some(path) = &self.path {
            if let Err(e) = append_private(path, &Line { epoch, secret }) {
                tracing::error!(path = %path.display(), error = %e, "cannot persist an audit secret");
                return false;
            }
        }
        if let Ok(mut m) = self.inner.write() {
            let v = m.entry(epoch).or_default();
            if !v.contains(&secret) {
                v.push(secret);
            }
            while m.len() > KEEP_SECRETS {
                m.pop_first();
            }
        }
        true
    }

    /// This oracle's own secret for `epoch` as a proposer: the first one kept, else a fresh
    /// random one (persisted first; `None` if it cannot be).
    #[must_use]
    pub fn draw(&self, epoch: u64) -> Option<B256> {
        if let Some(s) = self.inner.read().ok().and_then(|m| m.get(&epoch).and_then(|v| v.first().copied())) {
            return Some(s);
        }
        let fresh = B256::from(rand::random::<[u8; 32]>());
        self.put(epoch, fresh).then_some(fresh)
    }
}

fn append_private(path: &Path, line: &Line) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    writeln!(f, "{}", serde_json::to_string(line).map_err(std::io::Error::other)?)?;
    f.sync_data()
}

/// An oracle's request for the secret of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRequest {
    pub oracle: Address,
    pub epoch: u64,
    /// The commitment whose secret is asked for (not signed: it only selects).
    #[serde(default)]
    pub commit: Option<B256>,
    /// Unix seconds when signed.
    pub time: u64,
    /// EIP-191 signature over [`request_message`].
    pub signature: Bytes,
}

/// The sealed secret: `sealed` XOR the key both sides derive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretResponse {
    pub epoch: u64,
    /// SEC1-compressed ephemeral public key (33 bytes).
    pub ephemeral: Bytes,
    pub sealed: B256,
}

/// Why a secret was not handed out or could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the request's signature does not recover to {0}")]
    BadSignature(Address),
    #[error("the request was signed {0} s away from this oracle's clock (at most {REQUEST_SKEW_SECS} s)")]
    Stale(u64),
    #[error("{0} is not an oracle of this market")]
    NotAnOracle(Address),
    #[error("this oracle holds no secret for epoch {0}")]
    Unknown(u64),
    #[error("the answer is malformed")]
    Malformed,
    #[error("the opened secret does not match the commitment")]
    WrongSecret,
}

/// What a request signs: the chain, the market, the epoch and the time.
#[must_use]
pub fn request_message(chain_id: u64, market: Address, epoch: u64, time: u64) -> String {
    format!("wirepact audit secret request\nchain {chain_id}\nmarket {market}\nepoch {epoch}\ntime {time}")
}

/// Signs a request for the secret of `epoch` at `time`.
///
/// # Errors
/// The key could not sign.
pub fn sign_request(
    key: &PrivateKeySigner,
    chain_id: u64,
    market: Address,
    epoch: u64,
    time: u64,
) -> Result<SecretRequest, alloy::signers::Error> {
    let sig = key.sign_message_sync(request_message(chain_id, market, epoch, time).as_bytes())?;
    Ok(SecretRequest {
        oracle: key.address(),
        epoch,
        commit: None,
        time,
        signature: Bytes::from(sig.as_bytes().to_vec()),
    })
}

/// The requester's public key, if the request is signed by the oracle it names, within the
/// allowed skew of `now`.
fn requester_key(req: &SecretRequest, chain_id: u64, market: Address, now: u64) -> Result<VerifyingKey, SecretError> {
    let skew = now.abs_diff(req.time);
    if skew > REQUEST_SKEW_SECS {
        return Err(SecretError::Stale(skew));
    }
    let sig = Signature::try_from(req.signature.as_ref()).map_err(|_| SecretError::BadSignature(req.oracle))?;
    let msg = request_message(chain_id, market, req.epoch, req.time);
    let key = sig.recover_from_msg(msg.as_bytes()).map_err(|_| SecretError::BadSignature(req.oracle))?;
    if alloy::primitives::Address::from_public_key(&key) != req.oracle {
        return Err(SecretError::BadSignature(req.oracle));
    }
    Ok(key)
}

/// The pad both sides derive from the shared point.
fn pad(shared: &ProjectivePoint, epoch: u64) -> B256 {
    let point = shared.to_affine().to_encoded_point(false);
    let mut buf = Vec::with_capacity(32 + 21 + 8);
    buf.extend_from_slice(point.x().map_or(&[][..], |x| x.as_slice()));
    buf.extend_from_slice(b"wirepact audit secret");
    buf.extend_from_slice(&epoch.to_be_bytes());
    keccak256(buf)
}

/// Seals `secret` to the requester of `req` (checked: signature, skew, membership).
///
/// # Errors
/// Any [`SecretError`] about the request.
pub fn seal(
    req: &SecretRequest,
    secret: B256,
    chain_id: u64,
    market: Address,
    now: u64,
    is_oracle: impl Fn(Address) -> bool,
) -> Result<SecretResponse, SecretError> {
    let their = requester_key(req, chain_id, market, now)?;
    if !is_oracle(req.oracle) {
        return Err(SecretError::NotAnOracle(req.oracle));
    }
    let eph = PrivateKeySigner::random();
    let scalar = *eph.credential().as_nonzero_scalar();
    let shared = ProjectivePoint::from(*their.as_affine()) * *scalar;
    let ephemeral = eph.credential().verifying_key().as_affine().to_encoded_point(true);
    Ok(SecretResponse {
        epoch: req.epoch,
        ephemeral: Bytes::from(ephemeral.as_bytes().to_vec()),
        sealed: secret ^ pad(&shared, req.epoch),
    })
}

/// Opens an answer with this oracle's key and checks it against `commit`.
///
/// # Errors
/// [`SecretError::Malformed`] or [`SecretError::WrongSecret`].
pub fn open(key: &PrivateKeySigner, resp: &SecretResponse, commit: B256) -> Result<B256, SecretError> {
    let eph = VerifyingKey::from_sec1_bytes(&resp.ephemeral).map_err(|_| SecretError::Malformed)?;
    let shared = ProjectivePoint::from(*eph.as_affine()) * **key.credential().as_nonzero_scalar();
    let secret = resp.sealed ^ pad(&shared, resp.epoch);
    if seed_commit(secret) != commit {
        return Err(SecretError::WrongSecret);
    }
    Ok(secret)
}

/// What the secret route needs: the secrets, the market's identity and who may ask.
#[derive(Debug, Clone)]
pub struct SecretDesk {
    pub secrets: Secrets,
    pub chain_id: u64,
    pub market: Address,
    /// Who may ask: the oracles of the last two epoch sets this oracle looked at (one that
    /// joins in the epoch after can already ask for its first epoch's secret).
    pub oracles: Arc<RwLock<[HashSet<Address>; 2]>>,
}

impl SecretDesk {
    /// Records the oracles of the epoch this oracle just looked at; the set before it still
    /// counts, older ones no longer do.
    pub fn set_oracles(&self, oracles: impl IntoIterator<Item = Address>) {
        let next: HashSet<Address> = oracles.into_iter().collect();
        if let Ok(mut s) = self.oracles.write() {
            if s[1] != next {
                s[0] = std::mem::replace(&mut s[1], next);
            }
        }
    }

    /// Whether `a` may ask.
    #[must_use]
    pub fn may_ask(&self, a: Address) -> bool {
        self.oracles.read().is_ok_and(|s| s[0].contains(&a) || s[1].contains(&a))
    }

    /// The route `POST /v1/secret/{epoch}`.
    pub fn router(&self) -> Router {
        Router::new().route("/v1/secret/{epoch}", post(serve_secret)).with_state(self.clone())
    }
}

async fn serve_secret(
    State(desk): State<SecretDesk>,
    UrlPath(epoch): UrlPath<u64>,
    Json(req): Json<SecretRequest>,
) -> Result<Json<SecretResponse>, (StatusCode, String)> {
    if req.epoch != epoch {
        return Err((StatusCode::BAD_REQUEST, "the request names another epoch".into()));
    }
    let Some(commit) = req.commit else {
        return Err((StatusCode::BAD_REQUEST, "the request names no commitment".into()));
    };
    let Some(secret) = desk.secrets.matching(epoch, commit) else {
        return Err((StatusCode::NOT_FOUND, SecretError::Unknown(epoch).to_string()));
    };
    let now = crate::daemon::unix_now();
    match seal(&req, secret, desk.chain_id, desk.market, now, |a| desk.may_ask(a)) {
        Ok(r) => Ok(Json(r)),
        Err(e) => {
            tracing::warn!(oracle = %req.oracle, epoch, reason = %e, "audit secret refused");
            Err((StatusCode::FORBIDDEN, e.to_string()))
        }
    }
}

/// Asks the oracle at `endpoint` for the secret of `epoch` and opens it against `commit`.
///
/// # Errors
/// Unreachable peer, refusal, or an answer that does not open to the commitment.
pub async fn fetch_secret(
    client: &reqwest::Client,
    endpoint: &str,
    key: &PrivateKeySigner,
    chain_id: u64,
    market: Address,
    epoch: u64,
    commit: B256,
) -> Result<B256, String> {
    let mut req = sign_request(key, chain_id, market, epoch, crate::daemon::unix_now()).map_err(|e| e.to_string())?;
    req.commit = Some(commit);
    let r = client
        .post(format!("http://{endpoint}/v1/secret/{epoch}"))
        .json(&req)
        .send()
        .await
        .map_err(|e| format!("asking {endpoint}: {e}"))?;
    if !r.status().is_success() {
        let status = r.status();
        let why = r.text().await.unwrap_or_default();
        return Err(format!("{endpoint} answered {status}: {why}"));
    }
    let resp: SecretResponse = r.json().await.map_err(|e| format!("{endpoint}: {e}"))?;
    if resp.epoch != epoch {
        return Err(format!("{endpoint} answered for another epoch"));
    }
    open(key, &resp, commit).map_err(|e| format!("{endpoint}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: u64 = 31337;

    fn market() -> Address {
        Address::repeat_byte(0x4d)
    }

    /// The intended oracle opens the secret; anyone else holding the answer (an eavesdropper,
    /// another oracle, a provider replaying the request) gets noise that fails the commitment.
    #[test]
    fn only_the_requesting_oracle_opens_the_secret() {
        let (me, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let secret = B256::from(rand::random::<[u8; 32]>());
        let commit = seed_commit(secret);
        let req = sign_request(&me, CHAIN, market(), 9, 1_000).expect("sign");
        let resp = seal(&req, secret, CHAIN, market(), 1_010, |a| a == me.address()).expect("sealed");
        assert_ne!(resp.sealed, secret, "never in the clear");
        assert_eq!(open(&me, &resp, commit), Ok(secret));
        assert_eq!(open(&other, &resp, commit), Err(SecretError::WrongSecret));
        // a second answer to the same request uses a fresh ephemeral key
        let again = seal(&req, secret, CHAIN, market(), 1_010, |a| a == me.address()).expect("sealed");
        assert_ne!(again.ephemeral, resp.ephemeral);
        assert_eq!(open(&me, &again, commit), Ok(secret));
    }

    /// A provider (not an oracle), a request for another market or chain, a forged requester
    /// and a stale request get nothing.
    #[test]
    fn strangers_forgeries_and_stale_requests_are_refused() {
        let (oracle, provider) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let secret = B256::from(rand::random::<[u8; 32]>());
        let is_oracle = |a: Address| a == oracle.address();
        let stranger = sign_request(&provider, CHAIN, market(), 9, 1_000).expect("sign");
        assert_eq!(
            seal(&stranger, secret, CHAIN, market(), 1_000, is_oracle),
            Err(SecretError::NotAnOracle(provider.address()))
        );
        // signed by the provider but naming the oracle
        let forged = SecretRequest { oracle: oracle.address(), ..stranger };
        assert_eq!(
            seal(&forged, secret, CHAIN, market(), 1_000, is_oracle),
            Err(SecretError::BadSignature(oracle.address()))
        );
        let other_market = sign_request(&oracle, CHAIN, Address::repeat_byte(1), 9, 1_000).expect("sign");
        assert_eq!(
            seal(&other_market, secret, CHAIN, market(), 1_000, is_oracle),
            Err(SecretError::BadSignature(oracle.address()))
        );
        let other_epoch =
            SecretRequest { epoch: 10, ..sign_request(&oracle, CHAIN, market(), 9, 1_000).expect("sign") };
        assert_eq!(
            seal(&other_epoch, secret, CHAIN, market(), 1_000, is_oracle),
            Err(SecretError::BadSignature(oracle.address()))
        );
        let old = sign_request(&oracle, CHAIN, market(), 9, 1_000).expect("sign");
        assert_eq!(
            seal(&old, secret, CHAIN, market(), 1_000 + REQUEST_SKEW_SECS + 1, is_oracle),
            Err(SecretError::Stale(REQUEST_SKEW_SECS + 1))
        );
        assert!(seal(&old, secret, CHAIN, market(), 1_000 + REQUEST_SKEW_SECS, is_oracle).is_ok());
    }

    /// An oracle of the latest or the previous epoch set may ask; one that left before that
    /// may not.
    #[test]
    fn the_desk_answers_the_last_two_oracle_sets() {
        let desk =
            SecretDesk { secrets: Secrets::in_memory(), chain_id: CHAIN, market: market(), oracles: Arc::default() };
        let (a, b, c) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
        desk.set_oracles([a, b]);
        desk.set_oracles([a, b]); // the same set again changes nothing
        desk.set_oracles([a, c]);
        assert!(desk.may_ask(a) && desk.may_ask(b) && desk.may_ask(c));
        desk.set_oracles([a]);
        assert!(desk.may_ask(a) && desk.may_ask(c));
        assert!(!desk.may_ask(b), "gone two sets ago");
    }

    /// A peer that answers with another secret than the one committed is caught.
    #[test]
    fn an_answer_that_does_not_match_the_commitment_is_refused() {
        let me = PrivateKeySigner::random();
        let req = sign_request(&me, CHAIN, market(), 3, 50).expect("sign");
        let resp = seal(&req, B256::repeat_byte(1), CHAIN, market(), 50, |_| true).expect("sealed");
        assert_eq!(open(&me, &resp, seed_commit(B256::repeat_byte(2))), Err(SecretError::WrongSecret));
        let garbage = SecretResponse { ephemeral: Bytes::from(vec![2; 33]), ..resp };
        assert!(open(&me, &garbage, seed_commit(B256::repeat_byte(1))).is_err());
    }

    /// A secret is on disk before it is used: after a restart the same one comes back, and a
    /// second draw for the epoch returns it instead of a new one.
    #[test]
    fn secrets_survive_a_restart_and_are_drawn_once() {
        let dir = std::env::temp_dir().join(format!("wirepact-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let _ = std::fs::remove_file(dir.join("audit_secrets.jsonl"));
        let s = Secrets::load(&dir);
        let first = s.draw(12).expect("drawn");
        assert_eq!(s.draw(12), Some(first), "drawn once");
        // another proposer's secret for the same epoch is kept beside it
        assert!(s.put(12, B256::repeat_byte(5)));
        assert_eq!(s.draw(12), Some(first));
        let reloaded = Secrets::load(&dir);
        assert_eq!(reloaded.matching(12, seed_commit(first)), Some(first));
        assert_eq!(reloaded.matching(12, seed_commit(B256::repeat_byte(5))), Some(B256::repeat_byte(5)));
        assert_eq!(reloaded.matching(12, seed_commit(B256::repeat_byte(6))), None);
        assert_eq!(reloaded.draw(12), Some(first), "the same one after a restart");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("audit_secrets.jsonl")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
