//! Engine.IO server options, with the defaults of the reference server.

use std::sync::Arc;
use std::time::Duration;

use engineio_proto::EngineError;

/// Who may call the server from a browser on another origin.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Allowed origins; empty means any (`*`, or the request's origin when
    /// credentials are allowed).
    pub origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
}

/// Checks a handshake request before a session is created; an `Err` is
/// sent to the client (403 for [`EngineError::Forbidden`]).
pub type AllowRequest = Arc<dyn Fn(&http::request::Parts) -> Result<(), EngineError> + Send + Sync>;

/// Server options. Every field has the reference server's default.
#[derive(Clone)]
pub struct EngineConfig {
    /// Interval between server pings (default 25 s).
    pub ping_interval: Duration,
    /// How long a pong may take (default 20 s).
    pub ping_timeout: Duration,
    /// Largest polling body or WebSocket message accepted (default 1 MB).
    pub max_payload: usize,
    /// Accept the long-polling transport (default true).
    pub polling: bool,
    /// Accept the WebSocket transport (default true).
    pub websocket: bool,
    /// Offer upgrades from polling to WebSocket (default true).
    pub allow_upgrades: bool,
    /// How long an upgrade may take (default 10 s).
    pub upgrade_timeout: Duration,
    /// Request path prefix (default `/engine.io/`).
    pub path: String,
    /// Cross-origin settings (default: none sent).
    pub cors: Option<Cors>,
    /// Hook run on handshakes (default: accept all).
    pub allow_request: Option<AllowRequest>,
    /// Most packets queued for one session before it is closed as too
    /// slow (default 4096).
    pub max_queued_packets: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            polling: true,
            websocket: true,
            allow_upgrades: true,
            upgrade_timeout: Duration::from_secs(10),
            path: "/engine.io/".to_owned(),
            cors: None,
            allow_request: None,
            max_queued_packets: 4096,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("max_payload", &self.max_payload)
            .field("polling", &self.polling)
            .field("websocket", &self.websocket)
            .field("path", &self.path)
            .field("cors", &self.cors)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Sets the ping interval and timeout.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`EngineConfig::max_payload`].
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets the request path prefix (e.g. `/socket.io/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.ends_with('/') {
            path.push('/');
        }
        self.path = path;
        self
    }

    /// Chooses the transports offered.
    pub fn transports(mut self, polling: bool, websocket: bool) -> Self {
        self.polling = polling;
        self.websocket = websocket;
        self
    }

    /// Sets [`EngineConfig::cors`].
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = Some(cors);
        self
    }

    /// Sets [`EngineConfig::allow_request`].
    pub fn allow_request(
        mut self,
        hook: impl Fn(&http::request::Parts) -> Result<(), EngineError> + Send + Sync + 'static,
    ) -> Self {
        self.allow_request = Some(Arc::new(hook));
        self
    }
}
