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

/// Decimals the settlement token is shown with (the devnet token and most ERC-20s use 18).
pub const TOKEN_DECIMALS: u32 = 18;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a token amount (expected a decimal like \"12\" or \"0.5\", at most 18 decimals)")]
pub struct ParseTokenError {
    pub input: String,
}

/// Parses a decimal token amount ("12", "0.25") into base units, exactly (no floats).
///
/// # Errors
/// Anything but digits with at most one point and at most [`TOKEN_DECIMALS`] fraction digits.
pub fn parse_tokens(s: &str) -> Result<TokenAmount, ParseTokenError> {
    let err = || ParseTokenError { input: s.to_owned() };
    let t = s.trim().replace('_', "");
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > TOKEN_DECIMALS as usize {
        return Err(err());
    }
    let scale = U256::from(10u64).pow(U256::from(TOKEN_DECIMALS));
    let int: U256 = if int.is_empty() { U256::ZERO } else { int.parse().map_err(|_| err())? };
    let frac_units: U256 = if frac.is_empty() {
        U256::ZERO
    } else {
        let padded = format!("{frac:0<width$}", width = TOKEN_DECIMALS as usize);
        padded.parse().map_err(|_| err())?
    };
    int.checked_mul(scale).and_then(|v| v.checked_add(frac_units)).ok_or_else(err)
}

/// Shows base units as a decimal token amount, exactly, without trailing zeros ("0.25").
#[must_use]
pub fn format_tokens(v: TokenAmount) -> String {
    let scale = U256::from(10u64).pow(U256::from(TOKEN_DECIMALS));
    let (int, frac) = (v / scale, v % scale);
    if frac.is_zero() {
        return int.to_string();
    }
    let f = format!("{frac:0>width$}", width = TOKEN_DECIMALS as usize);
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// An amount as people read it: decimal tokens with the unit ("12.5 tokens"). Every log line,
/// error and report that shows an amount uses this one form.
#[must_use]
pub fn token_text(v: TokenAmount) -> String {
    format!("{} tokens", format_tokens(v))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18))
    }

    #[test]
    fn token_amounts_parse_exactly_and_round_trip() {
        assert_eq!(parse_tokens("1").expect("int"), tokens(1));
        assert_eq!(parse_tokens("0.000000000000000001").expect("one wei"), U256::from(1));
        assert_eq!(parse_tokens(".5").expect("half"), tokens(1) / U256::from(2));
        assert_eq!(parse_tokens("1_000").expect("thousand"), tokens(1000));
        for bad in ["", ".", "1.2.3", "-1", "1e3", "0.0000000000000000001", "abc", "1 000"] {
            assert!(parse_tokens(bad).is_err(), "{bad:?} accepted");
        }
        for s in ["0", "1", "0.25", "123.000000000000000001", "1000000"] {
            assert_eq!(format_tokens(parse_tokens(s).expect("parse")), s);
        }
    }
}

/// The most a caller accepts to pay per GiB when it saw `quote`: `quote` raised by
/// `tolerance_bps` (rounded down). Passed as `maxPricePerGiB`, so a provider that raises its
/// price in front of the caller's `openSession` makes the open fail instead of taking the
/// whole deposit at any price.
#[must_use]
pub fn price_ceiling(quote: U256, tolerance_bps: u32) -> U256 {
    quote.saturating_add(quote.saturating_mul(U256::from(tolerance_bps)) / U256::from(10_000u64))
}

#[cfg(test)]
mod price_tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_quote_plus_the_tolerance() {
        assert_eq!(price_ceiling(U256::from(1_000u64), 500), U256::from(1_050u64));
        assert_eq!(price_ceiling(U256::from(999u64), 0), U256::from(999u64));
        assert_eq!(price_ceiling(U256::ZERO, 500), U256::ZERO);
        // never wraps, never below the quote
        assert_eq!(price_ceiling(U256::MAX, 500), U256::MAX);
    }
}

/// Serde: a token amount as its exact decimal string in tokens ("1.5"), the form every JSON
/// output of wirepact uses (`#[serde(with = "wirepact_proto::units::token_string")]`).
pub mod token_string {
    use super::{format_tokens, parse_tokens, TokenAmount};

    /// # Errors
    /// Never (a string is always written).
    pub fn serialize<S: serde::Serializer>(v: &TokenAmount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_tokens(*v))
    }

    /// # Errors
    /// A string that is not a token amount.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TokenAmount, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        parse_tokens(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod token_string_tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Quote {
        #[serde(with = "token_string")]
        quote: TokenAmount,
    }

    #[test]
    fn json_amounts_are_exact_decimal_token_strings_both_ways() {
        let q = Quote { quote: alloy::primitives::U256::from(1_500_000_000_000_000_001u128) };
        let text = serde_json::to_string(&q).expect("json");
        assert_eq!(text, r#"{"quote":"1.500000000000000001"}"#);
        assert_eq!(serde_json::from_str::<Quote>(&text).expect("back"), q);
        assert!(serde_json::from_str::<Quote>(r#"{"quote":"0x10"}"#).is_err(), "hex is not a token amount");
    }
}
