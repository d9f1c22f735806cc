//! The cluster's options: where Redis is, how keys are named, and how long
//! to wait for what.

use std::time::Duration;

use socketio::RecoveryConfig;

/// Options of a [`crate::RedisCluster`]. Every node of one cluster must use
/// the same `prefix` (and the same recovery settings).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://[user:pass@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key and topic (default `sio`): clusters sharing a
    /// Redis use different prefixes.
    pub prefix: String,
    /// How long `fetchSockets` and other requests wait for the other nodes
    /// (default 5 s); broadcasts with acks wait their own timeout plus this.
    pub request_timeout: Duration,
    /// How often a node says it is alive (default 5 s).
    pub heartbeat_interval: Duration,
    /// A node silent this long counts as gone (default 3 heartbeats).
    pub node_timeout: Duration,
    /// Limit on opening a Redis connection (default 5 s).
    pub connect_timeout: Duration,
    /// Limit on one Redis reply (default 5 s).
    pub command_timeout: Duration,
    /// First delay before reconnecting (default 100 ms); doubles up to
    /// `reconnect_max` (default 5 s), with jitter.
    pub reconnect_min: Duration,
    /// See `reconnect_min`.
    pub reconnect_max: Duration,
    /// Connection state recovery kept in Redis, so a client can resume on
    /// any node; `None` (the default) keeps none. Use the same value as
    /// [`socketio::SocketIoConfig::recovery`] (see
    /// [`crate::RedisCluster::configure`], which does).
    pub recovery: Option<RecoveryConfig>,
    /// How long a polling session's owner stays registered without
    /// traffic (default 90 s; see [`crate::StickyGuard`]).
    pub session_ttl: Duration,
}

impl ClusterConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "sio".into(),
            request_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            node_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            recovery: None,
            session_ttl: Duration::from_secs(90),
        }
    }

    /// Sets [`ClusterConfig::prefix`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`ClusterConfig::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the heartbeat interval, and the node timeout to three of them.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.node_timeout = interval * 3;
        self
    }

    /// Sets [`ClusterConfig::reconnect_min`] and `reconnect_max`.
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// Sets [`ClusterConfig::recovery`].
    pub fn recovery(mut self, recovery: Option<RecoveryConfig>) -> Self {
        self.recovery = recovery;
        self
    }
}
