//! Socket.IO server options.

use std::time::Duration;

use engineio::EngineConfig;

/// Server options; every field has the reference server's default.
#[derive(Clone)]
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
    /// Builds each namespace's adapter (default: [`crate::LocalAdapter`]).
    pub adapter: Option<crate::adapter::AdapterFactory>,
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
            adapter: None,
        }
    }
}

impl std::fmt::Debug for SocketIoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoConfig")
            .field("engine", &self.engine)
            .field("connect_timeout", &self.connect_timeout)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl SocketIoConfig {
    /// Uses `factory` to build each namespace's adapter (e.g. one that
    /// spans several nodes).
    pub fn adapter(
        mut self,
        factory: impl Fn(&str) -> std::sync::Arc<dyn crate::Adapter> + Send + Sync + 'static,
    ) -> Self {
        self.adapter = Some(std::sync::Arc::new(factory));
        self
    }

    /// The adapter for namespace `name`.
    pub(crate) fn make_adapter(&self, name: &str) -> std::sync::Arc<dyn crate::Adapter> {
        match &self.adapter {
            Some(factory) => factory(name),
            None => std::sync::Arc::new(crate::LocalAdapter::new(self.recovery.clone())),
        }
    }

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
