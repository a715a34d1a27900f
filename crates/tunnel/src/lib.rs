#![doc = include_str!("../README.md")]

pub mod admission;
pub mod auth;
pub mod chrome;
pub mod clock;
pub mod control;
pub mod egress;
pub mod error;
pub mod hello;
pub mod hello_auth;
pub mod impair;
pub mod kind;
pub mod lane;
pub mod meter;
pub mod mux;
pub mod provider;
pub mod record;
pub mod relay;
pub mod replay;
pub mod session;
pub mod socks;
pub mod transport;
pub mod udp;
pub mod veil;
pub mod wire;

pub use auth::{session_auth_frame, AuthChecker, AuthError, SessionLookup};
pub use kind::ErrorKind;
pub use meter::{ClientMeter, MeterError, ProviderMeter, ReceiptDue, DEFAULT_WINDOW};
pub use transport::{
    client_config, connect, handshake_time, spki_hash, AcceptContext, Accepted, Acceptor, BoxIo, ClientTunnel, Reach,
    TlsServer, TlsTransport, TlsTunnel, Transport, TransportError, TunnelIdentity,
};
