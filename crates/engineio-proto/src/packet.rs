//! Engine.IO packets and their WebSocket form.
//!
//! This module owns the packet model ([`PacketType`], [`Packet`]) and the
//! one-packet-per-frame encoding used over WebSocket ([`WsFrame`]): a text
//! frame is the type digit followed by the data, a binary frame is the raw
//! data of a binary message with no prefix. The many-packets-per-body form
//! used by HTTP long-polling lives in [`crate::payload`]. Framing the
//! WebSocket itself (opcodes, masking, fragmentation) is `ws-proto`'s job,
//! and deciding what to do with a packet (answering pings, upgrading,
//! closing) belongs to the `engineio` crate.

use std::fmt;

use bytes::Bytes;
use ws_proto::Utf8Bytes;

use crate::error::Error;

/// The data a probe ping or pong carries during a transport upgrade.
pub const PROBE: &str = "probe";

/// The kind of an Engine.IO packet, sent as a single ASCII digit.
///
/// ```
/// use engineio_proto::PacketType;
///
/// assert_eq!(PacketType::from_ascii(b'4'), Some(PacketType::Message));
/// assert_eq!(PacketType::Message.ascii(), b'4');
/// assert_eq!(PacketType::from_id(7), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PacketType {
    /// `0`: the server's handshake, carrying JSON session parameters.
    Open = 0,
    /// `1`: the transport can be closed.
    Close = 1,
    /// `2`: heartbeat request (sent by the server), or upgrade probe (sent by
    /// the client with `probe` as data).
    Ping = 2,
    /// `3`: heartbeat answer, or upgrade probe answer.
    Pong = 3,
    /// `4`: application data.
    Message = 4,
    /// `5`: the client completes a transport upgrade.
    Upgrade = 5,
    /// `6`: nothing; used to end a pending long-poll during an upgrade.
    Noop = 6,
}

impl PacketType {
    /// Every packet type, in id order.
    pub const ALL: [PacketType; 7] = [
        PacketType::Open,
        PacketType::Close,
        PacketType::Ping,
        PacketType::Pong,
        PacketType::Message,
        PacketType::Upgrade,
        PacketType::Noop,
    ];

    /// The numeric id, `0..=6`.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The ASCII digit that starts an encoded packet, `b'0'..=b'6'`.
    pub const fn ascii(self) -> u8 {
        b'0' + self as u8
    }

    /// The type with numeric id `id`, if there is one.
    pub const fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => PacketType::Open,
            1 => PacketType::Close,
            2 => PacketType::Ping,
            3 => PacketType::Pong,
            4 => PacketType::Message,
            5 => PacketType::Upgrade,
            6 => PacketType::Noop,
            _ => return None,
        })
    }

    /// The type whose ASCII digit is `byte`, if there is one.
    pub const fn from_ascii(byte: u8) -> Option<Self> {
        Self::from_id(byte.wrapping_sub(b'0'))
    }

    /// The protocol's lowercase name: `open`, `close`, `ping`, ...
    pub const fn name(self) -> &'static str {
        match self {
            PacketType::Open => "open",
            PacketType::Close => "close",
            PacketType::Ping => "ping",
            PacketType::Pong => "pong",
            PacketType::Message => "message",
            PacketType::Upgrade => "upgrade",
            PacketType::Noop => "noop",
        }
    }

    /// The digit as a one-character static string.
    const fn digit_str(self) -> &'static str {
        match self {
            PacketType::Open => "0",
            PacketType::Close => "1",
            PacketType::Ping => "2",
            PacketType::Pong => "3",
            PacketType::Message => "4",
            PacketType::Upgrade => "5",
            PacketType::Noop => "6",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Engine.IO packet.
///
/// Text data is [`Utf8Bytes`], so decoding slices the received buffer
/// instead of copying it. `close`, `upgrade` and `noop` carry no data; data
/// after their type digit means nothing in the protocol and is discarded when
/// decoding (official clients never send any).
///
/// ```
/// use engineio_proto::{Packet, PacketType};
///
/// let p = Packet::message("hi");
/// assert_eq!(p.packet_type(), PacketType::Message);
/// assert_eq!(p.text_data().map(|d| d.as_str()), Some("hi"));
/// assert_eq!(Packet::binary(vec![1u8]).packet_type(), PacketType::Message);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Packet {
    /// The handshake; the data is the JSON built by
    /// [`crate::Handshake::to_json`].
    Open(Utf8Bytes),
    /// Close the transport.
    Close,
    /// A ping; the data is empty for a heartbeat, `probe` for an upgrade
    /// probe.
    Ping(Utf8Bytes),
    /// A pong; it echoes the ping's data.
    Pong(Utf8Bytes),
    /// A text message.
    Message(Utf8Bytes),
    /// A binary message (type `message` with binary data).
    Binary(Bytes),
    /// Complete a transport upgrade.
    Upgrade,
    /// Do nothing.
    Noop,
}

impl Packet {
    /// A text message.
    pub fn message(data: impl Into<Utf8Bytes>) -> Self {
        Packet::Message(data.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Packet::Binary(data.into())
    }

    /// A heartbeat ping with no data.
    pub const fn ping() -> Self {
        Packet::Ping(Utf8Bytes::new())
    }

    /// A heartbeat pong with no data.
    pub const fn pong() -> Self {
        Packet::Pong(Utf8Bytes::new())
    }

    /// The packet's type; [`Packet::Binary`] is a [`PacketType::Message`].
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) | Packet::Binary(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }

    /// The text data of an `open`, `ping`, `pong` or text `message` packet;
    /// `None` for binary messages and for packets without data.
    pub const fn text_data(&self) -> Option<&Utf8Bytes> {
        match self {
            Packet::Open(d) | Packet::Ping(d) | Packet::Pong(d) | Packet::Message(d) => Some(d),
            Packet::Binary(_) | Packet::Close | Packet::Upgrade | Packet::Noop => None,
        }
    }

    /// Whether this is a ping or pong carrying `probe`, as exchanged while
    /// upgrading from long-polling to WebSocket.
    ///
    /// ```
    /// use engineio_proto::{Packet, Utf8Bytes};
    ///
    /// assert!(Packet::Ping(Utf8Bytes::from("probe")).is_probe());
    /// assert!(!Packet::ping().is_probe());
    /// ```
    pub fn is_probe(&self) -> bool {
        matches!(self, Packet::Ping(d) | Packet::Pong(d) if d.as_bytes() == PROBE.as_bytes())
    }

    /// Builds a packet of type `ty` around already-validated text data,
    /// dropping the data of types that carry none.
    pub(crate) fn with_text(ty: PacketType, data: Utf8Bytes) -> Self {
        match ty {
            PacketType::Open => Packet::Open(data),
            PacketType::Close => Packet::Close,
            PacketType::Ping => Packet::Ping(data),
            PacketType::Pong => Packet::Pong(data),
            PacketType::Message => Packet::Message(data),
            PacketType::Upgrade => Packet::Upgrade,
            PacketType::Noop => Packet::Noop,
        }
    }

    /// Decodes the packet carried by a WebSocket text frame: a type digit
    /// followed by the data. The data is a zero-copy slice of `text`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyPacket`] for an empty frame and
    /// [`Error::UnknownPacketType`] when the first character is not a digit
    /// from `0` to `6` (both with `index` 0).
    ///
    /// ```
    /// use engineio_proto::{Error, Packet, Utf8Bytes};
    ///
    /// let p = Packet::from_ws_text(Utf8Bytes::from("2probe")).unwrap();
    /// assert_eq!(p, Packet::Ping(Utf8Bytes::from("probe")));
    /// assert_eq!(Packet::from_ws_text(Utf8Bytes::from("6")).unwrap(), Packet::Noop);
    /// assert!(matches!(
    ///     Packet::from_ws_text(Utf8Bytes::from("abc")),
    ///     Err(Error::UnknownPacketType { index: 0, byte: b'a' })
    /// ));
    /// ```
    pub fn from_ws_text(text: Utf8Bytes) -> Result<Self, Error> {
        let Some(&first) = text.as_bytes().first() else {
            return Err(Error::EmptyPacket { index: 0 });
        };
        let ty = PacketType::from_ascii(first).ok_or(Error::UnknownPacketType {
            index: 0,
            byte: first,
        })?;
        let data = match ty {
            PacketType::Close | PacketType::Upgrade | PacketType::Noop => Utf8Bytes::new(),
            _ if text.len() == 1 => Utf8Bytes::new(),
            // The first byte is an ASCII digit, so byte 1 is a character
            // boundary and this never fails.
            _ => text.slice_from(1).ok_or(Error::InvalidUtf8 { index: 0 })?,
        };
        Ok(Packet::with_text(ty, data))
    }

    /// Decodes the packet carried by a WebSocket binary frame: always a
    /// binary message, the frame's bytes unchanged.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use engineio_proto::Packet;
    ///
    /// let p = Packet::from_ws_binary(Bytes::from_static(&[1, 2, 3]));
    /// assert_eq!(p, Packet::binary(vec![1u8, 2, 3]));
    /// ```
    pub fn from_ws_binary(data: Bytes) -> Self {
        Packet::Binary(data)
    }

    /// Encodes the packet as the WebSocket frame that carries it.
    ///
    /// A binary message is a binary frame sharing the packet's bytes. Every
    /// other packet is a text frame holding the type digit and the data,
    /// built with a single allocation (none at all for packets without data
    /// and for probes).
    ///
    /// ```
    /// use engineio_proto::{Packet, Utf8Bytes, WsFrame};
    ///
    /// assert_eq!(Packet::message("hi").ws_frame(), WsFrame::Text(Utf8Bytes::from("4hi")));
    /// assert_eq!(Packet::Close.ws_frame(), WsFrame::Text(Utf8Bytes::from("1")));
    /// assert_eq!(
    ///     Packet::binary(vec![1u8, 2]).ws_frame(),
    ///     WsFrame::Binary(bytes::Bytes::from_static(&[1, 2]))
    /// );
    /// ```
    pub fn ws_frame(&self) -> WsFrame {
        match self {
            Packet::Binary(data) => WsFrame::Binary(data.clone()),
            Packet::Close | Packet::Upgrade | Packet::Noop => {
                WsFrame::Text(Utf8Bytes::from_static(self.packet_type().digit_str()))
            }
            Packet::Open(data)
            | Packet::Ping(data)
            | Packet::Pong(data)
            | Packet::Message(data) => WsFrame::Text(prefixed(self.packet_type(), data)),
        }
    }
}

/// The type digit followed by `data`, as one string.
fn prefixed(ty: PacketType, data: &Utf8Bytes) -> Utf8Bytes {
    if data.is_empty() {
        return Utf8Bytes::from_static(ty.digit_str());
    }
    if data.as_bytes() == PROBE.as_bytes() {
        match ty {
            PacketType::Ping => return Utf8Bytes::from_static("2probe"),
            PacketType::Pong => return Utf8Bytes::from_static("3probe"),
            _ => {}
        }
    }
    let mut text = String::with_capacity(1 + data.len());
    text.push(char::from(ty.ascii()));
    text.push_str(data.as_str());
    Utf8Bytes::from(text)
}

/// A WebSocket data frame carrying one Engine.IO packet.
///
/// Convert it into a `ws_proto::Message` to send it:
///
/// ```
/// use engineio_proto::Packet;
/// use ws_proto::Message;
///
/// let msg = Message::from(Packet::message("hi").ws_frame());
/// assert_eq!(msg, Message::text("4hi"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WsFrame {
    /// A text frame: type digit and data.
    Text(Utf8Bytes),
    /// A binary frame: the raw data of a binary message.
    Binary(Bytes),
}

impl WsFrame {
    /// The frame's payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            WsFrame::Text(text) => text.as_bytes(),
            WsFrame::Binary(data) => data,
        }
    }
}

impl From<WsFrame> for ws_proto::Message {
    fn from(frame: WsFrame) -> Self {
        match frame {
            WsFrame::Text(text) => ws_proto::Message::Text(text),
            WsFrame::Binary(data) => ws_proto::Message::Binary(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_packets() -> Vec<Packet> {
        vec![
            Packet::Open(Utf8Bytes::from(r#"{"sid":"abc"}"#)),
            Packet::Close,
            Packet::ping(),
            Packet::Ping(Utf8Bytes::from("probe")),
            Packet::pong(),
            Packet::Pong(Utf8Bytes::from("probe")),
            Packet::message(""),
            Packet::message("hello"),
            Packet::message("€ 😀 \x1e\n"),
            Packet::binary(Vec::<u8>::new()),
            Packet::binary(vec![0u8, 1, 2, 255]),
            Packet::Upgrade,
            Packet::Noop,
        ]
    }

    fn decode_frame(frame: WsFrame) -> Result<Packet, Error> {
        match frame {
            WsFrame::Text(text) => Packet::from_ws_text(text),
            WsFrame::Binary(data) => Ok(Packet::from_ws_binary(data)),
        }
    }

    #[test]
    fn packet_type_digits() {
        for (i, ty) in PacketType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(ty.id()), i);
            assert_eq!(PacketType::from_id(ty.id()), Some(ty));
            assert_eq!(PacketType::from_ascii(ty.ascii()), Some(ty));
            assert_eq!(ty.digit_str().as_bytes(), [ty.ascii()]);
        }
        for byte in (0..=u8::MAX).filter(|b| !(b'0'..=b'6').contains(b)) {
            assert_eq!(PacketType::from_ascii(byte), None);
        }
        assert_eq!(PacketType::Upgrade.to_string(), "upgrade");
    }

    #[test]
    fn ws_round_trip_every_type() {
        for packet in all_packets() {
            let frame = packet.ws_frame();
            assert_eq!(decode_frame(frame).as_ref(), Ok(&packet), "{packet:?}");
        }
    }

    #[test]
    fn ws_encodings() {
        let cases = [
            (Packet::Open(Utf8Bytes::from("{}")), "0{}"),
            (Packet::Close, "1"),
            (Packet::ping(), "2"),
            (Packet::Ping(Utf8Bytes::from("probe")), "2probe"),
            (Packet::pong(), "3"),
            (Packet::Pong(Utf8Bytes::from("probe")), "3probe"),
            (Packet::message("hello"), "4hello"),
            (Packet::message("€"), "4€"),
            (Packet::Upgrade, "5"),
            (Packet::Noop, "6"),
        ];
        for (packet, text) in cases {
            assert_eq!(packet.ws_frame(), WsFrame::Text(Utf8Bytes::from(text)));
            assert_eq!(packet.ws_frame().as_bytes(), text.as_bytes());
        }
        let bin = Bytes::from_static(&[1, 2, 3, 4]);
        assert_eq!(Packet::Binary(bin.clone()).ws_frame(), WsFrame::Binary(bin));
    }

    #[test]
    fn ws_text_data_is_zero_copy() {
        let text = Utf8Bytes::from("4hello world");
        let base = text.as_bytes().as_ptr();
        let Ok(Packet::Message(data)) = Packet::from_ws_text(text.clone()) else {
            panic!("not a message");
        };
        assert_eq!(data.as_str(), "hello world");
        assert_eq!(data.as_bytes().as_ptr(), base.wrapping_add(1));
    }

    #[test]
    fn ws_binary_is_zero_copy() {
        let bytes = Bytes::from(vec![9u8; 64]);
        let Packet::Binary(data) = Packet::from_ws_binary(bytes.clone()) else {
            panic!("not binary");
        };
        assert_eq!(data.as_ptr(), bytes.as_ptr());
        let WsFrame::Binary(out) = Packet::Binary(data).ws_frame() else {
            panic!("not a binary frame");
        };
        assert_eq!(out.as_ptr(), bytes.as_ptr());
    }

    #[test]
    fn ws_text_rejections() {
        assert_eq!(
            Packet::from_ws_text(Utf8Bytes::new()),
            Err(Error::EmptyPacket { index: 0 })
        );
        for (text, byte) in [
            ("abc", b'a'),
            ("7", b'7'),
            ("bAQID", b'b'),
            ("€", 0xe2),
            (" 4", b' '),
        ] {
            assert_eq!(
                Packet::from_ws_text(Utf8Bytes::from(text)),
                Err(Error::UnknownPacketType { index: 0, byte }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn data_after_dataless_types_is_dropped() {
        for (text, packet) in [
            ("1x", Packet::Close),
            ("5probe", Packet::Upgrade),
            ("6€", Packet::Noop),
        ] {
            assert_eq!(Packet::from_ws_text(Utf8Bytes::from(text)), Ok(packet));
        }
    }

    #[test]
    fn to_ws_message() {
        assert_eq!(
            ws_proto::Message::from(Packet::Noop.ws_frame()),
            ws_proto::Message::text("6")
        );
        assert_eq!(
            ws_proto::Message::from(Packet::binary(vec![7u8]).ws_frame()),
            ws_proto::Message::binary(vec![7u8])
        );
    }

    #[test]
    fn probe_detection() {
        assert!(Packet::Pong(Utf8Bytes::from("probe")).is_probe());
        assert!(!Packet::message("probe").is_probe());
        assert!(!Packet::Ping(Utf8Bytes::from("probes")).is_probe());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = Utf8Bytes> {
            any::<String>().prop_map(Utf8Bytes::from)
        }

        fn packet() -> impl Strategy<Value = Packet> {
            prop_oneof![
                text().prop_map(Packet::Open),
                Just(Packet::Close),
                text().prop_map(Packet::Ping),
                text().prop_map(Packet::Pong),
                text().prop_map(Packet::Message),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Packet::binary),
                Just(Packet::Upgrade),
                Just(Packet::Noop),
            ]
        }

        proptest! {
            #[test]
            fn ws_round_trip(p in packet()) {
                prop_assert_eq!(decode_frame(p.ws_frame()), Ok(p));
            }

            #[test]
            fn ws_text_never_panics(s in any::<String>()) {
                if let Ok(p) = Packet::from_ws_text(Utf8Bytes::from(s)) {
                    prop_assert_eq!(decode_frame(p.ws_frame()), Ok(p));
                }
            }
        }
    }
}
