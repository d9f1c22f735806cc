//! The crate's error type: protocol errors from `ws-proto`, IO, TLS, URLs
//! and timeouts.

use thiserror::Error;
use ws_proto::handshake::HandshakeError;

/// Everything that can fail on a WebSocket connection.
#[derive(Debug, Error)]
pub enum Error {
    /// The peer broke the protocol, or a limit was exceeded; the matching
    /// close frame has already been sent.
    #[error(transparent)]
    Protocol(#[from] ws_proto::Error),
    /// The opening handshake failed; for servers, the rejection response has
    /// already been written.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The transport failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A URL that `connect` cannot use.
    #[error("bad url {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// A timer ran out: the handshake, a close, or a keepalive pong.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Queued output exceeds the configured bound: the peer is not reading.
    #[error("write buffer full ({limit} bytes): the peer is not reading")]
    WriteBufferFull {
        /// Configured `max_write_buffer`.
        limit: usize,
    },
    /// The transport ended without a close frame (close code 1006).
    #[error("connection closed without a close frame")]
    AbnormalClosure,
}

impl Error {
    /// The close code the peer was sent for this error, if any.
    pub fn close_code(&self) -> Option<ws_proto::CloseCode> {
        match self {
            Self::Protocol(e) => e.close_code(),
            _ => None,
        }
    }
}
