//! The running node: what every transport and the HTTP API share.
//!
//! Owns [`Node`] (configuration, the [`Hub`], token verification, metrics,
//! the registry of connected clients, the shutdown signal) and the
//! [`Registry`] through which the server API reaches a user's connections
//! whatever their transport ([`ClientHandle`]). It does not speak any wire
//! protocol: `client` (plain WebSocket), `sio` (Socket.IO) and `api` do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use hub::{ChannelName, Hub};
use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::Metrics;

/// Which transport a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `/connection/websocket`, Centrifugo's JSON protocol.
    WebSocket,
    /// `/socket.io/`.
    SocketIo,
}

/// An order from the server side (API or shutdown) to one connection. The
/// connection carries it out on its own task; sending never blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCommand {
    /// Subscribe the connection to `channel` (server-side subscription).
    Subscribe(ChannelName),
    /// Unsubscribe it from `channel`.
    Unsubscribe(ChannelName),
    /// Close the connection with this code and reason.
    Disconnect {
        /// Centrifugo disconnect code (3000–4999).
        code: u16,
        /// Human-readable reason.
        reason: String,
        /// Whether the client should reconnect.
        reconnect: bool,
    },
}

/// A connected, authenticated client, as the registry sees it.
pub trait ClientHandle: Send + Sync + 'static {
    /// The connection's client id (unique).
    fn client_id(&self) -> &str;
    /// The user id; empty when anonymous.
    fn user(&self) -> &str;
    /// The transport it uses.
    fn transport(&self) -> Transport;
    /// Queues a command for the connection's task; never blocks.
    fn command(&self, command: ServerCommand);
}

/// A user's connections by client id.
type UserClients = HashMap<Arc<str>, Arc<dyn ClientHandle>>;

/// Connected clients by user and by client id.
#[derive(Default)]
pub struct Registry {
    users: Mutex<HashMap<Arc<str>, UserClients>>,
    count: AtomicUsize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("clients", &self.num_clients())
            .finish()
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, UserClients>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connected client.
    pub fn add(&self, client: Arc<dyn ClientHandle>) {
        let mut users = self.lock();
        let entry = users.entry(Arc::from(client.user())).or_default();
        if entry
            .insert(Arc::from(client.client_id()), client)
            .is_none()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes a client that went away.
    pub fn remove(&self, user: &str, client_id: &str) {
        let mut users = self.lock();
        if let Some(clients) = users.get_mut(user) {
            if clients.remove(client_id).is_some() {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            if clients.is_empty() {
                users.remove(user);
            }
        }
    }

    /// The connections of `user`.
    pub fn user_clients(&self, user: &str) -> Vec<Arc<dyn ClientHandle>> {
        self.lock()
            .get(user)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every connection.
    pub fn all(&self) -> Vec<Arc<dyn ClientHandle>> {
        self.lock()
            .values()
            .flat_map(|c| c.values().cloned())
            .collect()
    }

    /// Sends `command` to every connection of `user`; returns how many.
    pub fn send_to_user(&self, user: &str, command: &ServerCommand) -> usize {
        let clients = self.user_clients(user);
        for c in &clients {
            c.command(command.clone());
        }
        clients.len()
    }

    /// Connected clients.
    pub fn num_clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Distinct users connected (anonymous counts as one).
    pub fn num_users(&self) -> usize {
        self.lock().len()
    }
}

/// The node shared by every connection and request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<NodeInner>,
}

#[derive(Debug)]
struct NodeInner {
    config: Arc<Config>,
    hub: Hub,
    auth: Auth,
    metrics: Metrics,
    registry: Registry,
    uid: String,
    shutdown: watch::Sender<bool>,
    /// Set once at start when the node runs with a broker.
    cluster: OnceLock<crate::cluster::Cluster>,
}

impl Node {
    /// A node over `hub` with `config`.
    pub fn new(config: Arc<Config>, hub: Hub, auth: Auth) -> Self {
        let uid = crate::util::random_id();
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(NodeInner {
                config,
                hub,
                auth,
                metrics: Metrics::default(),
                registry: Registry::default(),
                uid,
                shutdown,
                cluster: OnceLock::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The hub: channels, history, presence.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Token verification.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// Counters and gauges.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Connected clients.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// This node's unique id (changes every start).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// The other nodes, when this node runs with a broker (`None` alone).
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.get()
    }

    /// Makes this node part of `cluster`; `run` does it at start. Only the
    /// first call counts (`false` after that).
    pub fn set_cluster(&self, cluster: crate::cluster::Cluster) -> bool {
        self.inner.cluster.set(cluster).is_ok()
    }

    /// Resolves when shutdown begins; connections close themselves then.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Begins shutdown: every connection sees [`Node::shutdown_signal`].
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        id: String,
        user: String,
        got: Mutex<Vec<ServerCommand>>,
    }
    impl ClientHandle for Fake {
        fn client_id(&self) -> &str {
            &self.id
        }
        fn user(&self) -> &str {
            &self.user
        }
        fn transport(&self) -> Transport {
            Transport::WebSocket
        }
        fn command(&self, command: ServerCommand) {
            self.got.lock().unwrap().push(command);
        }
    }

    #[test]
    fn registry_tracks_users_and_clients() {
        let r = Registry::default();
        let a = Arc::new(Fake {
            id: "a".into(),
            user: "1".into(),
            got: Default::default(),
        });
        let b = Arc::new(Fake {
            id: "b".into(),
            user: "1".into(),
            got: Default::default(),
        });
        let c = Arc::new(Fake {
            id: "c".into(),
            user: "2".into(),
            got: Default::default(),
        });
        r.add(a.clone());
        r.add(b.clone());
        r.add(c.clone());
        assert_eq!((r.num_clients(), r.num_users()), (3, 2));
        let cmd = ServerCommand::Unsubscribe("x".parse().unwrap());
        assert_eq!(r.send_to_user("1", &cmd), 2);
        assert_eq!(a.got.lock().unwrap().len(), 1);
        assert!(c.got.lock().unwrap().is_empty());
        r.remove("1", "a");
        r.remove("1", "b");
        assert_eq!((r.num_clients(), r.num_users()), (1, 1));
        assert_eq!(r.send_to_user("1", &cmd), 0);
    }
}
