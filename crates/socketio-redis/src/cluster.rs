//! One node's membership in the cluster: its Redis connections, its
//! identity, the namespaces' adapters, and routing what arrives.
//!
//! Owns the node id and tag, the heartbeat (a sorted set of live nodes),
//! publishing in sequence order, the dispatch of incoming messages (answers
//! to pending requests, requests to answer, room and namespace messages to
//! the namespace's adapter after dropping duplicates), and the counters
//! tests and metrics read. What a message does to sockets is the adapter's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use socketio::{Adapter, RecoveryConfig, SocketIo, SocketIoConfig};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::adapter::RedisAdapter;
use crate::config::ClusterConfig;
use crate::conn::Commands;
use crate::error::ClusterError;
use crate::keys::Keys;
use crate::subs::Subscriptions;
use crate::wire::{self, Attachment, Body, Header};

/// Counts of what this node received from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterStats {
    /// Every pub/sub message Redis delivered to this node.
    pub received: u64,
    /// Of those, messages on room topics.
    pub room_messages: u64,
    /// Of those, messages on namespace-wide topics.
    pub namespace_messages: u64,
    /// Requests from other nodes (fetchSockets, broadcasts with acks).
    pub requests: u64,
    /// Answers to this node's requests.
    pub responses: u64,
    /// This node's own messages coming back (ignored).
    pub own: u64,
    /// Second copies of a message sent to several rooms (ignored).
    pub duplicates: u64,
    /// Messages that could not be decoded (ignored).
    pub undecodable: u64,
    /// Topics this node is subscribed to.
    pub topics: usize,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    room_messages: AtomicU64,
    namespace_messages: AtomicU64,
    requests: AtomicU64,
    responses: AtomicU64,
    own: AtomicU64,
    duplicates: AtomicU64,
    undecodable: AtomicU64,
}

/// Whether the node's Redis connections are up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHealth {
    /// The command connection (publishing, recovery, registry).
    pub commands_up: bool,
    /// The subscription connection (receiving).
    pub subscriptions_up: bool,
    /// How many times the subscription connection came up again after
    /// the first time.
    pub resubscriptions: u64,
}

/// An answer to a pending request.
pub(crate) type Answer = (Header, Vec<Attachment>);

pub(crate) struct Inner {
    pub(crate) config: Arc<ClusterConfig>,
    pub(crate) keys: Keys,
    pub(crate) node: String,
    /// High bits of this node's recovery offsets (unique in the cluster).
    pub(crate) node_tag: u64,
    pub(crate) commands: Commands,
    pub(crate) subs: Arc<Subscriptions>,
    pub(crate) log_sha: String,
    pub(crate) restore_sha: String,
    adapters: RwLock<HashMap<String, Weak<RedisAdapter>>>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<Answer>>>,
    next_request: AtomicU64,
    /// Held while a sequenced message is numbered and queued.
    seq: Mutex<u64>,
    /// The last sequence number seen from each other node.
    last_seen: Mutex<HashMap<String, (u64, Instant)>>,
    counters: Counters,
    shutdown: watch::Sender<bool>,
}

/// This node's handle on the cluster: build one per process with
/// [`RedisCluster::connect`] and give its adapter to the Socket.IO server
/// with [`RedisCluster::configure`]. Cheap to clone.
#[derive(Clone)]
pub struct RedisCluster {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("node", &self.inner.node)
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh random node id.
fn random_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RedisCluster {
    /// Connects this node to the cluster: opens both Redis connections,
    /// subscribes to the request and answer topics, takes a node tag and
    /// starts the heartbeat. Fails if Redis cannot be reached within the
    /// connect and command timeouts.
    pub async fn connect(config: ClusterConfig) -> Result<Self, ClusterError> {
        let config = Arc::new(config);
        let node = random_id();
        let client = open_client(&config)?;
        let keys = Keys::new(&config.prefix);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let commands = Commands::spawn(
            client.clone(),
            connection_name(&config, &node, "cmd"),
            config.clone(),
            crate::scripts::all(),
            shutdown_rx.clone(),
        );
        let weak: Arc<Mutex<Weak<Inner>>> = Arc::new(Mutex::new(Weak::new()));
        let target = weak.clone();
        let dispatch: crate::subs::Dispatch = Arc::new(move |topic, payload| {
            let inner = target.lock().unwrap_or_else(|p| p.into_inner()).upgrade();
            if let Some(inner) = inner {
                inner.dispatch(topic, payload);
            }
        });
        let subs = Subscriptions::spawn(
            client,
            connection_name(&config, &node, "sub"),
            config.clone(),
            dispatch,
            shutdown_rx,
        );
        subs.set(keys.requests(), true);
        subs.set(keys.responses(&node), true);
        let limit = config.connect_timeout + config.command_timeout;
        let deadline = Instant::now() + limit;
        while !(commands.link.is_up() && subs.link.is_up()) {
            if Instant::now() >= deadline {
                let _ = shutdown.send(true);
                let err = if commands.link.is_up() {
                    subs.link.unavailable()
                } else {
                    commands.link.unavailable()
                };
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let tag = commands
            .send({
                let mut c = redis::cmd("INCR");
                c.arg(keys.node_tags());
                c
            })
            .await;
        let node_tag = match tag {
            Ok(Value::Int(n)) => u64::try_from(n).unwrap_or(0) & 0x7f_ffff,
            Ok(other) => {
                let _ = shutdown.send(true);
                return Err(ClusterError::Decode(format!("INCR answered {other:?}")));
            }
            Err(err) => {
                let _ = shutdown.send(true);
                return Err(err);
            }
        };
        let inner = Arc::new(Inner {
            keys,
            node,
            node_tag,
            commands,
            subs,
            log_sha: crate::scripts::sha(crate::scripts::LOG),
            restore_sha: crate::scripts::sha(crate::scripts::RESTORE),
            adapters: RwLock::default(),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
            seq: Mutex::new(0),
            last_seen: Mutex::default(),
            counters: Counters::default(),
            shutdown,
            config,
        });
        *weak.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&inner);
        inner.subs.settled(limit).await;
        inner.heartbeat().await;
        tokio::spawn(heartbeats(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// This node's id (random, new on every start).
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// The options in force.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Builds each namespace's adapter; `recovery` must match the server's
    /// [`SocketIoConfig::recovery`] ([`RedisCluster::configure`] does that).
    pub fn adapter_factory(
        &self,
        recovery: Option<RecoveryConfig>,
    ) -> impl Fn(&str) -> Arc<dyn Adapter> + Send + Sync + 'static {
        let inner = self.inner.clone();
        move |name: &str| -> Arc<dyn Adapter> {
            let adapter = RedisAdapter::new(inner.clone(), name, recovery.clone());
            inner.register(name, &adapter);
            adapter
        }
    }

    /// `config` with this cluster's adapter on every namespace (and the
    /// connection state recovery settings of `config`, kept in Redis).
    pub fn configure(&self, config: SocketIoConfig) -> SocketIoConfig {
        let recovery = config
            .recovery
            .clone()
            .or(self.inner.config.recovery.clone());
        let mut config = config.adapter(self.adapter_factory(recovery.clone()));
        config.recovery = recovery;
        config
    }

    /// A front for `io`'s HTTP handling that tells polling clients sent to
    /// the wrong node that sticky sessions are needed (see
    /// [`crate::StickyGuard`]).
    pub fn guard(&self, io: &SocketIo) -> crate::StickyGuard {
        crate::StickyGuard::new(io, self.clone())
    }

    /// Resolves once every room (un)subscription made so far is in force
    /// in Redis; `false` if that took longer than `limit` (e.g. Redis is
    /// down). A join is seen by other nodes' broadcasts only from then on.
    pub async fn settled(&self, limit: Duration) -> bool {
        self.inner.subs.settled(limit).await
    }

    /// What this node received so far.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            received: get(&c.received),
            room_messages: get(&c.room_messages),
            namespace_messages: get(&c.namespace_messages),
            requests: get(&c.requests),
            responses: get(&c.responses),
            own: get(&c.own),
            duplicates: get(&c.duplicates),
            undecodable: get(&c.undecodable),
            topics: self.inner.subs.count(),
        }
    }

    /// Whether the Redis connections are up.
    pub fn health(&self) -> ClusterHealth {
        ClusterHealth {
            commands_up: self.inner.commands.link.is_up(),
            subscriptions_up: self.inner.subs.link.is_up(),
            resubscriptions: self
                .inner
                .subs
                .link
                .ups
                .load(Ordering::Relaxed)
                .saturating_sub(1),
        }
    }

    /// The ids of the nodes whose heartbeat is recent, this one included.
    pub async fn nodes(&self) -> Result<Vec<String>, ClusterError> {
        let since = now_ms().saturating_sub(duration_ms(self.inner.config.node_timeout));
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.inner.keys.nodes()).arg(since).arg("+inf");
        let reply = self.inner.commands.send(cmd).await?;
        redis::from_redis_value::<Vec<String>>(reply)
            .map_err(|e| ClusterError::Decode(e.to_string()))
    }

    /// Leaves the cluster: removes this node from the registry and closes
    /// its connections. Adapters made by this cluster stop working.
    pub async fn close(&self) {
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.inner.keys.nodes()).arg(&self.inner.node);
        let _ = tokio::time::timeout(
            self.inner.config.command_timeout,
            self.inner.commands.send(cmd),
        )
        .await;
        let _ = self.inner.shutdown.send(true);
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The Redis client for `config.url`.
fn open_client(config: &ClusterConfig) -> Result<redis::Client, ClusterError> {
    redis::Client::open(config.url.as_str()).map_err(|e| ClusterError::Config(e.to_string()))
}

/// The name this node's connections give themselves (`CLIENT LIST` shows
/// `name=duplex-sio:<prefix>:<node>:cmd` and `...:sub`), so an operator
/// can tell them apart.
pub(crate) fn connection_name(config: &ClusterConfig, node: &str, role: &str) -> String {
    format!("duplex-sio:{}:{node}:{role}", config.prefix)
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

/// Refreshes this node's heartbeat until the cluster is dropped or closed.
async fn heartbeats(inner: Weak<Inner>) {
    let Some(first) = inner.upgrade() else { return };
    let every = first
        .config
        .heartbeat_interval
        .max(Duration::from_millis(10));
    let mut shutdown = first.shutdown.subscribe();
    drop(first);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.heartbeat().await;
        inner.prune_last_seen();
    }
}

/// Removes the pending request when the waiting future ends or is dropped.
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending_lock().remove(&self.id);
    }
}

impl Inner {
    fn pending_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Answer>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, name: &str, adapter: &Arc<RedisAdapter>) {
        self.adapters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), Arc::downgrade(adapter));
    }

    fn adapter(&self, ns: &str) -> Option<Arc<RedisAdapter>> {
        self.adapters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)?
            .upgrade()
    }

    async fn heartbeat(&self) {
        let now = now_ms();
        let mut add = redis::cmd("ZADD");
        add.arg(self.keys.nodes()).arg(now).arg(&self.node);
        let mut prune = redis::cmd("ZREMRANGEBYSCORE");
        prune.arg(self.keys.nodes()).arg("-inf").arg(format!(
            "({}",
            now.saturating_sub(duration_ms(self.config.node_timeout))
        ));
        let added = self.commands.send(add);
        let pruned = self.commands.send(prune);
        let _ = added.await;
        let _ = pruned.await;
    }

    fn prune_last_seen(&self) {
        let horizon = Duration::from_secs(3600);
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, at)| at.elapsed() < horizon);
    }

    /// Publishes one message, numbered, to each of `topics`: the copies
    /// share the number, so a node subscribed to several of the topics
    /// acts once. Returns the futures of the `PUBLISH` replies (receiver
    /// counts); they need not be awaited.
    pub(crate) fn publish_sequenced(
        &self,
        topics: &[String],
        ns: &str,
        body: Body,
        attachments: &[Attachment],
    ) -> Result<
        Vec<impl std::future::Future<Output = crate::conn::Reply> + Send + 'static>,
        ClusterError,
    > {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let header = Header {
            node: self.node.clone(),
            seq: *seq,
            ns: ns.to_owned(),
            body,
        };
        let payload = wire::encode(&header, attachments)?;
        Ok(topics
            .iter()
            .map(|topic| {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(topic).arg(payload.as_slice());
                self.commands.send(cmd)
            })
            .collect())
    }

    /// Sends a request to every node and collects one answer from each,
    /// until all answered or `wait` passed. The answers that came are
    /// returned with the error too.
    pub(crate) async fn request(
        &self,
        ns: &str,
        make: impl FnOnce(u64) -> Body,
        attachments: &[Attachment],
        wait: Duration,
    ) -> (Vec<Answer>, Result<(), socketio::AdapterError>) {
        let mut answers = Vec::new();
        let result = self
            .collect(ns, make, attachments, wait, &mut answers)
            .await;
        (answers, result)
    }

    async fn collect(
        &self,
        ns: &str,
        make: impl FnOnce(u64) -> Body,
        attachments: &[Attachment],
        wait: Duration,
        answers: &mut Vec<Answer>,
    ) -> Result<(), socketio::AdapterError> {
        if !self.subs.link.is_up() {
            return Err(self.subs.link.unavailable().into());
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pending_lock().insert(id, tx);
        let _guard = PendingGuard { inner: self, id };
        let header = Header {
            node: self.node.clone(),
            seq: 0,
            ns: ns.to_owned(),
            body: make(id),
        };
        let payload = wire::encode(&header, attachments)?;
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.keys.requests()).arg(payload);
        let deadline = Instant::now() + wait;
        let receivers = match self.commands.send(cmd).await? {
            Value::Int(n) => usize::try_from(n).unwrap_or(0),
            other => return Err(ClusterError::Decode(format!("PUBLISH answered {other:?}")).into()),
        };
        // Every node listening got it, this one included.
        let expected = receivers.saturating_sub(1);
        let mut from = std::collections::HashSet::new();
        while from.len() < expected {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(answer)) => {
                    if from.insert(answer.0.node.clone()) {
                        answers.push(answer);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(socketio::AdapterError::Timeout {
                        responded: from.len(),
                        expected,
                    })
                }
            }
        }
        Ok(())
    }

    /// Publishes an answer to `node`'s request.
    pub(crate) fn answer(&self, node: &str, body: Body, attachments: &[Attachment]) {
        let header = Header {
            node: self.node.clone(),
            seq: 0,
            ns: String::new(),
            body,
        };
        match wire::encode(&header, attachments) {
            Ok(payload) => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(self.keys.responses(node)).arg(payload);
                drop(self.commands.send(cmd));
            }
            Err(err) => tracing::warn!(%err, "could not encode an answer"),
        }
    }

    /// Handles one message from Redis (on the subscription task).
    fn dispatch(&self, topic: &[u8], payload: &[u8]) {
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        let room_prefix = format!("{}:room:", self.config.prefix);
        let all_prefix = format!("{}:all:", self.config.prefix);
        if topic.starts_with(room_prefix.as_bytes()) {
            c.room_messages.fetch_add(1, Ordering::Relaxed);
        } else if topic.starts_with(all_prefix.as_bytes()) {
            c.namespace_messages.fetch_add(1, Ordering::Relaxed);
        }
        let (header, attachments) = match wire::decode(payload) {
            Ok(message) => message,
            Err(err) => {
                c.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, "undecodable message from redis");
                return;
            }
        };
        if header.node == self.node {
            c.own.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match &header.body {
            Body::Sockets { request, .. } | Body::Acks { request, .. } => {
                c.responses.fetch_add(1, Ordering::Relaxed);
                let waiting = self.pending_lock().get(request).cloned();
                if let Some(tx) = waiting {
                    let _ = tx.send((header, attachments));
                }
            }
            Body::FetchSockets { .. } | Body::AckBroadcast { .. } => {
                c.requests.fetch_add(1, Ordering::Relaxed);
                match self.adapter(&header.ns) {
                    Some(adapter) => adapter.on_request(header, attachments),
                    // No such namespace here: nothing to report, but the
                    // requester counts on an answer from every node.
                    None => match header.body {
                        Body::FetchSockets { request, .. } => self.answer(
                            &header.node,
                            Body::Sockets {
                                request,
                                sockets: Vec::new(),
                            },
                            &[],
                        ),
                        Body::AckBroadcast { request, .. } => self.answer(
                            &header.node,
                            Body::Acks {
                                request,
                                acks: Vec::new(),
                            },
                            &[],
                        ),
                        _ => {}
                    },
                }
            }
            _ => {
                if !self.first_copy(&header.node, header.seq) {
                    c.duplicates.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if let Some(adapter) = self.adapter(&header.ns) {
                    adapter.on_message(header, attachments);
                }
            }
        }
    }

    /// Whether a sequenced message is new. A node's messages arrive in the
    /// order it numbered them (one connection publishes them, one
    /// connection receives them), so a number not above the last one seen
    /// is a copy already handled.
    fn first_copy(&self, node: &str, seq: u64) -> bool {
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get_mut(node) {
            Some((last, at)) => {
                if seq <= *last {
                    return false;
                }
                *last = seq;
                *at = Instant::now();
                true
            }
            None => {
                seen.insert(node.to_owned(), (seq, Instant::now()));
                true
            }
        }
    }
}
