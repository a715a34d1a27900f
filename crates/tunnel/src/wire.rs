//! The tunnel's byte namespace, in one place: what the first byte of a connection and of a
//! stream says it carries, and how control frames are read off a stream.
//!
//! A connection (after the transport's authentication) starts with one byte:
//! [`CONN_SESSION`] (the session itself, multiplexed) or [`CONN_LANE`] (one stream of an
//! existing session on a connection of its own). Every stream the client opens in the
//! session's multiplexer starts with one byte too: [`STREAM_CONTROL`] (one per session:
//! `Receipt` and `Ping` frames go up, `ReceiptAck`, `CreditGrant` and `Pong` come down),
//! [`STREAM_DATA`] (a TCP relay) or [`STREAM_UDP`] (a UDP flow). A data or UDP stream (and a
//! lane) then carries a target header (`socks::Target::encode`); the provider answers one
//! status byte (a SOCKS5 reply code) and relays. Payload bytes after header and status are what
//! both sides count. Streams the provider opens towards the client are refused, never counted.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use wirepact_proto::{Frame, FrameError};

/// A connection carrying the session (its multiplexer).
pub const CONN_SESSION: u8 = 0;
/// A connection carrying one stream of an existing session (a lane).
pub const CONN_LANE: u8 = 1;

/// The session's control stream.
pub const STREAM_CONTROL: u8 = 0;
/// A TCP relay to a target.
pub const STREAM_DATA: u8 = 1;
/// A UDP flow to a target (datagrams framed `len u16 | payload`).
pub const STREAM_UDP: u8 = 2;

/// How long a stream may take to send its header or answer its status byte.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the next control frame; `None` when the stream ended cleanly between frames.
///
/// # Errors
/// The stream failed, or sent bytes that are not a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<Option<Frame>, ReadFrameError> {
    let mut chunk = [0u8; 512];
    loop {
        match Frame::decode(buf) {
            Ok((f, used)) => {
                buf.drain(..used);
                return Ok(Some(f));
            }
            Err(FrameError::Incomplete { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Why a control frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad control frame: {0}")]
    Frame(#[from] FrameError),
}
