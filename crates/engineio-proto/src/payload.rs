//! The HTTP long-polling payload: many packets in one body.
//!
//! A payload is its packets joined by the record separator `\x1e`. A text
//! packet is written as in a WebSocket text frame (type digit, then data);
//! a binary message is written as `b` followed by its data in base64
//! (standard alphabet, padded). For example `4hello\x1e2\x1ebAQID` is a
//! message `hello`, a ping and the binary message `[1, 2, 3]`.
//!
//! This module owns that encoding and the limits that keep a hostile body
//! cheap to reject ([`Limits`]). It does not read or write HTTP: checking
//! `Content-Length` before buffering a body, choosing `Content-Type`,
//! holding `GET` requests open until packets are queued, and answering
//! `ok` to a `POST` are the `engineio` crate's job.

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use ws_proto::Utf8Bytes;

use crate::error::Error;
use crate::packet::{Packet, PacketType};

/// The byte that separates packets in a payload (ASCII "record separator").
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The byte that marks a base64-encoded binary packet in a payload.
pub const BINARY_PREFIX: u8 = b'b';

/// Standard alphabet; writes padding, reads it whether present or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Bounds applied by [`decode`] before it does any work proportional to the
/// number of packets.
///
/// ```
/// use engineio_proto::Limits;
///
/// let limits = Limits::new(100_000);
/// assert_eq!(limits.max_payload, 100_000);
/// assert_eq!(limits.max_packets, Limits::DEFAULT_MAX_PACKETS);
/// assert_eq!(Limits::default().max_payload, 1_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest accepted body, in bytes; larger bodies fail with
    /// [`Error::PayloadTooLarge`]. This is the `maxPayload` announced in the
    /// handshake.
    pub max_payload: usize,
    /// Most packets accepted in one body; more fail with
    /// [`Error::TooManyPackets`]. Each decoded packet costs a few dozen
    /// bytes of memory however short it is on the wire, so this caps that
    /// amplification.
    pub max_packets: usize,
}

impl Limits {
    /// The reference server's default `maxPayload`: 1 000 000 bytes.
    pub const DEFAULT_MAX_PAYLOAD: usize = 1_000_000;

    /// Default packet count limit: far above what a client flushing its
    /// send buffer produces, far below the half-million two-byte packets a
    /// 1 MB body could hold.
    pub const DEFAULT_MAX_PACKETS: usize = 65_536;

    /// Limits with the given `max_payload` and the default packet count.
    pub const fn new(max_payload: usize) -> Self {
        Limits {
            max_payload,
            max_packets: Self::DEFAULT_MAX_PACKETS,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(Self::DEFAULT_MAX_PAYLOAD)
    }
}

/// Decodes a long-polling body into its packets.
///
/// Text data is a zero-copy slice of `body`; binary data is decoded from
/// base64 into a fresh buffer. Work is linear in the body length: each
/// packet's UTF-8 is validated once.
///
/// # Errors
///
/// In the order they are checked: [`Error::PayloadTooLarge`] when the body
/// exceeds `limits.max_payload`, [`Error::EmptyPayload`] for an empty body,
/// [`Error::TooManyPackets`] when it holds more than `limits.max_packets`
/// packets, then for the first bad packet [`Error::EmptyPacket`],
/// [`Error::UnknownPacketType`], [`Error::InvalidBase64`] or
/// [`Error::InvalidUtf8`].
///
/// ```
/// use bytes::Bytes;
/// use engineio_proto::{payload, Error, Limits, Packet};
///
/// let body = Bytes::from("4hello\x1e4€\x1ebAQID");
/// let packets = payload::decode(&body, Limits::default()).unwrap();
/// assert_eq!(
///     packets,
///     [Packet::message("hello"), Packet::message("€"), Packet::binary(vec![1u8, 2, 3])]
/// );
///
/// let too_big = payload::decode(&body, Limits::new(4));
/// assert_eq!(too_big, Err(Error::PayloadTooLarge { limit: 4 }));
/// ```
pub fn decode(body: &Bytes, limits: Limits) -> Result<Vec<Packet>, Error> {
    if body.len() > limits.max_payload {
        return Err(Error::PayloadTooLarge {
            limit: limits.max_payload,
        });
    }
    if body.is_empty() {
        return Err(Error::EmptyPayload);
    }
    let count = 1 + body.iter().filter(|&&b| b == RECORD_SEPARATOR).count();
    if count > limits.max_packets {
        return Err(Error::TooManyPackets {
            limit: limits.max_packets,
        });
    }
    let mut packets = Vec::with_capacity(count);
    let mut start = 0;
    for (index, segment) in body.split(|&b| b == RECORD_SEPARATOR).enumerate() {
        let end = start + segment.len();
        packets.push(decode_segment(body, segment, start, end, index)?);
        start = end + 1;
    }
    Ok(packets)
}

/// Decodes `segment`, which is `body[start..end]`, the `index`th packet.
fn decode_segment(
    body: &Bytes,
    segment: &[u8],
    start: usize,
    end: usize,
    index: usize,
) -> Result<Packet, Error> {
    let Some((&first, rest)) = segment.split_first() else {
        return Err(Error::EmptyPacket { index });
    };
    if first == BINARY_PREFIX {
        let data = BASE64
            .decode(rest)
            .map_err(|_| Error::InvalidBase64 { index })?;
        return Ok(Packet::Binary(Bytes::from(data)));
    }
    let ty =
        PacketType::from_ascii(first).ok_or(Error::UnknownPacketType { index, byte: first })?;
    let data = if rest.is_empty() {
        Utf8Bytes::new()
    } else {
        Utf8Bytes::try_from(body.slice(start + 1..end)).map_err(|_| Error::InvalidUtf8 { index })?
    };
    Ok(Packet::with_text(ty, data))
}

/// Appends the payload encoding of `packets` to `out`: each packet in its
/// polling form, joined by [`RECORD_SEPARATOR`].
///
/// Binary messages become `b` plus padded base64. No packets write nothing,
/// which is not a valid payload: a server with nothing to send keeps the
/// `GET` pending (or sends a `noop`) instead.
///
/// The protocol cannot frame text containing the record separator: such a
/// packet would reach the peer split in two. Check with
/// [`is_representable`] where the data is not known to be free of `\x1e`
/// (Socket.IO's JSON encoding never produces a raw one).
///
/// ```
/// use bytes::BytesMut;
/// use engineio_proto::{payload, Packet};
///
/// let mut out = BytesMut::new();
/// payload::encode(&[Packet::message("hello"), Packet::binary(vec![1u8, 2, 3, 4])], &mut out);
/// assert_eq!(&out[..], b"4hello\x1ebAQIDBA==");
/// ```
pub fn encode<'a, I>(packets: I, out: &mut BytesMut)
where
    I: IntoIterator<Item = &'a Packet>,
{
    for (i, packet) in packets.into_iter().enumerate() {
        let separator = usize::from(i > 0);
        out.reserve(separator + encoded_len(packet));
        if separator == 1 {
            out.put_u8(RECORD_SEPARATOR);
        }
        encode_packet(packet, out);
    }
}

/// Appends the polling form of one packet.
fn encode_packet(packet: &Packet, out: &mut BytesMut) {
    match packet {
        Packet::Binary(data) => {
            out.put_u8(BINARY_PREFIX);
            let start = out.len();
            out.resize(start + base64_len(data.len()), 0);
            let written = out
                .get_mut(start..)
                .and_then(|dst| BASE64.encode_slice(data, dst).ok())
                // Unreachable: the slice is exactly as long as the encoding.
                .unwrap_or(0);
            out.truncate(start + written);
        }
        Packet::Open(data) | Packet::Ping(data) | Packet::Pong(data) | Packet::Message(data) => {
            out.put_u8(packet.packet_type().ascii());
            out.put_slice(data.as_bytes());
        }
        Packet::Close | Packet::Upgrade | Packet::Noop => out.put_u8(packet.packet_type().ascii()),
    }
}

/// Length of padded base64 for `n` bytes.
const fn base64_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}

/// The number of bytes [`encode`] writes for `packet`, separator excluded.
///
/// ```
/// use engineio_proto::{payload, Packet};
///
/// assert_eq!(payload::encoded_len(&Packet::message("hello")), 6);
/// assert_eq!(payload::encoded_len(&Packet::binary(vec![1u8, 2, 3, 4])), 9);
/// assert_eq!(payload::encoded_len(&Packet::Noop), 1);
/// ```
pub fn encoded_len(packet: &Packet) -> usize {
    match packet {
        Packet::Binary(data) => 1 + base64_len(data.len()),
        Packet::Open(data) | Packet::Ping(data) | Packet::Pong(data) | Packet::Message(data) => {
            1 + data.len()
        }
        Packet::Close | Packet::Upgrade | Packet::Noop => 1,
    }
}

/// Whether `packet` survives the long-polling encoding: false for text
/// whose data contains the record separator `\x1e`. Binary messages (sent as
/// base64) and every packet over WebSocket are always fine.
///
/// ```
/// use engineio_proto::{payload, Packet};
///
/// assert!(payload::is_representable(&Packet::message("a,b")));
/// assert!(!payload::is_representable(&Packet::message("a\x1eb")));
/// assert!(payload::is_representable(&Packet::binary(vec![0x1eu8])));
/// ```
pub fn is_representable(packet: &Packet) -> bool {
    packet
        .text_data()
        .is_none_or(|data| !data.as_bytes().contains(&RECORD_SEPARATOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(body: &str) -> Result<Vec<Packet>, Error> {
        decode(&Bytes::copy_from_slice(body.as_bytes()), Limits::default())
    }

    fn decode_raw(body: &[u8]) -> Result<Vec<Packet>, Error> {
        decode(&Bytes::copy_from_slice(body), Limits::default())
    }

    fn encode_vec(packets: &[Packet]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(packets, &mut out);
        out.to_vec()
    }

    fn text(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s)
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            decode_str("4hello\x1e4€\x1ebAQID"),
            Ok(vec![
                Packet::message("hello"),
                Packet::message("€"),
                Packet::binary(vec![1u8, 2, 3]),
            ])
        );
        assert_eq!(
            decode_str("4hello\x1e2\x1e4world"),
            Ok(vec![
                Packet::message("hello"),
                Packet::ping(),
                Packet::message("world")
            ])
        );
        assert_eq!(
            decode_str("4hello\x1ebAQIDBA=="),
            Ok(vec![
                Packet::message("hello"),
                Packet::binary(vec![1u8, 2, 3, 4])
            ])
        );
        assert_eq!(
            decode_str("4test1\x1e4test2\x1e4test3"),
            Ok(vec![
                Packet::message("test1"),
                Packet::message("test2"),
                Packet::message("test3"),
            ])
        );
        assert_eq!(decode_str("3"), Ok(vec![Packet::pong()]));
        assert_eq!(decode_str("1"), Ok(vec![Packet::Close]));
        assert_eq!(
            decode_str("abc"),
            Err(Error::UnknownPacketType {
                index: 0,
                byte: b'a'
            })
        );
    }

    #[test]
    fn spec_encodings() {
        assert_eq!(
            encode_vec(&[
                Packet::message("hello"),
                Packet::ping(),
                Packet::message("world")
            ]),
            b"4hello\x1e2\x1e4world"
        );
        assert_eq!(
            encode_vec(&[Packet::message("hello"), Packet::binary(vec![1u8, 2, 3, 4])]),
            b"4hello\x1ebAQIDBA=="
        );
        assert_eq!(encode_vec(&[Packet::Noop]), b"6");
        assert_eq!(encode_vec(&[]), b"");
    }

    #[test]
    fn every_type_round_trips_alone_and_together() {
        let all = vec![
            Packet::Open(text(r#"{"sid":"x","upgrades":[]}"#)),
            Packet::Close,
            Packet::ping(),
            Packet::Ping(text("probe")),
            Packet::pong(),
            Packet::Pong(text("probe")),
            Packet::message(""),
            Packet::message("hello €😀\n"),
            Packet::binary(Vec::<u8>::new()),
            Packet::binary(vec![0u8]),
            Packet::binary(vec![0u8, 1]),
            Packet::binary(vec![0xffu8, 0x1e, 0, 7]),
            Packet::Upgrade,
            Packet::Noop,
        ];
        for packet in &all {
            let body = encode_vec(std::slice::from_ref(packet));
            assert_eq!(body.len(), encoded_len(packet));
            assert_eq!(decode_raw(&body), Ok(vec![packet.clone()]), "{packet:?}");
        }
        let body = encode_vec(&all);
        assert_eq!(decode_raw(&body), Ok(all));
    }

    #[test]
    fn encode_appends() {
        let mut out = BytesMut::from(&b"prefix:"[..]);
        encode(&vec![Packet::message("a")], &mut out);
        encode([&Packet::Noop], &mut out);
        assert_eq!(&out[..], b"prefix:4a6");
    }

    #[test]
    fn text_data_is_zero_copy() {
        let body = Bytes::from(String::from("4hello\x1e2probe"));
        let packets = decode(&body, Limits::default()).unwrap_or_default();
        let [Packet::Message(hello), Packet::Ping(probe)] = packets.as_slice() else {
            panic!("unexpected {packets:?}");
        };
        assert_eq!(hello.as_bytes().as_ptr(), body.as_ptr().wrapping_add(1));
        assert_eq!(probe.as_bytes().as_ptr(), body.as_ptr().wrapping_add(8));
    }

    #[test]
    fn base64_padding_is_optional_on_input() {
        for body in ["bAQIDBA==", "bAQIDBA"] {
            assert_eq!(
                decode_str(body),
                Ok(vec![Packet::binary(vec![1u8, 2, 3, 4])])
            );
        }
        assert_eq!(decode_str("b"), Ok(vec![Packet::binary(Vec::<u8>::new())]));
    }

    #[test]
    fn dataless_types_drop_data() {
        assert_eq!(
            decode_str("1x\x1e5y\x1e6z"),
            Ok(vec![Packet::Close, Packet::Upgrade, Packet::Noop])
        );
    }

    #[test]
    fn rejects_empty_body() {
        assert_eq!(decode_str(""), Err(Error::EmptyPayload));
    }

    #[test]
    fn rejects_empty_segments() {
        assert_eq!(decode_str("\x1e"), Err(Error::EmptyPacket { index: 0 }));
        assert_eq!(decode_str("\x1e4a"), Err(Error::EmptyPacket { index: 0 }));
        assert_eq!(decode_str("4a\x1e"), Err(Error::EmptyPacket { index: 1 }));
        assert_eq!(
            decode_str("4a\x1e\x1e4b"),
            Err(Error::EmptyPacket { index: 1 })
        );
    }

    #[test]
    fn rejects_unknown_types() {
        for (body, index, byte) in [
            ("7", 0, b'7'),
            ("x", 0, b'x'),
            ("4a\x1e9", 1, b'9'),
            ("4a\x1e2\x1eB", 2, b'B'),
            (" 4", 0, b' '),
            ("€", 0, 0xe2),
        ] {
            assert_eq!(
                decode_str(body),
                Err(Error::UnknownPacketType { index, byte }),
                "{body:?}"
            );
        }
        assert_eq!(
            decode_raw(b"\xff4"),
            Err(Error::UnknownPacketType {
                index: 0,
                byte: 0xff
            })
        );
    }

    #[test]
    fn rejects_invalid_base64() {
        for (body, index) in [
            ("b!!!!", 0),
            ("bA", 0),
            ("bAQID=", 0),
            ("bAQ=D", 0),
            ("4ok\x1ebAQI D", 1),
            ("4ok\x1eb€", 1),
        ] {
            assert_eq!(
                decode_str(body),
                Err(Error::InvalidBase64 { index }),
                "{body:?}"
            );
        }
        assert_eq!(
            decode_raw(b"b\xff\xfe"),
            Err(Error::InvalidBase64 { index: 0 })
        );
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert_eq!(decode_raw(b"4\xff"), Err(Error::InvalidUtf8 { index: 0 }));
        assert_eq!(
            decode_raw(b"4ok\x1e2\xc3"),
            Err(Error::InvalidUtf8 { index: 1 })
        );
        assert_eq!(
            decode_raw(b"1\xc3\x28"),
            Err(Error::InvalidUtf8 { index: 0 })
        );
        // A separator inside a multi-byte sequence cuts it: invalid either way.
        assert_eq!(
            decode_raw(b"4\xe2\x1e4\x82\xac"),
            Err(Error::InvalidUtf8 { index: 0 })
        );
    }

    #[test]
    fn size_limit() {
        let body = Bytes::from_static(b"4hello");
        assert!(decode(&body, Limits::new(6)).is_ok());
        assert_eq!(
            decode(&body, Limits::new(5)),
            Err(Error::PayloadTooLarge { limit: 5 })
        );
        assert_eq!(
            decode(&Bytes::new(), Limits::new(0)),
            Err(Error::EmptyPayload)
        );
        // Checked before anything else, even for garbage.
        assert_eq!(
            decode(&Bytes::from_static(b"garbage\xff"), Limits::new(3)),
            Err(Error::PayloadTooLarge { limit: 3 })
        );
        let big = Bytes::from(vec![b'4'; Limits::DEFAULT_MAX_PAYLOAD + 1]);
        assert_eq!(
            decode(&big, Limits::default()),
            Err(Error::PayloadTooLarge { limit: 1_000_000 })
        );
        let exact = Bytes::from(vec![b'4'; Limits::DEFAULT_MAX_PAYLOAD]);
        assert_eq!(decode(&exact, Limits::default()).map(|p| p.len()), Ok(1));
    }

    #[test]
    fn packet_count_limit() {
        let limits = Limits {
            max_payload: 1 << 20,
            max_packets: 3,
        };
        let three = Bytes::from_static(b"2\x1e2\x1e2");
        assert_eq!(decode(&three, limits).map(|p| p.len()), Ok(3));
        let four = Bytes::from_static(b"2\x1e2\x1e2\x1e2");
        assert_eq!(
            decode(&four, limits),
            Err(Error::TooManyPackets { limit: 3 })
        );
        // A default-sized body of the shortest packets is refused up front.
        let flood: Vec<u8> = b"6\x1e".repeat(Limits::DEFAULT_MAX_PAYLOAD / 2 - 1);
        let mut flood = flood;
        flood.push(b'6');
        assert_eq!(
            decode(&Bytes::from(flood), Limits::default()),
            Err(Error::TooManyPackets {
                limit: Limits::DEFAULT_MAX_PACKETS
            })
        );
    }

    #[test]
    fn representable() {
        assert!(is_representable(&Packet::Close));
        assert!(is_representable(&Packet::Ping(text("probe"))));
        assert!(!is_representable(&Packet::Open(text("\x1e"))));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Text without the record separator, biased towards short strings
        /// with multi-byte characters.
        fn text_data() -> impl Strategy<Value = Utf8Bytes> {
            prop_oneof![
                any::<String>(),
                "[a-z0-9€😀\\[\\]\"{}:,]{0,12}",
                Just(String::from("probe")),
            ]
            .prop_map(|s| Utf8Bytes::from(s.replace('\u{1e}', "")))
        }

        fn packet() -> impl Strategy<Value = Packet> {
            prop_oneof![
                text_data().prop_map(Packet::Open),
                Just(Packet::Close),
                text_data().prop_map(Packet::Ping),
                text_data().prop_map(Packet::Pong),
                text_data().prop_map(Packet::Message),
                proptest::collection::vec(any::<u8>(), 0..48).prop_map(Packet::binary),
                Just(Packet::Upgrade),
                Just(Packet::Noop),
            ]
        }

        proptest! {
            #[test]
            fn payload_round_trip(packets in proptest::collection::vec(packet(), 1..24)) {
                let mut out = BytesMut::new();
                encode(&packets, &mut out);
                let expected_len: usize =
                    packets.iter().map(encoded_len).sum::<usize>() + packets.len() - 1;
                prop_assert_eq!(out.len(), expected_len);
                let limits = Limits { max_payload: out.len(), max_packets: packets.len() };
                prop_assert_eq!(decode(&out.freeze(), limits), Ok(packets));
            }

            #[test]
            fn decode_never_panics_and_is_stable(body in proptest::collection::vec(any::<u8>(), 0..256)) {
                if let Ok(packets) = decode(&Bytes::from(body), Limits::default()) {
                    prop_assert!(packets.iter().all(is_representable));
                    let mut out = BytesMut::new();
                    encode(&packets, &mut out);
                    prop_assert_eq!(decode(&out.freeze(), Limits::default()), Ok(packets));
                }
            }

            #[test]
            fn decode_structured_noise(
                parts in proptest::collection::vec("[0-9b]?[A-Za-z0-9+/=€]{0,6}", 0..8)
            ) {
                let body = parts.join("\x1e");
                if let Ok(packets) = decode(&Bytes::from(body), Limits::default()) {
                    prop_assert_eq!(packets.len(), parts.len());
                    let mut out = BytesMut::new();
                    encode(&packets, &mut out);
                    prop_assert_eq!(decode(&out.freeze(), Limits::default()), Ok(packets));
                }
            }
        }
    }
}
