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
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default().path("/socket.io/"),
            connect_timeout: Duration::from_secs(45),
            max_attachments: socketio_proto::DEFAULT_MAX_ATTACHMENTS,
        }
    }
}

impl SocketIoConfig {
    /// Sets the Engine.IO options.
    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Sets [`SocketIoConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}
