//! What the caller should do next about an error: the one question every error of wirepact
//! answers (the tunnel's, the chain's, the client's), so that code decides by kind instead of
//! matching variants of another layer (the split Arti's `ErrorKind` makes).

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient: the same thing may work if tried again soon (a timeout, a stream reset).
    Retry,
    /// This provider cannot serve now (its tunnel is gone, it is not a tunnel, it refused the
    /// session): move to another one.
    Failover,
    /// The far end said no on purpose (the destination is refused by the provider's egress
    /// policy, or does not answer): tell the user; retrying or another provider will not help.
    Refused,
    /// The local setup is wrong (a bad name, an address in use): fix the configuration.
    FixConfig,
    /// Money is short (the wallet, the market balance, or the user's own spending cap).
    NeedFunds,
    /// Local storage failed (disk full, permissions): fix the machine; nothing was lost.
    Storage,
    /// The peer broke the protocol (a malformed frame, a receipt that does not add up, a
    /// certificate that is not one): stop trusting it.
    PeerMisbehaved,
    /// A bug in wirepact: report it.
    Bug,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Retry => "temporary: try again",
            Self::Failover => "this provider cannot serve: use another",
            Self::Refused => "refused by the far end",
            Self::FixConfig => "fix the configuration",
            Self::NeedFunds => "add funds (or raise the spending cap)",
            Self::Storage => "fix local storage",
            Self::PeerMisbehaved => "the peer broke the protocol",
            Self::Bug => "a bug: please report it",
        })
    }
}
