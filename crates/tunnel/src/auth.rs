//! Session authentication, sans-IO: the first message of a tunnel proves the client holds the
//! session key of a session opened with this provider, now (not replayed, clock in range).

use std::collections::HashMap;

use alloy::primitives::{Address, FixedBytes, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use wirepact_proto::{recover_session_auth, sign_session_auth, Frame, SessionAuth, SignatureError};

/// Where the provider learns a session's key (from the chain, cached by the caller).
pub trait SessionLookup {
    fn session_key(&self, session_id: &B256) -> Option<Address>;

    /// Whether `key` is the session key of a session this provider serves (a ClientHello's
    /// proof names the key, not the session).
    fn is_session_key(&self, _key: &Address) -> bool {
        false
    }

    /// Called with an auth's session id before `session_key`, so a lookup backed by the chain
    /// can fetch a session it has not cached yet (bounded by the first-message deadline).
    fn resolve(&self, _session_id: B256) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

impl SessionLookup for HashMap<B256, Address> {
    fn session_key(&self, session_id: &B256) -> Option<Address> {
        self.get(session_id).copied()
    }

    fn is_session_key(&self, key: &Address) -> bool {
        self.values().any(|k| k == key)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the first message is not a session auth frame")]
    NotAuth,
    #[error("the auth names another provider's tunnel key")]
    WrongTunnelKey,
    #[error("the auth timestamp is {skew} s away from this clock (allowed {max})")]
    ClockSkew { skew: u64, max: u64 },
    #[error("this auth was seen before (replay)")]
    Replay,
    #[error("no open session with this id")]
    UnknownSession,
    #[error("the auth is not signed by the session key: {0}")]
    BadSignature(SignatureError),
    #[error("too many recent authentications to remember; try again shortly")]
    Busy,
}

/// Checks session auth frames; remembers recent nonces (bounded) to refuse replays.
#[derive(Debug)]
pub struct AuthChecker {
    domain: Eip712Domain,
    tunnel_key: B256,
    max_skew: u64,
    /// (session, nonce) of auths let in, forgotten once outside the skew window; full of fresh
    /// ones, it refuses new auths rather than forget one whose replay would still pass.
    seen: crate::replay::Replays<(B256, FixedBytes<16>)>,
}

impl AuthChecker {
    /// `max_skew` seconds of clock difference accepted; at most `capacity` auths remembered.
    #[must_use]
    pub fn new(domain: Eip712Domain, tunnel_key: B256, max_skew: u64, capacity: usize) -> Self {
        Self {
            domain,
            tunnel_key,
            max_skew,
            seen: crate::replay::Replays::new(capacity, max_skew, crate::replay::WhenFull::Refuse),
        }
    }

    /// Checks `frame` at time `now` (unix seconds). On success returns the session id.
    ///
    /// # Errors
    /// Any [`AuthError`]; the caller serves the decoy site and closes.
    pub fn check(
        &mut self,
        frame: &Frame,
        now: u64,
        lookup: &(impl SessionLookup + ?Sized),
    ) -> Result<B256, AuthError> {
        let Frame::SessionAuth { session_id, tunnel_key, timestamp, nonce, signature } = frame else {
            return Err(AuthError::NotAuth);
        };
        if *tunnel_key != self.tunnel_key {
            return Err(AuthError::WrongTunnelKey);
        }
        let skew = now.abs_diff(*timestamp);
        if skew > self.max_skew {
            return Err(AuthError::ClockSkew { skew, max: self.max_skew });
        }
        let key = (*session_id, *nonce);
        if self.seen.contains(&key) {
            return Err(AuthError::Replay);
        }
        let session_key = lookup.session_key(session_id).ok_or(AuthError::UnknownSession)?;
        let msg = SessionAuth { sessionId: *session_id, tunnelKey: *tunnel_key, timestamp: *timestamp, nonce: *nonce };
        recover_session_auth(&self.domain, &msg, signature, session_key).map_err(AuthError::BadSignature)?;
        self.seen.insert(key, *timestamp, now).map_err(|_| AuthError::Busy)?;
        Ok(*session_id)
    }
}

/// The client's first message: a `SessionAuth` signed with the session key.
///
/// # Errors
/// If the key cannot sign.
pub fn session_auth_frame(
    session_key: &PrivateKeySigner,
    domain: &Eip712Domain,
    session_id: B256,
    tunnel_key: B256,
    now: u64,
    nonce: [u8; 16],
) -> Result<Frame, SignatureError> {
    let nonce = FixedBytes::from(nonce);
    let msg = SessionAuth { sessionId: session_id, tunnelKey: tunnel_key, timestamp: now, nonce };
    let sig = sign_session_auth(session_key, domain, &msg)?;
    let mut signature = [0u8; 65];
    signature.copy_from_slice(&sig);
    Ok(Frame::SessionAuth { session_id, tunnel_key, timestamp: now, nonce, signature })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;
    use wirepact_proto::domain;

    fn setup() -> (AuthChecker, HashMap<B256, Address>, PrivateKeySigner, Eip712Domain) {
        let d = domain(31337, Address::repeat_byte(1));
        let key = PrivateKeySigner::random();
        let mut sessions = HashMap::new();
        sessions.insert(B256::repeat_byte(5), key.address());
        (AuthChecker::new(d.clone(), B256::repeat_byte(9), 60, 3), sessions, key, d)
    }

    #[test]
    fn accepts_once_then_refuses_replay() {
        let (mut c, s, key, d) = setup();
        let f = session_auth_frame(&key, &d, B256::repeat_byte(5), B256::repeat_byte(9), 1000, [1; 16]).expect("sign");
        assert_eq!(c.check(&f, 1010, &s), Ok(B256::repeat_byte(5)));
        assert_eq!(c.check(&f, 1011, &s), Err(AuthError::Replay));
    }

    #[test]
    fn refuses_skew_foreign_key_unknown_session_and_bad_signature() {
        let (mut c, s, key, d) = setup();
        let f = session_auth_frame(&key, &d, B256::repeat_byte(5), B256::repeat_byte(9), 1000, [1; 16]).expect("sign");
        assert_eq!(c.check(&f, 1061, &s), Err(AuthError::ClockSkew { skew: 61, max: 60 }));
        let f = session_auth_frame(&key, &d, B256::repeat_byte(5), B256::repeat_byte(8), 1000, [2; 16]).expect("sign");
        assert_eq!(c.check(&f, 1000, &s), Err(AuthError::WrongTunnelKey));
        let f = session_auth_frame(&key, &d, B256::repeat_byte(6), B256::repeat_byte(9), 1000, [3; 16]).expect("sign");
        assert_eq!(c.check(&f, 1000, &s), Err(AuthError::UnknownSession));
        let other = PrivateKeySigner::random();
        let f =
            session_auth_frame(&other, &d, B256::repeat_byte(5), B256::repeat_byte(9), 1000, [4; 16]).expect("sign");
        assert!(matches!(c.check(&f, 1000, &s), Err(AuthError::BadSignature(_))));
        assert_eq!(c.check(&Frame::AuthOk { credit_until: 1 }, 1000, &s), Err(AuthError::NotAuth));
    }

    #[test]
    fn memory_is_bounded_and_old_nonces_are_forgotten() {
        let (mut c, s, key, d) = setup();
        for n in 0..3u8 {
            let f =
                session_auth_frame(&key, &d, B256::repeat_byte(5), B256::repeat_byte(9), 1000, [n; 16]).expect("sign");
            assert!(c.check(&f, 1000, &s).is_ok());
        }
        let f = session_auth_frame(&key, &d, B256::repeat_byte(5), B256::repeat_byte(9), 1000, [9; 16]).expect("sign");
        assert_eq!(c.check(&f, 1000, &s), Err(AuthError::Busy));
        // a minute later the old ones fall out of the window and make room
        let f = session_auth_frame(&key, &d, B256::repeat_byte(5), B256::repeat_byte(9), 1100, [9; 16]).expect("sign");
        assert!(c.check(&f, 1100, &s).is_ok());
    }
}
