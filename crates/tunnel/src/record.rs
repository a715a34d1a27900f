//! The tunnel's own record layer, for both transports once their handshakes are done: whole
//! reads of up to 128 KiB decrypted in place, writes sealed into one buffer and sent up to
//! 64 KiB per system call. Two framings:
//!
//! - **TLS 1.3** (RFC 8446 §5.2): `17 03 03 len | AEAD(payload | 0x17)`, nonce = IV xor the
//!   record's sequence number, the header as associated data — byte for byte what rustls would
//!   send, from the secrets rustls extracts once the handshake and the session auth are through
//!   (`transport`). A close_notify alert ends the stream; a post-handshake message (KeyUpdate,
//!   a session ticket) is an error: both ends are ours and send none (tickets are off).
//! - **Veil**: `len(2, masked) | AES-256-GCM(payload)`, the length masked per record with an
//!   AES mask (as QUIC protects headers), so no field is readable.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use aws_lc_rs::aead::quic::{HeaderProtectionKey, AES_256 as HP_AES_256};
use aws_lc_rs::aead::{Aad, Algorithm, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::TransportError;

/// AEAD tag length (all three suites).
pub const TAG: usize = 16;
/// Largest payload of one record (TLS's maximum fragment).
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Sealed bytes held before a write waits for the socket.
const WBUF_HIGH: usize = 64 * 1024;
/// Read buffer: at least one whole record plus what one read brings.
const RBUF: usize = 128 * 1024;
/// Records sealed under one AES-GCM key at most (RFC 8446 §5.5 puts the safety margin at
/// 2^24.5 full records); the stream fails rather than go past it. That is 256 GiB per
/// connection; a client reconnects long before.
const MAX_RECORDS: u64 = 1 << 24;

/// Records sent padded at the start of every connection, TLS or veil (see [`shaped_len`]).
pub const SHAPED_RECORDS: u32 = 8;
/// Padded records are rounded up to a multiple of this, plus 0-2 more of it at random.
pub const SHAPE_BUCKET: usize = 512;

const TLS_APPLICATION_DATA: u8 = 0x17;
const TLS_ALERT: u8 = 0x15;
const TLS_HEADER: usize = 5;

/// How one direction frames its records.
enum Framing {
    Tls { iv: [u8; 12] },
    Veil { hp: Box<HeaderProtectionKey> },
}

/// One direction's keys and sequence number.
pub(crate) struct Dir {
    key: LessSafeKey,
    framing: Framing,
    seq: u64,
}

impl Dir {
    /// A veil direction: AES-256-GCM `key`, length mask key `hp`.
    pub(crate) fn veil(key: &[u8], hp: &[u8]) -> Result<Self, TransportError> {
        Ok(Self {
            key: aead(&AES_256_GCM, key)?,
            framing: Framing::Veil {
                hp: Box::new(HeaderProtectionKey::new(&HP_AES_256, hp).map_err(|_| TransportError::NoRandomness)?),
            },
            seq: 0,
        })
    }

    /// A TLS 1.3 direction from rustls' extracted traffic secret at sequence number `seq`.
    fn tls(seq: u64, secrets: &ConnectionTrafficSecrets) -> Result<Self, TransportError> {
        let (alg, key, iv): (&'static Algorithm, &[u8], &[u8]) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key.as_ref(), iv.as_ref()),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key.as_ref(), iv.as_ref()),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key.as_ref(), iv.as_ref()),
            _ => return Err(TransportError::NotATunnel),
        };
        let iv: [u8; 12] = iv.try_into().map_err(|_| TransportError::NotATunnel)?;
        Ok(Self { key: aead(alg, key)?, framing: Framing::Tls { iv }, seq })
    }

    fn header_len(&self) -> usize {
        match self.framing {
            Framing::Tls { .. } => TLS_HEADER,
            Framing::Veil { .. } => 2,
        }
    }

    fn nonce(&self) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.seq.to_be_bytes());
        if let Framing::Tls { iv } = &self.framing {
            for (b, i) in n.iter_mut().zip(iv) {
                *b ^= i;
            }
        }
        Nonce::assume_unique_for_key(n)
    }

    fn mask(hp: &HeaderProtectionKey, seq: u64) -> [u8; 2] {
        let mut sample = [0u8; 16];
        sample[..8].copy_from_slice(&seq.to_be_bytes());
        let m = hp.new_mask(&sample).unwrap_or([0; 5]);
        [m[0], m[1]]
    }

    /// The sealed length a record header announces (body after the header), if it is valid.
    fn body_len(&self, header: &[u8]) -> io::Result<usize> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("record: {what}"));
        match &self.framing {
            Framing::Tls { .. } => {
                if header[0] != TLS_APPLICATION_DATA || header[1] != 3 || header[2] != 3 {
                    return Err(bad("not a TLS 1.3 application data record"));
                }
                let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
                // Payload, content type and tag; RFC 8446 allows 256 bytes of expansion.
                if !(1 + TAG..=MAX_PAYLOAD + 256).contains(&len) {
                    return Err(bad("length out of range"));
                }
                Ok(len)
            }
            Framing::Veil { hp } => {
                let m = Self::mask(hp, self.seq);
                let len = usize::from(u16::from_be_bytes([header[0] ^ m[0], header[1] ^ m[1]]));
                // Payload and padding (at most a full record), content type, tag.
                if !(1 + TAG..=MAX_PAYLOAD + 1 + TAG).contains(&len) {
                    return Err(bad("length out of range"));
                }
                Ok(len)
            }
        }
    }

    /// Appends one sealed record of `data` (at most [`MAX_PAYLOAD`]) to `out`: its content,
    /// `content_type` and `pad` zero bytes, TLSInnerPlaintext's layout (veil records use the
    /// same inside, so they pad alike).
    fn seal(&mut self, data: &[u8], content_type: u8, pad: usize, out: &mut Vec<u8>) -> io::Result<()> {
        if self.seq >= MAX_RECORDS {
            return Err(io::Error::other("record: this connection sealed as many records as one key may; reconnect"));
        }
        let at = out.len();
        let body = data.len() + 1 + pad + TAG;
        let len = u16::try_from(body).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        match &self.framing {
            Framing::Tls { .. } => {
                out.extend_from_slice(&[TLS_APPLICATION_DATA, 3, 3]);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Framing::Veil { hp } => {
                let m = Self::mask(hp, self.seq);
                let l = len.to_be_bytes();
                out.extend_from_slice(&[l[0] ^ m[0], l[1] ^ m[1]]);
            }
        }
        let hlen = out.len() - at;
        out.extend_from_slice(data);
        out.push(content_type);
        out.resize(out.len() + pad, 0);
        let mut header = [0u8; TLS_HEADER];
        header[..hlen].copy_from_slice(&out[at..at + hlen]);
        // TLS authenticates its header; veil's is a masked length, bound by the AEAD anyway.
        let tls = matches!(self.framing, Framing::Tls { .. });
        let aad = if tls { Aad::from(&header[..hlen]) } else { Aad::from(&header[..0]) };
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(), aad, &mut out[at + hlen..])
            .map_err(|_| io::Error::other("record: sealing failed"))?;
        out.extend_from_slice(tag.as_ref());
        self.seq += 1;
        Ok(())
    }
}

/// The padded length of one of a connection's first records of `len` bytes: rounded up to
/// [`SHAPE_BUCKET`] plus 0-2 buckets at random (`extra`), never past a record's maximum. An
/// app's own TLS handshake inside the tunnel (ClientHello, the server's flight, Finished) is
/// what a connection's first records carry; padded, their sizes tell a censor only the bucket,
/// blurred by a kilobyte of noise.
#[must_use]
pub fn shaped_len(len: usize, extra: usize) -> usize {
    (len.div_ceil(SHAPE_BUCKET).max(1) * SHAPE_BUCKET + extra.min(2) * SHAPE_BUCKET).min(MAX_PAYLOAD)
}

pub(crate) fn aead(alg: &'static Algorithm, key: &[u8]) -> Result<LessSafeKey, TransportError> {
    UnboundKey::new(alg, key).map(LessSafeKey::new).map_err(|_| TransportError::NoRandomness)
}

/// A connection after its handshake: records both ways, through the tunnel's own buffers.
pub struct RecordStream<S> {
    inner: S,
    tx: Dir,
    rx: Dir,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// A decrypted record being handed out: (next byte, end of payload, end of record).
    plain: Option<(usize, usize, usize)>,
    /// The peer said close_notify: the stream has ended.
    closed: bool,
    wbuf: Vec<u8>,
    woff: usize,
    /// close_notify is sealed (TLS framing) and on its way.
    shut: bool,
    /// First records still to pad ([`shaped_len`]).
    shape_left: u32,
}

impl<S> std::fmt::Debug for RecordStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream").field("sent", &self.tx.seq).field("received", &self.rx.seq).finish()
    }
}

impl<S> RecordStream<S> {
    /// Records over `inner`; `buffered` are bytes already read from it (whole or partial
    /// records).
    pub(crate) fn new(inner: S, tx: Dir, rx: Dir, buffered: &[u8]) -> Self {
        let mut rbuf = vec![0u8; RBUF.max(buffered.len() + MAX_PAYLOAD + 512)];
        rbuf[..buffered.len()].copy_from_slice(buffered);
        Self {
            inner,
            tx,
            rx,
            rbuf,
            rstart: 0,
            rend: buffered.len(),
            plain: None,
            closed: false,
            wbuf: Vec::with_capacity(WBUF_HIGH + MAX_PAYLOAD + 64),
            woff: 0,
            shut: false,
            shape_left: SHAPED_RECORDS,
        }
    }

    /// TLS 1.3 records with the secrets rustls extracted after its handshake.
    ///
    /// # Errors
    /// A cipher suite this layer does not carry.
    pub(crate) fn tls(inner: S, secrets: &ExtractedSecrets, buffered: &[u8]) -> Result<Self, TransportError> {
        let tx = Dir::tls(secrets.tx.0, &secrets.tx.1)?;
        let rx = Dir::tls(secrets.rx.0, &secrets.rx.1)?;
        Ok(Self::new(inner, tx, rx, buffered))
    }

    /// The same stream over another connection (the handshake ran on a borrowed one).
    pub(crate) fn with_inner<T>(self, inner: T) -> RecordStream<T> {
        RecordStream {
            inner,
            tx: self.tx,
            rx: self.rx,
            rbuf: self.rbuf,
            rstart: self.rstart,
            rend: self.rend,
            plain: self.plain,
            closed: self.closed,
            wbuf: self.wbuf,
            woff: self.woff,
            shut: self.shut,
            shape_left: self.shape_left,
        }
    }

    /// The connection underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> RecordStream<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.woff < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf[self.woff..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.woff += n;
        }
        self.wbuf.clear();
        self.woff = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if let Some((pos, pend, rec_end)) = me.plain {
                let n = out.remaining().min(pend - pos);
                out.put_slice(&me.rbuf[pos..pos + n]);
                if pos + n == pend {
                    me.plain = None;
                    me.rstart = rec_end;
                } else {
                    me.plain = Some((pos + n, pend, rec_end));
                }
                return Poll::Ready(Ok(()));
            }
            if me.closed {
                return Poll::Ready(Ok(()));
            }
            let hlen = me.rx.header_len();
            let avail = me.rend - me.rstart;
            if avail >= hlen {
                let len = me.rx.body_len(&me.rbuf[me.rstart..me.rstart + hlen])?;
                if avail >= hlen + len {
                    let body = me.rstart + hlen;
                    let mut header = [0u8; TLS_HEADER];
                    header[..hlen].copy_from_slice(&me.rbuf[me.rstart..body]);
                    let tls = matches!(me.rx.framing, Framing::Tls { .. });
                    let aad = if tls { Aad::from(&header[..hlen]) } else { Aad::from(&header[..0]) };
                    let nonce = me.rx.nonce();
                    let mut plain = me
                        .rx
                        .key
                        .open_in_place(nonce, aad, &mut me.rbuf[body..body + len])
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record: failed to decrypt"))?
                        .len();
                    me.rx.seq += 1;
                    {
                        // TLSInnerPlaintext (both framings): content, the real type, then zero
                        // padding.
                        while plain > 0 && me.rbuf[body + plain - 1] == 0 {
                            plain -= 1;
                        }
                        let Some(kind) = plain.checked_sub(1).map(|i| me.rbuf[body + i]) else {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "record: no content type",
                            )));
                        };
                        plain -= 1;
                        match kind {
                            TLS_APPLICATION_DATA => {}
                            TLS_ALERT => {
                                // close_notify (and any other alert) ends the stream.
                                me.closed = true;
                                me.rstart = body + len;
                                continue;
                            }
                            _ => {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    "record: a post-handshake message (not sent by wirepact peers)",
                                )))
                            }
                        }
                    }
                    if plain == 0 {
                        me.rstart = body + len;
                    } else {
                        me.plain = Some((body, body + plain, body + len));
                    }
                    continue;
                }
                if me.rstart + hlen + len > me.rbuf.len() {
                    me.rbuf.copy_within(me.rstart..me.rend, 0);
                    me.rend -= me.rstart;
                    me.rstart = 0;
                }
            }
            if me.rstart == me.rend {
                me.rstart = 0;
                me.rend = 0;
            } else if me.rend == me.rbuf.len() {
                me.rbuf.copy_within(me.rstart..me.rend, 0);
                me.rend -= me.rstart;
                me.rstart = 0;
            }
            let mut rb = ReadBuf::new(&mut me.rbuf[me.rend..]);
            ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                if me.rend > me.rstart {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "record: cut short")));
                }
                return Poll::Ready(Ok(()));
            }
            me.rend += n;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.wbuf.len() - me.woff >= WBUF_HIGH {
            ready!(me.poll_drain(cx))?;
        }
        let n = buf.len().min(MAX_PAYLOAD);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let pad = if me.shape_left > 0 {
            me.shape_left -= 1;
            shaped_len(n, rand::random_range(0..=2)) - n
        } else {
            0
        };
        me.tx.seal(&buf[..n], TLS_APPLICATION_DATA, pad, &mut me.wbuf)?;
        // Push what the socket takes now; the rest goes with the next write or the flush.
        if let Poll::Ready(Err(e)) = me.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if !me.shut {
            me.shut = true;
            // close_notify: level warning (1), description 0 (veil ends the same way inside).
            me.tx.seal(&[1, 0], TLS_ALERT, 0, &mut me.wbuf)?;
        }
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn tls_dir() -> Dir {
        Dir { key: aead(&AES_128_GCM, &[1; 16]).expect("key"), framing: Framing::Tls { iv: [2; 12] }, seq: 5 }
    }

    #[tokio::test]
    async fn tls_records_round_trip_with_their_header_type_and_close_notify() {
        let mut wire = Vec::new();
        let mut a = RecordStream::new(&mut wire, tls_dir(), tls_dir(), &[]);
        let data = vec![0x5a; 40_000];
        a.write_all(&data).await.expect("write");
        a.shutdown().await.expect("close_notify");
        // Full records of data and the alert, each announced as TLS 1.3 application data.
        assert_eq!(&wire[..3], &[0x17, 3, 3]);
        assert_eq!(u16::from_be_bytes([wire[3], wire[4]]), 16_384 + 1 + 16);
        let mut b = RecordStream::new(&wire[..], tls_dir(), tls_dir(), &[]);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("a clean end at close_notify");
        assert!(got == data);
    }

    proptest::proptest! {
        /// Whatever arrives, a TLS-framed reader returns authenticated data, an error or the
        /// end: never a panic, never unauthenticated bytes.
        #[test]
        fn arbitrary_tls_framed_bytes_never_pass(mut wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40_000), valid_header: bool) {
            if valid_header && wire.len() >= 5 {
                wire[..3].copy_from_slice(&[0x17, 3, 3]);
            }
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            rt.block_on(async {
                let mut b = RecordStream::new(&wire[..], tls_dir(), tls_dir(), &[]);
                let mut out = Vec::new();
                let r = b.read_to_end(&mut out).await;
                proptest::prop_assert!(out.is_empty(), "{} bytes passed: {r:?}", out.len());
                Ok(())
            })?;
        }
    }

    /// The sealed lengths of the records in `wire` (TLS framing).
    fn record_lengths(wire: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 5 <= wire.len() {
            let len = usize::from(u16::from_be_bytes([wire[at + 3], wire[at + 4]]));
            out.push(len);
            at += 5 + len;
        }
        out
    }

    /// An app's TLS handshake inside the tunnel, as its messages reach the record layer: a
    /// ClientHello with a post-quantum share (1,795 bytes), a client Finished (74), a first
    /// request (517). The first records of a connection carry them padded to 512-byte buckets
    /// plus up to a kilobyte of noise: no outer record has an inner message's size, two runs
    /// differ, and bulk records later are not padded.
    #[tokio::test]
    async fn a_connections_first_records_hide_the_inner_handshakes_sizes() {
        let inner = [1_795usize, 74, 517];
        let mut runs = Vec::new();
        for _ in 0..8 {
            let mut wire = Vec::new();
            let mut a = RecordStream::new(&mut wire, tls_dir(), tls_dir(), &[]);
            for n in inner {
                a.write_all(&vec![7u8; n]).await.expect("write");
            }
            for _ in 0..SHAPED_RECORDS {
                a.write_all(&[9u8; 1000]).await.expect("write");
            }
            a.flush().await.expect("flush");
            let lens = record_lengths(&wire);
            for (i, n) in inner.iter().enumerate() {
                let payload = lens[i] - 1 - TAG;
                assert_eq!(payload % SHAPE_BUCKET, 0, "record {i}: {payload} is not a bucket");
                assert!(payload >= *n && payload <= n.div_ceil(SHAPE_BUCKET) * SHAPE_BUCKET + 2 * SHAPE_BUCKET);
            }
            // After the first SHAPED_RECORDS records, payloads go unpadded.
            assert_eq!(lens.last().copied(), Some(1000 + 1 + TAG));
            let mut b = RecordStream::new(&wire[..], tls_dir(), tls_dir(), &[]);
            let mut got = vec![0u8; 1_795 + 74 + 517];
            b.read_exact(&mut got).await.expect("the padding is stripped");
            assert!(got[..1_795].iter().all(|&c| c == 7));
            runs.push(lens[..inner.len()].to_vec());
        }
        runs.dedup();
        assert!(runs.len() > 1, "the noise never changed a size in 8 runs: {runs:?}");
    }

    /// Veil records pad the same way: an inner handshake's sizes do not show through the
    /// masked lengths either, and the far end strips the padding.
    #[tokio::test]
    async fn a_veil_connections_first_records_are_padded_too() {
        let veil_dir = || Dir::veil(&[3; 32], &[4; 32]).expect("veil keys");
        let mut wire = Vec::new();
        let mut a = RecordStream::new(&mut wire, veil_dir(), veil_dir(), &[]);
        for n in [1_795usize, 74, 517] {
            a.write_all(&vec![7u8; n]).await.expect("write");
        }
        a.flush().await.expect("flush");
        // Veil headers are masked: read the lengths back with the receiving direction.
        let mut at = 0;
        for (i, n) in [1_795usize, 74, 517].into_iter().enumerate() {
            let mut d = Dir::veil(&[3; 32], &[4; 32]).expect("keys");
            d.seq = u64::try_from(i).expect("seq");
            let len = d.body_len(&wire[at..at + 2]).expect("length");
            let payload = len - 1 - TAG;
            assert_eq!(payload % SHAPE_BUCKET, 0, "record {i}: {payload} is not a bucket");
            assert!(payload >= n, "record {i}");
            at += 2 + len;
        }
        assert_eq!(at, wire.len());
        let mut b = RecordStream::new(&wire[..], veil_dir(), veil_dir(), &[]);
        let mut got = vec![0u8; 1_795 + 74 + 517];
        b.read_exact(&mut got).await.expect("the padding is stripped");
        assert!(got[..1_795].iter().all(|&c| c == 7) && got[1_795..1_869].iter().all(|&c| c == 7));
    }
}
