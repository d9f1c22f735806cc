//! Sans-IO core of the Engine.IO protocol, version 4.
//!
//! This crate turns bytes into Engine.IO packets and packets back into bytes,
//! in both of the protocol's wire forms: one packet per WebSocket frame
//! ([`Packet::from_ws_text`], [`Packet::from_ws_binary`], [`Packet::ws_frame`])
//! and many packets per HTTP long-polling body ([`payload::decode`],
//! [`payload::encode`]). It also builds the `open` handshake
//! ([`Handshake`], [`generate_sid`]), reads the `/engine.io/` query string
//! ([`Query`]) and names the protocol's HTTP error answers ([`EngineError`]).
//!
//! It owns no sockets, timers, sessions or HTTP plumbing and has no async
//! runtime: keeping a session table, running the ping/pong heartbeat,
//! holding long-poll requests open and driving transport upgrades is the
//! job of the `engineio` crate built on top of this one.
//!
//! Text travels as [`Utf8Bytes`] (re-exported from `ws-proto`), so the data of
//! a packet received in a WebSocket text frame or a polling body is a
//! zero-copy slice of the bytes that arrived.
//!
//! ```
//! use engineio_proto::{payload, Limits, Packet, Utf8Bytes, WsFrame};
//! use bytes::{Bytes, BytesMut};
//!
//! // WebSocket form: one packet per frame.
//! let packet = Packet::from_ws_text(Utf8Bytes::from("4hello")).unwrap();
//! assert_eq!(packet, Packet::message("hello"));
//! assert_eq!(packet.ws_frame(), WsFrame::Text(Utf8Bytes::from("4hello")));
//!
//! // Long-polling form: packets joined by the record separator.
//! let body = Bytes::from_static(b"4hello\x1e2\x1ebAQID");
//! let packets = payload::decode(&body, Limits::default()).unwrap();
//! assert_eq!(
//!     packets,
//!     [Packet::message("hello"), Packet::ping(), Packet::binary(vec![1u8, 2, 3])]
//! );
//! let mut out = BytesMut::new();
//! payload::encode(&packets, &mut out);
//! assert_eq!(&out[..], &body[..]);
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod handshake;
pub mod packet;
pub mod payload;
pub mod query;

pub use error::{EngineError, Error};
pub use handshake::{generate_sid, Handshake};
pub use packet::{Packet, PacketType, WsFrame};
pub use payload::Limits;
pub use query::{Query, Transport};
pub use ws_proto::Utf8Bytes;

/// The Engine.IO protocol revision this crate speaks: the `EIO` query
/// parameter must carry this number.
pub const PROTOCOL_VERSION: u8 = 4;
