//! Tokio WebSocket server and client over the sans-IO `ws-proto` core.
//!
//! This crate is the thin IO layer: it reads bytes from an
//! `AsyncRead + AsyncWrite` transport into [`ws_proto::Connection`], writes
//! what the connection queues (vectored, batched), and adds what needs a
//! clock: keepalive pings and close timeouts. Frame rules, UTF-8, limits and
//! compression all live in `ws-proto`.
//!
//! - Servers: [`Acceptor::accept`] over any stream (TCP, TLS, a test pipe), or
//!   [`upgrade`] to take over a hyper/axum request so one port serves HTTP and
//!   WebSocket.
//! - Clients: [`connect`] to `ws://` and `wss://` URLs (TLS by rustls).
//! - Broadcast: frame a message once as a [`SharedFrame`] and
//!   [`WebSocket::queue_shared`] the same bytes on every connection.
//!
//! ```no_run
//! # async fn run() -> Result<(), ws::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let acceptor = ws::Acceptor::new();
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let acceptor = acceptor.clone();
//!     tokio::spawn(async move {
//!         let mut socket = acceptor.accept(tcp).await?;
//!         while let Some(message) = socket.recv().await {
//!             let message = message?;
//!             if message.is_data() {
//!                 socket.send(message).await?;
//!             }
//!         }
//!         Ok::<_, ws::Error>(())
//!     });
//! }
//! # }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
mod config;
mod error;
mod server;
mod stream;
pub mod upgrade;

pub use client::{connect, Connector, MaybeTlsStream};
pub use config::WebSocketConfig;
pub use error::Error;
pub use server::Acceptor;
pub use stream::WebSocket;
pub use upgrade::upgrade;

pub use ws_proto::deflate::DeflateConfig;
pub use ws_proto::{CloseCode, CloseFrame, Message, SharedFrame, Utf8Bytes};
