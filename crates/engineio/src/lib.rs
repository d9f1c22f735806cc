//! Engine.IO v4 server: the transport layer under Socket.IO.
//!
//! This crate owns sessions and their life: the handshake, HTTP
//! long-polling (GET to receive, POST to send), the WebSocket transport, the
//! polling-to-WebSocket upgrade (`2probe`/`3probe`, a noop to release the
//! pending poll, `5`), heartbeats (server pings, client pongs, a timeout),
//! and the protocol's error answers. The packet and payload codec is the
//! sans-IO `engineio-proto` crate; WebSocket framing is `ws`. What a message
//! means is the [`Handler`]'s business (Socket.IO sits there).
//!
//! Every outgoing packet is a [`SharedFrame`]: encoded once, it can be queued
//! on any number of sessions, whichever transport each uses.
//!
//! ```no_run
//! use engineio::{CloseReason, Engine, EngineConfig, Handler, Socket};
//! use bytes::Bytes;
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_open(&self, _socket: &Socket) {}
//!     fn on_message(&self, socket: &Socket, text: ws::Utf8Bytes) {
//!         socket.send_text(&text);
//!     }
//!     fn on_binary(&self, socket: &Socket, data: Bytes) {
//!         socket.send_binary(data);
//!     }
//!     fn on_close(&self, _socket: &Socket, _reason: CloseReason) {}
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let engine = Engine::new(EngineConfig::default(), Echo);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! engine.serve(listener).await
//! # }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod engine;
mod polling;
mod socket;
mod tower;
mod websocket;

pub use config::{AllowRequest, Cors, EngineConfig};
pub use engine::{peer_addr, Engine};
pub use engineio_proto::EngineError;
pub use socket::{CloseReason, Socket, TransportKind};
pub use tower::{EngineLayer, EngineService};
pub use ws::SharedFrame;

use bytes::Bytes;
use ws::Utf8Bytes;

/// What the application does with sessions. Callbacks run on the session's
/// transport task: they must not block.
pub trait Handler: Send + Sync + 'static {
    /// A session completed its handshake.
    fn on_open(&self, socket: &Socket);
    /// A text message arrived.
    fn on_message(&self, socket: &Socket, text: Utf8Bytes);
    /// A binary message arrived.
    fn on_binary(&self, socket: &Socket, data: Bytes);
    /// The session ended (called once).
    fn on_close(&self, socket: &Socket, reason: CloseReason);
}

/// Encodes an Engine.IO message packet carrying `text`, ready to queue on
/// any number of sessions.
pub fn text_frame(text: &str) -> SharedFrame {
    let mut s = String::with_capacity(text.len() + 1);
    s.push('4');
    s.push_str(text);
    SharedFrame::text(s)
}

/// Encodes an Engine.IO binary message packet.
pub fn binary_frame(data: impl AsRef<[u8]>) -> SharedFrame {
    SharedFrame::binary(data)
}
