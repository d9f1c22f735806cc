//! Socket.IO v5 server over the `engineio` transport layer.
//!
//! This crate owns what Socket.IO adds to Engine.IO: namespaces (static, or
//! created on demand by a matcher), the CONNECT handshake with its auth
//! payload and middleware that can refuse it, events with JSON arguments and
//! binary attachments, acknowledgements in both directions with timeouts,
//! rooms and broadcasts. A broadcast is encoded once and the same frames are
//! queued on every target session. Packet parsing is the sans-IO
//! `socketio-proto` crate; sessions, heartbeats and transports are
//! `engineio`'s.
//!
//! ```no_run
//! use socketio::{SocketIo, SocketIoConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::new(SocketIoConfig::default());
//! io.namespace("/", |socket| {
//!     socket.on("chat", |socket, data, ack| {
//!         socket.broadcast().emit("chat", &data.args);
//!         if let Some(ack) = ack {
//!             ack.send(&("ok",));
//!         }
//!     });
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! io.serve(listener).await
//! # }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod adapter;
mod broadcast;
mod config;
mod error;
mod namespace;
mod recovery;
mod remote;
mod server;
mod socket;
mod sync;

pub use adapter::{
    AckRequest, Adapter, AdapterFactory, BoxFuture, BroadcastOptions, HandshakeData, LocalAdapter,
    LocalNamespace, Room, SocketData, SocketId,
};
pub use broadcast::BroadcastOperator;
pub use config::{RecoveryConfig, SocketIoConfig};
pub use error::{AckError, AdapterError, DisconnectReason, EmitError};
pub use recovery::Restored;
pub use remote::RemoteSocket;
pub use server::{NamespaceRef, SioHandler, SocketIo};
pub use socket::{AckSender, Data, Socket};

pub use socketio_proto::{placeholder, Placeholder};
