//! Why sockets end and why acknowledgements fail.

use thiserror::Error;

/// Why a socket disconnected; the strings are the reference server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client's transport closed.
    TransportClose,
    /// The transport failed.
    TransportError,
    /// The client missed a heartbeat.
    PingTimeout,
    /// The client sent an invalid packet.
    ParseError,
    /// The server closed the whole connection.
    ForcedClose,
    /// The server disconnected the socket from its namespace.
    ServerNamespaceDisconnect,
    /// The client left the namespace.
    ClientNamespaceDisconnect,
    /// The server is shutting down.
    ServerShuttingDown,
}

impl DisconnectReason {
    /// The reason as the reference implementation names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ParseError => "parse error",
            Self::ForcedClose => "forced close",
            Self::ServerNamespaceDisconnect => "server namespace disconnect",
            Self::ClientNamespaceDisconnect => "client namespace disconnect",
            Self::ServerShuttingDown => "server shutting down",
        }
    }

    pub(crate) fn from_engine(reason: engineio::CloseReason) -> Self {
        use engineio::CloseReason as C;
        match reason {
            C::TransportClose => Self::TransportClose,
            C::TransportError | C::SlowClient => Self::TransportError,
            C::PingTimeout => Self::PingTimeout,
            C::ParseError => Self::ParseError,
            C::ServerClose => Self::ForcedClose,
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An acknowledgement that did not arrive.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AckError {
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected first.
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
    /// The arguments could not be encoded.
    #[error("could not encode the event: {0}")]
    Encode(String),
}

/// An event that could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmitError {
    /// The arguments could not be encoded as an event.
    #[error("could not encode the event: {0}")]
    Encode(String),
    /// The socket is disconnected.
    #[error("the socket is disconnected")]
    Disconnected,
}

/// A many-node operation that did not complete (only adapters spanning
/// several nodes fail this way; the in-memory adapter never does).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdapterError {
    /// Some nodes did not answer in time.
    #[error("timed out: {responded} of {expected} nodes answered")]
    Timeout {
        /// Nodes that answered.
        responded: usize,
        /// Nodes that were expected to answer.
        expected: usize,
    },
    /// The shared backend (e.g. Redis) cannot be reached.
    #[error("adapter backend unavailable: {0}")]
    Unavailable(String),
    /// The request could not be encoded.
    #[error("could not encode the request: {0}")]
    Encode(String),
}
