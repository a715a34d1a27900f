#![no_main]
//! Control frames from a hostile peer: decoding never panics, and whatever decodes
//! re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use wirepact_proto::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok((frame, used)) = Frame::decode(data) {
        assert_eq!(frame.to_bytes(), data[..used]);
    }
});
