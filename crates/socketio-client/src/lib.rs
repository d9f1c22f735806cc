//! Socket.IO v5 client over Engine.IO v4, WebSocket transport only.
//!
//! A [`Client`] joins one namespace of a Socket.IO server: it opens
//! `ws[s]://host/socket.io/?EIO=4&transport=websocket`, reads the Engine.IO
//! `open` packet, sends the namespace CONNECT (with an optional auth
//! payload) and resolves once the server accepts it, or fails with the
//! server's `connect_error` message. From then on one background task owns
//! the connection: it answers the server's pings, treats a server silent for
//! `pingInterval + pingTimeout` as dead, runs the event handlers, writes what
//! the handles emit, and reconnects with exponential backoff and jitter when
//! the connection drops (re-sending the same auth, keeping the handlers).
//!
//! Events carry JSON arguments and binary attachments both ways
//! ([`Client::emit_binary`], [`Data::binary`]; attachments are reassembled
//! with `socketio_proto::BinaryAssembler`), with acknowledgements both ways
//! ([`Client::emit_with_ack`], [`AckSender`]). Packet encoding is the
//! sans-IO `socketio-proto` and `engineio-proto` crates'; WebSocket framing,
//! TLS and compression are `ws`'s (see [`ClientBuilder::connector`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use socketio_client::{placeholder, Client};
//!
//! # async fn run() -> Result<(), socketio_client::Error> {
//! let client = Client::builder("http://127.0.0.1:3000")
//!     .namespace("/custom")
//!     .auth(serde_json::json!({ "token": "secret" }))
//!     .on("news", |data, _ack| println!("news: {:?}", data.args))
//!     .on_disconnect(|reason| println!("disconnected: {reason}"))
//!     .connect()
//!     .await?;
//! println!("connected as {:?}", client.id());
//!
//! client.emit("chat", &("hello",))?;
//! client.emit_binary("upload", &("file.bin", placeholder(0)), vec![Bytes::from_static(b"\x01\x02")])?;
//! let answer = client.emit_with_ack("ping", &(), Duration::from_secs(5)).await?;
//! println!("ack: {:?}", answer.args);
//!
//! client.disconnect().await;
//! # Ok(()) }
//! ```
//!
//! Polling, the polling-to-WebSocket upgrade, several namespaces over one
//! connection and connection state recovery are not supported.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod builder;
mod client;
mod error;
mod task;
mod url;

pub use builder::ClientBuilder;
pub use client::{AckSender, Client, Data};
pub use error::{DisconnectReason, Error};

pub use socketio_proto::{placeholder, Placeholder};
