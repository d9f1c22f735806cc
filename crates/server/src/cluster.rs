//! Many nodes as one, over the Redis broker: what nodes tell each other
//! beyond channel traffic.
//!
//! Owns, for a node started with `broker`:
//!
//! - **Heartbeats.** Every third of `broker_node_ttl` the node announces
//!   itself (uid, name, counts, start time) in Redis with that TTL;
//!   [`Cluster::nodes`] lists the live ones for the `info` API. A node that
//!   stops cleanly withdraws at once; one that dies drops off after the TTL.
//! - **Presence upkeep.** Every third of `broker_presence_ttl` the node
//!   refreshes its own presence entries and sweeps the channels it has
//!   subscribers in: entries that expired (their node died, or lost Redis
//!   for longer than the TTL) are removed, and for each one, exactly one
//!   node (the one whose sweep removed it) publishes a leave, so every
//!   subscriber gets one leave push per vanished client.
//! - **Control messages.** Server-side `subscribe`, `unsubscribe` and
//!   `disconnect` are applied to this node's connections by the API and
//!   sent to every other node as a [`UserCommand`], which each applies to
//!   its own registry. `channels` is a survey: the asking node sends the
//!   question to every node and waits (at most [`SURVEY_TIMEOUT`]) for as
//!   many answers as Redis said it delivered the question to.
//! - The broker's `/health` state and `/metrics` lines.
//!
//! It does not carry channel publications, history or presence reads
//! (the hub does, over `hub_redis`'s store, broker and presence), nor speak
//! Redis itself (`hub_redis::RedisControl` does). Control messages are
//! small JSON objects (the private `Wire` enum).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hub::{JoinLeave, JoinLeaveKind, PresenceStore};
use hub_redis::{
    BrokerStats, ControlHandler, RedisBackend, RedisControl, RedisHealth, RedisPresence,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::BrokerOptions;
use crate::node::{ClientHandle, Node, Registry, ServerCommand};

/// How long `channels` waits for the other nodes' answers.
pub const SURVEY_TIMEOUT: Duration = Duration::from_secs(2);

/// Most expired presence entries one sweep removes from one channel.
const SWEEP_LIMIT: usize = 1000;

/// A node as `info` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique per start.
    pub uid: String,
    /// The configured `node_name`.
    pub name: String,
    /// The server version.
    pub version: String,
    /// Connected clients.
    pub num_clients: u64,
    /// Distinct users connected.
    pub num_users: u64,
    /// Channels with subscribers on the node.
    pub num_channels: u64,
    /// Subscriptions on the node.
    pub num_subs: u64,
    /// When the node started, in seconds since 1970.
    pub started: u64,
}

impl NodeInfo {
    /// This node, now.
    pub fn local(node: &Node, started: u64) -> Self {
        let stats = node.hub().stats();
        let registry = node.registry();
        Self {
            uid: node.uid().to_owned(),
            name: node.config().node_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            num_clients: registry.num_clients() as u64,
            num_users: registry.num_users() as u64,
            num_channels: stats.num_channels as u64,
            num_subs: stats.num_subscriptions as u64,
            started,
        }
    }

    /// Seconds since the node started.
    pub fn uptime(&self) -> u64 {
        unix_now().saturating_sub(self.started)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A server-side command for the connections of one user, on every node:
/// the connections of `user` (the empty user: anonymous connections), only
/// `client` when it is set, except those listed in `keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCommand {
    /// Whose connections.
    pub user: String,
    /// Only this connection, when set.
    pub client: Option<String>,
    /// Connections left alone (`disconnect`'s whitelist).
    pub keep: Vec<String>,
    /// What they are told to do.
    pub command: ServerCommand,
}

impl UserCommand {
    /// The connections of `registry` this command is for.
    pub fn targets(&self, registry: &Registry) -> Vec<Arc<dyn ClientHandle>> {
        let client = self.client.as_deref().filter(|c| !c.is_empty());
        registry
            .user_clients(&self.user)
            .into_iter()
            .filter(|c| client.is_none_or(|id| c.client_id() == id))
            .filter(|c| !self.keep.iter().any(|k| k == c.client_id()))
            .collect()
    }

    /// Sends the command to its connections in `registry`; returns how many.
    pub fn apply(&self, registry: &Registry) -> usize {
        let targets = self.targets(registry);
        for client in &targets {
            client.command(self.command.clone());
        }
        targets.len()
    }

    fn to_wire(&self, from: &str) -> Wire {
        let action = match &self.command {
            ServerCommand::Subscribe(channel) => Action::Subscribe {
                channel: channel.to_string(),
            },
            // InsufficientState is node-local (the hub's), never broadcast.
            ServerCommand::Unsubscribe(channel)
            | ServerCommand::InsufficientState { channel, .. } => Action::Unsubscribe {
                channel: channel.to_string(),
            },
            ServerCommand::Disconnect {
                code,
                reason,
                reconnect,
            } => Action::Disconnect {
                code: *code,
                reason: reason.clone(),
                reconnect: *reconnect,
            },
        };
        Wire::User {
            from: from.to_owned(),
            user: self.user.clone(),
            client: self.client.clone(),
            keep: self.keep.clone(),
            action,
        }
    }
}

/// A control message between nodes, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Wire {
    /// A [`UserCommand`] from node `from` (which applied it itself).
    User {
        from: String,
        user: String,
        #[serde(default)]
        client: Option<String>,
        #[serde(default)]
        keep: Vec<String>,
        action: Action,
    },
    /// Node `from` asks for channel counts (matching `pattern`).
    Channels {
        from: String,
        id: u64,
        #[serde(default)]
        pattern: Option<String>,
    },
    /// The answer to `Channels` number `id`, sent to the asking node only.
    ChannelsReply {
        id: u64,
        channels: Vec<(String, u64)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Action {
    Subscribe {
        channel: String,
    },
    Unsubscribe {
        channel: String,
    },
    Disconnect {
        code: u16,
        reason: String,
        reconnect: bool,
    },
}

impl Action {
    fn command(self) -> Option<ServerCommand> {
        Some(match self {
            Action::Subscribe { channel } => ServerCommand::Subscribe(channel.parse().ok()?),
            Action::Unsubscribe { channel } => ServerCommand::Unsubscribe(channel.parse().ok()?),
            Action::Disconnect {
                code,
                reason,
                reconnect,
            } => ServerCommand::Disconnect {
                code,
                reason,
                reconnect,
            },
        })
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// Leaves published for presence entries that expired.
    presence_expired: AtomicU64,
    /// Control messages from other nodes acted on.
    commands_received: AtomicU64,
    /// Control messages that could not be decoded.
    undecodable: AtomicU64,
    /// Heartbeats that could not be written.
    heartbeat_failures: AtomicU64,
}

/// Answers to a running `channels` survey go here.
type Survey = mpsc::UnboundedSender<Vec<(String, u64)>>;

struct Inner {
    backend: RedisBackend,
    control: RedisControl,
    presence: Arc<RedisPresence>,
    uid: String,
    options: BrokerOptions,
    /// When this node started (seconds since 1970).
    started: u64,
    surveys: Mutex<HashMap<u64, Survey>>,
    next_survey: AtomicU64,
    counters: Counters,
}

impl Inner {
    fn surveys(&self) -> MutexGuard<'_, HashMap<u64, Survey>> {
        self.surveys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// This node's view of the other nodes, when it runs with a broker. Cheap
/// to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.inner.uid)
            .field("prefix", &self.inner.options.prefix)
            .field("health", &self.health())
            .finish()
    }
}

/// What the control topics bring, handed to the node. It holds the node
/// (which holds the cluster, which holds this through Redis's subscription
/// task): [`Cluster::stop`] drops it.
struct Handler {
    node: Node,
    cluster: std::sync::Weak<Inner>,
}

impl ControlHandler for Handler {
    fn handle_control(&self, message: &[u8]) {
        let Some(inner) = self.cluster.upgrade() else {
            return;
        };
        let wire: Wire = match serde_json::from_slice(message) {
            Ok(wire) => wire,
            Err(err) => {
                inner.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, "undecodable control message");
                return;
            }
        };
        match wire {
            Wire::User { from, .. } | Wire::Channels { from, .. } if from == inner.uid => {}
            Wire::User {
                user,
                client,
                keep,
                action,
                ..
            } => {
                inner
                    .counters
                    .commands_received
                    .fetch_add(1, Ordering::Relaxed);
                let Some(command) = action.command() else {
                    inner.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let command = UserCommand {
                    user,
                    client,
                    keep,
                    command,
                };
                command.apply(self.node.registry());
            }
            Wire::Channels { from, id, pattern } => {
                inner
                    .counters
                    .commands_received
                    .fetch_add(1, Ordering::Relaxed);
                let channels =
                    crate::api::channel_counts(&self.node, pattern.as_deref()).unwrap_or_default();
                let reply = Wire::ChannelsReply { id, channels };
                let Ok(bytes) = serde_json::to_vec(&reply) else {
                    return;
                };
                // Sending waits for Redis: not on this (the subscription) task.
                let sent = inner.control.send(&from, bytes);
                tokio::spawn(async move {
                    if let Err(err) = sent.await {
                        tracing::debug!(%err, "channels reply not sent");
                    }
                });
            }
            Wire::ChannelsReply { id, channels } => {
                if let Some(survey) = inner.surveys().get(&id) {
                    let _ = survey.send(channels);
                }
            }
        }
    }
}

/// Removes a survey when its asker stops waiting.
struct SurveyGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for SurveyGuard<'_> {
    fn drop(&mut self) {
        self.inner.surveys().remove(&self.id);
    }
}

impl Cluster {
    /// Joins `node` to the nodes sharing `backend`'s Redis and prefix:
    /// listens to control messages, announces the node (waiting for that
    /// at most the backend's command timeout), and starts the heartbeat and
    /// presence tasks, which end when the node shuts down. Works while
    /// Redis is unreachable too: everything takes effect once it is back.
    pub async fn start(node: &Node, backend: RedisBackend, options: BrokerOptions) -> Cluster {
        let inner = Arc::new(Inner {
            control: backend.control(),
            presence: backend.presence(),
            backend,
            uid: node.uid().to_owned(),
            options,
            started: unix_now(),
            surveys: Mutex::default(),
            next_survey: AtomicU64::new(1),
            counters: Counters::default(),
        });
        let cluster = Cluster { inner };
        let handler = Arc::new(Handler {
            node: node.clone(),
            cluster: Arc::downgrade(&cluster.inner),
        });
        if let Err(err) = cluster.inner.control.listen(node.uid(), handler).await {
            tracing::warn!(%err, "control topics not subscribed yet; retried on reconnect");
        }
        cluster.beat(node).await;
        tokio::spawn(cluster.clone().heartbeats(node.clone()));
        tokio::spawn(cluster.clone().presence_upkeep(node.clone()));
        cluster
    }

    /// Leaves the cluster on a clean shutdown: withdraws the heartbeat (so
    /// `info` stops listing the node at once) and stops listening.
    pub async fn stop(&self) {
        let inner = &self.inner;
        if let Err(err) = inner.control.withdraw(&inner.uid).await {
            tracing::debug!(%err, "heartbeat not withdrawn (it expires)");
        }
        inner.control.stop(&inner.uid).await;
    }

    /// This node's uid.
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// The broker's connections, for `/health`.
    pub fn health(&self) -> RedisHealth {
        self.inner.backend.health()
    }

    /// What this node received from Redis.
    pub fn broker_stats(&self) -> BrokerStats {
        self.inner.backend.broker_stats()
    }

    /// Leaves published for presence entries that expired.
    pub fn presence_expired(&self) -> u64 {
        self.inner.counters.presence_expired.load(Ordering::Relaxed)
    }

    async fn beat(&self, node: &Node) {
        let inner = &self.inner;
        let info = NodeInfo::local(node, inner.started);
        let Ok(bytes) = serde_json::to_vec(&info) else {
            return;
        };
        if let Err(err) = inner
            .control
            .announce(&inner.uid, bytes, inner.options.node_ttl)
            .await
        {
            inner
                .counters
                .heartbeat_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%err, "heartbeat not written");
        }
    }

    async fn heartbeats(self, node: Node) {
        let every = (self.inner.options.node_ttl / 3).max(Duration::from_millis(50));
        let mut shutdown = node.shutdown_signal();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = crate::http::until_shutdown(&mut shutdown) => return,
            }
            self.beat(&node).await;
        }
    }

    async fn presence_upkeep(self, node: Node) {
        let every = (self.inner.options.presence_ttl / 3).max(Duration::from_millis(50));
        let mut shutdown = node.shutdown_signal();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = crate::http::until_shutdown(&mut shutdown) => return,
            }
            if let Err(err) = node.hub().refresh_presence().await {
                tracing::debug!(%err, "presence refresh failed");
            }
            self.sweep(&node).await;
        }
    }

    /// Removes expired presence entries of the channels this node has
    /// subscribers in and announces their leaves. An expired entry of a
    /// client still connected here (its refresh lapsed while Redis was
    /// away) is put back instead.
    pub async fn sweep(&self, node: &Node) {
        let hub = node.hub();
        let presence = &self.inner.presence;
        // Queue every read first: they go to Redis as one pipeline.
        let reads: Vec<_> = hub
            .channels()
            .into_iter()
            .filter(|(channel, _)| hub.options(channel).is_ok_and(|o| o.presence))
            .map(|(channel, _)| {
                let read = presence.expire(&channel, SWEEP_LIMIT);
                (channel, read)
            })
            .collect();
        for (channel, read) in reads {
            let expired = match read.await {
                Ok(expired) => expired,
                Err(err) => {
                    tracing::debug!(%err, "presence sweep failed");
                    return;
                }
            };
            let join_leave = hub.options(&channel).is_ok_and(|o| o.join_leave);
            for info in expired {
                if hub.is_subscribed(&channel, &info.client) {
                    let _ = presence.add(&channel, &info).await;
                    continue;
                }
                if !join_leave {
                    continue;
                }
                tracing::debug!(%channel, client = %info.client, "presence expired: leave");
                let leave = Arc::new(JoinLeave::new(JoinLeaveKind::Leave, channel.clone(), info));
                match hub.broker().publish_join_leave(&leave).await {
                    Ok(()) => {
                        self.inner
                            .counters
                            .presence_expired
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        tracing::warn!(%channel, %err, "leave for expired presence not sent")
                    }
                }
            }
        }
    }

    /// The live nodes, sorted by name then uid, this one with its current
    /// numbers. Fails (temporarily) while Redis is unreachable.
    pub async fn nodes(&self, node: &Node) -> Result<Vec<NodeInfo>, hub::Error> {
        let inner = &self.inner;
        let listed = inner.control.nodes().await.map_err(hub::Error::broker)?;
        let mut nodes: Vec<NodeInfo> = listed
            .into_iter()
            .filter(|(uid, _)| *uid != inner.uid)
            .filter_map(|(uid, bytes)| match serde_json::from_slice(&bytes) {
                Ok(info) => Some(info),
                Err(err) => {
                    tracing::warn!(%uid, %err, "undecodable node heartbeat");
                    None
                }
            })
            .collect();
        nodes.push(NodeInfo::local(node, inner.started));
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.uid.cmp(&b.uid)));
        Ok(nodes)
    }

    /// Sends `command` to every other node, which applies it to its own
    /// connections (apply it here with [`UserCommand::apply`]). Fails
    /// (temporarily) while Redis is unreachable.
    pub async fn send_user_command(&self, command: &UserCommand) -> Result<(), hub::Error> {
        let inner = &self.inner;
        let bytes = serde_json::to_vec(&command.to_wire(&inner.uid))
            .map_err(|e| hub::Error::Internal(e.to_string()))?;
        inner
            .control
            .broadcast(bytes)
            .await
            .map_err(hub::Error::broker)?;
        Ok(())
    }

    /// Channels with subscribers on any node and how many each has, summed
    /// over the nodes, matching `pattern`. `local` is this node's part.
    /// Waits for as many answers as nodes received the question, at most
    /// [`SURVEY_TIMEOUT`]; a node that does not answer in time is left out
    /// (and logged).
    pub async fn channels(
        &self,
        local: Vec<(String, u64)>,
        pattern: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, hub::Error> {
        let inner = &self.inner;
        let mut total: BTreeMap<String, u64> = local.into_iter().collect();
        let id = inner.next_survey.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        inner.surveys().insert(id, tx);
        let _guard = SurveyGuard { inner, id };
        let question = Wire::Channels {
            from: inner.uid.clone(),
            id,
            pattern: pattern.map(str::to_owned),
        };
        let bytes =
            serde_json::to_vec(&question).map_err(|e| hub::Error::Internal(e.to_string()))?;
        let received = inner
            .control
            .broadcast(bytes)
            .await
            .map_err(hub::Error::broker)?;
        // Every listening node got it, this one included (which ignores it).
        let expected = received.saturating_sub(1);
        let deadline = tokio::time::Instant::now() + SURVEY_TIMEOUT;
        let mut answers = 0;
        while answers < expected {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(channels)) => {
                    answers += 1;
                    for (name, count) in channels {
                        *total.entry(name).or_insert(0) += count;
                    }
                }
                _ => break,
            }
        }
        if answers < expected {
            tracing::warn!(
                answers,
                expected,
                "channels: some nodes did not answer in time; their channels are left out"
            );
        }
        Ok(total)
    }

    /// The broker's and cluster's lines for `/metrics`, as Prometheus text.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let health = self.health();
        let stats = self.broker_stats();
        let c = &self.inner.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 12] = [
            (
                "duplex_broker_connected",
                "gauge",
                "1 while both Redis connections are up (and resubscribed), else 0.",
                u64::from(health.connected),
            ),
            (
                "duplex_broker_reconnects_total",
                "counter",
                "Redis connections re-established after a loss.",
                health.reconnects,
            ),
            (
                "duplex_broker_topics",
                "gauge",
                "Redis pub/sub topics this node is subscribed to (channels with local subscribers, plus 2 control topics).",
                stats.topics as u64,
            ),
            (
                "duplex_broker_messages_received_total",
                "counter",
                "Messages Redis delivered to this node over pub/sub.",
                stats.received,
            ),
            (
                "duplex_broker_publications_received_total",
                "counter",
                "Publications Redis delivered to this node over pub/sub.",
                stats.publications,
            ),
            (
                "duplex_broker_join_leaves_received_total",
                "counter",
                "Joins and leaves Redis delivered to this node.",
                stats.join_leaves,
            ),
            (
                "duplex_broker_publications_caught_up_total",
                "counter",
                "Publications read from history after a subscription reconnect (missed over pub/sub).",
                stats.caught_up,
            ),
            (
                "duplex_broker_publications_missed_total",
                "counter",
                "Publications sent while this node was cut off that history no longer held.",
                stats.missed,
            ),
            (
                "duplex_broker_duplicates_dropped_total",
                "counter",
                "Publications received both over pub/sub and by catching up, delivered once.",
                stats.duplicates,
            ),
            (
                "duplex_cluster_presence_expired_total",
                "counter",
                "Leaves this node published for presence entries that expired (their node died).",
                load(&c.presence_expired),
            ),
            (
                "duplex_cluster_commands_received_total",
                "counter",
                "Control messages from other nodes acted on.",
                load(&c.commands_received),
            ),
            (
                "duplex_cluster_heartbeat_failures_total",
                "counter",
                "Heartbeats that could not be written to Redis.",
                load(&c.heartbeat_failures),
            ),
        ];
        let mut out = String::with_capacity(2048);
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// The Redis settings for a node with `broker` at `url`.
pub fn redis_config(url: &str, options: &BrokerOptions) -> hub_redis::RedisConfig {
    hub_redis::RedisConfig {
        presence_ttl: options.presence_ttl,
        ..hub_redis::RedisConfig::new(url).with_prefix(options.prefix.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip() {
        let command = UserCommand {
            user: "42".into(),
            client: Some("c1".into()),
            keep: vec!["c2".into()],
            command: ServerCommand::Disconnect {
                code: 3503,
                reason: "force".into(),
                reconnect: false,
            },
        };
        let wire = command.to_wire("node-1");
        let text = serde_json::to_string(&wire).unwrap();
        assert!(text.contains("\"op\":\"user\""), "{text}");
        let back: Wire = serde_json::from_str(&text).unwrap();
        assert_eq!(back, wire);
        let Wire::User { action, .. } = back else {
            panic!("not a user command");
        };
        assert_eq!(action.command(), Some(command.command));
        for command in [
            ServerCommand::Subscribe("news".parse().unwrap()),
            ServerCommand::Unsubscribe("news".parse().unwrap()),
        ] {
            let user = UserCommand {
                user: String::new(),
                client: None,
                keep: vec![],
                command: command.clone(),
            };
            let Wire::User { action, .. } = user.to_wire("n") else {
                panic!("not a user command");
            };
            assert_eq!(action.command(), Some(command));
        }
        // A channel name that does not parse is dropped, not applied.
        let bad = Action::Subscribe {
            channel: "bad name".into(),
        };
        assert_eq!(bad.command(), None);
        let survey: Wire = serde_json::from_str(r#"{"op":"channels","from":"n","id":7}"#).unwrap();
        assert_eq!(
            survey,
            Wire::Channels {
                from: "n".into(),
                id: 7,
                pattern: None
            }
        );
        assert!(serde_json::from_str::<Wire>(r#"{"op":"nope"}"#).is_err());
    }

    #[test]
    fn uptime_counts_from_the_start() {
        let info = NodeInfo {
            uid: "u".into(),
            name: "n".into(),
            version: "v".into(),
            num_clients: 0,
            num_users: 0,
            num_channels: 0,
            num_subs: 0,
            started: unix_now() - 5,
        };
        assert!((5..=6).contains(&info.uptime()));
    }
}
