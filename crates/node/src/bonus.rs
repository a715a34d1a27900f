//! Bonus proofs: the providers an epoch's report judged available are the leaves of its verdict
//! tree, whose root is on chain. Oracles serve the leaves (`GET /v1/verdicts/{epoch}`); a
//! provider rebuilds the tree, keeps it only if its root is the market's, and proves its own
//! leaf. A lying or stale oracle can only fail to help: its list does not match the root.

use std::time::Duration;

use alloy::primitives::{B256, U256};
use serde::Deserialize;
use wirepact_chain::bindings::IWirepactMarket::BonusLeaf;
use wirepact_chain::bindings::WirepactMarket;
use wirepact_chain::{AlloyMarket, ChainError, Market};
use wirepact_proto::verdicts::VerdictTree;

#[derive(Debug, Deserialize)]
struct Verdicts {
    epoch: u64,
    /// `(provider, base)` leaves.
    leaves: Vec<(u32, u32)>,
}

/// An HTTP client for oracle endpoints (short timeouts: one slow oracle must not hold a claim up).
#[must_use]
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap_or_default()
}

/// The registered oracles' endpoints.
///
/// # Errors
/// The chain could not be read.
pub async fn oracle_endpoints(market: &AlloyMarket) -> Result<Vec<String>, ChainError> {
    let v = WirepactMarket::new(market.address(), market.rpc());
    let n = v.oracleCount().call().await.map_err(|e| ChainError::from_contract("reading oracles", e))?;
    let mut out = Vec::new();
    for i in 0..n.to::<u64>() {
        let a = v.oracleAt(U256::from(i)).call().await.map_err(|e| ChainError::from_contract("reading oracles", e))?;
        let o = v.oracle(a).call().await.map_err(|e| ChainError::from_contract("reading an oracle", e))?;
        if o.stake != 0 {
            out.push(o.endpoint);
        }
    }
    Ok(out)
}

/// The tree of `epoch` from the first oracle whose leaves hash to `root`.
pub async fn tree_from_oracles(
    http: &reqwest::Client,
    oracles: &[String],
    epoch: u64,
    root: B256,
) -> Option<VerdictTree> {
    for endpoint in oracles {
        let Ok(r) = http.get(format!("http://{endpoint}/v1/verdicts/{epoch}")).send().await else { continue };
        if !r.status().is_success() {
            continue;
        }
        let Ok(v) = r.json::<Verdicts>().await else { continue };
        if v.epoch != epoch {
            continue;
        }
        let tree = VerdictTree::new(epoch, v.leaves);
        if tree.root() == root {
            return Some(tree);
        }
        tracing::debug!(epoch, %endpoint, "an oracle's verdict list does not match the market's root");
    }
    None
}

/// `id`'s leaf for `epoch`, base and proof (`None`: not judged available, or no oracle serves
/// the list).
pub async fn leaf_from_oracles(
    http: &reqwest::Client,
    oracles: &[String],
    epoch: u64,
    id: u32,
    root: B256,
) -> Option<BonusLeaf> {
    let (base, proof) = tree_from_oracles(http, oracles, epoch, root).await?.proof(id)?;
    Some(BonusLeaf { epoch, base, proof })
}
