//! Per-connection settings of the IO layer: protocol limits plus the timers
//! and buffer bounds that need a runtime.

use std::time::Duration;

/// Settings for one WebSocket connection. Every field has a sane default.
///
/// ```
/// use std::time::Duration;
/// let config = ws::WebSocketConfig::default()
///     .max_message_size(1 << 20)
///     .keepalive(Duration::from_secs(25), Duration::from_secs(10));
/// assert_eq!(config.protocol.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// Frame and message limits enforced by the protocol core.
    pub protocol: ws_proto::Config,
    /// Most bytes that may wait in the write queue (default 16 MiB);
    /// [`crate::WebSocket::queue`] fails beyond it.
    pub max_write_buffer: usize,
    /// Send a ping after this long without traffic from the peer (default:
    /// off).
    pub ping_interval: Option<Duration>,
    /// Fail the connection when no traffic follows a keepalive ping within
    /// this time (default 20 s).
    pub ping_timeout: Duration,
    /// How long [`crate::WebSocket::close`] waits for the peer's close frame
    /// (default 5 s).
    pub close_timeout: Duration,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            protocol: ws_proto::Config::default(),
            max_write_buffer: 16 << 20,
            ping_interval: None,
            ping_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl WebSocketConfig {
    /// Sets the largest message accepted (close 1009 beyond it).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.protocol.max_message_size = bytes;
        self
    }

    /// Sets the largest frame accepted (close 1009 beyond it).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.protocol.max_frame_size = bytes;
        self
    }

    /// Sets [`WebSocketConfig::max_write_buffer`].
    pub fn max_write_buffer(mut self, bytes: usize) -> Self {
        self.max_write_buffer = bytes;
        self
    }

    /// Pings after `interval` of silence; fails the connection if nothing
    /// arrives within `timeout` after the ping.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping_interval = Some(interval);
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`WebSocketConfig::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }
}
