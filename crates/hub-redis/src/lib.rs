//! Redis backends for the duplex hub, so that several nodes run as one:
//! [`RedisStore`] (offsets, epochs, history, idempotency), [`RedisBroker`]
//! (fan-out between nodes) and [`RedisPresence`] (cluster-wide presence),
//! all made by one [`RedisBackend`] that shares their connections.
//!
//! This crate owns the Redis side only: the key layout, the Lua scripts,
//! the wire format ([`wire`]), connections and reconnects. The
//! hub's behaviour (ordering, recovery rules, local fan-out) stays in
//! [`hub`]; wiring into the server (config, `/health`, the presence refresh
//! timer) is the server's.
//!
//! # Design
//!
//! **One round trip per publication.** The store and the broker cooperate.
//! [`Hub::publish`](hub::Hub::publish) calls [`Store::publish`](hub::Store::publish)
//! and, once it resolved, [`Broker::publish`](hub::Broker::publish) in the
//! channel's publish order. Here the store's publish is one `EVALSHA` of a
//! Lua script that checks the idempotency key, creates the stream and its
//! epoch if missing, increments the offset, appends to the history stream
//! (`XADD` with an explicit `<offset>-0` ID and `MAXLEN`), drops expired
//! entries, sets TTLs, remembers the idempotency key, and `PUBLISH`es the
//! encoded publication to the channel's topic, returning offset and epoch.
//! A publication without history (and without idempotency key) is one
//! plain `PUBLISH` sent by the store. So every publication that reaches
//! [`Broker::publish`](hub::Broker::publish) was already published, in the
//! store, and the broker's `publish` resolves at once. Duplicates (a known
//! idempotency key) are neither published by the script nor handed to the
//! broker by the hub. Joins and leaves are plain `PUBLISH`es by the broker.
//! [`RedisConfig::fan_out_from_store`] `= false` separates the two again
//! (the store only stores, the broker publishes: two round trips).
//!
//! **Order.** All commands of a node go through one multiplexed connection
//! and are queued synchronously when the trait method is called (see
//! `conn`), so Redis runs them in call order: offsets follow the order of
//! [`Store::publish`](hub::Store::publish) calls, and since Redis runs
//! scripts atomically and delivers a topic's messages in publish order,
//! every node receives a channel's publications in offset order. Futures are
//! not cancellation points: the command is queued before the future exists.
//!
//! **Targeted fan-out.** Each channel has its own topic; a node subscribes
//! (`SUBSCRIBE`) to a channel's topic when the hub gets the channel's first
//! local subscriber and unsubscribes after the last, so Redis sends a node
//! only what its subscribers need. (Sharded pub/sub, `SSUBSCRIBE`, only
//! pays off on Redis Cluster, which this crate does not drive yet; the keys
//! already carry the channel as a hash tag for it.)
//!
//! **History** is a Redis stream per channel whose entry IDs are the
//! offsets, so a recovery read is one `XRANGE` from the client's offset.
//! Each entry carries its expiry; reads and publishes drop the expired
//! prefix, keeping what is kept contiguous. The epoch and top offset live
//! in a hash that expires `history_meta_ttl` after the last use, which is
//! when a stream gets a new epoch. Recovery works on whichever node a
//! client reconnects to, since every node reads the same keys.
//!
//! **Presence** is a hash per channel plus a sorted set of expiry times
//! (Redis 7.0 has no per-field expiry); see [`RedisPresence`].
//!
//! **Failures.** A lost connection is reconnected with exponential backoff
//! and jitter ([`RedisConfig::reconnect_min`]/[`reconnect_max`](RedisConfig::reconnect_max));
//! after a reconnect the subscription connection subscribes every topic
//! this node needs again before it counts as up. While a connection is
//! down, operations fail at once with a temporary backend error
//! ([`hub::Error::Storage`], [`Broker`](hub::Error::Broker) or
//! [`Presence`](hub::Error::Presence)): nothing waits for Redis to come
//! back, and nothing waits longer than [`RedisConfig::command_timeout`].
//! [`RedisBackend::health`] says which connection is down and why.
//! Publications sent while a node's subscription connection was down are
//! caught up from history after the reconnect, before anything newer, and
//! before the connection counts as up again (see `pubsub`); what history no
//! longer holds is counted in [`BrokerStats::missed`].
//!
//! **Control.** [`RedisBackend::control`] gives the server what it needs
//! to run nodes as one beyond channels: a registry of live nodes with TTL,
//! and control messages to every node or to one (see [`RedisControl`]).
//!
//! ```no_run
//! use hub::{Hub, Namespaces};
//! use hub_redis::{RedisBackend, RedisConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisBackend::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let hub = Hub::builder(Namespaces::default())
//!     .store(redis.store())
//!     .broker(redis.broker())
//!     .presence(redis.presence())
//!     .build();
//! // Keep this node's presence entries alive.
//! let every = redis.config().presence_refresh_interval();
//! let refresher = hub.clone();
//! tokio::spawn(async move {
//!     loop {
//!         tokio::time::sleep(every).await;
//!         let _ = refresher.refresh_presence().await;
//!     }
//! });
//! # Ok(()) }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod broker;
mod config;
mod conn;
mod control;
mod error;
mod health;
mod keys;
mod presence;
mod pubsub;
mod scripts;
mod store;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use broker::RedisBroker;
pub use config::RedisConfig;
pub use control::{ControlHandler, RedisControl};
pub use error::RedisBackendError;
pub use health::RedisHealth;
pub use presence::RedisPresence;
pub use pubsub::BrokerStats;
pub use store::RedisStore;

use conn::Commands;
use health::Health;
use keys::Keys;
use pubsub::Subscriptions;
use scripts::Scripts;

/// What the store, broker and presence of one backend share.
pub(crate) struct Core {
    config: Arc<RedisConfig>,
    keys: Keys,
    scripts: Arc<Scripts>,
    commands: Commands,
    subs: Arc<Subscriptions>,
    health: Arc<Health>,
    /// Dropped with the core, which stops the subscription task (the
    /// command task stops when `commands` is dropped).
    _shutdown: watch::Sender<()>,
}

/// One node's connection to Redis, and the hub backends built on it.
/// Cheap to clone; the connections close when the backend and every
/// store, broker and presence taken from it are dropped.
#[derive(Clone)]
pub struct RedisBackend {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.core.config)
            .field("health", &self.health())
            .finish()
    }
}

impl RedisBackend {
    /// Starts connecting in the background and returns at once. Operations
    /// fail fast until connected (see [`health`](Self::health)). Fails only
    /// for a malformed URL. Must be called within a tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, RedisBackendError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|err| RedisBackendError::InvalidUrl(Arc::new(err)))?;
        let config = Arc::new(config);
        let keys = Keys::new(&config.prefix);
        let scripts = Arc::new(Scripts::new());
        let health = Health::new();
        let (shutdown, shutdown_rx) = watch::channel(());
        let commands = Commands::spawn(
            client.clone(),
            config.clone(),
            scripts.clone(),
            health.clone(),
        );
        let subs = Subscriptions::spawn(
            client,
            keys.clone(),
            config.clone(),
            health.clone(),
            commands.clone(),
            scripts.clone(),
            shutdown_rx,
        );
        Ok(Self {
            core: Arc::new(Core {
                config,
                keys,
                scripts,
                commands,
                subs,
                health,
                _shutdown: shutdown,
            }),
        })
    }

    /// Like [`new`](Self::new), then waits until both connections are up,
    /// at most [`connect_timeout`](RedisConfig::connect_timeout) plus
    /// [`command_timeout`](RedisConfig::command_timeout). Fails with the
    /// connection error if Redis cannot be reached by then.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisBackendError> {
        let wait = config.connect_timeout + config.command_timeout;
        let backend = Self::new(config)?;
        let (health, connected) = backend.wait_connected(wait).await;
        if connected {
            Ok(backend)
        } else {
            Err(RedisBackendError::Unavailable(
                health
                    .last_error
                    .unwrap_or_else(|| format!("not connected after {wait:?}")),
            ))
        }
    }

    /// Waits until both connections are up (and every topic is subscribed
    /// again), at most `timeout`. Returns the state then and whether it is
    /// connected.
    pub async fn wait_connected(&self, timeout: Duration) -> (RedisHealth, bool) {
        self.core.health.wait_for(timeout, |h| h.connected).await
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.core.config
    }

    /// The connections' state, for `/health` and metrics.
    pub fn health(&self) -> RedisHealth {
        self.core.health.snapshot()
    }

    /// The store, for [`HubBuilder::store`](hub::HubBuilder::store).
    pub fn store(&self) -> Arc<RedisStore> {
        Arc::new(RedisStore::new(self.core.clone()))
    }

    /// The broker, for [`HubBuilder::broker`](hub::HubBuilder::broker). A
    /// backend serves one hub: give each node its own backend.
    ///
    /// With [`fan_out_from_store`](RedisConfig::fan_out_from_store) on (the
    /// default), the broker's `publish` sends nothing, relying on this
    /// backend's [`store`](Self::store) to have published: use the two
    /// together, or turn the option off to pair the broker with another
    /// store.
    pub fn broker(&self) -> Arc<RedisBroker> {
        Arc::new(RedisBroker::new(self.core.clone()))
    }

    /// The presence store, for [`HubBuilder::presence`](hub::HubBuilder::presence).
    pub fn presence(&self) -> Arc<RedisPresence> {
        Arc::new(RedisPresence::new(self.core.clone()))
    }

    /// Node-to-node control: the registry of live nodes and control
    /// messages (see [`RedisControl`]).
    pub fn control(&self) -> RedisControl {
        RedisControl::new(self.core.clone())
    }

    /// What this node received over pub/sub so far (same as
    /// [`RedisBroker::stats`]).
    pub fn broker_stats(&self) -> BrokerStats {
        self.core.subs.stats()
    }
}
