//! Socket.IO server options.

use std::time::Duration;

use engineio::EngineConfig;

/// Server options; every field has the reference server's default.
#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// Engine.IO options; the path defaults to `/socket.io/`.
    pub engine: EngineConfig,
    /// How long a client may take to connect to a namespace after the
    /// Engine.IO handshake (default 45 s).
    pub connect_timeout: Duration,
    /// Most binary attachments one packet may announce (default 10).
    pub max_attachments: usize,
    /// Connection state recovery (default: off).
    pub recovery: Option<RecoveryConfig>,
}

/// Connection state recovery: a client that lost its connection and comes
/// back within `max_disconnection_duration` gets its socket id, its rooms
/// and every event it missed, and sees `socket.recovered === true`.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// How long a disconnected session is kept (default 2 minutes).
    pub max_disconnection_duration: Duration,
    /// Recovered sockets skip the namespace's middleware (default true).
    pub skip_middlewares: bool,
    /// Most events kept for replay per namespace (default 100,000); older
    /// ones are dropped first, and a client that missed them is not
    /// recovered.
    pub max_buffered_packets: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
            max_buffered_packets: 100_000,
        }
    }
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default().path("/socket.io/"),
            connect_timeout: Duration::from_secs(45),
            max_attachments: socketio_proto::DEFAULT_MAX_ATTACHMENTS,
            recovery: None,
        }
    }
}

impl SocketIoConfig {
    /// Sets the Engine.IO options.
    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Turns on connection state recovery.
    pub fn recovery(mut self, recovery: RecoveryConfig) -> Self {
        self.recovery = Some(recovery);
        self
    }

    /// Sets [`SocketIoConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}
