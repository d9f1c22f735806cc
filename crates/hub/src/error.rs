//! The crate's error type and its mapping to Centrifugo's reply codes.
//!
//! Every fallible operation of the hub, its stores and brokers returns
//! [`Error`]. The variants carry what a caller needs to answer a client;
//! [`Error::code`] gives the Centrifugo reply code, the one place that
//! mapping lives. Storage, broker and presence failures keep their cause as
//! a source so that logs show it, and are [temporary](Error::is_temporary):
//! they answer 108 (not available) with `temporary: true`, so that clients
//! retry, and the HTTP API answers them with 503.

use crate::channel::ChannelNameError;

/// Any error a backend (store, broker, presence) can carry as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the hub.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The channel name breaks the naming rules (code 107, bad request).
    #[error("invalid channel name: {0}")]
    InvalidChannel(#[from] ChannelNameError),
    /// The channel's namespace is not configured (code 102).
    #[error("unknown channel: namespace {namespace:?} is not configured")]
    UnknownChannel {
        /// The namespace the channel name asked for.
        namespace: String,
    },
    /// The caller may not do this on this channel (code 103).
    #[error("permission denied")]
    PermissionDenied,
    /// The client is already subscribed to the channel (code 105).
    #[error("already subscribed to {channel}")]
    AlreadySubscribed {
        /// The channel.
        channel: String,
    },
    /// A configured limit would be exceeded (code 106).
    #[error("limit exceeded: {what} (limit {limit})")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// The request is malformed or contradicts itself (code 107).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The feature is not enabled for the channel's namespace, e.g. history
    /// or presence (code 108).
    #[error("{what} is not available for this channel")]
    NotAvailable {
        /// The feature that is off: `"history"`, `"presence"`, ...
        what: &'static str,
    },
    /// The stream position given cannot be continued from: another epoch, an
    /// offset past the end, or publications after it are no longer kept
    /// (code 112).
    #[error("unrecoverable position")]
    UnrecoverablePosition,
    /// The store failed or is unreachable (code 108, temporary).
    #[error("storage error: {0}")]
    Storage(#[source] BoxError),
    /// The broker failed or is unreachable (code 108, temporary).
    #[error("broker error: {0}")]
    Broker(#[source] BoxError),
    /// The presence store failed or is unreachable (code 108, temporary).
    #[error("presence error: {0}")]
    Presence(#[source] BoxError),
    /// The hub is shutting down or a task it ran failed (code 100).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The Centrifugo reply code for this error: 100 internal, 102 unknown
    /// channel, 103 permission denied, 105 already subscribed, 106 limit
    /// exceeded, 107 bad request, 108 not available (a feature that is off,
    /// or a backend that is unreachable right now, then
    /// [temporary](Self::is_temporary)), 112 unrecoverable position.
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidChannel(_) | Error::BadRequest(_) => 107,
            Error::UnknownChannel { .. } => 102,
            Error::PermissionDenied => 103,
            Error::AlreadySubscribed { .. } => 105,
            Error::LimitExceeded { .. } => 106,
            Error::NotAvailable { .. } => 108,
            Error::Storage(_) | Error::Broker(_) | Error::Presence(_) => 108,
            Error::UnrecoverablePosition => 112,
            Error::Internal(_) => 100,
        }
    }

    /// Whether retrying later may succeed: backend failures are temporary
    /// (the HTTP API answers them with 503, the client protocol with
    /// `temporary: true`).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Storage(_) | Error::Broker(_) | Error::Presence(_)
        )
    }

    /// Wraps a store failure.
    pub fn storage(err: impl Into<BoxError>) -> Self {
        Error::Storage(err.into())
    }

    /// Wraps a broker failure.
    pub fn broker(err: impl Into<BoxError>) -> Self {
        Error::Broker(err.into())
    }

    /// Wraps a presence store failure.
    pub fn presence(err: impl Into<BoxError>) -> Self {
        Error::Presence(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let cases: Vec<(Error, u32, bool)> = vec![
            (Error::InvalidChannel(ChannelNameError::Empty), 107, false),
            (
                Error::UnknownChannel {
                    namespace: "x".into(),
                },
                102,
                false,
            ),
            (Error::PermissionDenied, 103, false),
            (
                Error::AlreadySubscribed {
                    channel: "c".into(),
                },
                105,
                false,
            ),
            (
                Error::LimitExceeded {
                    what: "subscribers",
                    limit: 1,
                },
                106,
                false,
            ),
            (Error::BadRequest("x".into()), 107, false),
            (Error::NotAvailable { what: "history" }, 108, false),
            (Error::UnrecoverablePosition, 112, false),
            (Error::storage("disk"), 108, true),
            (Error::broker("redis down"), 108, true),
            (Error::presence("redis down"), 108, true),
            (Error::Internal("x".into()), 100, false),
        ];
        for (err, code, temporary) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.is_temporary(), temporary, "{err}");
        }
    }

    #[test]
    fn sources_are_kept() {
        use std::error::Error as _;
        let err = Error::storage(std::io::Error::other("disk full"));
        assert_eq!(
            err.source().map(|s| s.to_string()).as_deref(),
            Some("disk full")
        );
    }
}
