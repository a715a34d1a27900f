//! The client's ClientHello dressed as Chrome's, sans-IO, and undressed again by the provider.
//!
//! rustls builds and signs the hello: its key share, random and session id carry the
//! customer's proof (`hello_auth`), which no browser-parroting TLS stack lets a caller set.
//! What a censor fingerprints (JA4, GREASE, the extension order) is then made Chrome's on the
//! way out:
//!
//! - the cipher suites become Chrome's 15 after a GREASE value;
//! - the extensions become Chrome's 16 (rustls' own, with Chrome's contents where they differ,
//!   plus those rustls never sends: renegotiation info, status request, SCT, certificate
//!   compression, ALPS, a GREASE encrypted-client-hello), shuffled per connection between a
//!   leading and a trailing GREASE extension, GREASE in the group, key-share and version lists;
//! - the record is one handshake record, as Chrome sends it.
//!
//! Both ends hash the hello rustls built into the handshake transcript, so the provider must
//! hand its TLS stack that hello, byte for byte. The recipe for it travels in the only place
//! Chrome fills with random bytes of its own choosing: the payload of its GREASE
//! encrypted-client-hello extension (144, 176, 208 or 240 bytes, as Chrome draws it). There it
//! is masked with a keystream over the provider's tunnel key and the hello's random, and
//! tagged: to anyone without the key the payload is noise, as in Chrome's; a provider finds a
//! valid tag only in a hello dressed for it (any other hello, a real browser's included, is
//! left as it came, 2^-128 odds aside).
//!
//! The tag marks a hello as dressed, not as a customer's: the key is public (registered on
//! chain). Whether a hello may reach the tunnel is the gate's business, judged on the hello
//! as sent (its random, session id and key share are rustls' own, untouched).

use alloy::primitives::B256;
use sha2::{Digest, Sha256};

use crate::hello::{is_grease, ClientHello, HelloError};

/// Chrome's cipher suites after its leading GREASE value (stable Chrome on Linux since 131;
/// Debian's Chromium 156 sends the same).
pub const CHROME_SUITES: [u16; 15] = [
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f,
    0x0035,
];

/// Chrome's signature algorithms, in its order.
pub const CHROME_SIGNATURE_ALGORITHMS: [u16; 8] = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];

/// Chrome's groups after the GREASE value: X25519MLKEM768, X25519, P-256, P-384.
pub const CHROME_GROUPS: [u16; 4] = [0x11ec, 0x001d, 0x0017, 0x0018];

/// The lengths Chrome draws for its GREASE encrypted-client-hello payload.
pub const ECH_PAYLOAD_LENS: [usize; 4] = [144, 176, 208, 240];

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_STATUS_REQUEST: u16 = 0x0005;
const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
const EXT_EC_POINT_FORMATS: u16 = 0x000b;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SCT: u16 = 0x0012;
const EXT_EXTENDED_MASTER_SECRET: u16 = 0x0017;
const EXT_COMPRESS_CERTIFICATE: u16 = 0x001b;
const EXT_SESSION_TICKET: u16 = 0x0023;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_PSK_MODES: u16 = 0x002d;
const EXT_KEY_SHARE: u16 = 0x0033;
const EXT_ALPS: u16 = 0x44cd;
const EXT_ECH: u16 = 0xfe0d;
const EXT_RENEGOTIATION_INFO: u16 = 0xff01;

/// Length of the tag that marks a payload as a recipe.
const TAG_LEN: usize = 16;

/// Why a hello could not be dressed (it is then sent as rustls built it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DressError {
    /// The bytes are not one whole ClientHello.
    #[error("not a ClientHello: {0}")]
    NotAHello(#[from] HelloError),
    /// The hello has something Chrome's cannot carry.
    #[error("this ClientHello cannot be dressed as Chrome's: {0}")]
    Unsupported(&'static str),
}

/// A GREASE value as BoringSSL draws one: `0x?a?a`.
fn grease(rng: &mut impl rand::Rng) -> u16 {
    let b = (rng.random::<u8>() & 0xf0) | 0x0a;
    u16::from_be_bytes([b, b])
}

/// `items` as a TLS vector (16-bit length first).
fn vec16(items: &[u8]) -> Result<Vec<u8>, DressError> {
    let mut v = Vec::with_capacity(2 + items.len());
    crate::hello::put_vec16(&mut v, items, "list")
        .map_err(|_| DressError::Unsupported("a list longer than TLS can say"))?;
    Ok(v)
}

fn u16_list(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A list of 16-bit values without its GREASE ones.
fn without_grease(list: &[u8]) -> Vec<u8> {
    list.chunks_exact(2).filter(|c| !is_grease(u16::from_be_bytes([c[0], c[1]]))).flatten().copied().collect()
}

/// A list extension with its GREASE values left out (for the three lists Chrome greases):
/// what rustls sent, from what went on the wire.
fn strip_grease(ty: u16, data: &[u8]) -> Option<Vec<u8>> {
    match ty {
        EXT_SUPPORTED_GROUPS => {
            let n = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
            let list = data.get(2..2 + n).filter(|_| data.len() == 2 + n && n % 2 == 0)?;
            vec16(&without_grease(list)).ok()
        }
        EXT_KEY_SHARE => {
            let n = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
            let mut list = data.get(2..2 + n).filter(|_| data.len() == 2 + n)?;
            let mut kept = Vec::with_capacity(n);
            while !list.is_empty() {
                let group = u16::from_be_bytes([*list.first()?, *list.get(1)?]);
                let len = usize::from(u16::from_be_bytes([*list.get(2)?, *list.get(3)?]));
                let entry = list.get(..4 + len)?;
                if !is_grease(group) {
                    kept.extend_from_slice(entry);
                }
                list = &list[4 + len..];
            }
            vec16(&kept).ok()
        }
        EXT_SUPPORTED_VERSIONS => {
            let n = usize::from(*data.first()?);
            let list = data.get(1..1 + n).filter(|_| data.len() == 1 + n && n % 2 == 0)?;
            let kept = without_grease(list);
            let mut v = vec![u8::try_from(kept.len()).ok()?];
            v.extend(kept);
            Some(v)
        }
        _ => None,
    }
}

/// The keystream that masks a recipe: SHA-256 in counter mode over the provider's key and the
/// hello's random and session id.
fn keystream(tunnel_key: B256, random: &[u8; 32], session_id: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(b"wirepact/chrome-dress/keystream");
        h.update(tunnel_key);
        h.update(random);
        h.update(session_id);
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

fn tag(tunnel_key: B256, random: &[u8; 32], session_id: &[u8], masked: &[u8]) -> [u8; TAG_LEN] {
    let mut h = Sha256::new();
    h.update(b"wirepact/chrome-dress/tag");
    h.update(tunnel_key);
    h.update(random);
    h.update(session_id);
    h.update(masked);
    let d = h.finalize();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&d[..TAG_LEN]);
    t
}

/// How the provider gets an extension of the original hello back from the wire.
const SAME: u8 = 0;
const STRIP_GREASE: u8 = 1;
const EXPLICIT: u8 = 2;

/// The recipe: the original cipher suites, then each original extension in rustls' order with
/// how to get its data from the wire.
fn recipe(original: &ClientHello, wire: &[(u16, Vec<u8>)]) -> Result<Vec<u8>, DressError> {
    let mut r = Vec::with_capacity(128);
    r.push(u8::try_from(original.cipher_suites.len()).map_err(|_| DressError::Unsupported("too many suites"))?);
    r.extend(u16_list(&original.cipher_suites));
    r.push(u8::try_from(original.extensions.len()).map_err(|_| DressError::Unsupported("too many extensions"))?);
    for (ty, data) in &original.extensions {
        r.extend_from_slice(&ty.to_be_bytes());
        let on_wire = wire.iter().find(|(t, _)| t == ty).map(|(_, d)| d);
        match on_wire {
            Some(w) if w == data => r.push(SAME),
            Some(w) if strip_grease(*ty, w).as_ref() == Some(data) => r.push(STRIP_GREASE),
            _ => {
                r.push(EXPLICIT);
                r.extend(vec16(data)?);
            }
        }
    }
    Ok(r)
}

/// Reads a recipe back into the hello rustls built.
fn cook(wire: &ClientHello, recipe: &[u8]) -> Option<ClientHello> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = recipe.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let suites = usize::from(take(1)?[0]);
    let cipher_suites: Vec<u16> = take(suites * 2)?.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    let n = usize::from(take(1)?[0]);
    let mut extensions = Vec::with_capacity(n);
    for _ in 0..n {
        let t = take(2)?;
        let ty = u16::from_be_bytes([t[0], t[1]]);
        let data = match take(1)?[0] {
            SAME => wire.extension(ty)?.to_vec(),
            STRIP_GREASE => strip_grease(ty, wire.extension(ty)?)?,
            EXPLICIT => {
                let l = take(2)?;
                take(usize::from(u16::from_be_bytes([l[0], l[1]])))?.to_vec()
            }
            _ => return None,
        };
        extensions.push((ty, data));
    }
    Some(ClientHello {
        legacy_version: wire.legacy_version,
        random: wire.random,
        session_id: wire.session_id.clone(),
        cipher_suites,
        compression: wire.compression.clone(),
        extensions,
    })
}

/// Dresses the ClientHello record rustls wrote (`record`: exactly its records) as Chrome's,
/// for the provider whose tunnel key is `tunnel_key`. `rng` draws the GREASE values, the
/// extension order and the payload length, as Chrome draws them per connection.
///
/// # Errors
/// The bytes are not one ClientHello that re-encodes to themselves, or it holds something a
/// Chrome hello cannot carry; the caller then sends it as it is.
pub fn dress(record: &[u8], tunnel_key: B256, rng: &mut impl rand::Rng) -> Result<Vec<u8>, DressError> {
    let (original, used) = ClientHello::parse(record)?;
    if used != record.len() || original.to_record()?.get(5..) != record.get(5..) {
        return Err(DressError::Unsupported("the hello does not re-encode to its own bytes"));
    }
    if original.cipher_suites.iter().any(|c| !CHROME_SUITES.contains(c)) {
        return Err(DressError::Unsupported("a cipher suite Chrome does not offer"));
    }
    if original.extension(EXT_ECH).is_some() || original.extensions.iter().any(|(t, _)| is_grease(*t)) {
        return Err(DressError::Unsupported("already dressed"));
    }
    let sni = original.extension(EXT_SERVER_NAME).ok_or(DressError::Unsupported("no server name"))?;
    let shares = original.key_shares();
    if shares.is_empty() {
        return Err(DressError::Unsupported("no key share"));
    }
    let (g_suite, g_group, g_version) = (grease(rng), grease(rng), grease(rng));
    let g_ext1 = grease(rng);
    let mut g_ext2 = grease(rng);
    if g_ext2 == g_ext1 {
        g_ext2 ^= 0x1010;
    }

    let mut groups = vec![g_group];
    groups.extend(CHROME_GROUPS);
    let mut key_share = Vec::with_capacity(1300);
    key_share.extend_from_slice(&g_group.to_be_bytes());
    key_share.extend_from_slice(&[0, 1, 0]);
    for (g, s) in &shares {
        key_share.extend_from_slice(&g.to_be_bytes());
        key_share.extend(vec16(s)?);
    }
    let mut versions = vec![6u8];
    versions.extend(u16_list(&[g_version, 0x0304, 0x0303]));
    let alpn = {
        let mut l = vec![2u8];
        l.extend_from_slice(b"h2");
        l.push(8);
        l.extend_from_slice(b"http/1.1");
        vec16(&l)?
    };
    let mut middle: Vec<(u16, Vec<u8>)> = vec![
        (EXT_SERVER_NAME, sni.to_vec()),
        (EXT_EXTENDED_MASTER_SECRET, Vec::new()),
        (EXT_RENEGOTIATION_INFO, vec![0]),
        (EXT_SUPPORTED_GROUPS, vec16(&u16_list(&groups))?),
        (EXT_EC_POINT_FORMATS, vec![1, 0]),
        (EXT_SESSION_TICKET, Vec::new()),
        (EXT_ALPN, alpn),
        (EXT_STATUS_REQUEST, vec![1, 0, 0, 0, 0]),
        (EXT_SIGNATURE_ALGORITHMS, vec16(&u16_list(&CHROME_SIGNATURE_ALGORITHMS))?),
        (EXT_SCT, Vec::new()),
        (EXT_KEY_SHARE, vec16(&key_share)?),
        (EXT_PSK_MODES, vec![1, 1]),
        (EXT_SUPPORTED_VERSIONS, versions),
        (EXT_COMPRESS_CERTIFICATE, vec![2, 0, 2]),
        (EXT_ALPS, vec![0, 3, 2, b'h', b'2']),
    ];

    // The recipe, masked and tagged, as the GREASE ECH payload.
    let recipe = recipe(&original, &middle)?;
    let payload_len = ECH_PAYLOAD_LENS[rng.random_range(0..ECH_PAYLOAD_LENS.len())];
    let room = payload_len - TAG_LEN - 2;
    if recipe.len() > room {
        return Err(DressError::Unsupported("the recipe does not fit Chrome's payload"));
    }
    let mut plain = Vec::with_capacity(payload_len - TAG_LEN);
    plain.extend_from_slice(&u16::try_from(recipe.len()).unwrap_or(u16::MAX).to_be_bytes());
    plain.extend_from_slice(&recipe);
    plain.resize(payload_len - TAG_LEN, 0);
    let stream = keystream(tunnel_key, &original.random, &original.session_id, plain.len());
    let masked: Vec<u8> = plain.iter().zip(&stream).map(|(p, k)| p ^ k).collect();
    let mut ech = Vec::with_capacity(10 + 32 + payload_len);
    // Outer hello, HKDF-SHA256, AES-128-GCM, a random config id, an X25519 share (a field
    // element: its top bit clear), the payload.
    ech.extend_from_slice(&[0, 0, 1, 0, 1, rng.random::<u8>(), 0, 32]);
    let mut enc = [0u8; 32];
    rng.fill(&mut enc[..]);
    enc[31] &= 0x7f;
    ech.extend_from_slice(&enc);
    ech.extend_from_slice(&u16::try_from(payload_len).unwrap_or(u16::MAX).to_be_bytes());
    ech.extend_from_slice(&tag(tunnel_key, &original.random, &original.session_id, &masked));
    ech.extend_from_slice(&masked);
    middle.push((EXT_ECH, ech));

    use rand::seq::SliceRandom;
    middle.shuffle(rng);
    let mut extensions = Vec::with_capacity(middle.len() + 2);
    extensions.push((g_ext1, Vec::new()));
    extensions.extend(middle);
    extensions.push((g_ext2, vec![0]));

    let mut cipher_suites = vec![g_suite];
    cipher_suites.extend(CHROME_SUITES);
    let dressed = ClientHello {
        legacy_version: original.legacy_version,
        random: original.random,
        session_id: original.session_id.clone(),
        cipher_suites,
        compression: vec![0],
        extensions,
    };
    Ok(dressed.to_record()?)
}

/// The hello rustls built, from a first flight whose ClientHello was dressed for
/// `tunnel_key`: its record, and how many bytes of `flight` the dressed one took. `None` for
/// any other flight (a browser's hello, another provider's, garbage), which goes on as it came.
#[must_use]
pub fn undress(flight: &[u8], tunnel_key: B256) -> Option<(Vec<u8>, usize)> {
    let (wire, used) = ClientHello::parse(flight).ok()?;
    let ech = wire.extension(EXT_ECH)?;
    // type, kdf, aead, config id, enc (length 32), payload length.
    let head = ech.get(..10)?;
    if head[0] != 0 || head[6..8] != [0, 32] {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([*ech.get(40)?, *ech.get(41)?]));
    let payload = ech.get(42..).filter(|p| p.len() == payload_len && payload_len > TAG_LEN + 2)?;
    let (t, masked) = payload.split_at(TAG_LEN);
    if t != tag(tunnel_key, &wire.random, &wire.session_id, masked) {
        return None;
    }
    let stream = keystream(tunnel_key, &wire.random, &wire.session_id, masked.len());
    let plain: Vec<u8> = masked.iter().zip(&stream).map(|(m, k)| m ^ k).collect();
    let len = usize::from(u16::from_be_bytes([plain[0], plain[1]]));
    let recipe = plain.get(2..2 + len)?;
    let original = cook(&wire, recipe)?;
    Some((original.to_record().ok()?, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn v16(items: &[u8]) -> Vec<u8> {
        vec16(items).expect("a short list")
    }

    /// A hello shaped like rustls' (TLS 1.3 suites, its extensions and order).
    fn rustls_like(seed: u8) -> Vec<u8> {
        let mut sni = vec![0];
        sni.extend(v16(b"provider.example"));
        let h = ClientHello {
            legacy_version: 0x0303,
            random: [seed; 32],
            session_id: vec![seed ^ 0x55; 32],
            cipher_suites: vec![0x1301, 0x1302, 0x1303],
            compression: vec![0],
            extensions: vec![
                (EXT_SUPPORTED_VERSIONS, vec![2, 3, 4]),
                (EXT_SERVER_NAME, v16(&sni)),
                (EXT_SUPPORTED_GROUPS, v16(&u16_list(&CHROME_GROUPS))),
                (EXT_SIGNATURE_ALGORITHMS, v16(&u16_list(&[0x0503, 0x0403, 0x0807]))),
                (EXT_KEY_SHARE, {
                    let mut ks = Vec::new();
                    ks.extend_from_slice(&0x11ecu16.to_be_bytes());
                    ks.extend(v16(&[seed; 1216]));
                    ks.extend_from_slice(&0x001du16.to_be_bytes());
                    ks.extend(v16(&[seed; 32]));
                    v16(&ks)
                }),
                (EXT_PSK_MODES, vec![1, 1]),
                (EXT_ALPN, v16(&[2, b'h', b'2'])),
                (EXT_EXTENDED_MASTER_SECRET, Vec::new()),
            ],
        };
        h.to_record().expect("record")
    }

    const KEY: B256 = B256::repeat_byte(7);

    /// The provider gets back exactly the hello rustls built (its transcript depends on every
    /// byte), whatever order, GREASE values and payload length the dressing drew.
    #[test]
    fn undressing_gives_back_the_hello_byte_for_byte() {
        for seed in 0..64u8 {
            let original = rustls_like(seed);
            let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(seed));
            let mut flight = dress(&original, KEY, &mut rng).expect("dress");
            let dressed_len = flight.len();
            flight.extend_from_slice(b"\x14\x03\x03\x00\x01\x01");
            let (back, used) = undress(&flight, KEY).expect("a dressed hello undresses");
            assert_eq!(back, original, "seed {seed}");
            assert_eq!(used, dressed_len, "the bytes after the hello are not the hello's");
        }
    }

    /// On the wire: Chrome's suites, groups, versions and extension set, GREASE where Chrome
    /// puts it, the order drawn per connection, and a JA4 that is Chrome's.
    #[test]
    fn the_dressed_hello_has_chromes_shape() {
        let original = rustls_like(1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = ClientHello::parse(&dress(&original, KEY, &mut rng).expect("dress")).expect("parse").0;
        let b = ClientHello::parse(&dress(&original, KEY, &mut rng).expect("dress")).expect("parse").0;
        assert!(a.ja4().starts_with("t13d1516h2_8daaf6152771_"), "{}", a.ja4());
        assert_eq!(a.ja4(), b.ja4());
        assert_ne!(a.extension_order(), b.extension_order(), "the order is drawn per connection");
        assert!(is_grease(a.cipher_suites[0]) && a.cipher_suites[1..] == CHROME_SUITES);
        assert!(is_grease(a.extensions[0].0) && a.extensions[0].1.is_empty());
        let last = a.extensions.last().expect("ext");
        assert!(is_grease(last.0) && last.1 == [0]);
        assert_ne!(a.extensions[0].0, last.0);
        let groups = a.supported_groups();
        assert!(is_grease(groups[0]) && groups[1..] == CHROME_GROUPS);
        assert_eq!(a.key_share_groups()[1..], [0x11ec, 0x001d]);
        assert_eq!(a.key_shares()[0].1, [0], "Chrome's GREASE share is one zero byte");
        assert_eq!(a.signature_algorithms(), CHROME_SIGNATURE_ALGORITHMS);
        assert_eq!(a.random, [1; 32], "the random (the proof) is rustls' own");
        let ech = a.extension(EXT_ECH).expect("ech");
        assert!(ECH_PAYLOAD_LENS.contains(&(ech.len() - 42)), "{}", ech.len());
    }

    /// A hello dressed for another provider, or with its payload touched, or a browser's,
    /// is not undressed: it goes to the TLS stack (or the gate) as it came.
    #[test]
    fn only_a_hello_dressed_for_this_provider_undresses() {
        let original = rustls_like(3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let dressed = dress(&original, KEY, &mut rng).expect("dress");
        assert!(undress(&dressed, B256::repeat_byte(8)).is_none(), "another provider's key");
        assert!(undress(&original, KEY).is_none(), "an undressed hello");
        let (h, _) = ClientHello::parse(&dressed).expect("parse");
        // A key share swapped on the way undresses to another hello than the client's: the
        // gate's proof and the handshake transcript both fail on it.
        let share = h.key_shares()[1].1.clone();
        let pos = dressed.windows(share.len()).position(|w| w == share.as_slice()).expect("share in record");
        let mut swapped = dressed.clone();
        swapped[pos + 100] ^= 1;
        let (back, _) = undress(&swapped, KEY).expect("still dressed");
        assert_ne!(back, original);
        // Flip each payload byte: the tag fails.
        let ech = h.extension(EXT_ECH).expect("ech").to_vec();
        let pos = dressed.windows(ech.len()).position(|w| w == ech.as_slice()).expect("ech in record");
        for i in 42..ech.len() {
            let mut touched = dressed.clone();
            touched[pos + i] ^= 0x80;
            assert!(undress(&touched, KEY).is_none(), "payload byte {i}");
        }
        assert!(undress(b"GET / HTTP/1.1\r\n\r\n", KEY).is_none());
    }

    /// What rustls would not be dressed with is refused, and the caller sends it unchanged.
    #[test]
    fn a_hello_chrome_cannot_carry_is_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let (mut h, _) = ClientHello::parse(&rustls_like(9)).expect("parse");
        h.cipher_suites.push(0x00ff);
        assert!(matches!(dress(&h.to_record().expect("rec"), KEY, &mut rng), Err(DressError::Unsupported(_))));
        assert!(matches!(dress(b"\x16\x03\x01\x00", KEY, &mut rng), Err(DressError::NotAHello(_))));
    }

    proptest::proptest! {
        /// A stranger's bytes, or a dressed hello with any bytes changed, cut or appended, never
        /// panic the provider; whatever still undresses parses and re-encodes to itself.
        #[test]
        fn undressing_hostile_bytes_never_panics(
            seed in 0u8..=255,
            edits in proptest::collection::vec((0usize..4096, 0u8..=255), 0..8),
            cut in 0usize..4096,
            garbage in proptest::collection::vec(0u8..=255, 0..64),
        ) {
            let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(seed));
            let mut b = dress(&rustls_like(seed), KEY, &mut rng).expect("dress");
            for (at, v) in edits {
                let i = at % b.len();
                b[i] = v;
            }
            b.truncate(cut.max(1));
            b.extend_from_slice(&garbage);
            if let Some((hello, used)) = undress(&b, KEY) {
                proptest::prop_assert!(used <= b.len());
                let (h, n) = ClientHello::parse(&hello).expect("parses");
                proptest::prop_assert_eq!(n, hello.len());
                proptest::prop_assert_eq!(h.to_record().expect("record"), hello);
            }
            let _ = undress(&garbage, KEY);
        }
    }
}
