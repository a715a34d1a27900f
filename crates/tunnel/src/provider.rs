//! The provider's side of a session: what it needs to serve one, and the driver of its
//! [`ProviderControl`]: frames in, steps out, receipts made durable before they are
//! acknowledged. The data streams it accepts go to [`crate::relay`] and [`crate::udp`].

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::sol_types::Eip712Domain;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wirepact_proto::Frame;

use crate::clock::{instant_now, sleep_until, unix_now_with};
use crate::control::{ProviderControl, ProviderStep};
use crate::egress::EgressPolicy;
use crate::error::{SessionError, StoreError};
use crate::impair::Impairment;
use crate::lane::{read_opening, LaneTarget, Opening, ProviderLanes, LANE_IDLE};
use crate::meter::ProviderMeter;
use crate::mux::{self, MuxStream};
use crate::relay::{serve_stream, Credit};
use crate::udp::serve_udp_stream;
use crate::wire::{read_frame, HEADER_TIMEOUT, STREAM_CONTROL, STREAM_DATA, STREAM_UDP};

/// Where the provider keeps receipts; `store` must be durable when it returns.
pub trait ReceiptStore: Send + Sync + 'static {
    fn store(&self, session: B256, cumulative: u64, timestamp: u64, signature: [u8; 65]) -> Result<(), StoreError>;
}

/// What the provider needs to serve one session.
#[derive(Debug, Clone)]
pub struct ProviderSession {
    pub domain: Eip712Domain,
    pub session_id: B256,
    pub session_key: Address,
    pub window: u64,
    /// Most bytes forwarded in all: what the deposit pays for (`u64::MAX`: no cap).
    pub max_bytes: u64,
    pub egress: EgressPolicy,
    /// Test knobs (shaping, extra latency); off unless a test or the devnet turns them on.
    pub impair: Impairment,
    pub dial_timeout: Duration,
    /// Where lanes of this session find its meter (`None`: the session takes no lanes).
    pub lanes: Option<ProviderLanes>,
    /// The session's `openedAt` on chain: receipts dated earlier are refused (unclaimable).
    pub opened_at: u64,
    /// The chain's clock minus this machine's, seconds: receipts are judged by the chain's
    /// time, as the market will judge them.
    pub clock_offset_secs: i64,
}

/// What the provider saw of a session once it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderStats {
    pub forwarded: u64,
    pub receipted: u64,
}

/// Serves one authenticated connection, whatever it carries: the session itself (until the
/// client closes its control stream; its stats come back) or one of its lanes (`None`).
/// A provider that must vet a session before serving it reads [`read_opening`] itself.
pub async fn serve_connection<S>(
    mut io: S,
    cfg: ProviderSession,
    store: Arc<dyn ReceiptStore>,
) -> Result<Option<ProviderStats>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match read_opening(&mut io, LANE_IDLE).await {
        Ok(Opening::Session) => serve_provider(io, cfg, store).await.map(Some),
        Ok(Opening::Lane) => match &cfg.lanes {
            Some(lanes) => lanes.serve(io, cfg.session_id).await.map(|()| None),
            None => Err(SessionError::NoSession),
        },
        Err(e) => Err(SessionError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

/// Serves one authenticated session (after [`read_opening`] said [`Opening::Session`]) until
/// the client closes its control stream.
pub async fn serve_provider<S>(
    io: S,
    cfg: ProviderSession,
    store: Arc<dyn ReceiptStore>,
) -> Result<ProviderStats, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (_handle, mut inbound) = mux::spawn(io, false);
    let meter = ProviderMeter::new(cfg.window)?.with_limit(cfg.max_bytes).opened_at(cfg.opened_at);
    let credit = Arc::new(Credit::new(ProviderControl::new(
        cfg.domain.clone(),
        cfg.session_id,
        cfg.session_key,
        meter,
        instant_now(),
        rand::random(),
    )));
    let lane_target = Arc::new(LaneTarget {
        credit: credit.clone(),
        egress: cfg.egress.clone(),
        impair: cfg.impair.clone(),
        dial_timeout: cfg.dial_timeout,
        open: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    });
    if let Some(lanes) = &cfg.lanes {
        lanes.register(cfg.session_id, &lane_target);
    }

    let data_credit = credit.clone();
    let egress = cfg.egress.clone();
    let dial_timeout = cfg.dial_timeout;
    let impair = cfg.impair.clone();
    let (control_tx, control_rx) = tokio::sync::oneshot::channel::<MuxStream>();
    let acceptor = tokio::spawn(async move {
        let mut control_tx = Some(control_tx);
        while let Some(mut stream) = inbound.recv().await {
            let mut kind = [0u8; 1];
            match tokio::time::timeout(HEADER_TIMEOUT, stream.read_exact(&mut kind)).await {
                Ok(Ok(_)) if kind[0] == STREAM_CONTROL => {
                    // Only the first control stream counts; others are dropped.
                    if let Some(tx) = control_tx.take() {
                        let _ = tx.send(stream);
                    }
                }
                Ok(Ok(_)) if kind[0] == STREAM_DATA => {
                    let c = data_credit.clone();
                    let e = egress.clone();
                    let i = impair.clone();
                    tokio::spawn(async move {
                        if let Err(err) = serve_stream(stream, c, &e, dial_timeout, i).await {
                            tracing::debug!(error = %err, "stream ended");
                        }
                    });
                }
                Ok(Ok(_)) if kind[0] == STREAM_UDP => {
                    let c = data_credit.clone();
                    let e = egress.clone();
                    tokio::spawn(async move {
                        if let Err(err) = serve_udp_stream(stream, c, &e).await {
                            tracing::debug!(error = %err, "UDP flow ended");
                        }
                    });
                }
                _ => tracing::debug!("stream with an unknown type or no header dropped"),
            }
        }
    });
    let control = tokio::time::timeout(HEADER_TIMEOUT, control_rx).await;
    let Ok(Ok(mut control)) = control else {
        acceptor.abort();
        return Err(SessionError::NoControl);
    };

    let result = drive_provider(&mut control, &credit, &cfg, store.as_ref()).await;
    acceptor.abort();
    if let Some(lanes) = &cfg.lanes {
        lanes.unregister(cfg.session_id);
    }
    drop(lane_target);
    // Lanes still open stop forwarding: no more receipts can pay for them.
    credit.close();
    let c = credit.control()?;
    result.map(|()| ProviderStats { forwarded: c.meter().forwarded(), receipted: c.meter().receipted() })
}

/// The provider's control driver: frames in, [`ProviderControl`]'s steps out, receipts made
/// durable before they are acknowledged. Returns when the client closes its control stream;
/// a client silent for [`crate::control::CONTROL_SILENCE`] is gone (an error).
async fn drive_provider(
    control: &mut MuxStream,
    credit: &Credit,
    cfg: &ProviderSession,
    store: &dyn ReceiptStore,
) -> Result<(), SessionError> {
    let mut buf = Vec::new();
    loop {
        let deadline = credit.control()?.poll_timeout();
        // `read_frame` keeps what it read in `buf`, so dropping it at the deadline loses nothing.
        let frame = tokio::select! {
            f = read_frame(control, &mut buf) => f?,
            () = sleep_until(deadline) => {
                if credit.control()?.is_silent(instant_now()) {
                    return Err(SessionError::Silent);
                }
                continue;
            }
        };
        let Some(frame) = frame else { return Ok(()) };
        let now = unix_now_with(cfg.clock_offset_secs);
        let step = credit.control()?.on_frame(frame, now, instant_now());
        let out = match step {
            ProviderStep::Reply(reply) => {
                // The latency test knob holds pongs back too, as it does data, so a client sees it.
                if reply.iter().any(|f| matches!(f, Frame::Pong { .. })) && !cfg.impair.extra_latency.is_zero() {
                    tokio::time::sleep(cfg.impair.extra_latency).await;
                }
                reply
            }
            ProviderStep::Persist(r) => {
                store.store(cfg.session_id, r.cumulative, r.timestamp, r.signature).map_err(SessionError::Store)?;
                let out = credit.control()?.persisted(&r, now)?;
                credit.granted();
                out
            }
        };
        if !out.is_empty() {
            // One write: one record on the wire.
            let mut bytes = Vec::with_capacity(512);
            out.iter().for_each(|f| f.encode(&mut bytes));
            control.write_all(&bytes).await?;
        }
    }
}
