//! Typed units and identifiers.

use alloy::primitives::{keccak256, B256, U256};
use alloy::sol_types::SolValue;

/// A number of payload bytes. Always 64-bit: byte counters drive billing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteCount(pub u64);

impl ByteCount {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;
    pub const GIB: u64 = 1 << 30;

    /// Adds without wrapping; saturates at `u64::MAX` (2^64 bytes is 16 EiB, never billed).
    #[must_use]
    pub fn saturating_add(self, n: u64) -> Self {
        Self(self.0.saturating_add(n))
    }
}

/// A rate in kilobits per second (10^3 bit/s), as oracles report throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kbps(pub u32);

/// A rate in megabits per second (10^6 bit/s), as providers declare capacity and SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mbps(pub u32);

impl Mbps {
    #[must_use]
    pub fn to_kbps(self) -> Kbps {
        Kbps(self.0.saturating_mul(1000))
    }
}

/// A duration in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u32);

/// An amount of the settlement token in base units.
pub type TokenAmount = U256;

/// A provider's id in the market (1-based, assigned at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderId(pub u32);

/// A session id: `keccak256(abi.encode(SessionTerms))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub B256);

/// What each session of a provider is promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaTerms {
    pub guaranteed: Mbps,
    pub max_latency: Millis,
}

alloy::sol! {
    /// Immutable terms of a session, field for field as `IWirepactMarket.SessionTerms`.
    #[derive(Debug, PartialEq, Eq)]
    struct SessionTerms {
        address client;
        address sessionKey;
        uint32 providerId;
        uint32 nonce;
        uint32 sessionMbps;
        uint32 violationsAtOpen;
        uint40 openedAt;
        uint96 deposit;
        uint96 pricePerGiB;
    }
}

impl SessionTerms {
    /// The contract's session id for these terms.
    #[must_use]
    pub fn session_id(&self) -> SessionId {
        SessionId(keccak256(self.abi_encode()))
    }
}
