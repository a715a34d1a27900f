//! Veil: the random-looking transport, for networks that throttle or block TLS to unknown
//! hosts. Every byte on the wire is indistinguishable from random except a printable prefix
//! that puts the first packet under the published exemptions of the Great Firewall's
//! fully-encrypted-traffic rule (Wu et al., USENIX Security 2023; see [`gfw_exempt`]).
//!
//! **Handshake.** The provider has a static X25519 key, advertised in its registered endpoint
//! (`host:port veil:PORT:HEX`, see [`VeilAddr`]). The client's first flight:
//!
//! ```text
//! prefix (21..=40 printable bytes, length fixed per provider)
//! repr_c (32): the client's ephemeral X25519 key as an Elligator2 representative
//! AEAD_k1c[minute(8) | proof(65) | ML-KEM-768 encapsulation key(1184) | padlen(2)] + tag(16)
//! padding (padlen random bytes)
//! ```
//!
//! `k1` comes from X25519(ephemeral, provider static): only the provider reads the body. The
//! proof is the session key's signature over the provider's key, the minute and `repr_c`, so
//! only a customer with a session of this provider gets an answer; the provider remembers
//! `repr_c`s, so a replay gets none either. Everyone else — a prober with the provider's
//! advertised key, a replay, garbage — is read and never answered, and the connection is closed
//! at the same moment whatever it sent ([`VeilServer::with_drain`]). The answer:
//!
//! ```text
//! repr_s (32) | AEAD_k1s[ML-KEM ciphertext(1088) | padlen(2)] + tag(16) | padding
//! ```
//!
//! The data keys mix the static DH, an ephemeral-ephemeral DH and the ML-KEM-768 secret over
//! the transcript: forward secret and post-quantum like the TLS transport.
//!
//! **Records.** `len(2, masked) | AES-256-GCM(payload) | tag(16)`, at most 16 KiB of payload;
//! the length is masked by a per-record AES mask (as QUIC protects its headers), so no field
//! is readable on the wire.

use std::io;
use std::time::Duration;

use alloy::primitives::{keccak256, Address, B256};
use alloy::signers::local::PrivateKeySigner;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, AES_256_GCM};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use curve25519_elligator2::{MapToPointVariant, MontgomeryPoint, Randomized};
use rand::{Rng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wirepact_proto::Frame;

use crate::record::{Dir, RecordStream};

/// The handshake's AEAD (the records' own, AES-256-GCM).
fn aead256(key: &[u8]) -> Result<LessSafeKey, TransportError> {
    crate::record::aead(&AES_256_GCM, key)
}
use crate::transport::{
    AcceptContext, Accepted, Acceptor, BoxIo, ClientTunnel, Dialing, Reach, Transport, TransportError,
};

/// Shortest printable prefix (more than 20 contiguous printable bytes is one exemption, the
/// first six printable another).
pub const PREFIX_MIN: usize = 21;
/// Prefix lengths span `PREFIX_MIN..PREFIX_MIN + PREFIX_SPAN`, chosen by the provider's key.
pub const PREFIX_SPAN: usize = 20;
const ML_KEM_EK: usize = 1184;
const ML_KEM_CT: usize = 1088;
const TAG: usize = 16;
const BODY1: usize = 8 + 65 + ML_KEM_EK + 2;
const BODY2: usize = ML_KEM_CT + 2;
/// Most random padding after either flight.
pub const PAD_MAX: usize = 512;
/// How long the provider waits for a proof's signer to become a known customer (its session
/// opened a moment ago) before it gives up on the connection.
pub const CUSTOMER_CATCH_UP: Duration = Duration::from_secs(6);
/// Minutes either side of the provider's clock a proof is accepted.
pub const MINUTE_SKEW: u64 = 1;
/// How long the provider keeps reading a connection that is not a customer's before closing
/// it, unless configured ([`VeilServer::with_drain`]): between 30 and 90 s, fixed per key.
fn default_drain(secret: &[u8; 32]) -> Duration {
    Duration::from_secs(30 + u64::from(keccak256(secret).0[0]) % 61)
}

/// The provider's static key.
#[derive(Clone)]
pub struct VeilKey {
    secret: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for VeilKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VeilKey").field("public", &alloy::hex::encode(self.public)).finish_non_exhaustive()
    }
}

impl VeilKey {
    /// A fresh key.
    #[must_use]
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Self::from_secret(secret)
    }

    fn from_secret(secret: [u8; 32]) -> Self {
        Self { secret, public: MontgomeryPoint::mul_base_clamped(secret).to_bytes() }
    }

    /// What clients need: the public key.
    #[must_use]
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The key in `dir/veil.key` (hex), created there (mode 0600) if missing.
    ///
    /// # Errors
    /// The file cannot be read or written, or does not hold 32 hex bytes.
    pub fn load_or_create(dir: &std::path::Path) -> Result<Self, TransportError> {
        let path = dir.join("veil.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = alloy::hex::decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                    TransportError::IdentityFile {
                        what: "malformed veil key (want 32 hex bytes) in",
                        path: path.clone(),
                        source: io::Error::from(io::ErrorKind::InvalidData),
                    }
                })?;
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&bytes);
                Ok(Self::from_secret(secret))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate();
                crate::transport::write_private(&path, alloy::hex::encode(key.secret).as_bytes())
                    .map_err(|source| TransportError::IdentityFile { what: "cannot write", path, source })?;
                Ok(key)
            }
            Err(source) => Err(TransportError::IdentityFile { what: "cannot read", path, source }),
        }
    }
}

/// Where a provider serves veil, as its registered endpoint advertises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VeilAddr {
    pub port: u16,
    pub public: [u8; 32],
}

impl VeilAddr {
    /// The advert appended to the endpoint: `veil:PORT:HEX`.
    #[must_use]
    pub fn advert(&self) -> String {
        format!("veil:{}:{}", self.port, alloy::hex::encode(self.public))
    }
}

/// A registered endpoint split into the TLS `host:port` and the veil advert, if any
/// (`"vpn.example.net:443 veil:8443:<64 hex>"`). An advert that does not parse is ignored.
#[must_use]
pub fn split_endpoint(endpoint: &str) -> (&str, Option<VeilAddr>) {
    let mut parts = endpoint.split_whitespace();
    let tls = parts.next().unwrap_or_default();
    let veil = parts.find_map(|p| {
        let rest = p.strip_prefix("veil:")?;
        let (port, hex) = rest.split_once(':')?;
        let bytes = alloy::hex::decode(hex).ok().filter(|b| b.len() == 32)?;
        let mut public = [0u8; 32];
        public.copy_from_slice(&bytes);
        Some(VeilAddr { port: port.parse().ok()?, public })
    });
    (tls, veil)
}

/// The prefix length of a provider (the provider must know it before reading anything).
#[must_use]
pub fn prefix_len(public: &[u8; 32]) -> usize {
    PREFIX_MIN + usize::from(keccak256(public).0[1]) % PREFIX_SPAN
}

/// Whether the first packet of a connection falls under one of the exemptions Wu et al.
/// measured in the Great Firewall's rule against fully encrypted traffic (a packet exempt by
/// any one is let through): (1) popcount per byte <= 3.4 or >= 4.6; (2) the first six bytes
/// printable; (3) more than half printable; (4) more than 20 contiguous printable bytes;
/// (5) starts like TLS or HTTP.
#[must_use]
pub fn gfw_exempt(packet: &[u8]) -> bool {
    if packet.is_empty() {
        return true;
    }
    let printable = |b: &u8| (0x20..=0x7e).contains(b);
    let bits: u32 = packet.iter().map(|b| b.count_ones()).sum();
    #[allow(clippy::cast_precision_loss)]
    let per_byte = f64::from(bits) / packet.len() as f64;
    let ex1 = per_byte <= 3.4 || per_byte >= 4.6;
    let ex2 = packet.len() >= 6 && packet[..6].iter().all(printable);
    let ex3 = packet.iter().filter(|b| printable(b)).count() * 2 > packet.len();
    let mut run = 0usize;
    let mut longest = 0usize;
    for b in packet {
        run = if printable(b) { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let ex4 = longest > 20;
    let ex5 = packet.starts_with(&[0x16, 0x03])
        || [&b"GET "[..], b"PUT ", b"POST ", b"HEAD ", b"PATCH ", b"DELETE ", b"OPTIONS ", b"CONNECT "]
            .iter()
            .any(|m| packet.starts_with(m));
    ex1 || ex2 || ex3 || ex4 || ex5
}

fn hkdf(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    struct Len(usize);
    impl aws_lc_rs::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, b"wirepact veil v1").extract(ikm);
    // Lengths here are constants far below HKDF's limit.
    if let Ok(okm) = prk.expand(&[info], Len(out.len())) {
        let _ = okm.fill(out);
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// An ephemeral key whose public point has an Elligator2 representative.
struct Ephemeral {
    secret: [u8; 32],
    repr: [u8; 32],
}

impl Ephemeral {
    fn generate() -> Result<Self, TransportError> {
        let mut rng = rand::rng();
        let tweak: u8 = rng.random();
        // About half of all keys are representable: 64 tries fail with probability 2^-64.
        for _ in 0..64 {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            let repr: Option<[u8; 32]> = Randomized::to_representative(&secret, tweak).into();
            if let Some(repr) = repr {
                return Ok(Self { secret, repr });
            }
        }
        Err(TransportError::NoRandomness)
    }
}

fn point_of(repr: &[u8; 32]) -> MontgomeryPoint {
    let p: Option<curve25519_elligator2::EdwardsPoint> = Randomized::from_representative(repr).into();
    p.map_or(MontgomeryPoint([0; 32]), |e| e.to_montgomery())
}

fn proof_digest(public: &[u8; 32], minute: u64, repr: &[u8; 32]) -> B256 {
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(b"wirepact veil auth v1");
    m.extend_from_slice(public);
    m.extend_from_slice(&minute.to_be_bytes());
    m.extend_from_slice(repr);
    keccak256(&m)
}

fn random_printable(n: usize) -> Vec<u8> {
    let mut rng = rand::rng();
    (0..n).map(|_| rng.random_range(0x21u8..=0x7e)).collect()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Data keys from the handshake: (client to provider, provider to client).
fn data_dirs(secret: &[u8], transcript: &[u8]) -> Result<(Dir, Dir), TransportError> {
    let th = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(transcript));
    let mut okm = [0u8; 128];
    hkdf(secret, &th, &mut okm);
    Ok((Dir::veil(&okm[..32], &okm[64..96])?, Dir::veil(&okm[32..64], &okm[96..128])?))
}

/// The client's first flight and what it needs to read the answer.
struct ClientHello {
    flight: Vec<u8>,
    /// The flight without its trailing padding (the transcript).
    signed_len: usize,
    eph: Ephemeral,
    dh1: [u8; 32],
    k1s: [u8; 32],
    kem: DecapsulationKey,
}

fn client_hello(server: &[u8; 32], session_key: &PrivateKeySigner, unix: u64) -> Result<ClientHello, TransportError> {
    let eph = Ephemeral::generate()?;
    let dh1 = MontgomeryPoint(*server).mul_clamped(eph.secret).to_bytes();
    let mut k1 = [0u8; 64];
    hkdf(&dh1, &[&b"k1"[..], server, &eph.repr].concat(), &mut k1);
    let minute = unix / 60;
    let (rs, odd) = wirepact_proto::eip712::sign_digest(session_key, proof_digest(server, minute, &eph.repr))?;
    let kem = DecapsulationKey::generate(&ML_KEM_768).map_err(|_| TransportError::NoRandomness)?;
    let ek = kem.encapsulation_key().and_then(|k| k.key_bytes()).map_err(|_| TransportError::NoRandomness)?;
    let pad = rand::rng().random_range(0..=PAD_MAX);
    let prefix = random_printable(prefix_len(server));
    let mut flight = Vec::with_capacity(prefix.len() + 32 + BODY1 + TAG + pad);
    flight.extend_from_slice(&prefix);
    flight.extend_from_slice(&eph.repr);
    let body_at = flight.len();
    flight.extend_from_slice(&minute.to_be_bytes());
    flight.extend_from_slice(&rs);
    flight.push(u8::from(odd));
    flight.extend_from_slice(ek.as_ref());
    flight.extend_from_slice(&u16::try_from(pad).unwrap_or(0).to_be_bytes());
    let (head, body) = flight.split_at_mut(body_at);
    let tag = aead256(&k1[..32])?
        .seal_in_place_separate_tag(nonce(0), Aad::from(&*head), body)
        .map_err(|_| TransportError::NoRandomness)?;
    flight.extend_from_slice(tag.as_ref());
    let signed_len = flight.len();
    flight.extend_from_slice(&random_bytes(pad));
    let mut k1s = [0u8; 32];
    k1s.copy_from_slice(&k1[32..]);
    Ok(ClientHello { flight, signed_len, eph, dh1, k1s, kem })
}

/// Client side: TCP, the veil handshake with the provider whose static key is `server`, proved
/// by `session_key`; the stream, ready for the session's auth.
///
/// # Errors
/// The connection fails, or what comes back is not this provider's answer.
/// A veil connection after its handshake.
pub type VeilStream<S> = RecordStream<S>;

pub async fn veil_handshake(
    mut tcp: TcpStream,
    server: &[u8; 32],
    session_key: &PrivateKeySigner,
    unix: u64,
) -> Result<VeilStream<TcpStream>, TransportError> {
    tcp.set_nodelay(true)?;
    crate::transport::detect_dead_peer(&tcp)?;
    let hello = client_hello(server, session_key, unix)?;
    tcp.write_all(&hello.flight).await?;
    let mut head = vec![0u8; 32 + BODY2 + TAG];
    tcp.read_exact(&mut head).await.map_err(|_| TransportError::NotATunnel)?;
    let mut repr_s = [0u8; 32];
    repr_s.copy_from_slice(&head[..32]);
    let transcript_tail = head.clone();
    let (aad, body) = head.split_at_mut(32);
    let body =
        aead256(&hello.k1s)?.open_in_place(nonce(0), Aad::from(&*aad), body).map_err(|_| TransportError::NotATunnel)?;
    let ct = &body[..ML_KEM_CT];
    let pad = usize::from(u16::from_be_bytes([body[ML_KEM_CT], body[ML_KEM_CT + 1]]));
    if pad > PAD_MAX {
        return Err(TransportError::NotATunnel);
    }
    let ss = hello.kem.decapsulate(Ciphertext::from(ct)).map_err(|_| TransportError::NotATunnel)?;
    let mut padding = vec![0u8; pad];
    tcp.read_exact(&mut padding).await.map_err(|_| TransportError::NotATunnel)?;
    let dh2 = point_of(&repr_s).mul_clamped(hello.eph.secret).to_bytes();
    let secret = [&hello.dh1[..], &dh2, ss.as_ref()].concat();
    let transcript = [&hello.flight[..hello.signed_len], &transcript_tail].concat();
    let (c2s, s2c) = data_dirs(&secret, &transcript)?;
    Ok(VeilStream::new(tcp, c2s, s2c, &[]))
}

/// Why a first flight is not a customer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VeilRefusal {
    #[error("the first flight ended early")]
    Short,
    #[error("the body does not decrypt under this provider's key")]
    NotForUs,
    #[error("the proof is dated outside the provider's clock skew")]
    Stale,
    #[error("no open session's key signed the proof")]
    NotACustomer,
    #[error("this first flight was seen before")]
    Replay,
}

/// The provider's side of veil.
#[derive(Debug)]
pub struct VeilServer {
    key: VeilKey,
    /// The representatives of first flights let in, kept while their minute passes the check.
    seen: std::sync::Mutex<crate::replay::Replays<[u8; 32]>>,
    drain: Duration,
}

/// The flights let in within the clock skew, `capacity` at most (the oldest go first).
fn replay_memory(capacity: usize) -> std::sync::Mutex<crate::replay::Replays<[u8; 32]>> {
    std::sync::Mutex::new(crate::replay::Replays::new(capacity, 2 * MINUTE_SKEW, crate::replay::WhenFull::EvictOldest))
}

impl VeilServer {
    #[must_use]
    pub fn new(key: VeilKey) -> Self {
        let drain = default_drain(&key.secret);
        Self { key, seen: replay_memory(65_536), drain }
    }

    /// How long a connection that is not a customer's is read (and never answered) before it
    /// is closed, counted from its first byte's arrival at the listener.
    #[must_use]
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// A smaller replay memory (tests).
    #[cfg(test)]
    fn with_replay_capacity(mut self, n: usize) -> Self {
        self.seen = replay_memory(n);
        self
    }

    /// The advert for the registered endpoint.
    #[must_use]
    pub fn addr(&self, port: u16) -> VeilAddr {
        VeilAddr { port, public: self.key.public }
    }

    /// Checks a first flight's fixed part (`prefix | repr | sealed body`): the session key that
    /// signed it, with what the answer needs.
    #[cfg(test)]
    fn check(
        &self,
        head: &[u8],
        unix: u64,
        is_session_key: &dyn Fn(&Address) -> bool,
    ) -> Result<(Address, ServerState), VeilRefusal> {
        let (who, st) = self.open_flight(head, unix)?;
        if !is_session_key(&who) {
            return Err(VeilRefusal::NotACustomer);
        }
        self.admit(&st)?;
        Ok((who, st))
    }

    /// Opens a first flight's fixed part: who signed it (any key; whether it is a customer's
    /// is the caller's question), with what the answer needs. A flight already let in is a
    /// replay; letting one in is [`VeilServer::admit`]'s.
    fn open_flight(&self, head: &[u8], unix: u64) -> Result<(Address, ServerState), VeilRefusal> {
        let plen = prefix_len(&self.key.public);
        let mut repr = [0u8; 32];
        repr.copy_from_slice(&head[plen..plen + 32]);
        let client = point_of(&repr);
        let dh1 = client.mul_clamped(self.key.secret).to_bytes();
        let mut k1 = [0u8; 64];
        hkdf(&dh1, &[&b"k1"[..], &self.key.public, &repr].concat(), &mut k1);
        let mut sealed = head[plen + 32..].to_vec();
        let key = aead256(&k1[..32]).map_err(|_| VeilRefusal::NotForUs)?;
        let body = key
            .open_in_place(nonce(0), Aad::from(&head[..plen + 32]), &mut sealed)
            .map_err(|_| VeilRefusal::NotForUs)?;
        let minute = u64::from_be_bytes(body[..8].try_into().unwrap_or_default());
        let now = unix / 60;
        if minute + MINUTE_SKEW < now || minute > now + MINUTE_SKEW {
            return Err(VeilRefusal::Stale);
        }
        let rs: [u8; 64] = body[8..72].try_into().unwrap_or([0; 64]);
        let who =
            wirepact_proto::eip712::recover_digest(proof_digest(&self.key.public, minute, &repr), &rs, body[72] == 1)
                .map_err(|_| VeilRefusal::NotACustomer)?;
        let ek = EncapsulationKey::new(&ML_KEM_768, &body[73..73 + ML_KEM_EK]).map_err(|_| VeilRefusal::NotForUs)?;
        let pad = usize::from(u16::from_be_bytes([body[73 + ML_KEM_EK], body[74 + ML_KEM_EK]]));
        if pad > PAD_MAX {
            return Err(VeilRefusal::NotForUs);
        }
        if self.seen.lock().map_err(|_| VeilRefusal::Replay)?.contains(&repr) {
            return Err(VeilRefusal::Replay);
        }
        let mut k1s = [0u8; 32];
        k1s.copy_from_slice(&k1[32..]);
        Ok((who, ServerState { client, dh1, k1s, ek, pad, repr, minute, now_minute: now }))
    }

    /// Lets a customer's flight in once: it is remembered only now that its signer is known to
    /// hold a session, so strangers sealing flights to the advertised key (any key signs) never
    /// fill the memory, and evicting the oldest to make room only ever drops customers'.
    fn admit(&self, st: &ServerState) -> Result<(), VeilRefusal> {
        let mut seen = self.seen.lock().map_err(|_| VeilRefusal::Replay)?;
        if seen.contains(&st.repr) {
            return Err(VeilRefusal::Replay);
        }
        // Evicting never refuses.
        let _ = seen.insert(st.repr, st.minute, st.now_minute);
        Ok(())
    }

    async fn handshake(
        &self,
        tcp: &mut TcpStream,
        ctx: &AcceptContext<'_>,
    ) -> Result<(VeilStream<()>, Vec<u8>), VeilRefusal> {
        let plen = prefix_len(&self.key.public);
        let mut head = vec![0u8; plen + 32 + BODY1 + TAG];
        tcp.read_exact(&mut head).await.map_err(|_| VeilRefusal::Short)?;
        let (who, st) = self.open_flight(&head, ctx.now)?;
        // A session opened a moment ago may not be known here yet (the node learns sessions
        // from the chain every second): strangers get silence either way, so a signer that is
        // not a customer yet is given a few seconds before the connection is left to drain.
        let wait_until = tokio::time::Instant::now() + CUSTOMER_CATCH_UP;
        while !ctx.lookup.is_session_key(&who) {
            if tokio::time::Instant::now() >= wait_until {
                return Err(VeilRefusal::NotACustomer);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.admit(&st)?;
        let mut padding = vec![0u8; st.pad];
        tcp.read_exact(&mut padding).await.map_err(|_| VeilRefusal::Short)?;
        // The answer.
        let eph = Ephemeral::generate().map_err(|_| VeilRefusal::NotForUs)?;
        let dh2 = st.client.mul_clamped(eph.secret).to_bytes();
        let (ct, ss) = st.ek.encapsulate().map_err(|_| VeilRefusal::NotForUs)?;
        let pad = rand::rng().random_range(0..=PAD_MAX);
        let mut answer = Vec::with_capacity(32 + BODY2 + TAG + pad);
        answer.extend_from_slice(&eph.repr);
        answer.extend_from_slice(ct.as_ref());
        answer.extend_from_slice(&u16::try_from(pad).unwrap_or(0).to_be_bytes());
        let (aad, body) = answer.split_at_mut(32);
        let tag = aead256(&st.k1s)
            .and_then(|k| {
                k.seal_in_place_separate_tag(nonce(0), Aad::from(&*aad), body).map_err(|_| TransportError::NoRandomness)
            })
            .map_err(|_| VeilRefusal::NotForUs)?;
        answer.extend_from_slice(tag.as_ref());
        let secret = [&st.dh1[..], &dh2, ss.as_ref()].concat();
        let transcript = [&head[..], &answer[..]].concat();
        let (c2s, s2c) = data_dirs(&secret, &transcript).map_err(|_| VeilRefusal::NotForUs)?;
        answer.extend_from_slice(&random_bytes(pad));
        Ok((VeilStream::new((), s2c, c2s, &[]), answer))
    }
}

struct ServerState {
    client: MontgomeryPoint,
    dh1: [u8; 32],
    k1s: [u8; 32],
    ek: EncapsulationKey,
    pad: usize,
    /// The flight's representative, its minute and the minute it arrived (for [`VeilServer::admit`]).
    repr: [u8; 32],
    minute: u64,
    now_minute: u64,
}

/// Reads and drops whatever `tcp` sends until `until`, then closes: what a provider does with
/// everyone who is not a customer, whatever they sent (no answer, no early close).
async fn drain_until(mut tcp: TcpStream, until: tokio::time::Instant) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout_at(until, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    })
    .await;
}

impl Acceptor for VeilServer {
    fn accept<'a>(
        &'a self,
        mut tcp: TcpStream,
        ctx: AcceptContext<'a>,
        handshaken: Box<dyn FnOnce() + Send + 'a>,
    ) -> Dialing<'a, Accepted> {
        Box::pin(async move {
            let until = tokio::time::Instant::now() + self.drain;
            let _ = tcp.set_nodelay(true);
            let hs = tokio::time::timeout_at(until, self.handshake(&mut tcp, &ctx)).await;
            let (stream, answer) = match hs {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::debug!(reason = %e, "not a veil customer; reading until the drain time, never answering");
                    drain_until(tcp, until).await;
                    return Ok(Accepted::Decoy);
                }
                Err(_) => return Ok(Accepted::Decoy),
            };
            tcp.write_all(&answer).await?;
            handshaken();
            let mut s = stream.with_inner(tcp);
            // The session's auth, as over TLS.
            let mut buf = Vec::with_capacity(256);
            let first = tokio::time::timeout(ctx.deadline, crate::transport::read_first_frame(&mut s, &mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let Some((f, used)) = first else { return Ok(Accepted::Decoy) };
            if let Frame::SessionAuth { session_id, .. } = &f {
                let _ = tokio::time::timeout(ctx.deadline, ctx.lookup.resolve(*session_id)).await;
            }
            let verdict = ctx.checker.lock().map_err(|_| TransportError::NotATunnel)?.check(&f, ctx.now, ctx.lookup);
            match verdict {
                Ok(session_id) => {
                    s.write_all(&Frame::AuthOk { credit_until: ctx.credit_until }.to_bytes()).await?;
                    s.flush().await?;
                    let pending = buf.split_off(used);
                    Ok(Accepted::Session { stream: Box::new(s), session_id, pending })
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = s.write_all(&Frame::Error { code: 401, message: msg }.to_bytes()).await;
                    let _ = s.shutdown().await;
                    Ok(Accepted::Decoy)
                }
            }
        })
    }
}

/// The client's side: veil to the provider's advertised port and key, the session proved in
/// the first flight by `session_key`, then the session's auth inside.
#[derive(Debug, Clone)]
pub struct VeilTransport {
    pub server: VeilAddr,
    pub session_key: PrivateKeySigner,
}

impl Transport for VeilTransport {
    fn dial<'a>(
        &'a self,
        addr: std::net::SocketAddr,
        auth: &'a Frame,
        deadline: Duration,
    ) -> Dialing<'a, ClientTunnel> {
        Box::pin(async move {
            let work = async {
                let tcp = TcpStream::connect(addr).await?;
                let unix = crate::clock::unix_now_with(0);
                let mut s = veil_handshake(tcp, &self.server.public, &self.session_key, unix).await?;
                let (credit_until, pending) = crate::transport::authenticate(&mut s, auth).await?;
                let stream: BoxIo = Box::new(s);
                Ok(ClientTunnel { stream, credit_until, pending })
            };
            tokio::time::timeout(deadline, work).await.map_err(|_| TransportError::Timeout(deadline))?
        })
    }

    /// A veil provider answers nobody without a session: the TCP round trip, twice (the
    /// handshake is one more), as for a provider behind a cover.
    fn handshake_time(&self, addr: std::net::SocketAddr, deadline: Duration) -> Dialing<'_, Reach> {
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let tcp = tokio::time::timeout(deadline, TcpStream::connect(addr))
                .await
                .map_err(|_| TransportError::Timeout(deadline))??;
            let took = start.elapsed() * 2;
            drop(tcp);
            Ok(Reach { took, keyed: false })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_tls_and_the_veil_advert() {
        let key = VeilKey::generate();
        let a = VeilAddr { port: 8443, public: key.public() };
        let ep = format!("vpn.example.net:443 {}", a.advert());
        assert_eq!(split_endpoint(&ep), ("vpn.example.net:443", Some(a)));
        assert_eq!(split_endpoint("vpn.example.net:443"), ("vpn.example.net:443", None));
        // A malformed advert is ignored, never an error.
        assert_eq!(split_endpoint("h:1 veil:x:zz"), ("h:1", None));
        assert_eq!(split_endpoint("h:1 veil:9:abcd"), ("h:1", None));
    }

    #[test]
    fn representatives_and_padding_change_every_time_and_the_prefix_is_printable() {
        let server = VeilKey::generate();
        let key = PrivateKeySigner::random();
        let a = client_hello(&server.public(), &key, 1_800_000_000).expect("hello");
        let b = client_hello(&server.public(), &key, 1_800_000_000).expect("hello");
        let plen = prefix_len(&server.public());
        assert_ne!(a.flight[plen..plen + 32], b.flight[plen..plen + 32]);
        assert!(a.flight[..plen].iter().all(|c| (0x21..=0x7e).contains(c)));
        assert!(a.flight.len() >= plen + 32 + BODY1 + TAG);
    }

    #[test]
    fn every_first_packet_is_exempt_while_a_plain_random_one_often_is_not() {
        let server = VeilKey::generate();
        let key = PrivateKeySigner::random();
        let mut blocked_random = 0;
        for _ in 0..200 {
            let h = client_hello(&server.public(), &key, 1_800_000_000).expect("hello");
            // The first TCP segment: at most one MSS of the flight.
            assert!(gfw_exempt(&h.flight[..h.flight.len().min(1448)]), "a first packet would be blocked");
            if !gfw_exempt(&random_bytes(h.flight.len().min(1448))) {
                blocked_random += 1;
            }
        }
        // Random bytes average 4 bits a byte and are rarely printable: the rule catches them.
        assert!(blocked_random > 150, "the rule as written should catch random first packets: {blocked_random}");
    }

    #[test]
    fn the_server_reads_a_customers_flight_and_refuses_others() {
        let server = VeilServer::new(VeilKey::generate());
        let public = server.key.public();
        let customer = PrivateKeySigner::random();
        let unix = 1_800_000_000;
        let known = |k: &Address| *k == customer.address();
        let h = client_hello(&public, &customer, unix).expect("hello");
        let fixed = prefix_len(&public) + 32 + BODY1 + TAG;
        let (who, _) = server.check(&h.flight[..fixed], unix, &known).expect("a customer");
        assert_eq!(who, customer.address());
        // The same flight again: a replay.
        assert_eq!(server.check(&h.flight[..fixed], unix, &known).err(), Some(VeilRefusal::Replay));
        // Three minutes later: stale.
        let h = client_hello(&public, &customer, unix).expect("hello");
        assert_eq!(server.check(&h.flight[..fixed], unix + 180, &known).err(), Some(VeilRefusal::Stale));
        // Signed by a key without a session.
        let h = client_hello(&public, &PrivateKeySigner::random(), unix).expect("hello");
        assert_eq!(server.check(&h.flight[..fixed], unix, &known).err(), Some(VeilRefusal::NotACustomer));
        // For another provider, or one bit flipped anywhere: not for us.
        let h = client_hello(&VeilKey::generate().public(), &customer, unix).expect("hello");
        assert_eq!(server.check(&h.flight[..fixed], unix, &known).err(), Some(VeilRefusal::NotForUs));
        let mut h = client_hello(&public, &customer, unix).expect("hello").flight;
        h[fixed - 100] ^= 1;
        assert_eq!(server.check(&h[..fixed], unix, &known).err(), Some(VeilRefusal::NotForUs));
    }

    /// A stranger holding the advertised key can seal any number of well-formed first flights;
    /// none of them may push a customer's flight out of the replay memory (or a replay of that
    /// flight would be answered: the prober learns it found veil).
    #[test]
    fn strangers_flights_cannot_flush_a_customers_from_the_replay_memory() {
        let server = VeilServer::new(VeilKey::generate()).with_replay_capacity(4);
        let public = server.key.public();
        let customer = PrivateKeySigner::random();
        let unix = 1_800_000_000;
        let known = |k: &Address| *k == customer.address();
        let fixed = prefix_len(&public) + 32 + BODY1 + TAG;
        let h = client_hello(&public, &customer, unix).expect("hello");
        server.check(&h.flight[..fixed], unix, &known).expect("a customer");
        for _ in 0..10 {
            let stranger = client_hello(&public, &PrivateKeySigner::random(), unix).expect("hello");
            assert_eq!(server.check(&stranger.flight[..fixed], unix, &known).err(), Some(VeilRefusal::NotACustomer));
        }
        assert_eq!(server.check(&h.flight[..fixed], unix, &known).err(), Some(VeilRefusal::Replay));
    }

    fn pair() -> (Dir, Dir, Dir, Dir) {
        let k = [3u8; 32];
        let h = [4u8; 32];
        (
            Dir::veil(&k, &h).expect("dir"),
            Dir::veil(&k, &h).expect("dir"),
            Dir::veil(&h, &k).expect("dir"),
            Dir::veil(&h, &k).expect("dir"),
        )
    }

    #[tokio::test]
    async fn records_cross_in_any_chunking_and_a_flipped_bit_is_an_error_not_garbage() {
        let (a_tx, b_rx, b_tx, a_rx) = pair();
        let (x, y) = tokio::io::duplex(1 << 20);
        let mut a = VeilStream::new(x, a_tx, a_rx, &[]);
        let data: Vec<u8> = (0..300_000u32).map(|i| i.to_le_bytes()[0] ^ i.to_le_bytes()[1]).collect();
        for chunk in data.chunks(12_345) {
            a.write_all(chunk).await.expect("write");
        }
        a.flush().await.expect("flush");
        let mut b = VeilStream::new(y, b_tx, b_rx, &[]);
        let mut got = vec![0u8; data.len()];
        b.read_exact(&mut got).await.expect("read");
        assert!(got == data);

        // On the wire, one bit of the next record flipped: the reader fails with InvalidData.
        let (a_tx, b_rx, b_tx, a_rx) = pair();
        let mut wire = Vec::new();
        let mut a = VeilStream::new(&mut wire, a_tx, a_rx, &[]);
        a.write_all(b"hello veil").await.expect("write");
        a.flush().await.expect("flush");
        let mut tampered = wire.clone();
        tampered[5] ^= 0x10;
        let mut b = VeilStream::new(&tampered[..], b_tx, b_rx, &[]);
        let mut out = [0u8; 10];
        let e = b.read_exact(&mut out).await.expect_err("tampered");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // Cut short: an unexpected end, not a clean one.
        let (_, b_rx, b_tx, _) = pair();
        let mut b = VeilStream::new(&wire[..wire.len() - 3], b_tx, b_rx, &[]);
        let e = b.read_exact(&mut out).await.expect_err("cut");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    proptest::proptest! {
        /// Whatever arrives on the wire, the reader returns data it authenticated, an error or
        /// the end: never a panic, never bytes that did not decrypt.
        #[test]
        fn arbitrary_wire_bytes_never_panic_or_pass(wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40_000)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            rt.block_on(async {
                let (_, rx, tx, _) = pair();
                let mut b = VeilStream::new(&wire[..], tx, rx, &[]);
                let mut out = Vec::new();
                // Random bytes decrypt with probability 2^-128: whatever happens, nothing is read.
                let r = b.read_to_end(&mut out).await;
                proptest::prop_assert!(out.is_empty(), "{} bytes passed: {r:?}", out.len());
                Ok(())
            })?;
        }

        /// The server's check of a first flight's fixed part, on arbitrary bytes: a refusal, never
        /// a panic or a customer.
        #[test]
        fn arbitrary_first_flights_are_refused(body in proptest::collection::vec(proptest::prelude::any::<u8>(), BODY1 + TAG..=BODY1 + TAG)) {
            let server = VeilServer::new(VeilKey::from_secret([9; 32]));
            let mut head = random_printable(prefix_len(&server.key.public()));
            head.extend_from_slice(&body);
            head.extend_from_slice(&[0u8; 32]);
            let r = server.check(&head[..prefix_len(&server.key.public()) + 32 + BODY1 + TAG], 1_800_000_000, &|_| true);
            proptest::prop_assert!(r.is_err());
        }
    }
}
