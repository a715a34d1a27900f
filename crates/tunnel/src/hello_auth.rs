//! A customer proves itself inside its ClientHello, so a provider with a cover site can tell
//! it from a prober before answering anything (sans-IO; the rustls hooks that put it on the
//! wire are in `transport`).
//!
//! The proof is a signature by the session key over: the provider's tunnel key, the minute,
//! the server name, and the client's first key share. It travels in the two fields a
//! ClientHello fills with randomness: `random` carries `r`, `legacy_session_id` carries `s`
//! masked with `keccak(r)` (a bare low-`s` always has its top bit clear, which a random field
//! never does). A prober cannot make one without a session key of an open session, cannot
//! reuse one (the provider keeps the `r`s it saw), and cannot swap the key share to complete a
//! handshake of its own (the signature covers it).

use alloy::primitives::{keccak256, Address, B256};
use alloy::signers::local::PrivateKeySigner;
use wirepact_proto::SignatureError;

use crate::hello::ClientHello;

/// Minutes either side of the provider's own accepted (clock error between the two machines).
pub const MINUTE_SKEW: u64 = 1;

fn digest(tunnel_key: B256, minute: u64, server_name: &str, share: &[u8]) -> B256 {
    let mut m = Vec::with_capacity(128 + server_name.len());
    m.extend_from_slice(b"wirepact hello auth v1");
    m.extend_from_slice(tunnel_key.as_slice());
    m.extend_from_slice(&minute.to_be_bytes());
    m.extend_from_slice(keccak256(share).as_slice());
    m.extend_from_slice(server_name.as_bytes());
    keccak256(&m)
}

fn mask(r: &[u8; 32]) -> [u8; 32] {
    keccak256(r).0
}

/// What goes in the ClientHello: (`random`, `legacy_session_id`).
///
/// # Errors
/// The session key cannot sign.
pub fn sign(
    key: &PrivateKeySigner,
    tunnel_key: B256,
    unix: u64,
    server_name: &str,
    share: &[u8],
) -> Result<([u8; 32], [u8; 32]), SignatureError> {
    // The recovery bit is not sent: the provider tries both.
    let (rs, _odd) = wirepact_proto::eip712::sign_digest(key, digest(tunnel_key, unix / 60, server_name, share))?;
    let mut r = [0u8; 32];
    r.copy_from_slice(&rs[..32]);
    let m = mask(&r);
    let mut sid = [0u8; 32];
    for (i, b) in sid.iter_mut().enumerate() {
        *b = rs[32 + i] ^ m[i];
    }
    Ok((r, sid))
}

/// Why a ClientHello is not a customer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloAuthError {
    #[error("the hello carries no 32-byte session id")]
    NoSessionId,
    #[error("the hello carries no key share")]
    NoKeyShare,
    #[error("no open session's key signed this hello")]
    NotACustomer,
    #[error("this hello was seen before")]
    Replay,
}

/// The provider's check of ClientHellos: the signature and a memory of recent `r`s.
#[derive(Debug)]
pub struct HelloGate {
    tunnel_key: B256,
    /// The `r`s let in, kept while their minute passes the clock check.
    seen: crate::replay::Replays<[u8; 32]>,
}

impl HelloGate {
    /// A gate for the provider whose tunnel key is `tunnel_key`, remembering at most
    /// `capacity` recent hellos.
    #[must_use]
    pub fn new(tunnel_key: B256, capacity: usize) -> Self {
        Self {
            tunnel_key,
            seen: crate::replay::Replays::new(capacity, 2 * MINUTE_SKEW, crate::replay::WhenFull::EvictOldest),
        }
    }

    /// Whose session key signed `hello` at `unix` (within [`MINUTE_SKEW`]), if any key that
    /// `is_session_key` knows did; a hello accepted once is refused after.
    ///
    /// # Errors
    /// Why it is not a customer's hello.
    pub fn check(
        &mut self,
        hello: &ClientHello,
        unix: u64,
        is_session_key: &dyn Fn(&Address) -> bool,
    ) -> Result<Address, HelloAuthError> {
        let sid: [u8; 32] = hello.session_id.as_slice().try_into().map_err(|_| HelloAuthError::NoSessionId)?;
        // The first real share (a browser-shaped hello leads with a GREASE one).
        let share = hello
            .key_shares()
            .into_iter()
            .find(|(g, _)| !crate::hello::is_grease(*g))
            .ok_or(HelloAuthError::NoKeyShare)?
            .1;
        let name = hello.server_name().unwrap_or_default();
        let r = hello.random;
        let m = mask(&r);
        let minute = unix / 60;
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&r);
        for i in 0..32 {
            rs[32 + i] = sid[i] ^ m[i];
        }
        let mut found = None;
        'search: for mn in minute.saturating_sub(MINUTE_SKEW)..=minute + MINUTE_SKEW {
            let d = digest(self.tunnel_key, mn, &name, &share);
            for odd in [false, true] {
                if let Ok(a) = wirepact_proto::eip712::recover_digest(d, &rs, odd) {
                    if is_session_key(&a) {
                        found = Some((a, mn));
                        break 'search;
                    }
                }
            }
        }
        let (who, mn) = found.ok_or(HelloAuthError::NotACustomer)?;
        if self.seen.contains(&r) {
            return Err(HelloAuthError::Replay);
        }
        // Evicting never refuses; only a customer's key makes entries, so none come in bulk.
        let _ = self.seen.insert(r, mn, minute);
        Ok(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    fn hello(random: [u8; 32], sid: [u8; 32], sni: &str, share: &[u8]) -> ClientHello {
        let mut ks = Vec::new();
        let entry_len = 4 + share.len();
        ks.extend_from_slice(&u16::try_from(entry_len).expect("len").to_be_bytes());
        ks.extend_from_slice(&0x11ecu16.to_be_bytes());
        ks.extend_from_slice(&u16::try_from(share.len()).expect("len").to_be_bytes());
        ks.extend_from_slice(share);
        let mut name = vec![0];
        name.extend_from_slice(&u16::try_from(sni.len()).expect("len").to_be_bytes());
        name.extend_from_slice(sni.as_bytes());
        let mut sn = u16::try_from(name.len()).expect("len").to_be_bytes().to_vec();
        sn.extend(name);
        ClientHello {
            legacy_version: 0x0303,
            random,
            session_id: sid.to_vec(),
            cipher_suites: vec![0x1301],
            compression: vec![0],
            extensions: vec![(0x0000, sn), (0x0033, ks)],
        }
    }

    /// The session key's proof passes once, from a minute either side; a replay, another
    /// provider's key, another name, another key share or a stranger's key do not.
    #[test]
    fn a_customers_proof_passes_once_and_nothing_else_does() {
        let key = PrivateKeySigner::random();
        let me = B256::repeat_byte(3);
        let share = vec![7u8; 1216];
        let known = |a: &Address| *a == key.address();
        let (r, sid) = sign(&key, me, T, "cdn.example.com", &share).expect("sign");

        let mut gate = HelloGate::new(me, 16);
        assert_eq!(gate.check(&hello(r, sid, "cdn.example.com", &share), T + 50, &known), Ok(key.address()));
        assert_eq!(
            gate.check(&hello(r, sid, "cdn.example.com", &share), T + 51, &known),
            Err(HelloAuthError::Replay),
            "the same hello twice"
        );

        let mut other = HelloGate::new(B256::repeat_byte(4), 16);
        assert_eq!(
            other.check(&hello(r, sid, "cdn.example.com", &share), T, &known),
            Err(HelloAuthError::NotACustomer),
            "made for another provider"
        );
        let mut g = HelloGate::new(me, 16);
        assert_eq!(g.check(&hello(r, sid, "other.example", &share), T, &known), Err(HelloAuthError::NotACustomer));
        let mut bent = share.clone();
        bent[100] ^= 1;
        assert_eq!(g.check(&hello(r, sid, "cdn.example.com", &bent), T, &known), Err(HelloAuthError::NotACustomer));
        assert_eq!(
            g.check(&hello(r, sid, "cdn.example.com", &share), T + 180, &known),
            Err(HelloAuthError::NotACustomer),
            "three minutes later"
        );
        assert_eq!(
            g.check(&hello(r, sid, "cdn.example.com", &share), T, &|_| false),
            Err(HelloAuthError::NotACustomer),
            "a key of no open session"
        );
        assert_eq!(
            g.check(&hello(r, sid, "cdn.example.com", &share), T - 60, &known),
            Ok(key.address()),
            "a minute behind"
        );
    }

    /// What goes on the wire looks random: over many proofs, the session id's top bit (zero in
    /// every bare low-s signature) is set about half the time.
    #[test]
    fn the_proof_fields_have_no_fixed_bits() {
        let key = PrivateKeySigner::random();
        let top_set = (0..200u64)
            .filter(|i| {
                let (_, sid) = sign(&key, B256::ZERO, T + i * 60, "x.example", &i.to_be_bytes()).expect("sign");
                sid[0] & 0x80 != 0
            })
            .count();
        assert!((60..=140).contains(&top_set), "top bit set {top_set} times of 200");
    }
}
