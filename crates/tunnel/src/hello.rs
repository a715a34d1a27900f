//! A TLS ClientHello as a censor reads it, sans-IO: the parser a provider needs to look at a
//! first flight before deciding what to do with the connection, and the JA4 fingerprint
//! (FoxIO's JA4, the `t13d1516h2_…` strings) that a single blocking rule can match on.
//!
//! JA4 in short: `{t}{version}{d|i}{ciphers:02}{extensions:02}{alpn}` `_` the first 12 hex
//! digits of SHA-256 over the sorted cipher suites `_` the same over the sorted extensions
//! (without SNI and ALPN), an underscore, and the signature algorithms in their order. GREASE
//! values (RFC 8701) are left out everywhere; counts include SNI and ALPN.

use sha2::{Digest, Sha256};

/// Why bytes are not (yet) a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// More bytes are needed (at least this many).
    #[error("need {0} more bytes")]
    Incomplete(usize),
    /// Not a TLS handshake record, or not a ClientHello.
    #[error("not a TLS ClientHello")]
    NotTls,
    /// A length inside does not fit.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

/// The parts of a ClientHello that fingerprints and gates look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    /// The legacy compression methods (`[0]` from every TLS 1.3 client).
    pub compression: Vec<u8>,
    /// In the order sent: (type, data).
    pub extensions: Vec<(u16, Vec<u8>)>,
}

/// Largest first flight worth reading before deciding: a ClientHello with a post-quantum key
/// share is under 2 KiB, and it may span records up to this.
pub const FIRST_FLIGHT_MAX: usize = 16 * 1024 + 5;

/// How far the first bytes of a connection have come towards a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flight {
    /// They hold a whole ClientHello (perhaps with bytes after it).
    Hello,
    /// A ClientHello so far: read more.
    Partial,
    /// They cannot become one: not TLS, malformed, or longer than [`FIRST_FLIGHT_MAX`]
    /// without being whole.
    NotHello,
}

/// Where `flight` stands: one rule for every reader of first flights (the provider's gate and
/// cover relay, and the tests that capture hellos).
#[must_use]
pub fn flight(flight: &[u8]) -> Flight {
    match ClientHello::parse(flight) {
        Ok(_) => Flight::Hello,
        Err(HelloError::Incomplete(_)) if flight.len() < FIRST_FLIGHT_MAX => Flight::Partial,
        Err(_) => Flight::NotHello,
    }
}

/// Appends `items` behind its 16-bit length, as TLS encodes a vector.
///
/// # Errors
/// `items` is longer than a 16-bit length can say (`what` names it).
pub fn put_vec16(out: &mut Vec<u8>, items: &[u8], what: &'static str) -> Result<(), HelloError> {
    let len = u16::try_from(items.len()).map_err(|_| HelloError::Malformed(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(items);
    Ok(())
}

/// RFC 8701's reserved values: `0x?a?a` with both bytes equal.
#[must_use]
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_KEY_SHARE: u16 = 0x0033;
const EXT_SUPPORTED_GROUPS: u16 = 0x000a;

/// A cursor over a byte slice that fails instead of panicking.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or(HelloError::Malformed(what))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what)
    }
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
    fn done(&self) -> bool {
        self.at == self.b.len()
    }
}

fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
}

impl ClientHello {
    /// Parses the first flight of a connection: one or more TLS handshake records carrying a
    /// ClientHello. Returns it and how many bytes of `bytes` its records took.
    ///
    /// # Errors
    /// `Incomplete` while more bytes are needed; `NotTls`/`Malformed` when they are not a
    /// ClientHello (a prober's garbage, plain HTTP).
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), HelloError> {
        // Reassemble the handshake message from consecutive handshake records.
        let mut msg = Vec::new();
        let mut at = 0;
        loop {
            let Some(head) = bytes.get(at..at + 5) else {
                return Err(HelloError::Incomplete(at + 5 - bytes.len()));
            };
            if head[0] != 0x16 || head[1] != 0x03 {
                return Err(HelloError::NotTls);
            }
            let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
            if len == 0 || len > 16_384 {
                return Err(HelloError::Malformed("record length"));
            }
            let Some(body) = bytes.get(at + 5..at + 5 + len) else {
                return Err(HelloError::Incomplete(at + 5 + len - bytes.len()));
            };
            msg.extend_from_slice(body);
            at += 5 + len;
            if msg.len() >= 4 {
                if msg[0] != 1 {
                    return Err(HelloError::NotTls);
                }
                let want = 4 + (usize::from(msg[1]) << 16 | usize::from(msg[2]) << 8 | usize::from(msg[3]));
                if want > 1 << 16 {
                    return Err(HelloError::Malformed("handshake length"));
                }
                if msg.len() >= want {
                    msg.truncate(want);
                    break;
                }
            }
        }
        let mut r = Reader::new(&msg[4..]);
        let legacy_version = r.u16("version")?;
        let mut random = [0u8; 32];
        random.copy_from_slice(r.take(32, "random")?);
        let session_id = r.vec8("session id")?.to_vec();
        let cipher_suites = u16s(r.vec16("cipher suites")?);
        let compression = r.vec8("compression")?.to_vec();
        let mut extensions = Vec::new();
        if !r.done() {
            let mut e = Reader::new(r.vec16("extensions")?);
            while !e.done() {
                let ty = e.u16("extension type")?;
                extensions.push((ty, e.vec16("extension")?.to_vec()));
            }
        }
        Ok((Self { legacy_version, random, session_id, cipher_suites, compression, extensions }, at))
    }

    /// The handshake message (type, length, body) in TLS's encoding: what both ends hash into
    /// the transcript. For a hello that [`ClientHello::parse`] read, these are the bytes it
    /// was read from (extensions in their order, every length canonical).
    ///
    /// # Errors
    /// A field is longer than its length prefix can say.
    pub fn to_message(&self) -> Result<Vec<u8>, HelloError> {
        fn len8(v: usize, what: &'static str) -> Result<u8, HelloError> {
            u8::try_from(v).map_err(|_| HelloError::Malformed(what))
        }
        let mut body = Vec::with_capacity(2048);
        body.extend_from_slice(&self.legacy_version.to_be_bytes());
        body.extend_from_slice(&self.random);
        body.push(len8(self.session_id.len(), "session id")?);
        body.extend_from_slice(&self.session_id);
        let suites: Vec<u8> = self.cipher_suites.iter().flat_map(|c| c.to_be_bytes()).collect();
        put_vec16(&mut body, &suites, "cipher suites")?;
        body.push(len8(self.compression.len(), "compression")?);
        body.extend_from_slice(&self.compression);
        let ext_len: usize = self.extensions.iter().map(|(_, d)| 4 + d.len()).sum();
        let mut exts = Vec::with_capacity(ext_len);
        for (ty, data) in &self.extensions {
            exts.extend_from_slice(&ty.to_be_bytes());
            put_vec16(&mut exts, data, "extension")?;
        }
        put_vec16(&mut body, &exts, "extensions")?;
        let len =
            u32::try_from(body.len()).ok().filter(|l| *l < 1 << 16).ok_or(HelloError::Malformed("handshake length"))?;
        let mut msg = Vec::with_capacity(4 + body.len());
        msg.push(1);
        msg.extend_from_slice(&len.to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        Ok(msg)
    }

    /// [`ClientHello::to_message`] in one handshake record (version `0x0301`, as browsers and
    /// rustls frame a first ClientHello).
    ///
    /// # Errors
    /// The message does not fit one record.
    pub fn to_record(&self) -> Result<Vec<u8>, HelloError> {
        let msg = self.to_message()?;
        let len =
            u16::try_from(msg.len()).ok().filter(|l| *l <= 16_384).ok_or(HelloError::Malformed("record length"))?;
        let mut rec = Vec::with_capacity(5 + msg.len());
        rec.extend_from_slice(&[0x16, 0x03, 0x01]);
        rec.extend_from_slice(&len.to_be_bytes());
        rec.extend_from_slice(&msg);
        Ok(rec)
    }

    /// The data of the first extension of type `ty`.
    #[must_use]
    pub fn extension(&self, ty: u16) -> Option<&[u8]> {
        self.extensions.iter().find(|(t, _)| *t == ty).map(|(_, d)| d.as_slice())
    }

    /// The host name in the SNI extension.
    #[must_use]
    pub fn server_name(&self) -> Option<String> {
        let mut r = Reader::new(self.extension(EXT_SERVER_NAME)?);
        let mut list = Reader::new(r.vec16("sni").ok()?);
        while !list.done() {
            let kind = list.u8("sni kind").ok()?;
            let name = list.vec16("sni name").ok()?;
            if kind == 0 {
                return String::from_utf8(name.to_vec()).ok();
            }
        }
        None
    }

    /// The ALPN protocols offered, in order.
    #[must_use]
    pub fn alpn(&self) -> Vec<Vec<u8>> {
        let Some(d) = self.extension(EXT_ALPN) else { return Vec::new() };
        let mut r = Reader::new(d);
        let Ok(list) = r.vec16("alpn") else { return Vec::new() };
        let mut l = Reader::new(list);
        let mut out = Vec::new();
        while let Ok(p) = l.vec8("alpn protocol") {
            out.push(p.to_vec());
        }
        out
    }

    /// The versions in `supported_versions`, in order (GREASE included).
    #[must_use]
    pub fn supported_versions(&self) -> Vec<u16> {
        let Some(d) = self.extension(EXT_SUPPORTED_VERSIONS) else { return Vec::new() };
        Reader::new(d).vec8("versions").map(u16s).unwrap_or_default()
    }

    /// The signature algorithms, in order.
    #[must_use]
    pub fn signature_algorithms(&self) -> Vec<u16> {
        let Some(d) = self.extension(EXT_SIGNATURE_ALGORITHMS) else { return Vec::new() };
        Reader::new(d).vec16("signature algorithms").map(u16s).unwrap_or_default()
    }

    /// The groups in `supported_groups`, in order.
    #[must_use]
    pub fn supported_groups(&self) -> Vec<u16> {
        let Some(d) = self.extension(EXT_SUPPORTED_GROUPS) else { return Vec::new() };
        Reader::new(d).vec16("groups").map(u16s).unwrap_or_default()
    }

    /// The key shares sent, in order: (group, public share).
    #[must_use]
    pub fn key_shares(&self) -> Vec<(u16, Vec<u8>)> {
        let Some(d) = self.extension(EXT_KEY_SHARE) else { return Vec::new() };
        let mut r = Reader::new(d);
        let Ok(list) = r.vec16("key shares") else { return Vec::new() };
        let mut l = Reader::new(list);
        let mut out = Vec::new();
        while let (Ok(g), Ok(share)) = (l.u16("group"), l.vec16("share")) {
            out.push((g, share.to_vec()));
        }
        out
    }

    /// The groups the client sent key shares for, in order.
    #[must_use]
    pub fn key_share_groups(&self) -> Vec<u16> {
        self.key_shares().into_iter().map(|(g, _)| g).collect()
    }

    /// Whether GREASE values appear in the cipher suites, the extensions or the groups.
    #[must_use]
    pub fn has_grease(&self) -> bool {
        self.cipher_suites.iter().any(|c| is_grease(*c))
            || self.extensions.iter().any(|(t, _)| is_grease(*t))
            || self.supported_groups().iter().any(|g| is_grease(*g))
    }

    /// The extension types in the order sent, GREASE left out.
    #[must_use]
    pub fn extension_order(&self) -> Vec<u16> {
        self.extensions.iter().map(|(t, _)| *t).filter(|t| !is_grease(*t)).collect()
    }

    /// The JA4 fingerprint of this hello, sent over TCP.
    #[must_use]
    pub fn ja4(&self) -> String {
        let version =
            self.supported_versions().into_iter().filter(|v| !is_grease(*v)).max().unwrap_or(self.legacy_version);
        let version = match version {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            _ => "00",
        };
        let sni = if self.extension(EXT_SERVER_NAME).is_some() { 'd' } else { 'i' };
        let ciphers: Vec<u16> = self.cipher_suites.iter().copied().filter(|c| !is_grease(*c)).collect();
        let exts = self.extension_order();
        let alpn = match self.alpn().first() {
            Some(p) if !p.is_empty() => {
                let (f, l) = (p[0], p[p.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", char::from(f), char::from(l))
                } else {
                    // Not alphanumeric: the first hex digit of the first byte and the last of the last.
                    let h = |b: u8| format!("{b:02x}");
                    format!("{}{}", &h(f)[..1], &h(l)[1..])
                }
            }
            _ => "00".to_owned(),
        };
        let a = format!("t{version}{sni}{:02}{:02}{alpn}", ciphers.len().min(99), exts.len().min(99));
        let hex = |v: &[u16]| v.iter().map(|x| format!("{x:04x}")).collect::<Vec<_>>().join(",");
        let hash12 = |s: &str| {
            if s.is_empty() {
                return "000000000000".to_owned();
            }
            let d = Sha256::digest(s.as_bytes());
            d.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut sorted_ciphers = ciphers.clone();
        sorted_ciphers.sort_unstable();
        let mut sorted_exts: Vec<u16> = exts.into_iter().filter(|t| *t != EXT_SERVER_NAME && *t != EXT_ALPN).collect();
        sorted_exts.sort_unstable();
        let sigs = self.signature_algorithms();
        let c_input = if sigs.is_empty() { hex(&sorted_exts) } else { format!("{}_{}", hex(&sorted_exts), hex(&sigs)) };
        format!("{a}_{}_{}", hash12(&hex(&sorted_ciphers)), hash12(&c_input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello built by hand: GREASE in the suites, the extensions and the groups; SNI,
    /// ALPN h2 and http/1.1, TLS 1.3 and 1.2, two signature algorithms.
    fn sample() -> Vec<u8> {
        fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
            let mut v = ty.to_be_bytes().to_vec();
            v.extend_from_slice(&u16::try_from(data.len()).expect("len").to_be_bytes());
            v.extend_from_slice(data);
            v
        }
        let sni = {
            let name = b"cover.example";
            let mut e = vec![0];
            e.extend_from_slice(&u16::try_from(name.len()).expect("len").to_be_bytes());
            e.extend_from_slice(name);
            let mut l = u16::try_from(e.len()).expect("len").to_be_bytes().to_vec();
            l.extend(e);
            l
        };
        let alpn = [0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'];
        let mut exts = Vec::new();
        exts.extend(ext(0x2a2a, &[]));
        exts.extend(ext(0x0000, &sni));
        exts.extend(ext(0x0010, &alpn));
        exts.extend(ext(0x000a, &[0, 6, 0x3a, 0x3a, 0x11, 0xec, 0x00, 0x1d]));
        exts.extend(ext(0x002b, &[4, 0x03, 0x04, 0x03, 0x03]));
        exts.extend(ext(0x000d, &[0, 4, 0x04, 0x03, 0x08, 0x04]));
        exts.extend(ext(0x0033, &[0, 6, 0x00, 0x1d, 0, 2, 0xaa, 0xbb]));
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(32);
        body.extend([9u8; 32]);
        let suites: [u16; 4] = [0x6a6a, 0x1301, 0x1302, 0xc02b];
        body.extend_from_slice(&8u16.to_be_bytes());
        suites.iter().for_each(|s| body.extend_from_slice(&s.to_be_bytes()));
        body.extend([1, 0]);
        body.extend_from_slice(&u16::try_from(exts.len()).expect("len").to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&u16::try_from(body.len()).expect("len").to_be_bytes());
        hs.extend(body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&u16::try_from(hs.len()).expect("len").to_be_bytes());
        rec.extend(hs);
        rec
    }

    /// Every reader of first flights waits for the rest of a hello, stops at a whole one, and
    /// gives up on bytes that cannot become one, or on a "hello" that never ends.
    #[test]
    fn a_first_flight_is_whole_partial_or_never_a_hello() {
        let bytes = sample();
        assert_eq!(flight(&[]), Flight::Partial);
        for cut in [1, 5, 6, bytes.len() - 1] {
            assert_eq!(flight(&bytes[..cut]), Flight::Partial, "cut at {cut}");
        }
        assert_eq!(flight(&bytes), Flight::Hello);
        let mut more = bytes.clone();
        more.extend_from_slice(b"early data");
        assert_eq!(flight(&more), Flight::Hello);
        assert_eq!(flight(b"GET / HTTP/1.1\r\n"), Flight::NotHello);
        // A TLS server reads a whole record header before it judges one, and so does this.
        assert_eq!(flight(&[0x01]), Flight::Partial);
        assert_eq!(flight(&[0x01, 0, 0, 0, 0]), Flight::NotHello);
        // A record header promising a handshake bigger than a flight may be: read no further.
        let mut endless = vec![0x16, 0x03, 0x01, 0x40, 0x00, 1, 0x00, 0xff, 0xff];
        endless.resize(FIRST_FLIGHT_MAX, 0);
        assert_eq!(flight(&endless), Flight::NotHello);
    }

    #[test]
    fn a_vector_longer_than_its_length_can_say_is_refused() {
        let mut out = vec![9];
        put_vec16(&mut out, &[1, 2, 3], "short").expect("fits");
        assert_eq!(out, [9, 0, 3, 1, 2, 3]);
        assert_eq!(put_vec16(&mut out, &vec![0; 1 << 16], "long"), Err(HelloError::Malformed("long")));
        assert_eq!(out, [9, 0, 3, 1, 2, 3], "nothing written");
    }

    #[test]
    fn a_client_hello_is_read_field_by_field() {
        let bytes = sample();
        let (h, used) = ClientHello::parse(&bytes).expect("hello");
        assert_eq!(used, bytes.len());
        assert_eq!(h.server_name().as_deref(), Some("cover.example"));
        assert_eq!(h.alpn(), vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(h.supported_versions(), vec![0x0304, 0x0303]);
        assert_eq!(h.supported_groups(), vec![0x3a3a, 0x11ec, 0x001d]);
        assert_eq!(h.key_share_groups(), vec![0x001d]);
        assert_eq!(h.session_id, vec![9u8; 32]);
        assert!(h.has_grease());
        assert_eq!(h.extension_order(), vec![0x0000, 0x0010, 0x000a, 0x002b, 0x000d, 0x0033]);
    }

    /// JA4 by its definition: GREASE left out of the counts and hashes, SNI and ALPN counted
    /// but not hashed, the suites and extensions sorted, the signature algorithms in order.
    #[test]
    fn ja4_follows_its_definition() {
        let (h, _) = ClientHello::parse(&sample()).expect("hello");
        let hash =
            |s: &str| Sha256::digest(s.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect::<String>();
        let want = format!("t13d0306h2_{}_{}", hash("1301,1302,c02b"), hash("000a,000d,002b,0033_0403,0804"));
        assert_eq!(h.ja4(), want);
    }

    /// A first flight cut anywhere asks for more; garbage and plain HTTP are refused at once
    /// (a provider must tell "wait" from "not TLS" without waiting on a prober).
    #[test]
    fn partial_and_foreign_first_flights() {
        let bytes = sample();
        for cut in [0, 3, 5, 40, bytes.len() - 1] {
            assert!(matches!(ClientHello::parse(&bytes[..cut]), Err(HelloError::Incomplete(_))), "cut at {cut}");
        }
        assert_eq!(ClientHello::parse(b"GET / HTTP/1.1\r\n\r\n"), Err(HelloError::NotTls));
        assert_eq!(ClientHello::parse(&[0x01]), Err(HelloError::Incomplete(4)));
        assert_eq!(ClientHello::parse(&[0x01, 0, 0, 0, 0]), Err(HelloError::NotTls));
        // A cipher-suite list longer than the message: malformed, not a panic.
        let mut bad = bytes.clone();
        bad[5 + 4 + 2 + 32 + 1 + 32] = 0xff;
        assert_eq!(ClientHello::parse(&bad), Err(HelloError::Malformed("cipher suites")));
    }

    /// A hello split over two records (a large post-quantum key share can make one) reads the same.
    #[test]
    fn a_hello_over_two_records_is_reassembled() {
        let one = sample();
        let hs = &one[5..];
        let (a, b) = hs.split_at(100);
        let mut two = vec![0x16, 0x03, 0x01];
        two.extend_from_slice(&u16::try_from(a.len()).expect("len").to_be_bytes());
        two.extend_from_slice(a);
        two.extend([0x16, 0x03, 0x01]);
        two.extend_from_slice(&u16::try_from(b.len()).expect("len").to_be_bytes());
        two.extend_from_slice(b);
        let (h1, _) = ClientHello::parse(&one).expect("one record");
        let (h2, used) = ClientHello::parse(&two).expect("two records");
        assert_eq!(used, two.len());
        assert_eq!(h1, h2);
    }

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0000));
    }
}
