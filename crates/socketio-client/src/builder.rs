//! [`ClientBuilder`]: options, handlers registered before connecting, and
//! the reconnection backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{AckSender, Client, Data, EventHandler};
use crate::url::ServerUrl;
use crate::{DisconnectReason, Error};

pub(crate) type ConnectCallback = Arc<dyn Fn() + Send + Sync>;
pub(crate) type DisconnectCallback = Arc<dyn Fn(DisconnectReason) + Send + Sync>;
pub(crate) type ReconnectCallback = Arc<dyn Fn(u32) + Send + Sync>;
pub(crate) type FailedCallback = Arc<dyn Fn(&Error) + Send + Sync>;

/// Exponential backoff with jitter between reconnection attempts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    /// 0 ..= 1: the delay is spread over `delay * (1 ± jitter)`.
    pub(crate) jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based), given a uniform random
    /// `r` in `[0, 1)`: `initial * 2^attempt`, capped at `max`, spread by the
    /// jitter and capped at `max` again.
    pub(crate) fn delay(&self, attempt: u32, r: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * 2f64.powi(attempt.min(64) as i32)).min(max);
        let spread = base * (1.0 + self.jitter * (2.0 * r - 1.0));
        Duration::try_from_secs_f64(spread.clamp(0.0, max)).unwrap_or(self.max)
    }
}

/// Everything a connection attempt needs; fixed at `connect`.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) engine_url: String,
    pub(crate) namespace: socketio_proto::Namespace,
    pub(crate) auth: Option<serde_json::Value>,
    pub(crate) connector: ws::Connector,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnection: bool,
    pub(crate) backoff: Backoff,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_attachments: usize,
}

/// Lifecycle callbacks, run on the client's task.
#[derive(Default, Clone)]
pub(crate) struct Callbacks {
    pub(crate) connect: Option<ConnectCallback>,
    pub(crate) disconnect: Option<DisconnectCallback>,
    pub(crate) reconnect: Option<ReconnectCallback>,
    pub(crate) reconnect_failed: Option<FailedCallback>,
}

/// Configures and opens a [`Client`]; see [`Client::builder`].
///
/// Every option has the reference client's default: path `/socket.io/`,
/// the main namespace, no auth, reconnection on with a delay of 1 s doubling
/// up to 5 s with ±50 % jitter and unlimited attempts, a 20 s connect
/// timeout.
pub struct ClientBuilder {
    url: String,
    path: String,
    namespace: Option<String>,
    auth: Option<serde_json::Value>,
    query: Vec<(String, String)>,
    connector: ws::Connector,
    connect_timeout: Duration,
    reconnection: bool,
    backoff: Backoff,
    max_attempts: Option<u32>,
    max_attachments: usize,
    handlers: HashMap<String, EventHandler>,
    callbacks: Callbacks,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("path", &self.path)
            .field("namespace", &self.namespace)
            .field("reconnection", &self.reconnection)
            .field("events", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            path: "/socket.io/".to_owned(),
            namespace: None,
            auth: None,
            query: Vec::new(),
            connector: ws::Connector::new(),
            connect_timeout: Duration::from_secs(20),
            reconnection: true,
            backoff: Backoff::default(),
            max_attempts: None,
            max_attachments: socketio_proto::DEFAULT_MAX_ATTACHMENTS,
            handlers: HashMap::new(),
            callbacks: Callbacks::default(),
        }
    }

    /// The Engine.IO path on the server (default `/socket.io/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The namespace to join (default: the URL's path if it has one, else
    /// `/`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The auth payload sent with every CONNECT (initial and after each
    /// reconnection); it must be a JSON object.
    pub fn auth(mut self, auth: serde_json::Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds a query parameter to the handshake URL (percent-encoded here).
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// The WebSocket connector: TLS roots, compression, extra headers,
    /// frame limits.
    pub fn connector(mut self, connector: ws::Connector) -> Self {
        self.connector = connector;
        self
    }

    /// How long opening a connection may take, up to the namespace CONNECT
    /// reply (default 20 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to reconnect when the connection drops (default true). The
    /// client never reconnects after [`Client::disconnect`] or a server-side
    /// disconnect.
    pub fn reconnection(mut self, enabled: bool) -> Self {
        self.reconnection = enabled;
        self
    }

    /// The delay before the first reconnection attempt (default 1 s); it
    /// doubles with each failed attempt.
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.backoff.initial = delay;
        self
    }

    /// The longest delay between reconnection attempts (default 5 s).
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.backoff.max = delay;
        self
    }

    /// Jitter: each delay is picked at random within `delay * (1 ± factor)`
    /// (default 0.5; clamped to 0 ..= 1).
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.backoff.jitter = if factor.is_nan() {
            0.0
        } else {
            factor.clamp(0.0, 1.0)
        };
        self
    }

    /// The most reconnection attempts after one drop before giving up
    /// (default: unlimited).
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The most binary attachments one received packet may announce
    /// (default 10); more is a protocol error.
    pub fn max_attachments(mut self, max: usize) -> Self {
        self.max_attachments = max;
        self
    }

    /// Registers the handler for server event `event` (replacing an earlier
    /// one). It receives the arguments and, if the server asked for an
    /// acknowledgement, an [`AckSender`]. Handlers run on the client's task:
    /// they must not block (spawn for slow work).
    pub fn on<F>(mut self, event: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Data, Option<AckSender>) + Send + Sync + 'static,
    {
        self.handlers.insert(event.into(), Arc::new(handler));
        self
    }

    /// Called each time the namespace connection is established: after
    /// the first connect and after every reconnection.
    pub fn on_connect<F>(mut self, callback: F) -> Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.callbacks.connect = Some(Arc::new(callback));
        self
    }

    /// Called each time an established connection ends, with the reason.
    pub fn on_disconnect<F>(mut self, callback: F) -> Self
    where
        F: Fn(DisconnectReason) + Send + Sync + 'static,
    {
        self.callbacks.disconnect = Some(Arc::new(callback));
        self
    }

    /// Called after each successful reconnection with the number of
    /// attempts it took (1 for the first).
    pub fn on_reconnect<F>(mut self, callback: F) -> Self
    where
        F: Fn(u32) + Send + Sync + 'static,
    {
        self.callbacks.reconnect = Some(Arc::new(callback));
        self
    }

    /// Called when the client gives up reconnecting: attempts exhausted, or
    /// the server refused the namespace connection. The client is then
    /// disconnected for good.
    pub fn on_reconnect_failed<F>(mut self, callback: F) -> Self
    where
        F: Fn(&Error) + Send + Sync + 'static,
    {
        self.callbacks.reconnect_failed = Some(Arc::new(callback));
        self
    }

    /// Connects: the WebSocket, the Engine.IO handshake, then the namespace
    /// CONNECT. Resolves once the server accepted the namespace. A failure
    /// here is returned as is (no reconnection): [`Error::ConnectRefused`]
    /// carries the server's message (e.g. a middleware's refusal).
    ///
    /// Must be called within a Tokio runtime: the client runs on a task of
    /// its own.
    pub async fn connect(self) -> Result<Client, Error> {
        let url = ServerUrl::parse(&self.url)?;
        let namespace = self
            .namespace
            .or_else(|| url.path.clone())
            .unwrap_or_else(|| "/".to_owned());
        let namespace = socketio_proto::Namespace::new(namespace.clone())
            .map_err(|_| Error::InvalidNamespace(namespace))?;
        if let Some(auth) = &self.auth {
            if !auth.is_object() {
                return Err(Error::Encode(socketio_proto::Error::PayloadNotObject));
            }
        }
        let config = Config {
            engine_url: url.engine_url(&self.path, &self.query),
            namespace,
            auth: self.auth,
            connector: self.connector,
            connect_timeout: self.connect_timeout,
            reconnection: self.reconnection,
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            max_attachments: self.max_attachments,
        };
        Client::start(config, self.handlers, self.callbacks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::default();
        // r = 0.5 is the midpoint: no jitter.
        let secs: Vec<f64> = (0..6).map(|n| b.delay(n, 0.5).as_secs_f64()).collect();
        assert_eq!(secs, [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]);
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(1, 0.999_999).as_millis(), 2999);
        assert_eq!(b.delay(5, 0.999), Duration::from_secs(5));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(5));
        let none = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(none.delay(1, 0.0), Duration::from_secs(2));
    }
}
