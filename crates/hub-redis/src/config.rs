//! [`RedisConfig`]: where Redis is, the key prefix, TTLs, timeouts and
//! reconnect pacing. Plain data with defaults; nothing here connects.

use std::time::Duration;

/// Settings of a [`RedisBackend`](crate::RedisBackend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The server, as a `redis://` URL (default `redis://127.0.0.1:6379`).
    pub url: String,
    /// Every key and topic starts with this and a colon (default `duplex`).
    /// Nodes that are to act as one share it; tests use a unique one each.
    pub prefix: String,
    /// How long a presence entry lives without a refresh (default 60 s). A
    /// node refreshes its entries through
    /// [`Hub::refresh_presence`](hub::Hub::refresh_presence), which must run
    /// more often than this (see [`presence_refresh_interval`](Self::presence_refresh_interval));
    /// the entries of a node that stops are gone at most this long after
    /// its last refresh.
    pub presence_ttl: Duration,
    /// How long an idempotency key is remembered (default 5 minutes).
    pub idempotency_ttl: Duration,
    /// How long a channel's epoch and offset outlive its last use, unless
    /// the namespace sets `history_meta_ttl` (default 30 days).
    pub history_meta_ttl: Duration,
    /// Longest wait for a TCP connection and the handshake (default 2 s).
    pub connect_timeout: Duration,
    /// Longest wait for a reply to a command (default 5 s). A command
    /// without a reply by then fails, and the connection is replaced.
    pub command_timeout: Duration,
    /// How often an idle connection is checked with a `PING`, so that a
    /// dead Redis shows in [`RedisHealth`](crate::RedisHealth) without
    /// traffic (default 1 s).
    pub ping_interval: Duration,
    /// First delay before reconnecting (default 50 ms); doubles per failed
    /// attempt, with jitter.
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts (default 2 s).
    pub reconnect_max: Duration,
    /// The publish script also publishes to the channel's topic, so a
    /// publication costs one round trip and [`Broker::publish`](hub::Broker::publish)
    /// has nothing left to do (default `true`). With `false`, the store only
    /// stores and the broker sends a `PUBLISH` of its own: two round trips,
    /// for a broker paired with a store that is not this crate's.
    pub fan_out_from_store: bool,
    /// Most commands sent to Redis in one pipelined write (default 512).
    pub max_batch: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "duplex".into(),
            presence_ttl: Duration::from_secs(60),
            idempotency_ttl: hub::store::DEFAULT_IDEMPOTENCY_TTL,
            history_meta_ttl: Duration::from_secs(30 * 86_400),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            fan_out_from_store: true,
            max_batch: 512,
        }
    }
}

impl RedisConfig {
    /// The default settings for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Default::default()
        }
    }

    /// These settings with keys under `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often to call [`Hub::refresh_presence`](hub::Hub::refresh_presence):
    /// a third of [`presence_ttl`](Self::presence_ttl), so that two
    /// refreshes can fail before an entry lapses.
    pub fn presence_refresh_interval(&self) -> Duration {
        (self.presence_ttl / 3).max(Duration::from_millis(10))
    }
}
