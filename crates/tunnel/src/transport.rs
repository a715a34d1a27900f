//! The camouflaged transport: TLS 1.3 (rustls on aws-lc-rs, X25519MLKEM768 preferred) that
//! looks like an ordinary HTTPS site. The provider's certificate key *is* its on-chain tunnel
//! key (`sha256(SubjectPublicKeyInfo)`); clients pin it instead of trusting any CA. A
//! connection whose first message is not a valid session auth within a deadline is served an
//! ordinary web page by the same listener, so active probing finds a web server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};
use wirepact_proto::{Frame, FrameError, PROTOCOL_VERSION};

use crate::auth::{AuthChecker, SessionLookup};
use crate::hello::Flight;
use crate::mux::Prefixed;
use crate::record::RecordStream;

/// ALPN the client offers, like a browser.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// ALPN the provider accepts: the decoy speaks HTTP/1.1, so it must not claim h2 (a prober
/// speaking HTTP/2 to an h2-advertising server that answers HTTP/1.1 would notice).
pub const SERVER_ALPN: [&[u8]; 1] = [b"http/1.1"];
/// The page a prober sees.
pub const DECOY_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Welcome</title></head>\
<body><h1>It works</h1><p>This server is up and running.</p></body></html>\n";

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("network I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot create the tunnel certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The identity's files cannot be read or written (back them up: the key is on chain).
    #[error("{what} {path}: {source}")]
    IdentityFile { what: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("{path} is not a PEM certificate or PKCS#8 key: {source}")]
    IdentityPem { path: std::path::PathBuf, source: rustls::pki_types::pem::Error },
    #[error("signing the session auth: {0}")]
    Sign(#[from] wirepact_proto::SignatureError),
    #[error("the system's random source failed")]
    NoRandomness,
    #[error("the certificate is not a valid X.509 end-entity certificate")]
    BadCertificate,
    #[error("server name {0:?} is not a valid DNS name or IP address")]
    BadServerName(String),
    #[error("the provider refused the session: {code} {message}")]
    Refused { code: u16, message: String },
    #[error("the provider answered with a malformed frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the provider answered something other than a tunnel frame (a decoy site?)")]
    NotATunnel,
    /// The TLS server is not the provider's registered key: it showed another certificate, or
    /// it did not take the client's Chrome-dressed hello as the provider does (its cover site,
    /// for a gated provider that does not know this session, or not yet; another server at
    /// that address; a provider older than the dressing). Fail over if it persists.
    #[error(
        "the server is not the provider's registered key (its cover site, another server at that address, or a provider too old for this client)"
    )]
    OtherCertificate,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// An authenticated byte stream, whatever carries it (TLS today; camouflage or QUIC next):
/// what the session layer reads and writes once a transport is through.
pub trait TunnelIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static> TunnelIo for T {}

/// A boxed [`TunnelIo`].
pub type BoxIo = Box<dyn TunnelIo>;

/// A future a [`Transport`] returns.
pub type Dialing<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, TransportError>> + Send + 'a>>;

/// The seam between the session layer and what carries it to a provider. A transport dials
/// the provider's address, proves the session with `auth` the way it carries it, and hands
/// back an authenticated stream with the provider's first credit line and any bytes already
/// read past the handshake. Everything above it (sessions, lanes, probes) is the same for
/// every transport; a new obfuscation is one implementation.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Dials `addr`, authenticates the session with `auth`; gives up after `deadline`.
    fn dial<'a>(&'a self, addr: std::net::SocketAddr, auth: &'a Frame, deadline: Duration)
        -> Dialing<'a, ClientTunnel>;

    /// How long reaching `addr` takes, up to the point where a session could be proved (what
    /// a client ranks providers by); the connection is then dropped unauthenticated.
    fn handshake_time(&self, addr: std::net::SocketAddr, deadline: Duration) -> Dialing<'_, Reach>;
}

/// What timing a provider's handshake tells a client that has no session with it yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// TCP connect plus the TLS handshake; when another certificate answered, twice the TCP
    /// connect time (a TLS 1.3 handshake is one more round trip), so the cover site's own
    /// distance from the provider does not count against it.
    pub took: Duration,
    /// The provider's registered key answered. `false`: another certificate did, which is
    /// what a provider with a cover site shows everyone without a session; an impostor at
    /// that address looks the same until a session's dial (which then fails over).
    pub keyed: bool,
}

/// The server name sent when a provider's endpoint is an IP address (the client's
/// `server_name` setting overrides it for customers).
pub const DEFAULT_SERVER_NAME: &str = "www.example.com";

/// The SNI rule every dial follows, a customer's session and an oracle's probe alike (a probe
/// must look like a customer): the host name of the provider's registered endpoint, as a
/// browser sends the name it connects to; `fallback` when the endpoint is an IP address.
#[must_use]
pub fn server_name_for(endpoint: &str, fallback: &str) -> String {
    let host = match endpoint.strip_prefix('[') {
        // "[v6]:port" is an address.
        Some(_) => return fallback.to_owned(),
        None => endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h),
    };
    let is_name = !host.is_empty()
        && host.parse::<std::net::IpAddr>().is_err()
        && ServerName::try_from(host.to_ascii_lowercase()).is_ok_and(|n| matches!(n, ServerName::DnsName(_)));
    if is_name {
        host.to_ascii_lowercase()
    } else {
        fallback.to_owned()
    }
}

/// The first transport: TLS 1.3 (X25519MLKEM768 preferred) pinned to the provider's tunnel
/// key, the session auth as the first message, `AuthOk` back.
#[derive(Debug, Clone)]
pub struct TlsTransport {
    /// The SNI sent (and the decoy's certificate name).
    pub server_name: String,
    /// The provider's tunnel key (on chain): the certificate must carry it.
    pub tunnel_key: B256,
    /// The session key that signs the ClientHello's proof (see [`crate::hello_auth`]).
    pub hello_key: Option<PrivateKeySigner>,
}

impl TlsTransport {
    #[must_use]
    pub fn new(server_name: &str, tunnel_key: B256) -> Self {
        Self { server_name: server_name.to_owned(), tunnel_key, hello_key: None }
    }

    /// Signs each ClientHello with the session key, so a provider that relays strangers to a
    /// cover site lets this one in.
    #[must_use]
    pub fn with_hello_key(mut self, key: PrivateKeySigner) -> Self {
        self.hello_key = Some(key);
        self
    }
}

impl Transport for TlsTransport {
    fn dial<'a>(
        &'a self,
        addr: std::net::SocketAddr,
        auth: &'a Frame,
        deadline: Duration,
    ) -> Dialing<'a, ClientTunnel> {
        Box::pin(async move {
            let t =
                connect_with(addr, &self.server_name, self.tunnel_key, self.hello_key.as_ref(), auth, deadline).await?;
            let stream: BoxIo = Box::new(t.stream);
            Ok(ClientTunnel { stream, credit_until: t.credit_until, pending: t.pending })
        })
    }

    fn handshake_time(&self, addr: std::net::SocketAddr, deadline: Duration) -> Dialing<'_, Reach> {
        Box::pin(handshake_time(addr, &self.server_name, self.tunnel_key, deadline))
    }
}

/// The provider's TLS identity; `tunnel_key()` is what it registers on chain.
#[derive(Debug)]
pub struct TunnelIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    tunnel_key: B256,
}

/// `sha256(SubjectPublicKeyInfo)` of a certificate: the pinned tunnel key.
pub fn spki_hash(cert: &CertificateDer<'_>) -> Result<B256, TransportError> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| TransportError::BadCertificate)?;
    Ok(B256::from_slice(&Sha256::digest(ee.subject_public_key_info().as_ref())))
}

impl TunnelIdentity {
    /// A fresh ECDSA P-256 key and a self-signed certificate for `server_name` (what SNI says).
    pub fn generate(server_name: &str) -> Result<Self, TransportError> {
        let ck = rcgen::generate_simple_self_signed(vec![server_name.to_owned()])?;
        let cert = ck.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        let tunnel_key = spki_hash(&cert)?;
        Ok(Self { cert, key, tunnel_key })
    }

    #[must_use]
    pub fn tunnel_key(&self) -> B256 {
        self.tunnel_key
    }

    /// Loads the identity kept in `dir` (`tunnel.crt`, `tunnel.key`), or creates one there for
    /// `server_name`. The key file is written owner-only. The tunnel key a provider registered
    /// on chain is this certificate's: losing the files means re-registering a new one.
    pub fn load_or_create(dir: &std::path::Path, server_name: &str) -> Result<Self, TransportError> {
        use rustls::pki_types::pem::PemObject;
        let (crt, key) = (dir.join("tunnel.crt"), dir.join("tunnel.key"));
        let io = |what: &'static str, p: &std::path::Path, source: std::io::Error| TransportError::IdentityFile {
            what,
            path: p.to_path_buf(),
            source,
        };
        let pem = |p: &std::path::Path, source| TransportError::IdentityPem { path: p.to_path_buf(), source };
        if crt.exists() || key.exists() {
            let cert = CertificateDer::from_pem_file(&crt).map_err(|e| pem(&crt, e))?;
            let key = PrivatePkcs8KeyDer::from_pem_file(&key).map_err(|e| pem(&key, e))?;
            let tunnel_key = spki_hash(&cert)?;
            return Ok(Self { cert, key, tunnel_key });
        }
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let ck = rcgen::generate_simple_self_signed(vec![server_name.to_owned()])?;
        write_private(&key, ck.signing_key.serialize_pem().as_bytes()).map_err(|e| io("writing", &key, e))?;
        std::fs::write(&crt, ck.cert.pem()).map_err(|e| io("writing", &crt, e))?;
        let cert = ck.cert.der().clone();
        let tunnel_key = spki_hash(&cert)?;
        Ok(Self { cert, key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()), tunnel_key })
    }

    /// The provider's TLS 1.3 server configuration.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TransportError> {
        let provider = Arc::new(crypto_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        cfg.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        // After the session auth both ends carry on with their own record layer from the
        // extracted secrets: no post-handshake message may be in flight then.
        cfg.send_tls13_tickets = 0;
        cfg.enable_secret_extraction = true;
        Ok(Arc::new(cfg))
    }
}

/// Writes `bytes` to a new file readable by its owner only (a private key), durably.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Accepts exactly the server key whose SPKI hashes to `pin`.
#[derive(Debug)]
struct PinnedKey {
    pin: B256,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match spki_hash(end_entity) {
            Ok(h) if h == self.pin => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// aws-lc-rs with the TLS 1.3 suites in the order browsers offer them: AES-128-GCM first
/// (the cheapest AEAD with AES-NI, and what a Chrome ClientHello leads with), then
/// AES-256-GCM and ChaCha20-Poly1305. Key exchange: X25519MLKEM768 first, as by default.
fn crypto_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::cipher_suite;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    p
}

/// The client's connection under TLS: TCP with a read buffer, so the TLS layer (which asks for
/// at most 4 KiB at a time once its buffer drains) costs one read syscall per 64 KiB, not per
/// 4 KiB; the ClientHello goes out dressed as Chrome's ([`Dressed`]).
pub type Wire = tokio::io::BufReader<Dressed<TcpStream>>;

/// Read buffer of a tunnel connection.
pub const WIRE_READ_BUFFER: usize = 64 * 1024;

fn wire(tcp: TcpStream, tunnel_key: B256) -> Wire {
    tokio::io::BufReader::with_capacity(WIRE_READ_BUFFER, Dressed::new(tcp, tunnel_key))
}

/// A client's stream whose first ClientHello is sent dressed as Chrome's for the provider
/// whose tunnel key is pinned ([`crate::chrome`]); reads and every later write pass through.
/// A hello that cannot be dressed goes out as rustls built it (and is said once in the log).
#[derive(Debug)]
pub struct Dressed<S> {
    inner: S,
    tunnel_key: B256,
    state: DressState,
}

#[derive(Debug)]
enum DressState {
    /// The hello's bytes so far.
    Collecting(Vec<u8>),
    /// The dressed hello (and anything written after it), from this offset.
    Sending(Vec<u8>, usize),
    Through,
}

/// Most a hello is collected before it goes out as it is.
const DRESS_COLLECT_MAX: usize = 64 * 1024;

impl<S> Dressed<S> {
    /// `inner`, its first ClientHello to be dressed for `tunnel_key`.
    pub fn new(inner: S, tunnel_key: B256) -> Self {
        Self { inner, tunnel_key, state: DressState::Collecting(Vec::with_capacity(2048)) }
    }

    /// The stream underneath (after the handshake, when nothing is held back).
    pub fn into_inner(self) -> S {
        debug_assert!(!matches!(self.state, DressState::Sending(..)), "a dressed hello was left unsent");
        self.inner
    }
}

impl<S: AsyncWrite + Unpin> Dressed<S> {
    /// Writes out what is held, if anything.
    fn poll_drive(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        if let DressState::Sending(out, at) = &mut self.state {
            while *at < out.len() {
                let n = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, &out[*at..]))?;
                if n == 0 {
                    return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                *at += n;
            }
            self.state = DressState::Through;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Dressed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Dressed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if let DressState::Collecting(acc) = &mut this.state {
            acc.extend_from_slice(buf);
            let out = match crate::hello::ClientHello::parse(acc) {
                Err(crate::hello::HelloError::Incomplete(_)) if acc.len() < DRESS_COLLECT_MAX => {
                    return std::task::Poll::Ready(Ok(buf.len()));
                }
                Ok((_, used)) => match crate::chrome::dress(&acc[..used], this.tunnel_key, &mut rand::rng()) {
                    Ok(mut dressed) => {
                        dressed.extend_from_slice(&acc[used..]);
                        dressed
                    }
                    Err(e) => {
                        static SAID: std::sync::Once = std::sync::Once::new();
                        SAID.call_once(|| tracing::warn!(error = %e, "the ClientHello goes out as rustls built it"));
                        std::mem::take(acc)
                    }
                },
                Err(_) => std::mem::take(acc),
            };
            this.state = DressState::Sending(out, 0);
            // The caller's bytes are taken; what the socket does not take now, flush sends.
            return match this.poll_drive(cx) {
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                _ => std::task::Poll::Ready(Ok(buf.len())),
            };
        }
        std::task::ready!(this.poll_drive(cx))?;
        std::pin::Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_drive(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_drive(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A provider's connection: the bytes it already read while deciding (the first flight,
/// when a cover site is configured) replayed before the socket.
pub type ServerWire = tokio::io::BufReader<Prefixed<TcpStream>>;

/// The client's TLS configuration pinning `tunnel_key`.
pub fn client_config(tunnel_key: B256) -> Result<Arc<ClientConfig>, TransportError> {
    let mut provider = crypto_provider();
    // The same randomness and groups, with the hooks a customer's hello proof uses.
    provider.secure_random = &SCRIPTED_RANDOM;
    if let Some(first) = provider.kx_groups.first_mut() {
        if first.name() == HELLO_GROUP.name() {
            *first = &SCRIPTED_KX;
        }
    }
    let provider = Arc::new(provider);
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey { pin: tunnel_key, provider }))
        .with_no_client_auth();
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

/// What became of an accepted connection.
pub enum Accepted {
    /// An authenticated session: forward its traffic. `pending` holds bytes the client sent
    /// right after its auth (already read from the stream).
    Session { stream: BoxIo, session_id: B256, pending: Vec<u8> },
    /// Not a session: it was served the decoy site and closed.
    Decoy,
    /// Not a session: it was relayed to the cover site until either side closed.
    Cover,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session { session_id, pending, .. } => f
                .debug_struct("Session")
                .field("session_id", session_id)
                .field("pending", &pending.len())
                .finish_non_exhaustive(),
            Self::Decoy => f.write_str("Decoy"),
            Self::Cover => f.write_str("Cover"),
        }
    }
}

/// What an [`Acceptor`] judges a connection by.
#[derive(Clone, Copy)]
pub struct AcceptContext<'a> {
    /// Checks session auths (skew, replays, the session key).
    pub checker: &'a Mutex<AuthChecker>,
    /// The sessions this provider serves (backed by the chain in the node).
    pub lookup: &'a (dyn SessionLookup + Sync),
    /// Unix time now (the chain's clock).
    pub now: u64,
    /// For each step: the transport's handshake, the first message, the cover's answer.
    pub deadline: Duration,
    /// The first credit line, sent with the acceptance.
    pub credit_until: u64,
}

impl std::fmt::Debug for AcceptContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptContext")
            .field("now", &self.now)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The provider's side of a transport: an accepted TCP connection becomes an authenticated
/// session stream, or is served as the transport's cover (a decoy page, a cover site) and
/// closed. The node holds one `Arc<dyn Acceptor>` and never wires TLS itself, so a new
/// camouflage is one implementation of [`Transport`] and one of this.
pub trait Acceptor: Send + Sync + std::fmt::Debug {
    /// Judges `tcp`; `handshaken` is called once the transport's own handshake completed (the
    /// provider's connection budget then keeps it over idle and stalled connections).
    fn accept<'a>(
        &'a self,
        tcp: TcpStream,
        ctx: AcceptContext<'a>,
        handshaken: Box<dyn FnOnce() + Send + 'a>,
    ) -> Dialing<'a, Accepted>;
}

/// The provider's side of [`TlsTransport`]: the tunnel identity's certificate, the session
/// auth as the first message, the decoy site for everything else — or, with a cover site,
/// every connection whose first flight is not a TLS ClientHello relayed to that site, byte
/// for byte both ways (plain HTTP, scanners' garbage, and silence, which meets the cover's
/// own timeout).
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    cover: Option<String>,
    /// With a cover: ClientHellos without a customer's proof go to the cover too.
    gate: Option<Arc<Mutex<crate::hello_auth::HelloGate>>>,
    tunnel_key: B256,
    /// "The cover site is unreachable" said once, then once a minute with a count.
    cover_down: Arc<Mutex<wirepact_proto::repeats::Repeats>>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// # Errors
    /// The identity's certificate or key cannot be used.
    pub fn new(identity: &TunnelIdentity) -> Result<Self, TransportError> {
        Ok(Self {
            acceptor: TlsAcceptor::from(identity.server_config()?),
            cover: None,
            gate: None,
            tunnel_key: identity.tunnel_key(),
            cover_down: Arc::default(),
        })
    }

    /// Relays what is not a ClientHello to `cover` (`host:port`, a real HTTPS site).
    #[must_use]
    pub fn with_cover(mut self, cover: Option<String>) -> Self {
        self.cover = cover;
        self
    }

    /// With a cover: a ClientHello is ours only if an open session's key signed it for this
    /// provider, this minute, once ([`crate::hello_auth`]); every other one — a prober's, a
    /// replay, a modified hello — is relayed to the cover, which completes the handshake with
    /// its own certificate.
    #[must_use]
    pub fn with_hello_gate(mut self, on: bool) -> Self {
        self.gate = on.then(|| Arc::new(Mutex::new(crate::hello_auth::HelloGate::new(self.tunnel_key, 65_536))));
        self
    }
}

/// Longest a connection relayed to the cover site is kept (the cover's own timeouts usually
/// end it first).
pub const COVER_RELAY_MAX: Duration = Duration::from_secs(300);

/// The cover site's connection while the first flight is read.
enum CoverConn {
    /// Connected; it holds every byte of the flight read so far.
    Up(TcpStream),
    /// Still being dialled.
    Dialling(tokio::task::JoinHandle<std::io::Result<TcpStream>>),
    /// The dial failed or timed out.
    Down,
}

/// What the first flight said.
enum FirstFlight {
    /// A ClientHello: the gate decides.
    Hello(Vec<u8>, CoverConn),
    /// Anything else, or the cover spoke or closed first: the relay to the cover goes on.
    Cover(Vec<u8>, CoverConn),
    /// The visitor left.
    Gone,
}

/// Reads the first flight of `tcp` while the cover site is dialled alongside: once the cover is
/// connected every byte goes on to it as it comes (so the cover sees the visitor's bytes and
/// silences as they happen), until the flight is a whole ClientHello, or cannot be one, or the
/// cover acts first. A customer's hello is never held back for the cover's dial.
async fn first_flight(tcp: &mut TcpStream, cover_addr: &str, deadline: Duration) -> FirstFlight {
    let mut flight = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let addr = cover_addr.to_owned();
    let mut cover = CoverConn::Dialling(tokio::spawn(async move {
        tokio::time::timeout(deadline, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }));
    loop {
        let cover_event = async {
            match &mut cover {
                CoverConn::Up(c) => Err(c.readable().await),
                CoverConn::Dialling(h) => Ok(h.await),
                CoverConn::Down => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tcp.read(&mut chunk) => match r {
                Ok(n) if n > 0 => {
                    if let CoverConn::Up(c) = &mut cover {
                        if c.write_all(&chunk[..n]).await.is_err() {
                            cover = CoverConn::Down;
                        }
                    }
                    flight.extend_from_slice(&chunk[..n]);
                    match crate::hello::flight(&flight) {
                        Flight::Hello => return FirstFlight::Hello(flight, cover),
                        Flight::Partial => {}
                        Flight::NotHello => return FirstFlight::Cover(flight, cover),
                    }
                }
                _ => {
                    if let CoverConn::Dialling(h) = &cover {
                        h.abort();
                    }
                    return FirstFlight::Gone;
                }
            },
            e = cover_event => match e {
                // Connected: it gets what was read so far, then the rest as it comes.
                Ok(Ok(Ok(mut c))) => {
                    let _ = c.set_nodelay(true);
                    cover = if c.write_all(&flight).await.is_ok() { CoverConn::Up(c) } else { CoverConn::Down };
                }
                Ok(_) => cover = CoverConn::Down,
                // The cover answered or closed: from here it is the cover's conversation.
                Err(_) => return FirstFlight::Cover(flight, cover),
            }
        }
    }
}

/// Relays `tcp` and `cover` both ways until either side ends (at most [`COVER_RELAY_MAX`]).
async fn relay_to_cover(mut tcp: TcpStream, mut cover: TcpStream) {
    let _ = tokio::time::timeout(COVER_RELAY_MAX, tokio::io::copy_bidirectional(&mut tcp, &mut cover)).await;
}

/// The cover's connection, holding `flight` already: the one from the first flight (waited
/// for if still dialling); `None` if the cover cannot be reached.
async fn cover_holding(server: &TlsServer, cover_addr: &str, have: CoverConn, flight: &[u8]) -> Option<TcpStream> {
    let cover = match have {
        CoverConn::Up(c) => Some(c),
        CoverConn::Dialling(h) => match h.await {
            Ok(Ok(mut c)) => {
                let _ = c.set_nodelay(true);
                c.write_all(flight).await.ok().map(|()| c)
            }
            _ => None,
        },
        CoverConn::Down => None,
    };
    let now = crate::clock::unix_now_with(0);
    match &cover {
        Some(_) => {
            if let Ok(mut r) = server.cover_down.lock() {
                r.clear();
            }
        }
        None => {
            let say = server
                .cover_down
                .lock()
                .map_or(wirepact_proto::repeats::Say::Quiet, |mut r| r.note("unreachable", now, 60));
            match say {
                wirepact_proto::repeats::Say::New => {
                    tracing::warn!(cover = cover_addr, "the cover site is unreachable; serving the decoy page instead");
                }
                wirepact_proto::repeats::Say::Again(n) => {
                    tracing::warn!(cover = cover_addr, times = n, "the cover site is still unreachable");
                }
                wirepact_proto::repeats::Say::Quiet => {}
            }
        }
    }
    cover
}

/// Reads the first flight of `r` into `flight` (which may hold its first bytes already) until it
/// is a whole ClientHello, cannot become one, or `r` ends: how the provider reads a flight
/// without a cover to relay to (to see whether it was dressed; [`first_flight`] does this with
/// one), and how tests capture a client's hello. Unbounded in time: callers put a deadline
/// around it.
///
/// # Errors
/// Reading `r` failed.
pub async fn read_client_hello<R: AsyncRead + Unpin>(r: &mut R, flight: &mut Vec<u8>) -> std::io::Result<Flight> {
    let mut chunk = [0u8; 4096];
    loop {
        let now = crate::hello::flight(flight);
        if now != Flight::Partial {
            return Ok(now);
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Flight::Partial);
        }
        flight.extend_from_slice(&chunk[..n]);
    }
}

/// [`read_client_hello`] within `deadline`, from an empty flight.
async fn read_flight(tcp: &mut TcpStream, deadline: Duration) -> Result<Vec<u8>, TransportError> {
    let mut flight = Vec::with_capacity(2048);
    tokio::time::timeout(deadline, read_client_hello(tcp, &mut flight))
        .await
        .map_err(|_| TransportError::Timeout(deadline))??;
    Ok(flight)
}

/// The tunnel's own TLS for `tcp`, `flight` (bytes already read from it) replayed first; a
/// ClientHello dressed as Chrome's for this provider is handed to TLS as the client's TLS stack
/// built it ([`crate::chrome`]), since both ends hash that one.
async fn own_tls(
    server: &TlsServer,
    flight: Vec<u8>,
    tcp: TcpStream,
    ctx: AcceptContext<'_>,
    handshaken: Box<dyn FnOnce() + Send + '_>,
) -> Result<Accepted, TransportError> {
    let flight = match crate::chrome::undress(&flight, server.tunnel_key) {
        Some((mut hello, used)) => {
            hello.extend_from_slice(&flight[used..]);
            hello
        }
        None => flight,
    };
    accept_observed(
        &server.acceptor,
        Prefixed::new(flight, tcp),
        ctx.checker,
        ctx.lookup,
        ctx.now,
        ctx.deadline,
        ctx.credit_until,
        handshaken,
    )
    .await
}

async fn accept_with_cover(
    server: &TlsServer,
    cover_addr: &str,
    mut tcp: TcpStream,
    ctx: AcceptContext<'_>,
    handshaken: Box<dyn FnOnce() + Send + '_>,
) -> Result<Accepted, TransportError> {
    let (flight, cover) = match first_flight(&mut tcp, cover_addr, ctx.deadline).await {
        FirstFlight::Gone => return Ok(Accepted::Cover),
        FirstFlight::Hello(flight, cover) => {
            let ours = match &server.gate {
                None => true,
                Some(gate) => {
                    use crate::hello_auth::HelloAuthError;
                    let verdict = match crate::hello::ClientHello::parse(&flight) {
                        Ok((hello, _)) => gate.lock().map_or(Err(HelloAuthError::NotACustomer), |mut g| {
                            g.check(&hello, crate::clock::unix_now_with(0), &|k| ctx.lookup.is_session_key(k))
                        }),
                        Err(_) => Err(HelloAuthError::NotACustomer),
                    };
                    if let Err(e) = &verdict {
                        tracing::debug!(reason = %e, "a ClientHello without a customer's proof; relayed to the cover");
                    }
                    verdict.is_ok()
                }
            };
            if ours {
                // The cover saw (at most) a ClientHello and a vanishing client, as it does
                // every day; the customer never waited for it.
                if let CoverConn::Dialling(h) = &cover {
                    h.abort();
                }
                drop(cover);
                return own_tls(server, flight, tcp, ctx, handshaken).await;
            }
            (flight, cover)
        }
        FirstFlight::Cover(flight, cover) => (flight, cover),
    };
    match cover_holding(server, cover_addr, cover, &flight).await {
        Some(cover) => {
            // The cover has the visitor's bytes already: it answers (a hello with its own
            // certificate).
            relay_to_cover(tcp, cover).await;
            Ok(Accepted::Cover)
        }
        // No cover to hand it to: the decoy answers, as without one.
        None => own_tls(server, flight, tcp, ctx, handshaken).await,
    }
}

impl Acceptor for TlsServer {
    fn accept<'a>(
        &'a self,
        tcp: TcpStream,
        ctx: AcceptContext<'a>,
        handshaken: Box<dyn FnOnce() + Send + 'a>,
    ) -> Dialing<'a, Accepted> {
        if let Some(cover) = &self.cover {
            return Box::pin(accept_with_cover(self, cover, tcp, ctx, handshaken));
        }
        Box::pin(async move {
            let mut tcp = tcp;
            let flight = read_flight(&mut tcp, ctx.deadline).await?;
            own_tls(self, flight, tcp, ctx, handshaken).await
        })
    }
}

/// Provider side: TLS handshake, then the first message decides between tunnel and decoy.
///
/// `now` is the current unix time (passed in); `credit_until` is sent in `AuthOk`. Each step
/// has `deadline`: the TLS handshake (a connection that never sends a ClientHello, or stalls
/// in the middle, is closed when it runs out), the first message, and the decoy's answer.
/// `handshaken` is called once the TLS handshake has completed (the provider's connection
/// budget then keeps this connection over idle and stalled ones).
#[allow(clippy::too_many_arguments)]
async fn accept_observed(
    acceptor: &TlsAcceptor,
    tcp: Prefixed<TcpStream>,
    checker: &Mutex<AuthChecker>,
    lookup: &(impl SessionLookup + Sync + ?Sized),
    now: u64,
    deadline: Duration,
    credit_until: u64,
    handshaken: impl FnOnce(),
) -> Result<Accepted, TransportError> {
    let io = tokio::io::BufReader::with_capacity(WIRE_READ_BUFFER, tcp);
    let mut tls =
        tokio::time::timeout(deadline, acceptor.accept(io)).await.map_err(|_| TransportError::Timeout(deadline))??;
    handshaken();
    // One deadline for the first message and the decoy's patience, drawn per connection
    // (85-115 % of `deadline`): no exact timeout to measure, and every kind of garbage waits
    // the same.
    let first_message_deadline = deadline.mul_f64(rand::random_range(0.85..1.15));
    let first_at = tokio::time::Instant::now() + first_message_deadline;
    let mut buf = Vec::with_capacity(256);
    let frame = tokio::time::timeout_at(first_at, read_first_frame(&mut tls, &mut buf)).await;
    let verdict = match frame {
        Ok(Ok(Some((f, used)))) => {
            // A lookup backed by the chain may fetch a session it has not seen yet.
            if let Frame::SessionAuth { session_id, .. } = &f {
                let _ = tokio::time::timeout(first_message_deadline, lookup.resolve(*session_id)).await;
            }
            let r = checker.lock().map_err(|_| TransportError::NotATunnel)?.check(&f, now, lookup);
            if let Err(e) = &r {
                tracing::debug!(reason = %e, "session auth refused; serving decoy");
            }
            r.ok().map(|id| (id, used))
        }
        _ => None,
    };
    match verdict {
        Some((session_id, used)) => {
            tls.write_all(&Frame::AuthOk { credit_until }.to_bytes()).await?;
            tls.flush().await?;
            let pending = buf.split_off(used);
            // The client waits for AuthOk before it sends more: nothing is in flight, and the
            // tunnel's own record layer takes over here, as on the client.
            let (wire, conn) = tls.into_inner();
            let buffered = wire.buffer().to_vec();
            let secrets = conn.dangerous_extract_secrets()?;
            let stream = RecordStream::tls(wire.into_inner(), &secrets, &buffered)?;
            Ok(Accepted::Session { stream: Box::new(stream), session_id, pending })
        }
        None => {
            // A visitor that stops reading cannot hold the connection open either.
            let _ = tokio::time::timeout(deadline * 2, serve_decoy(&mut tls, buf, first_at)).await;
            Ok(Accepted::Decoy)
        }
    }
}

/// Reads one frame if the connection starts like one (and how many bytes it took); `None`
/// if it does not (e.g. HTTP), or ends first. The bytes read stay in `buf`.
pub(crate) async fn read_first_frame<R: AsyncRead + Unpin>(
    tls: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<(Frame, usize)>, TransportError> {
    let mut chunk = [0u8; 512];
    loop {
        match Frame::decode(buf) {
            Ok((f, used)) => return Ok(Some((f, used))),
            Err(FrameError::Incomplete { .. }) => {}
            Err(_) => return Ok(None),
        }
        if !buf.is_empty() && buf[0] != PROTOCOL_VERSION {
            return Ok(None);
        }
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP response as the decoy's web server writes it (with a `Date`, as every server does).
fn decoy_response(status: &str, content_type: &str, body: &str, with_body: bool) -> Vec<u8> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut r = format!(
        "HTTP/1.1 {status}\r\nServer: nginx\r\nDate: {date}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

fn error_page(status: &str) -> String {
    format!("<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>\n")
}

/// Answers like a small web server: the page at `/` (headers only for HEAD), 404 for other
/// paths, 405 for other methods, and 400 for anything that is not HTTP — after a whole line or
/// at `until`, whatever its first byte was (the frame-version byte waits like any other).
async fn serve_decoy(tls: &mut server::TlsStream<ServerWire>, mut buf: Vec<u8>, until: tokio::time::Instant) {
    // An HTTP request line starts with an upper-case method token and a space ("GET /").
    let looks_http = |b: &[u8]| {
        let method = b.iter().take(9).take_while(|c| c.is_ascii_uppercase()).count();
        method >= 3 && b.get(method) == Some(&b' ')
    };
    let mut chunk = [0u8; 1024];
    if buf.is_empty() {
        // Silence: wait for a first byte as long as anyone else would have waited.
        if let Ok(Ok(n)) = tokio::time::timeout_at(until, tls.read(&mut chunk)).await {
            buf.extend_from_slice(&chunk[..n]);
        }
        if buf.is_empty() {
            let _ = tls.shutdown().await;
            return;
        }
    }
    let http = looks_http(&buf);
    // A request's head ends with a blank line; anything else is answered once a line ends.
    let complete = |b: &[u8]| if http { b.windows(4).any(|w| w == b"\r\n\r\n") } else { b.contains(&b'\n') };
    let read_more = async {
        while !complete(&buf) && buf.len() < 16 * 1024 {
            match tls.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout_at(until, read_more).await;
    let resp = if http {
        let line = buf.split(|c| *c == b'\n').next().unwrap_or_default();
        let mut parts = line.split(|c| *c == b' ');
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let path = path.split(|c| *c == b'?').next().unwrap_or_default();
        let html = "text/html; charset=utf-8";
        match (method, path) {
            (b"GET" | b"HEAD", b"/" | b"/index.html") => decoy_response("200 OK", html, DECOY_PAGE, method == b"GET"),
            (b"GET" | b"HEAD", _) => {
                decoy_response("404 Not Found", html, &error_page("404 Not Found"), method == b"GET")
            }
            _ => decoy_response("405 Not Allowed", html, &error_page("405 Not Allowed"), true),
        }
    } else {
        decoy_response("400 Bad Request", "text/html", &error_page("400 Bad Request"), true)
    };
    let _ = tls.write_all(&resp).await;
    let _ = tls.shutdown().await;
}

/// Keepalive probes after this long idle, and between them: Chrome's 45 s, so the probes a
/// censor could time are a browser's (a session never idles that long: its pings are jittered
/// control records; see `control`).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(45);
/// Unacknowledged data older than this kills the connection.
pub const USER_TIMEOUT: Duration = Duration::from_secs(8);

/// A peer that loses power or its route sends no reset: without help the kernel notices only
/// after minutes. A TCP user timeout of 8 s on unacknowledged data makes the tunnel fail within
/// seconds while data flows; when it does not, the client's pings (its SLA watch's stall) and
/// the provider's control-silence rule notice a dead peer, in records that look like any
/// other. Keepalive stays on with a browser's cadence as the last resort.
///
/// # Errors
/// If the socket options cannot be set.
pub fn detect_dead_peer(tcp: &TcpStream) -> std::io::Result<()> {
    let s = socket2::SockRef::from(tcp);
    let ka = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_IDLE).with_retries(3);
    s.set_tcp_keepalive(&ka)?;
    #[cfg(target_os = "linux")]
    s.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    Ok(())
}

/// A connected, authenticated tunnel on the client side, whatever the transport.
pub struct ClientTunnel {
    pub stream: BoxIo,
    /// The provider's first credit line.
    pub credit_until: u64,
    /// Bytes the provider sent right after `AuthOk` (already read from the stream).
    pub pending: Vec<u8>,
}

impl std::fmt::Debug for ClientTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTunnel")
            .field("credit_until", &self.credit_until)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// [`connect`]'s tunnel: the TLS stream itself (its negotiated parameters and socket can be
/// inspected), before [`TlsTransport`] boxes it into a [`ClientTunnel`].
#[derive(Debug)]
pub struct TlsTunnel {
    /// TLS 1.3 records over the connection, after the handshake (see [`crate::record`]).
    pub stream: RecordStream<TcpStream>,
    /// The negotiated cipher suite.
    pub cipher_suite: Option<rustls::CipherSuite>,
    /// The provider's first credit line.
    pub credit_until: u64,
    /// The negotiated key exchange group (X25519MLKEM768 unless the server could not).
    pub key_exchange: Option<NamedGroup>,
    /// Bytes the provider sent right after `AuthOk` (already read from the stream).
    pub pending: Vec<u8>,
}

/// TCP (no delay, dead-peer detection) + TLS pinned to `tunnel_key`: the client's way in,
/// for a session or just to time the handshake.
async fn dial(
    addr: std::net::SocketAddr,
    server_name: &str,
    tunnel_key: B256,
    hello_key: Option<&PrivateKeySigner>,
) -> Result<client::TlsStream<Wire>, TransportError> {
    let tcp = TcpStream::connect(addr).await?;
    tls_over(tcp, server_name, tunnel_key, hello_key).await
}

/// A certificate the pin refused becomes [`TransportError::OtherCertificate`], and so does a
/// server whose handshake records the client cannot decrypt: one that hashed the hello as it
/// came, dressed as Chrome's, instead of undressing it (a cover site, another provider, any
/// TLS server that is not the pinned one), so the two transcripts differ before a certificate
/// is ever shown.
fn classify_handshake(e: std::io::Error) -> TransportError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::DecryptError) => TransportError::OtherCertificate,
        _ => TransportError::Io(e),
    }
}

/// The TLS handshake of [`dial`] over a connected `tcp`.
async fn tls_over(
    tcp: TcpStream,
    server_name: &str,
    tunnel_key: B256,
    hello_key: Option<&PrivateKeySigner>,
) -> Result<client::TlsStream<Wire>, TransportError> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TransportError::BadServerName(server_name.to_owned()))?;
    let connector = TlsConnector::from(client_config(tunnel_key)?);
    tcp.set_nodelay(true)?;
    detect_dead_peer(&tcp)?;
    let Some(key) = hello_key else {
        return connector.connect(name, wire(tcp, tunnel_key)).await.map_err(classify_handshake);
    };
    // The proof rides in the ClientHello's random fields and covers the key share, so the
    // share is made first; rustls takes both from this thread's script while `connect`
    // builds the hello, synchronously, before it returns its future.
    let share = HELLO_GROUP.start()?;
    let unix = crate::clock::unix_now_with(0);
    let (random, session_id) = crate::hello_auth::sign(key, tunnel_key, unix, server_name, share.pub_key())?;
    HELLO_SCRIPT.with(|h| {
        *h.borrow_mut() = Some(HelloScript { session_id: Some(session_id), random: Some(random), share: Some(share) });
    });
    let connecting = connector.connect(name, wire(tcp, tunnel_key));
    HELLO_SCRIPT.with(|h| h.borrow_mut().take());
    connecting.await.map_err(classify_handshake)
}

/// How long a customer keeps redialling a provider whose cover site answered its signed
/// hello: a session just opened reaches the provider's view of the chain a poll later
/// ([`GATE_RETRY_FIRST`] doubling up to 1 s between tries).
pub const GATE_CATCH_UP: Duration = Duration::from_secs(8);
/// The first pause before such a redial.
pub const GATE_RETRY_FIRST: Duration = Duration::from_millis(250);

/// The group whose key share a customer's hello proof covers (the client offers it first).
static HELLO_GROUP: &dyn rustls::crypto::SupportedKxGroup = rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768;

/// What the next ClientHello built on this thread carries in place of randomness: the proof
/// (`hello_auth`) and the key share it covers.
struct HelloScript {
    session_id: Option<[u8; 32]>,
    random: Option<[u8; 32]>,
    share: Option<Box<dyn rustls::crypto::ActiveKeyExchange>>,
}

thread_local! {
    static HELLO_SCRIPT: std::cell::RefCell<Option<HelloScript>> = const { std::cell::RefCell::new(None) };
}

/// The client's randomness: the system's, except the two 32-byte hello fields when a script
/// is set (rustls fills the session id first, then the random).
#[derive(Debug)]
struct ScriptedRandom;

impl rustls::crypto::SecureRandom for ScriptedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        let scripted = HELLO_SCRIPT.with(|h| {
            let mut h = h.borrow_mut();
            let script = h.as_mut()?;
            if buf.len() != 32 {
                return None;
            }
            script.session_id.take().or_else(|| script.random.take())
        });
        match scripted {
            Some(v) => {
                buf.copy_from_slice(&v);
                Ok(())
            }
            None => SYSTEM_RANDOM.fill(buf),
        }
    }
}

/// The system's randomness, as rustls' aws-lc provider draws it.
static SYSTEM_RANDOM: std::sync::LazyLock<&'static dyn rustls::crypto::SecureRandom> =
    std::sync::LazyLock::new(|| rustls::crypto::aws_lc_rs::default_provider().secure_random);

/// The client's first key-exchange group: the scripted share when one is set.
#[derive(Debug)]
struct ScriptedKx;

impl rustls::crypto::SupportedKxGroup for ScriptedKx {
    fn start(&self) -> Result<Box<dyn rustls::crypto::ActiveKeyExchange>, rustls::Error> {
        let scripted = HELLO_SCRIPT.with(|h| h.borrow_mut().as_mut().and_then(|s| s.share.take()));
        match scripted {
            Some(share) => Ok(share),
            None => HELLO_GROUP.start(),
        }
    }
    fn name(&self) -> NamedGroup {
        HELLO_GROUP.name()
    }
    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        HELLO_GROUP.usable_for_version(version)
    }
}

static SCRIPTED_RANDOM: ScriptedRandom = ScriptedRandom;
static SCRIPTED_KX: ScriptedKx = ScriptedKx;

/// Client side: TCP + TLS (pinned) + session auth; waits for `AuthOk` up to `deadline`.
pub async fn connect(
    addr: std::net::SocketAddr,
    server_name: &str,
    tunnel_key: B256,
    auth: &Frame,
    deadline: Duration,
) -> Result<TlsTunnel, TransportError> {
    connect_with(addr, server_name, tunnel_key, None, auth, deadline).await
}

/// [`connect`], the ClientHello carrying the proof that `hello_key` (the session key) is a
/// customer's (see [`crate::hello_auth`]), for providers that relay everyone else to a cover.
pub async fn connect_with(
    addr: std::net::SocketAddr,
    server_name: &str,
    tunnel_key: B256,
    hello_key: Option<&PrivateKeySigner>,
    auth: &Frame,
    deadline: Duration,
) -> Result<TlsTunnel, TransportError> {
    let work = async {
        let started = tokio::time::Instant::now();
        let mut pause = GATE_RETRY_FIRST;
        let mut tls = loop {
            match dial(addr, server_name, tunnel_key, hello_key).await {
                // A signed hello met the cover: the provider has not seen this session yet.
                Err(TransportError::OtherCertificate)
                    if hello_key.is_some() && started.elapsed() + pause <= GATE_CATCH_UP =>
                {
                    tracing::debug!(?pause, "the provider's cover answered a customer's hello; redialling");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                r => break r?,
            }
        };
        let key_exchange = tls.get_ref().1.negotiated_key_exchange_group().map(|g| g.name());
        let cipher_suite = tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite());
        let (credit_until, pending) = authenticate(&mut tls, auth).await?;
        // From here the tunnel's own record layer carries the session (the same TLS records,
        // through fewer copies); the provider switches at the same point.
        let (wire, conn) = tls.into_inner();
        let buffered = wire.buffer().to_vec();
        let secrets = conn.dangerous_extract_secrets()?;
        let stream = RecordStream::tls(wire.into_inner().into_inner(), &secrets, &buffered)?;
        Ok(TlsTunnel { stream, credit_until, key_exchange, cipher_suite, pending })
    };
    tokio::time::timeout(deadline, work).await.map_err(|_| TransportError::Timeout(deadline))?
}

/// The session's auth over a transport's stream, whatever the transport: sends `auth`, reads
/// `AuthOk` (the first credit line, and any bytes the provider sent after it).
pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    auth: &Frame,
) -> Result<(u64, Vec<u8>), TransportError> {
    s.write_all(&auth.to_bytes()).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    loop {
        match Frame::decode(&buf) {
            Ok((Frame::AuthOk { credit_until }, used)) => return Ok((credit_until, buf.split_off(used))),
            Ok((Frame::Error { code, message }, _)) => return Err(TransportError::Refused { code, message }),
            Ok(_) => return Err(TransportError::NotATunnel),
            Err(FrameError::Incomplete { .. }) => {}
            Err(_) if buf.first() != Some(&PROTOCOL_VERSION) => return Err(TransportError::NotATunnel),
            Err(e) => return Err(e.into()),
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(TransportError::NotATunnel);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// How long TCP connect plus the pinned TLS handshake to a provider take: what a client
/// measures to rank candidates. The connection is closed without authenticating (the
/// provider sees a visitor that left). A certificate other than `tunnel_key` is what a
/// provider with a cover site shows a client without a session, so it is no error: see
/// [`Reach`].
pub async fn handshake_time(
    addr: std::net::SocketAddr,
    server_name: &str,
    tunnel_key: B256,
    deadline: Duration,
) -> Result<Reach, TransportError> {
    let start = tokio::time::Instant::now();
    let work = async {
        let tcp = TcpStream::connect(addr).await?;
        let connect = start.elapsed();
        match tls_over(tcp, server_name, tunnel_key, None).await {
            Ok(mut tls) => {
                let took = start.elapsed();
                let _ = tls.shutdown().await;
                Ok(Reach { took, keyed: true })
            }
            Err(TransportError::OtherCertificate) => Ok(Reach { took: connect * 2, keyed: false }),
            Err(e) => Err(e),
        }
    };
    tokio::time::timeout(deadline, work).await.map_err(|_| TransportError::Timeout(deadline))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Customers and probes send the endpoint's host name, as a browser would; an address
    /// gets the configured name, never the address itself (no browser sends an IP as SNI).
    #[test]
    fn the_server_name_is_the_endpoints_host_name_or_the_fallback() {
        assert_eq!(server_name_for("vpn1.Alice.net:443", "x.example"), "vpn1.alice.net");
        assert_eq!(server_name_for("203.0.113.9:443", "x.example"), "x.example");
        assert_eq!(server_name_for("[2001:db8::1]:443", "x.example"), "x.example");
        assert_eq!(server_name_for("localhost:9000", "x.example"), "localhost");
        assert_eq!(server_name_for(":443", "x.example"), "x.example");
        assert_eq!(server_name_for("bad name:443", "x.example"), "x.example");
    }
}
