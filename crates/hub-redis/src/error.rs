//! [`RedisBackendError`]: what goes wrong talking to Redis.
//!
//! The trait methods wrap it in the hub's error for the role that failed
//! ([`hub::Error::storage`], [`hub::Error::broker`],
//! [`hub::Error::presence`]), all temporary; this crate's own functions
//! return it as is. It is `Clone` because one connection failure fails
//! every request that was waiting on it.

use std::sync::Arc;

use crate::wire::WireError;

/// A failure of the Redis backend.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackendError {
    /// The URL in the configuration is not a usable Redis URL.
    #[error("invalid redis url: {0}")]
    InvalidUrl(Arc<redis::RedisError>),
    /// Not connected to Redis right now: the request was refused at once
    /// instead of waiting. Carries the last connection error.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The connection failed or timed out while the request was in flight.
    #[error("redis connection: {0}")]
    Connection(Arc<redis::RedisError>),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Server(String),
    /// Redis answered with something this crate did not expect.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// Data read from Redis could not be decoded.
    #[error("undecodable data in redis: {0}")]
    Wire(#[from] WireError),
    /// The backend was dropped while the request waited.
    #[error("the redis backend was shut down")]
    Closed,
}

impl From<redis::RedisError> for RedisBackendError {
    fn from(err: redis::RedisError) -> Self {
        RedisBackendError::Connection(Arc::new(err))
    }
}
