//! The crate's error type and its mapping to close codes.
//!
//! Every way a peer can break the protocol ends up here, and
//! [`Error::close_code`] is the one place that decides which close code the
//! peer is told: 1002 for protocol violations, 1007 for bad data, 1009 for
//! anything too big.

use thiserror::Error;

use crate::close::CloseCode;
use crate::deflate::DeflateError;
use crate::handshake::HandshakeError;

/// A rule of RFC 6455 the peer broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolViolation {
    /// Opcode 3-7 or 0xB-0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV1-3 set without an extension that defines them.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// A control frame with FIN clear.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame longer than 125 bytes")]
    ControlFrameTooLong,
    /// A 64-bit length with its most significant bit set.
    #[error("64-bit payload length with the top bit set")]
    LengthTopBitSet,
    /// A server received an unmasked frame.
    #[error("unmasked frame from a client")]
    UnmaskedFrame,
    /// A client received a masked frame.
    #[error("masked frame from a server")]
    MaskedFrame,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message was in progress.
    #[error("new data frame while a fragmented message is unfinished")]
    ExpectedContinuation,
    /// A close frame whose payload is a single byte.
    #[error("close frame with a 1-byte payload")]
    CloseLengthOne,
    /// A close code that may not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
}

/// Everything that can go wrong on a WebSocket connection.
#[derive(Debug, Error)]
pub enum Error {
    /// The peer broke the protocol (close 1002).
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolViolation),
    /// A text message or close reason was not UTF-8 (close 1007).
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A single frame is larger than the configured limit (close 1009).
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooBig {
        /// Declared payload length.
        size: u64,
        /// Configured `max_frame_size`.
        limit: usize,
    },
    /// A message is larger than the configured limit (close 1009).
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooBig {
        /// Configured `max_message_size`.
        limit: usize,
    },
    /// A compressed message could not be inflated (close 1007), or inflated
    /// past the limit (close 1009).
    #[error(transparent)]
    Deflate(#[from] DeflateError),
    /// The opening handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The application tried to send after the close handshake started.
    #[error("the connection is closing; nothing more can be sent")]
    SendAfterClose,
    /// The connection was closed.
    #[error("the connection is closed")]
    Closed,
}

impl From<crate::utf8::InvalidUtf8> for Error {
    fn from(_: crate::utf8::InvalidUtf8) -> Self {
        Self::InvalidUtf8
    }
}

impl Error {
    /// The close code to send the peer for this error, if it is the peer's
    /// fault.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            Self::InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => {
                Some(CloseCode::MESSAGE_TOO_BIG)
            }
            Self::Deflate(DeflateError::TooBig { .. }) => Some(CloseCode::MESSAGE_TOO_BIG),
            Self::Deflate(_) => Some(CloseCode::INVALID_PAYLOAD),
            Self::Handshake(_) | Self::SendAfterClose | Self::Closed => None,
        }
    }
}
