//! Sans-IO core of the WebSocket protocol (RFC 6455) and its permessage-deflate
//! extension (RFC 7692).
//!
//! This crate owns the bytes: frame headers, masking, UTF-8 validation of text,
//! the close handshake, fragmentation, the HTTP/1.1 upgrade handshake and
//! compression. It owns no sockets, no timers and no async runtime: callers feed
//! it the bytes they read and write out the bytes it hands back. The tokio layer
//! lives in the `duplex-ws` crate.
//!
//! The entry point for an established connection is [`Connection`]:
//!
//! ```
//! use ws_proto::{Connection, Config, Message, Role};
//!
//! let mut server = Connection::new(Role::Server, Config::default());
//! // A masked client text frame carrying "hi".
//! let key = [1, 2, 3, 4];
//! let wire = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
//! let (used, msg) = server.receive(&wire).unwrap();
//! assert_eq!(used, wire.len());
//! assert_eq!(msg, Some(Message::text("hi")));
//! # let _ = key;
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod close;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Config, Connection, SharedFrame};
pub use error::Error;
pub use frame::{FrameHeader, OpCode};
pub use message::{Message, Utf8Bytes};

/// Which end of the connection this side plays: it decides masking rules.
///
/// Clients mask every frame they send and servers must reject unmasked
/// frames; servers never mask and clients must reject masked frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that accepted the TCP connection.
    Server,
    /// The side that opened the TCP connection.
    Client,
}
