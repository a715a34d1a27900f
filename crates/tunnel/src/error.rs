//! The session's errors (what each says to do next is in [`crate::kind`]).

use wirepact_proto::FrameError;

use crate::meter::MeterError;
use crate::mux::MuxError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mux(#[from] MuxError),
    #[error("bad control frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer did not open the control stream in time")]
    NoControl,
    #[error("the provider refused the stream (SOCKS reply {0})")]
    StreamRefused(u8),
    #[error("timed out")]
    Timeout,
    #[error("metering: {0}")]
    Meter(#[from] MeterError),
    #[error("could not persist a receipt: {0}")]
    Store(#[from] StoreError),
    #[error("no such session is being served")]
    NoSession,
    #[error("the session already has {0} lanes open")]
    TooManyLanes(usize),
    #[error("a session lock was poisoned by a panic (a bug)")]
    Poisoned,
    #[error("the client sent nothing on its control stream for {} s: it is gone", crate::control::CONTROL_SILENCE.as_secs())]
    Silent,
}

impl From<crate::wire::ReadFrameError> for SessionError {
    fn from(e: crate::wire::ReadFrameError) -> Self {
        match e {
            crate::wire::ReadFrameError::Io(e) => Self::Io(e),
            crate::wire::ReadFrameError::Frame(e) => Self::Frame(e),
        }
    }
}

/// Why a receipt could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk or the database failed (full, read-only, gone).
    #[error("the receipt database failed: {0}")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps the store's own error.
    pub fn io(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Io(Box::new(e))
    }
}
