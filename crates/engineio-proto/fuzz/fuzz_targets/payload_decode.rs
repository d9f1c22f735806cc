//! Long-polling bodies: decoding arbitrary bytes must never panic, and
//! whatever decodes must survive an encode/decode round trip unchanged.

#![no_main]

use bytes::{Bytes, BytesMut};
use engineio_proto::{payload, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_payload: 1 << 16,
        max_packets: 1 << 10,
    };
    let body = Bytes::copy_from_slice(data);
    let Ok(packets) = payload::decode(&body, limits) else {
        return;
    };
    assert!(!packets.is_empty());
    assert!(packets.len() <= limits.max_packets);
    assert!(packets.iter().all(payload::is_representable));

    let mut out = BytesMut::new();
    payload::encode(&packets, &mut out);
    let expected: usize =
        packets.iter().map(payload::encoded_len).sum::<usize>() + packets.len() - 1;
    assert_eq!(out.len(), expected);

    let unlimited = Limits {
        max_payload: usize::MAX,
        max_packets: usize::MAX,
    };
    let again = payload::decode(&out.freeze(), unlimited);
    assert_eq!(
        again.as_ref(),
        Ok(&packets),
        "re-encoded payload must decode to the same packets"
    );
});
