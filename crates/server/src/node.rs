//! The running node: what every transport and the HTTP API share.
//!
//! Owns [`Node`] (configuration, the [`Hub`], token verification, metrics,
//! the registry of connected clients, the shutdown signal) and the
//! [`Registry`] through which the server API reaches a user's connections
//! whatever their transport ([`ClientHandle`]). It does not speak any wire
//! protocol: `client` (plain WebSocket), `sio` (Socket.IO) and `api` do.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

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
    /// Subscription `generation` to `channel` lost publications before
    /// they reached this node (see `hub::Subscriber::insufficient_state`):
    /// end it with unsubscribe code 2500 "insufficient state", so that the
    /// client subscribes again and recovers (or learns it cannot). From the
    /// hub, for one connection of this node; never sent to other nodes.
    InsufficientState {
        /// The channel.
        channel: ChannelName,
        /// The subscription it is about (a newer one is left alone).
        generation: u64,
    },
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

/// A connection told about shutdown by a call, not by a future it keeps
/// (see [`Node::watch_shutdown`]).
pub(crate) trait OnShutdown: Send + Sync {
    /// Shutdown has begun: close the connection.
    fn on_shutdown(&self);
}

/// The connections of [`Node::watch_shutdown`]: a slab of weak references,
/// a slot per open connection, freed slots reused.
#[derive(Default)]
struct ShutdownList {
    slots: Vec<Option<Weak<dyn OnShutdown>>>,
    free: Vec<usize>,
}

impl std::fmt::Debug for ShutdownList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownList")
            .field("open", &(self.slots.len() - self.free.len()))
            .finish()
    }
}

/// A connection's place in the node's shutdown list (4 bytes: every
/// connection keeps one); give it back with [`Node::unwatch_shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShutdownWatch(u32);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

/// A user's connections. A user has a few at most, usually one: a short
/// vector (found by client id with a scan) until it grows past
/// [`FEW_CLIENTS`], then a set keyed by client id. Neither copies the
/// client id: the handle knows it.
enum UserClients {
    Few(Vec<Arc<dyn ClientHandle>>),
    // Boxed on purpose: it keeps this enum (and every user's slot in the
    // registry's table) the size of a `Vec`, for the rare many-client case.
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<ByClientId>>),
}

/// Connections of one user kept in a vector (more: a set).
const FEW_CLIENTS: usize = 8;

/// A handle hashed and compared by its client id, so that a set of them
/// is looked up by `&str`.
struct ByClientId(Arc<dyn ClientHandle>);

impl PartialEq for ByClientId {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id() == other.0.client_id()
    }
}

impl Eq for ByClientId {}

impl std::hash::Hash for ByClientId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.client_id().hash(state);
    }
}

impl std::borrow::Borrow<str> for ByClientId {
    fn borrow(&self) -> &str {
        self.0.client_id()
    }
}

impl UserClients {
    /// Adds `client`, replacing one with the same id; `true` if it is new.
    fn insert(&mut self, client: Arc<dyn ClientHandle>) -> bool {
        match self {
            UserClients::Few(clients) => {
                let id = client.client_id();
                if let Some(slot) = clients.iter_mut().find(|c| c.client_id() == id) {
                    *slot = client;
                    return false;
                }
                if clients.len() < FEW_CLIENTS {
                    if clients.len() == clients.capacity() {
                        // Doubling from one: most users have one connection.
                        clients.reserve_exact(clients.capacity().max(1));
                    }
                    clients.push(client);
                    return true;
                }
                let mut set: HashSet<ByClientId> = clients.drain(..).map(ByClientId).collect();
                set.insert(ByClientId(client));
                *self = UserClients::Many(Box::new(set));
                true
            }
            UserClients::Many(set) => set.replace(ByClientId(client)).is_none(),
        }
    }

    /// Removes the connection `client_id`; `true` if it was there.
    fn remove(&mut self, client_id: &str) -> bool {
        match self {
            UserClients::Few(clients) => {
                match clients.iter().position(|c| c.client_id() == client_id) {
                    Some(i) => {
                        clients.swap_remove(i);
                        true
                    }
                    None => false,
                }
            }
            UserClients::Many(set) => set.remove(client_id),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            UserClients::Few(clients) => clients.is_empty(),
            UserClients::Many(set) => set.is_empty(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &Arc<dyn ClientHandle>> + '_> {
        match self {
            UserClients::Few(clients) => Box::new(clients.iter()),
            UserClients::Many(set) => Box::new(set.iter().map(|c| &c.0)),
        }
    }
}

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
        let added = match users.get_mut(client.user()) {
            Some(clients) => clients.insert(client),
            None => {
                let user = Arc::from(client.user());
                let mut clients = UserClients::Few(Vec::new());
                clients.insert(client);
                users.insert(user, clients);
                true
            }
        };
        if added {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes a client that went away.
    pub fn remove(&self, user: &str, client_id: &str) {
        let mut users = self.lock();
        if let Some(clients) = users.get_mut(user) {
            if clients.remove(client_id) {
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
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every connection.
    pub fn all(&self) -> Vec<Arc<dyn ClientHandle>> {
        self.lock()
            .values()
            .flat_map(|c| c.iter().cloned())
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
    /// Set after the shutdown drain: the listener and idle HTTP
    /// connections stop then, not before, so that Socket.IO polling clients
    /// can still fetch their disconnect during the drain.
    stop_listening: watch::Sender<bool>,
    /// Connections told about shutdown by a call ([`Node::watch_shutdown`]).
    on_shutdown: Mutex<ShutdownList>,
    /// Set once at start when the node runs with a broker.
    cluster: OnceLock<crate::cluster::Cluster>,
}

impl Node {
    /// A node over `hub` with `config`.
    pub fn new(config: Arc<Config>, hub: Hub, auth: Auth) -> Self {
        let uid = crate::util::random_id();
        let (shutdown, _) = watch::channel(false);
        let (stop_listening, _) = watch::channel(false);
        Self {
            inner: Arc::new(NodeInner {
                config,
                hub,
                auth,
                metrics: Metrics::default(),
                registry: Registry::default(),
                uid,
                shutdown,
                stop_listening,
                on_shutdown: Mutex::default(),
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

    /// Begins shutdown: every connection sees [`Node::shutdown_signal`],
    /// and those of [`Node::watch_shutdown`] are called.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let watchers: Vec<_> = lock(&self.inner.on_shutdown)
            .slots
            .iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect();
        for watcher in watchers {
            watcher.on_shutdown();
        }
    }

    /// Calls `connection.on_shutdown()` when shutdown begins (at once if it
    /// has begun) until the returned watch is dropped. For connections
    /// whose idle task should not keep a [`Node::shutdown_signal`] future:
    /// this costs a slot of 16 bytes in the node.
    pub(crate) fn watch_shutdown(&self, connection: Weak<dyn OnShutdown>) -> ShutdownWatch {
        let slot: usize = {
            let mut list = lock(&self.inner.on_shutdown);
            match list.free.pop() {
                Some(slot) => {
                    list.slots[slot] = Some(connection.clone());
                    slot
                }
                None => {
                    list.slots.push(Some(connection.clone()));
                    list.slots.len() - 1
                }
            }
        };
        // After the insertion: either begin_shutdown's walk saw it, or the
        // flag it set first is seen here.
        if self.is_shutting_down() {
            if let Some(connection) = connection.upgrade() {
                connection.on_shutdown();
            }
        }
        // More than 2^32 connections at once cannot happen (descriptors
        // run out long before); saturating keeps this total anyway.
        ShutdownWatch(u32::try_from(slot).unwrap_or(u32::MAX))
    }

    /// Ends a [`Node::watch_shutdown`]: the slot is free for another
    /// connection.
    pub(crate) fn unwatch_shutdown(&self, watch: ShutdownWatch) {
        let slot = watch.0 as usize;
        let mut list = lock(&self.inner.on_shutdown);
        if let Some(entry @ Some(_)) = list.slots.get_mut(slot) {
            *entry = None;
            list.free.push(slot);
        }
    }

    /// Resolves when the listener and idle HTTP connections are to stop:
    /// after the shutdown drain ([`Node::stop_listening`]).
    pub fn listening_signal(&self) -> watch::Receiver<bool> {
        self.inner.stop_listening.subscribe()
    }

    /// Ends the shutdown drain: the listener stops accepting and HTTP
    /// connections finish their requests and close. Begins shutdown too,
    /// if it has not begun.
    pub fn stop_listening(&self) {
        self.begin_shutdown();
        self.inner.stop_listening.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::RecordingClient;

    #[test]
    fn registry_tracks_users_and_clients() {
        let r = Registry::default();
        let a = RecordingClient::new("a", "1");
        let b = RecordingClient::new("b", "1");
        let c = RecordingClient::new("c", "2");
        r.add(a.clone());
        r.add(b.clone());
        r.add(c.clone());
        assert_eq!((r.num_clients(), r.num_users()), (3, 2));
        let cmd = ServerCommand::Unsubscribe("x".parse().unwrap());
        assert_eq!(r.send_to_user("1", &cmd), 2);
        assert_eq!(a.take().len(), 1);
        assert!(c.take().is_empty());
        r.remove("1", "a");
        r.remove("1", "b");
        assert_eq!((r.num_clients(), r.num_users()), (1, 1));
        assert_eq!(r.send_to_user("1", &cmd), 0);
    }

    /// Many connections of one user (anonymous ones in `--dev`) move from
    /// the short list to a set and back out one by one; re-adding an id
    /// replaces it without counting it twice.
    #[test]
    fn registry_user_with_many_clients() {
        let r = Registry::default();
        let n = FEW_CLIENTS * 3;
        for i in 0..n {
            r.add(RecordingClient::new(&format!("c{i}"), ""));
        }
        r.add(RecordingClient::new("c0", ""));
        r.add(RecordingClient::new(&format!("c{}", n - 1), ""));
        assert_eq!((r.num_clients(), r.num_users()), (n, 1));
        assert_eq!(r.user_clients("").len(), n);
        assert_eq!(r.all().len(), n);
        let cmd = ServerCommand::Unsubscribe("x".parse().unwrap());
        assert_eq!(r.send_to_user("", &cmd), n);
        r.remove("", "nope");
        for i in (0..n).rev() {
            r.remove("", &format!("c{i}"));
            assert_eq!(r.num_clients(), i);
        }
        assert_eq!(r.num_users(), 0);
        let few = RecordingClient::new("a", "u");
        r.add(few.clone());
        r.add(RecordingClient::new("a", "u"));
        assert_eq!(r.num_clients(), 1);
        assert_eq!(r.send_to_user("u", &cmd), 1);
        // The replacement got it, not the first handle.
        assert!(few.take().is_empty());
    }
}
