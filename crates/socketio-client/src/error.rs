//! What can go wrong, and why a connection ended.

use thiserror::Error;

/// Everything a [`Client`](crate::Client) can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to [`Client::builder`](crate::Client::builder) cannot
    /// be used.
    #[error("bad url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The namespace name is not valid (it must start with `/` and contain
    /// no `,`).
    #[error("invalid namespace {0:?}")]
    InvalidNamespace(String),
    /// The WebSocket connection could not be opened or failed.
    #[error("websocket: {0}")]
    Transport(#[from] ws::Error),
    /// The server broke the Engine.IO or Socket.IO protocol during the
    /// handshake (no `open` packet, an unreadable one, ...).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The server refused the namespace connection (`connect_error`), e.g.
    /// because a middleware rejected the auth payload.
    #[error("connection refused by the server: {message}")]
    ConnectRefused {
        /// The server's message, e.g. `"invalid token"`.
        message: String,
        /// The `data` the server attached to the refusal, if any.
        data: Option<serde_json::Value>,
    },
    /// The connection (WebSocket, Engine.IO handshake and namespace
    /// CONNECT) did not complete within the connect timeout.
    #[error("timed out connecting to the server")]
    ConnectTimeout,
    /// No acknowledgement arrived within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The client is disconnected for good (after
    /// [`Client::disconnect`](crate::Client::disconnect), a server-side
    /// disconnect, or failed reconnection), or the connection that carried
    /// an event dropped before its acknowledgement arrived.
    #[error("the client is disconnected")]
    Disconnected,
    /// The arguments could not be encoded as a Socket.IO packet (they must
    /// serialize to a JSON array: a tuple, slice or `Vec`).
    #[error("could not encode the packet: {0}")]
    Encode(#[source] socketio_proto::Error),
}

/// Why a namespace connection ended; the strings are the reference
/// client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected the socket (a Socket.IO DISCONNECT packet).
    /// The client does not reconnect.
    IoServerDisconnect,
    /// [`Client::disconnect`](crate::Client::disconnect) was called, or every
    /// handle to the client was dropped. The client does not reconnect.
    IoClientDisconnect,
    /// The server sent no ping within `pingInterval + pingTimeout`.
    PingTimeout,
    /// The connection was closed (WebSocket close, Engine.IO close packet,
    /// or end of stream).
    TransportClose,
    /// The connection failed (IO or WebSocket protocol error).
    TransportError,
    /// The server sent a packet that could not be decoded.
    ParseError,
}

impl DisconnectReason {
    /// The reason as the reference client names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IoServerDisconnect => "io server disconnect",
            Self::IoClientDisconnect => "io client disconnect",
            Self::PingTimeout => "ping timeout",
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::ParseError => "parse error",
        }
    }

    /// Whether a client with reconnection enabled reconnects after this.
    pub fn reconnects(self) -> bool {
        !matches!(self, Self::IoServerDisconnect | Self::IoClientDisconnect)
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
