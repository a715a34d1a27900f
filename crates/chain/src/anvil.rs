//! A local anvil node for tests and the devnet: found where the contracts' npm package put it,
//! on a free port, killed when dropped.

use std::path::{Path, PathBuf};

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::signers::local::PrivateKeySigner;

const NPM_ANVIL: &str = "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("anvil not found; install it with `make tools` (npm package @foundry-rs/anvil-linux-amd64) or set WIREPACT_ANVIL")]
    NotFound,
    #[error("anvil at {path} failed to start: {reason}")]
    Start { path: PathBuf, reason: String },
}

/// Where anvil is: `$WIREPACT_ANVIL`, else the npm package under an ancestor's `contracts/`
/// (from the working directory or this crate's source), else `anvil` on `PATH`.
#[must_use]
pub fn find_anvil() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WIREPACT_ANVIL") {
        return Some(PathBuf::from(p));
    }
    let starts = [std::env::current_dir().ok(), Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")))];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join(NPM_ANVIL);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("anvil")).find(|p| Path::new(p).is_file()))
}

/// A running anvil node. Dropping it kills the process.
#[derive(Debug)]
pub struct Devnet {
    instance: AnvilInstance,
}

impl Devnet {
    /// Starts anvil on a free loopback port with its default dev accounts.
    pub fn start() -> Result<Self, DevnetError> {
        Self::start_with(&[])
    }

    /// Starts anvil with extra command-line arguments (e.g. `["--block-time", "1"]`).
    pub fn start_with(args: &[&str]) -> Result<Self, DevnetError> {
        let path = find_anvil().ok_or(DevnetError::NotFound)?;
        let instance = Anvil::at(&path)
            .args(args.iter().copied())
            .try_spawn()
            .map_err(|e| DevnetError::Start { path, reason: e.to_string() })?;
        Ok(Self { instance })
    }

    /// HTTP JSON-RPC endpoint, e.g. `http://localhost:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        self.instance.endpoint()
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.instance.port()
    }

    #[must_use]
    pub fn chain_id(&self) -> u64 {
        self.instance.chain_id()
    }

    /// The `i`-th funded dev account (anvil has 10).
    #[must_use]
    pub fn signer(&self, i: usize) -> Option<PrivateKeySigner> {
        self.instance.keys().get(i).map(|k| PrivateKeySigner::from(k.clone()))
    }
}
