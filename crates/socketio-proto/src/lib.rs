//! Sans-IO codec for the Socket.IO v5 packet format.
//!
//! This crate turns engine.io text and binary messages into Socket.IO
//! [`Packet`]s and back, and nothing more: no sockets, no tasks, no timers.
//! It owns the wire format — `<type>[<attachments>-][<namespace>,][<ack
//! id>][<JSON>]` plus binary attachments — and its validation. It leaves to
//! the server crate everything with state or time in it: which namespaces
//! exist, rooms, handshake order, acknowledgement bookkeeping and timeouts,
//! and what to do on a protocol error (the reference servers close the
//! connection).
//!
//! Payloads stay raw JSON text, zero-copy slices of the received message
//! ([`ws_proto::Utf8Bytes`]); decoding validates them in one streaming pass
//! without building `serde_json::Value` trees, and the event helpers read
//! only what they need ([`Packet::event_name`] stops after the name).
//! Encoding writes each packet in one exactly-sized allocation, and the
//! result can be shared by every socket of a broadcast.
//!
//! ```
//! use bytes::Bytes;
//! use socketio_proto::{BinaryAssembler, Namespace, Packet, PacketKind};
//!
//! // Per connection: feed every engine.io message in order.
//! let mut asm = BinaryAssembler::new();
//! let packet = asm.feed_text(r#"2/admin,12["echo",{"n":1}]"#.into())?.expect("not binary");
//! assert_eq!(packet.kind, PacketKind::Event);
//! assert_eq!(packet.event_name()?, "echo");
//!
//! // Answer with the same arguments, never building a value tree.
//! let ack = Packet::ack(packet.namespace.clone(), 12, &packet.args()?)?;
//! assert_eq!(ack.encode().0.as_str(), r#"3/admin,12[{"n":1}]"#);
//!
//! // Broadcast: encode once, send the same bytes everywhere.
//! let news = Packet::event(Namespace::main(), "news", &("hello",), None)?;
//! let (text, attachments) = news.encode();
//! assert_eq!(text.as_str(), r#"2["news","hello"]"#);
//! assert!(attachments.is_empty());
//! # Ok::<(), socketio_proto::Error>(())
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod binary;
mod error;
mod json;
mod kind;
mod namespace;
mod packet;

#[cfg(test)]
mod tests;

pub use binary::{
    placeholder, BinaryAssembler, PartialPacket, Placeholder, DEFAULT_MAX_ATTACHMENTS,
};
pub use error::Error;
pub use kind::PacketKind;
pub use namespace::Namespace;
pub use packet::{Decoded, EventView, Packet};

/// Event names the reference implementation refuses to receive in an EVENT
/// packet, because its event emitters use them for lifecycle events.
///
/// [`Packet::decode`] accepts them; a server that dispatches events by name
/// should check [`is_reserved_event`] before calling user handlers.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of the [`RESERVED_EVENTS`].
///
/// ```
/// assert!(socketio_proto::is_reserved_event("disconnect"));
/// assert!(!socketio_proto::is_reserved_event("message"));
/// ```
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}
