//! What the tunnel's errors say the caller should do next ([`ErrorKind`], defined in
//! `wirepact-proto` so every layer answers the same question).

pub use wirepact_proto::ErrorKind;

impl crate::transport::TransportError {
    /// What to do next.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        use crate::transport::TransportError as E;
        match self {
            // Not reachable, not answering, not a tunnel, refusing the session: this provider.
            E::Io(_) | E::Timeout(_) | E::NotATunnel | E::OtherCertificate | E::Refused { .. } => ErrorKind::Failover,
            // A certificate that is not the registered key, a broken handshake or frame.
            E::Tls(_) | E::BadCertificate | E::Frame(_) => ErrorKind::PeerMisbehaved,
            E::BadServerName(_) => ErrorKind::FixConfig,
            E::Certificate(_) | E::Sign(_) | E::NoRandomness => ErrorKind::Bug,
            E::IdentityFile { .. } | E::IdentityPem { .. } => ErrorKind::Storage,
        }
    }
}

impl crate::session::SessionError {
    /// What to do next.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        use crate::session::SessionError as E;
        match self {
            // The session's tunnel is gone or never came up: another provider (or the standby).
            E::Mux(_) | E::NoControl | E::NoSession | E::Silent => ErrorKind::Failover,
            E::Io(_) | E::Timeout | E::TooManyLanes(_) => ErrorKind::Retry,
            E::StreamRefused(_) => ErrorKind::Refused,
            E::Frame(_) | E::Meter(_) => ErrorKind::PeerMisbehaved,
            E::Store(_) => ErrorKind::Storage,
            E::Poisoned => ErrorKind::Bug,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::MuxError;
    use crate::session::SessionError;
    use crate::transport::TransportError;

    /// A dead tunnel moves the client to another provider; a destination the provider refuses
    /// does not (another provider would refuse it too, and the user must be told); a timeout is
    /// tried again; a provider that presents the wrong certificate is not trusted.
    #[test]
    fn errors_say_what_to_do_next() {
        assert_eq!(SessionError::Mux(MuxError::Closed).kind(), ErrorKind::Failover);
        assert_eq!(SessionError::StreamRefused(crate::socks::REP_NOT_ALLOWED).kind(), ErrorKind::Refused);
        assert_eq!(SessionError::Timeout.kind(), ErrorKind::Retry);
        assert_eq!(
            SessionError::Store(crate::error::StoreError::io(std::io::Error::other("disk full"))).kind(),
            ErrorKind::Storage
        );
        assert_eq!(TransportError::NotATunnel.kind(), ErrorKind::Failover);
        assert_eq!(TransportError::OtherCertificate.kind(), ErrorKind::Failover);
        assert_eq!(TransportError::BadCertificate.kind(), ErrorKind::PeerMisbehaved);
        assert_eq!(TransportError::BadServerName("x y".into()).kind(), ErrorKind::FixConfig);
        assert_eq!(ErrorKind::Failover.to_string(), "this provider cannot serve: use another");
    }
}
