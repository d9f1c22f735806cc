//! The crate's error type.

use thiserror::Error;

/// Why a cluster operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterError {
    /// Redis cannot be reached right now (the connection is down and being
    /// re-established); retrying later may succeed.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Server(String),
    /// A reply or message did not have the expected shape.
    #[error("unexpected data from redis: {0}")]
    Decode(String),
    /// The configuration is unusable (e.g. a malformed URL).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The cluster handle was closed.
    #[error("the cluster connection is closed")]
    Closed,
}

impl From<redis::RedisError> for ClusterError {
    fn from(err: redis::RedisError) -> Self {
        if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
            ClusterError::Unavailable(err.to_string())
        } else {
            ClusterError::Server(err.to_string())
        }
    }
}

impl From<ClusterError> for socketio::AdapterError {
    fn from(err: ClusterError) -> Self {
        match err {
            ClusterError::Decode(e) => socketio::AdapterError::Encode(e),
            other => socketio::AdapterError::Unavailable(other.to_string()),
        }
    }
}
