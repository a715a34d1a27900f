//! Control-channel frames of the tunnel.
//!
//! Wire format: `version: u8 | kind: u8 | len: u16 BE | payload[len]`, `len <= MAX_FRAME_LEN`.
//! Every field has a fixed size except the error message (UTF-8, at most 256 bytes). A frame
//! of another version, an unknown kind, a wrong payload length or trailing bytes is refused
//! with a typed error; nothing here allocates more than `MAX_FRAME_LEN`.

use alloy::primitives::{FixedBytes, B256};

pub const PROTOCOL_VERSION: u8 = 1;
/// Largest payload of a control frame.
pub const MAX_FRAME_LEN: usize = 1024;
/// Largest error message.
pub const MAX_ERROR_MESSAGE: usize = 256;
const HEADER: usize = 4;
const SIG: usize = 65;

/// A control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client -> provider, first message: an EIP-712 `SessionAuth` and its signature.
    SessionAuth { session_id: B256, tunnel_key: B256, timestamp: u64, nonce: FixedBytes<16>, signature: [u8; SIG] },
    /// Provider -> client: the session is accepted; forwarding may start up to `credit_until`.
    AuthOk { credit_until: u64 },
    /// Provider -> client: forwarding is allowed up to `credit_until` cumulative bytes.
    CreditGrant { credit_until: u64 },
    /// Client -> provider: a signed EIP-712 `Receipt` for the session.
    Receipt { cumulative_bytes: u64, timestamp: u64, signature: [u8; SIG] },
    /// Provider -> client: the receipt is persisted.
    ReceiptAck { cumulative_bytes: u64 },
    /// Either side: a refusal or failure; `code` is one of the `ERR_*` constants.
    Error { code: u16, message: String },
    /// Client -> provider on the control stream: answer with a `Pong` of the same nonce (the
    /// client times the round trip to watch its SLA).
    Ping { nonce: u64 },
    /// Provider -> client: the answer to a `Ping`.
    Pong { nonce: u64 },
    /// Either side: `len` bytes that mean nothing, so control messages do not have the fixed
    /// sizes an observer of record lengths could pick out. Ignored on receipt.
    Padding { len: u16 },
}

pub const ERR_BAD_AUTH: u16 = 1;
pub const ERR_UNKNOWN_SESSION: u16 = 2;
pub const ERR_REPLAY: u16 = 3;
pub const ERR_CLOCK_SKEW: u16 = 4;
pub const ERR_BAD_RECEIPT: u16 = 5;
pub const ERR_CREDIT_EXHAUSTED: u16 = 6;
pub const ERR_INTERNAL: u16 = 7;

const KIND_SESSION_AUTH: u8 = 1;
const KIND_AUTH_OK: u8 = 2;
const KIND_CREDIT_GRANT: u8 = 3;
const KIND_RECEIPT: u8 = 4;
const KIND_RECEIPT_ACK: u8 = 5;
const KIND_ERROR: u8 = 6;
const KIND_PING: u8 = 7;
const KIND_PONG: u8 = 8;
const KIND_PADDING: u8 = 9;

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("need {needed} more bytes")]
    Incomplete { needed: usize },
    #[error("protocol version {0} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLong(usize),
    #[error("frame kind {kind} needs a payload of {expected} bytes, got {actual}")]
    BadLength { kind: u8, expected: usize, actual: usize },
    #[error("error message is not UTF-8 or longer than {MAX_ERROR_MESSAGE} bytes")]
    BadMessage,
    /// Padding is zeros: anything else is not a frame this side writes (one encoding per frame).
    #[error("padding that is not zeros")]
    BadPadding,
}

fn truncate_message(message: &str) -> &str {
    let mut end = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn sig_at(b: &[u8], at: usize) -> [u8; SIG] {
    let mut s = [0u8; SIG];
    s.copy_from_slice(&b[at..at + SIG]);
    s
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::SessionAuth { .. } => KIND_SESSION_AUTH,
            Frame::AuthOk { .. } => KIND_AUTH_OK,
            Frame::CreditGrant { .. } => KIND_CREDIT_GRANT,
            Frame::Receipt { .. } => KIND_RECEIPT,
            Frame::ReceiptAck { .. } => KIND_RECEIPT_ACK,
            Frame::Error { .. } => KIND_ERROR,
            Frame::Ping { .. } => KIND_PING,
            Frame::Pong { .. } => KIND_PONG,
            Frame::Padding { .. } => KIND_PADDING,
        }
    }

    /// Appends the encoded frame to `out`. An error message longer than `MAX_ERROR_MESSAGE` is
    /// cut at a character boundary (as `Frame::error` does), so every frame encodes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut p = Vec::with_capacity(160);
        match self {
            Frame::SessionAuth { session_id, tunnel_key, timestamp, nonce, signature } => {
                p.extend_from_slice(session_id.as_slice());
                p.extend_from_slice(tunnel_key.as_slice());
                p.extend_from_slice(&timestamp.to_be_bytes());
                p.extend_from_slice(nonce.as_slice());
                p.extend_from_slice(signature);
            }
            Frame::AuthOk { credit_until } | Frame::CreditGrant { credit_until } => {
                p.extend_from_slice(&credit_until.to_be_bytes());
            }
            Frame::Receipt { cumulative_bytes, timestamp, signature } => {
                p.extend_from_slice(&cumulative_bytes.to_be_bytes());
                p.extend_from_slice(&timestamp.to_be_bytes());
                p.extend_from_slice(signature);
            }
            Frame::ReceiptAck { cumulative_bytes } => p.extend_from_slice(&cumulative_bytes.to_be_bytes()),
            Frame::Ping { nonce } | Frame::Pong { nonce } => p.extend_from_slice(&nonce.to_be_bytes()),
            Frame::Error { code, message } => {
                p.extend_from_slice(&code.to_be_bytes());
                p.extend_from_slice(truncate_message(message).as_bytes());
            }
            // Zeros (encrypted by the transport like everything else), at most the frame limit.
            Frame::Padding { len } => p.resize(usize::from(*len).min(MAX_FRAME_LEN), 0),
        }
        // Payloads are at most 32+32+8+16+65 or 2+256 bytes: the length fits u16.
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        out.push(PROTOCOL_VERSION);
        out.push(self.kind());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&p);
    }

    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// An error frame, truncating the message to the limit on a character boundary.
    #[must_use]
    pub fn error(code: u16, message: &str) -> Self {
        Frame::Error { code, message: truncate_message(message).to_owned() }
    }

    /// Decodes one frame from the front of `buf`; returns it and the bytes consumed.
    ///
    /// # Errors
    /// `Incomplete` when more bytes are needed; any other error means the peer is broken or
    /// hostile and the connection should be dropped.
    pub fn decode(buf: &[u8]) -> Result<(Frame, usize), FrameError> {
        if buf.len() < HEADER {
            return Err(FrameError::Incomplete { needed: HEADER - buf.len() });
        }
        if buf[0] != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion(buf[0]));
        }
        let kind = buf[1];
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong(len));
        }
        let expected = match kind {
            KIND_SESSION_AUTH => Some(32 + 32 + 8 + 16 + SIG),
            KIND_AUTH_OK | KIND_CREDIT_GRANT | KIND_RECEIPT_ACK | KIND_PING | KIND_PONG => Some(8),
            KIND_RECEIPT => Some(8 + 8 + SIG),
            KIND_ERROR | KIND_PADDING => None,
            other => return Err(FrameError::UnknownKind(other)),
        };
        if let Some(e) = expected {
            if len != e {
                return Err(FrameError::BadLength { kind, expected: e, actual: len });
            }
        }
        if buf.len() < HEADER + len {
            return Err(FrameError::Incomplete { needed: HEADER + len - buf.len() });
        }
        let p = &buf[HEADER..HEADER + len];
        let frame = match kind {
            KIND_SESSION_AUTH => Frame::SessionAuth {
                session_id: B256::from_slice(&p[0..32]),
                tunnel_key: B256::from_slice(&p[32..64]),
                timestamp: u64_at(p, 64),
                nonce: FixedBytes::<16>::from_slice(&p[72..88]),
                signature: sig_at(p, 88),
            },
            KIND_AUTH_OK => Frame::AuthOk { credit_until: u64_at(p, 0) },
            KIND_CREDIT_GRANT => Frame::CreditGrant { credit_until: u64_at(p, 0) },
            KIND_RECEIPT => {
                Frame::Receipt { cumulative_bytes: u64_at(p, 0), timestamp: u64_at(p, 8), signature: sig_at(p, 16) }
            }
            KIND_RECEIPT_ACK => Frame::ReceiptAck { cumulative_bytes: u64_at(p, 0) },
            KIND_PING => Frame::Ping { nonce: u64_at(p, 0) },
            KIND_PONG => Frame::Pong { nonce: u64_at(p, 0) },
            // `len <= MAX_FRAME_LEN` was checked above.
            KIND_PADDING => {
                if p.iter().any(|b| *b != 0) {
                    return Err(FrameError::BadPadding);
                }
                Frame::Padding { len: u16::try_from(len).unwrap_or(u16::MAX) }
            }
            _ => {
                if len < 2 || len - 2 > MAX_ERROR_MESSAGE {
                    return Err(FrameError::BadMessage);
                }
                let message = std::str::from_utf8(&p[2..]).map_err(|_| FrameError::BadMessage)?.to_owned();
                Frame::Error { code: u16::from_be_bytes([p[0], p[1]]), message }
            }
        };
        Ok((frame, HEADER + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_sig() -> impl Strategy<Value = [u8; SIG]> {
        proptest::collection::vec(any::<u8>(), SIG).prop_map(|v| {
            let mut s = [0u8; SIG];
            s.copy_from_slice(&v);
            s
        })
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), any::<[u8; 16]>(), arb_sig()).prop_map(
                |(s, k, t, n, sig)| {
                    Frame::SessionAuth {
                        session_id: B256::from(s),
                        tunnel_key: B256::from(k),
                        timestamp: t,
                        nonce: FixedBytes::from(n),
                        signature: sig,
                    }
                }
            ),
            any::<u64>().prop_map(|c| Frame::AuthOk { credit_until: c }),
            any::<u64>().prop_map(|c| Frame::CreditGrant { credit_until: c }),
            (any::<u64>(), any::<u64>(), arb_sig()).prop_map(|(b, t, s)| Frame::Receipt {
                cumulative_bytes: b,
                timestamp: t,
                signature: s
            }),
            any::<u64>().prop_map(|c| Frame::ReceiptAck { cumulative_bytes: c }),
            any::<u64>().prop_map(|n| Frame::Ping { nonce: n }),
            any::<u64>().prop_map(|n| Frame::Pong { nonce: n }),
            (0u16..=1024).prop_map(|len| Frame::Padding { len }),
            (any::<u16>(), "\\PC{0,64}").prop_map(|(c, m)| Frame::error(c, &m)),
        ]
    }

    /// Found by `fuzz/run.sh` (frame_decode): padding with a non-zero byte decoded, and
    /// re-encoded as zeros, so a frame had two encodings. Now it is refused.
    #[test]
    fn padding_that_is_not_zeros_is_refused() {
        assert_eq!(Frame::decode(&[1, 9, 0, 1, 9, 1]), Err(FrameError::BadPadding));
        assert_eq!(Frame::decode(&[1, 9, 0, 2, 0, 0, 7]), Ok((Frame::Padding { len: 2 }, 6)));
    }

    proptest! {
        #[test]
        fn every_frame_round_trips(f in arb_frame(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut b = f.to_bytes();
            let n = b.len();
            b.extend_from_slice(&tail);
            let (g, used) = Frame::decode(&b).expect("decode");
            prop_assert_eq!(g, f);
            prop_assert_eq!(used, n);
        }

        #[test]
        fn every_prefix_is_incomplete(f in arb_frame()) {
            let b = f.to_bytes();
            for cut in 0..b.len() {
                let r = Frame::decode(&b[..cut]);
                prop_assert!(matches!(r, Err(FrameError::Incomplete { .. }) | Err(FrameError::BadLength { .. })) , "{:?}", r);
            }
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = Frame::decode(&b);
        }
    }

    #[test]
    fn refuses_other_versions_kinds_and_lengths() {
        let mut b = Frame::AuthOk { credit_until: 5 }.to_bytes();
        b[0] = 2;
        assert_eq!(Frame::decode(&b), Err(FrameError::UnsupportedVersion(2)));
        let mut b = Frame::AuthOk { credit_until: 5 }.to_bytes();
        b[1] = 99;
        assert_eq!(Frame::decode(&b), Err(FrameError::UnknownKind(99)));
        assert_eq!(Frame::decode(&[1, 2, 0, 9]), Err(FrameError::BadLength { kind: 2, expected: 8, actual: 9 }));
        assert_eq!(Frame::decode(&[1, 6, 0xff, 0xff]), Err(FrameError::TooLong(65535)));
        assert_eq!(Frame::decode(&[1, 6, 0, 3, 0, 1, 0xff]), Err(FrameError::BadMessage));
        let long = "é".repeat(200);
        let Frame::Error { message, .. } = Frame::error(1, &long) else { panic!("error frame") };
        assert!(message.len() <= MAX_ERROR_MESSAGE);
        // A hand-built over-long error still encodes (truncated), never to empty bytes.
        let raw = Frame::Error { code: 9, message: long.clone() }.to_bytes();
        assert_eq!(Frame::decode(&raw).map(|(f, _)| f), Ok(Frame::error(9, &long)));
    }
}
