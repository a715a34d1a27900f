//! EIP-712 messages signed off chain and verified by the market (or by a provider).
//!
//! Domain: `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`
//! with name `"wirepact"`, version `"1"`, the chain id and the market's address, exactly as
//! the contract's OpenZeppelin `EIP712("wirepact", "1")`.

use alloy::primitives::{Address, Bytes, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};

pub const SIGNING_DOMAIN_NAME: &str = "wirepact";
pub const SIGNING_DOMAIN_VERSION: &str = "1";

alloy::sol! {
    /// A client's acknowledgement of `cumulativeBytes` delivered in session `sessionId`.
    #[derive(Debug, PartialEq, Eq)]
    struct Receipt {
        bytes32 sessionId;
        uint64 cumulativeBytes;
        uint64 timestamp;
    }

    /// One oracle's measurements of the audited providers in `epoch`
    /// (see `observations::encode_observations` for the byte layout).
    #[derive(Debug, PartialEq, Eq)]
    struct Observations {
        uint64 epoch;
        bytes providers;
        bytes measurements;
    }

    /// What the quorum signs for an epoch: the root of the providers judged available, their
    /// number, the violators (see `verdicts`), and the commitment to the oracles' secret for
    /// epoch + 2 (see `audit::seed_commit`; zero: none).
    #[derive(Debug, PartialEq, Eq)]
    struct Report {
        uint64 epoch;
        bytes32 root;
        uint32 available;
        bytes violations;
        bytes32 seedCommit;
    }

    /// The first message of a tunnel: proves the sender holds the session key.
    #[derive(Debug, PartialEq, Eq)]
    struct SessionAuth {
        bytes32 sessionId;
        bytes32 tunnelKey;
        uint64 timestamp;
        bytes16 nonce;
    }
}

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature is not 65 bytes of r, s, v (got {0} bytes)")]
    Malformed(usize),
    #[error("signature does not recover to a public key")]
    Unrecoverable,
    #[error("signed by {actual}, expected {expected}")]
    WrongSigner { expected: Address, actual: Address },
    #[error("signing failed: the key could not produce a signature")]
    Signing,
}

/// The market's EIP-712 domain on `chain_id` at `market`.
#[must_use]
pub fn domain(chain_id: u64, market: Address) -> Eip712Domain {
    alloy::sol_types::eip712_domain! {
        name: SIGNING_DOMAIN_NAME,
        version: SIGNING_DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: market,
    }
}

/// Half the secp256k1 group order: signatures with a larger `s` are refused, as the contract
/// (OpenZeppelin `ECDSA.recover`) refuses them.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e,
    0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

// Signing and recovery go through libsecp256k1 (the `secp256k1` crate): receipts are signed
// by the client and recovered by the provider every few MiB of traffic, and it does both
// several times faster than the pure-Rust path (`make bench-meter`, group `receipt`).

fn sign<T: SolStruct>(key: &PrivateKeySigner, domain: &Eip712Domain, msg: &T) -> Result<Bytes, SignatureError> {
    let hash = msg.eip712_signing_hash(domain);
    let sk = secp256k1::SecretKey::from_byte_array(key.to_bytes().0).map_err(|_| SignatureError::Signing)?;
    let sig = secp256k1::SECP256K1.sign_ecdsa_recoverable(secp256k1::Message::from_digest(hash.0), &sk);
    let (id, rs) = sig.serialize_compact();
    let mut out = Vec::with_capacity(65);
    out.extend_from_slice(&rs);
    // libsecp256k1 always produces low-s signatures; v is 27 or 28 as `ecrecover` wants.
    out.push(27 + u8::try_from(i32::from(id)).map_err(|_| SignatureError::Signing)?);
    Ok(Bytes::from(out))
}

/// Signs a 32-byte digest with `key`: the compact `r || s` (low `s`) and the recovery bit.
/// For protocol messages that are not EIP-712 structs (a ClientHello's authentication).
///
/// # Errors
/// The key is not a valid secp256k1 secret.
pub fn sign_digest(key: &PrivateKeySigner, digest: B256) -> Result<([u8; 64], bool), SignatureError> {
    let sk = secp256k1::SecretKey::from_byte_array(key.to_bytes().0).map_err(|_| SignatureError::Signing)?;
    let sig = secp256k1::SECP256K1.sign_ecdsa_recoverable(secp256k1::Message::from_digest(digest.0), &sk);
    let (id, rs) = sig.serialize_compact();
    Ok((rs, i32::from(id) == 1))
}

/// The address that signed `digest` with the compact `r || s` and recovery bit `odd`.
///
/// # Errors
/// The signature is malformed or recovers no key.
pub fn recover_digest(digest: B256, rs: &[u8; 64], odd: bool) -> Result<Address, SignatureError> {
    let id = secp256k1::ecdsa::RecoveryId::try_from(i32::from(odd)).map_err(|_| SignatureError::Unrecoverable)?;
    let sig =
        secp256k1::ecdsa::RecoverableSignature::from_compact(rs, id).map_err(|_| SignatureError::Unrecoverable)?;
    let pk = secp256k1::SECP256K1
        .recover_ecdsa(secp256k1::Message::from_digest(digest.0), &sig)
        .map_err(|_| SignatureError::Unrecoverable)?;
    Ok(Address::from_slice(&alloy::primitives::keccak256(&pk.serialize_uncompressed()[1..])[12..]))
}

fn recover<T: SolStruct>(domain: &Eip712Domain, msg: &T, signature: &[u8]) -> Result<Address, SignatureError> {
    if signature.len() != 65 {
        return Err(SignatureError::Malformed(signature.len()));
    }
    if signature[32..64] > HALF_ORDER[..] {
        return Err(SignatureError::Unrecoverable);
    }
    let v = match signature[64] {
        27 | 28 => signature[64] - 27,
        0 | 1 => signature[64],
        _ => return Err(SignatureError::Unrecoverable),
    };
    let id = secp256k1::ecdsa::RecoveryId::try_from(i32::from(v)).map_err(|_| SignatureError::Unrecoverable)?;
    let sig = secp256k1::ecdsa::RecoverableSignature::from_compact(&signature[..64], id)
        .map_err(|_| SignatureError::Unrecoverable)?;
    let hash: B256 = msg.eip712_signing_hash(domain);
    let pk = secp256k1::SECP256K1
        .recover_ecdsa(secp256k1::Message::from_digest(hash.0), &sig)
        .map_err(|_| SignatureError::Unrecoverable)?;
    let uncompressed = pk.serialize_uncompressed();
    Ok(Address::from_slice(&alloy::primitives::keccak256(&uncompressed[1..])[12..]))
}

fn expect(expected: Address, actual: Address) -> Result<(), SignatureError> {
    if expected == actual {
        Ok(())
    } else {
        Err(SignatureError::WrongSigner { expected, actual })
    }
}

/// Signs a receipt with the session key; 65 bytes `r || s || v` as the contract expects.
pub fn sign_receipt(key: &PrivateKeySigner, domain: &Eip712Domain, receipt: &Receipt) -> Result<Bytes, SignatureError> {
    sign(key, domain, receipt)
}

/// Checks that `signature` over `receipt` was made by `session_key`.
pub fn recover_receipt(
    domain: &Eip712Domain,
    receipt: &Receipt,
    signature: &[u8],
    session_key: Address,
) -> Result<(), SignatureError> {
    expect(session_key, recover(domain, receipt, signature)?)
}

pub fn sign_observations(
    key: &PrivateKeySigner,
    domain: &Eip712Domain,
    obs: &Observations,
) -> Result<Bytes, SignatureError> {
    sign(key, domain, obs)
}

/// Recovers the oracle that signed `obs` (the caller checks it is a registered oracle).
pub fn recover_observations(
    domain: &Eip712Domain,
    obs: &Observations,
    signature: &[u8],
) -> Result<Address, SignatureError> {
    recover(domain, obs, signature)
}

pub fn sign_report(key: &PrivateKeySigner, domain: &Eip712Domain, report: &Report) -> Result<Bytes, SignatureError> {
    sign(key, domain, report)
}

/// Recovers the oracle that signed `report` (the caller checks it is eligible).
pub fn recover_report(domain: &Eip712Domain, report: &Report, signature: &[u8]) -> Result<Address, SignatureError> {
    recover(domain, report, signature)
}

pub fn sign_session_auth(
    key: &PrivateKeySigner,
    domain: &Eip712Domain,
    auth: &SessionAuth,
) -> Result<Bytes, SignatureError> {
    sign(key, domain, auth)
}

pub fn recover_session_auth(
    domain: &Eip712Domain,
    auth: &SessionAuth,
    signature: &[u8],
    session_key: Address,
) -> Result<(), SignatureError> {
    expect(session_key, recover(domain, auth, signature)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256};
    use proptest::prelude::*;

    fn key(seed: u8) -> PrivateKeySigner {
        // keccak of a byte is a valid secp256k1 scalar (below the curve order) with overwhelming odds
        PrivateKeySigner::from_bytes(&alloy::primitives::keccak256([seed])).expect("valid key")
    }

    fn market() -> Address {
        address!("e7f1725E7734CE288F8367e1Bb143E90bb3F0512")
    }

    #[test]
    fn typehashes_match_the_contract() {
        // keccak256("Receipt(bytes32 sessionId,uint64 cumulativeBytes,uint64 timestamp)")
        assert_eq!(
            Receipt::eip712_type_hash(&Receipt { sessionId: B256::ZERO, cumulativeBytes: 0, timestamp: 0 }),
            alloy::primitives::keccak256("Receipt(bytes32 sessionId,uint64 cumulativeBytes,uint64 timestamp)")
        );
        let o = Observations { epoch: 0, providers: Bytes::new(), measurements: Bytes::new() };
        assert_eq!(
            o.eip712_type_hash(),
            alloy::primitives::keccak256("Observations(uint64 epoch,bytes providers,bytes measurements)")
        );
        let r = Report { epoch: 0, root: B256::ZERO, available: 0, violations: Bytes::new(), seedCommit: B256::ZERO };
        assert_eq!(
            r.eip712_type_hash(),
            alloy::primitives::keccak256(
                "Report(uint64 epoch,bytes32 root,uint32 available,bytes violations,bytes32 seedCommit)"
            )
        );
    }

    #[test]
    fn libsecp256k1_signs_exactly_what_alloys_signer_signs_and_refuses_high_s() {
        use alloy::signers::SignerSync;
        let dom = domain(31337, market());
        for seed in 0..16u8 {
            let k = key(seed);
            let r =
                Receipt { sessionId: B256::repeat_byte(seed), cumulativeBytes: u64::from(seed) << 20, timestamp: 7 };
            let ours = sign_receipt(&k, &dom, &r).expect("sign");
            // RFC 6979 nonces and low s on both sides: the same 65 bytes.
            let theirs = k.sign_hash_sync(&r.eip712_signing_hash(&dom)).expect("alloy sign");
            assert_eq!(ours.as_ref(), theirs.as_bytes().as_slice(), "seed {seed}");
            assert_eq!(recover_receipt(&dom, &r, &ours, k.address()), Ok(()));
            // v as 0/1 is accepted too; the mirrored high-s signature is refused, as on chain.
            let mut v01 = ours.to_vec();
            v01[64] -= 27;
            assert_eq!(recover_receipt(&dom, &r, &v01, k.address()), Ok(()));
            let n = alloy::primitives::U256::from_be_slice(&[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba,
                0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
            ]);
            let s_low = alloy::primitives::U256::from_be_slice(&ours[32..64]);
            let mut high = ours.to_vec();
            high[32..64].copy_from_slice(&(n - s_low).to_be_bytes::<32>());
            high[64] = if ours[64] == 27 { 28 } else { 27 };
            assert_eq!(recover_receipt(&dom, &r, &high, k.address()), Err(SignatureError::Unrecoverable));
        }
    }

    #[test]
    fn signature_of_wrong_length_is_malformed() {
        let d = domain(1, market());
        let r = Receipt {
            sessionId: b256!("0101010101010101010101010101010101010101010101010101010101010101"),
            cumulativeBytes: 1,
            timestamp: 1,
        };
        assert_eq!(recover_receipt(&d, &r, &[0u8; 64], Address::ZERO), Err(SignatureError::Malformed(64)));
    }

    proptest! {
        #[test]
        fn receipt_verifies_only_for_its_key_session_chain_and_market(
            k1 in 1u8..=255, k2 in 1u8..=255, sid in any::<[u8; 32]>(), other_sid in any::<[u8; 32]>(),
            bytes in any::<u64>(), ts in any::<u64>(), chain in 1u64..1_000_000, other_chain in 1u64..1_000_000,
            other_market in any::<[u8; 20]>(),
        ) {
            let signer = key(k1);
            let d = domain(chain, market());
            let r = Receipt { sessionId: B256::from(sid), cumulativeBytes: bytes, timestamp: ts };
            let sig = sign_receipt(&signer, &d, &r).expect("sign");
            prop_assert!(recover_receipt(&d, &r, &sig, signer.address()).is_ok());
            if k1 != k2 {
                prop_assert!(recover_receipt(&d, &r, &sig, key(k2).address()).is_err());
            }
            if sid != other_sid {
                let r2 = Receipt { sessionId: B256::from(other_sid), ..r.clone() };
                prop_assert!(recover_receipt(&d, &r2, &sig, signer.address()).is_err());
            }
            if chain != other_chain {
                prop_assert!(recover_receipt(&domain(other_chain, market()), &r, &sig, signer.address()).is_err());
            }
            let m2 = Address::from(other_market);
            if m2 != market() {
                prop_assert!(recover_receipt(&domain(chain, m2), &r, &sig, signer.address()).is_err());
            }
            let r3 = Receipt { cumulativeBytes: bytes.wrapping_add(1), ..r.clone() };
            prop_assert!(recover_receipt(&d, &r3, &sig, signer.address()).is_err());
        }

        #[test]
        fn random_signature_bytes_never_panic(sig in proptest::collection::vec(any::<u8>(), 0..100)) {
            let d = domain(1, market());
            let r = Receipt { sessionId: B256::ZERO, cumulativeBytes: 1, timestamp: 1 };
            let _ = recover_receipt(&d, &r, &sig, Address::ZERO);
        }
    }
}
