//! The subscription connection: which channel topics this node listens to,
//! and the task that reads them and hands what arrives to the hub.
//!
//! Owns the set of wanted topics (the broker adds one when the hub gets a
//! channel's first local subscriber and removes it after the last), the
//! Redis pub/sub connection, its reconnects, and decoding incoming
//! messages. A node is subscribed to exactly its channels' topics, so Redis
//! sends it nothing else. One task reads the connection and calls the
//! handler, so a channel's messages reach the hub one at a time, in the
//! order Redis sent them.
//!
//! After a reconnect every wanted topic is subscribed again before the
//! connection counts as up. Publications sent while this node was cut off
//! are not replayed here (Redis pub/sub keeps nothing); clients get them by
//! recovering from history. While the connection is down, new subscribes
//! fail at once; unsubscribes just forget the topic.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use hub::{BrokerHandler, ChannelName, EncodedPublication, JoinLeave};
use redis::aio::{PubSubSink, PubSubStream};
use redis::Msg;
use tokio::sync::watch;

use crate::config::RedisConfig;
use crate::error::RedisBackendError;
use crate::health::{Backoff, Health, Link};
use crate::keys::Keys;
use crate::wire::{self, Message};

/// Topics per `SUBSCRIBE` when resubscribing.
const RESUBSCRIBE_CHUNK: usize = 512;

/// Counts of what this node received over pub/sub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerStats {
    /// Messages Redis delivered to this node.
    pub received: u64,
    /// Publications handed to the hub.
    pub publications: u64,
    /// Joins and leaves handed to the hub.
    pub join_leaves: u64,
    /// Messages dropped because they could not be decoded.
    pub undecodable: u64,
    /// Topics this node is subscribed to (or will be, after a reconnect).
    pub topics: usize,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    publications: AtomicU64,
    join_leaves: AtomicU64,
    undecodable: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Topics this node wants.
    wanted: HashSet<String>,
    /// The live connection's subscribe side; `None` while down.
    sink: Option<PubSubSink>,
}

/// The subscription side of the backend, shared by the broker and the task.
pub(crate) struct Subscriptions {
    keys: Keys,
    config: Arc<RedisConfig>,
    health: Arc<Health>,
    state: Mutex<State>,
    handler: Mutex<Option<Arc<dyn BrokerHandler>>>,
    counters: Counters,
}

impl Subscriptions {
    /// Creates the shared state and starts the task, which runs until
    /// `shutdown`'s sender is dropped.
    pub(crate) fn spawn(
        client: redis::Client,
        keys: Keys,
        config: Arc<RedisConfig>,
        health: Arc<Health>,
        shutdown: watch::Receiver<()>,
    ) -> Arc<Self> {
        let subs = Arc::new(Self {
            keys,
            config,
            health,
            state: Mutex::default(),
            handler: Mutex::default(),
            counters: Counters::default(),
        });
        tokio::spawn(subs.clone().run(client, shutdown));
        subs
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_handler(&self, handler: Arc<dyn BrokerHandler>) {
        *self.handler.lock().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    fn handler(&self) -> Option<Arc<dyn BrokerHandler>> {
        self.handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let c = &self.counters;
        BrokerStats {
            received: c.received.load(Ordering::Relaxed),
            publications: c.publications.load(Ordering::Relaxed),
            join_leaves: c.join_leaves.load(Ordering::Relaxed),
            undecodable: c.undecodable.load(Ordering::Relaxed),
            topics: self.state().wanted.len(),
        }
    }

    /// Subscribes this node to `channel`; resolves once Redis confirmed.
    pub(crate) async fn subscribe(&self, channel: &ChannelName) -> Result<(), RedisBackendError> {
        let topic = self.keys.topic(channel);
        let sink = {
            let mut state = self.state();
            match state.sink.clone() {
                Some(sink) => {
                    state.wanted.insert(topic.clone());
                    sink
                }
                None => return Err(self.health.unavailable()),
            }
        };
        let mut confirm = sink.clone();
        let result =
            tokio::time::timeout(self.config.command_timeout, confirm.subscribe(&topic)).await;
        let err = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => RedisBackendError::from(err),
            Err(_) => RedisBackendError::Unavailable("redis subscribe timed out".into()),
        };
        // Not subscribed as far as the hub knows: forget the topic, and undo
        // it in Redis in case only the confirmation was lost.
        self.state().wanted.remove(&topic);
        let mut undo = sink;
        tokio::spawn(async move {
            let _ = undo.unsubscribe(&topic).await;
        });
        Err(err)
    }

    /// Unsubscribes this node from `channel`. While disconnected there is
    /// nothing to undo in Redis: the topic is only forgotten.
    pub(crate) async fn unsubscribe(&self, channel: &ChannelName) -> Result<(), RedisBackendError> {
        let topic = self.keys.topic(channel);
        let sink = {
            let mut state = self.state();
            state.wanted.remove(&topic);
            state.sink.clone()
        };
        let Some(mut sink) = sink else {
            return Ok(());
        };
        match tokio::time::timeout(self.config.command_timeout, sink.unsubscribe(&topic)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(RedisBackendError::Unavailable(
                "redis unsubscribe timed out".into(),
            )),
        }
    }

    async fn run(self: Arc<Self>, client: redis::Client, mut shutdown: watch::Receiver<()>) {
        let mut backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        loop {
            let outcome = tokio::select! {
                outcome = self.connect_and_read(&client, &mut backoff) => outcome,
                _ = shutdown.changed() => None,
            };
            self.state().sink = None;
            match outcome {
                Some(err) => self.health.down(Link::Subscriptions, &err),
                None => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Connects, resubscribes, and reads until the connection fails (the
    /// error is returned).
    async fn connect_and_read(
        &self,
        client: &redis::Client,
        backoff: &mut Backoff,
    ) -> Option<RedisBackendError> {
        let (mut sink, mut stream) = match self.connect(client).await {
            Ok(parts) => parts,
            Err(err) => return Some(err),
        };
        self.health.up(Link::Subscriptions);
        backoff.reset();
        let ping_every = self.config.ping_interval.max(Duration::from_millis(10));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => {
                        self.dispatch(&message);
                        ping.reset();
                    }
                    None => return Some(RedisBackendError::Unavailable(
                        "redis subscription connection closed".into(),
                    )),
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(
                        self.config.command_timeout,
                        sink.ping::<redis::Value>(),
                    )
                    .await;
                    match pong {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return Some(err.into()),
                        Err(_) => return Some(RedisBackendError::Unavailable(
                            "redis subscription connection: ping timed out".into(),
                        )),
                    }
                }
            }
        }
    }

    /// Opens the connection and subscribes every wanted topic; the sink is
    /// published for new subscribes only after that.
    async fn connect(
        &self,
        client: &redis::Client,
    ) -> Result<(PubSubSink, PubSubStream), RedisBackendError> {
        let limit = self.config.connect_timeout + self.config.command_timeout;
        let attempt = async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            let snapshot: Vec<String> = self.state().wanted.iter().cloned().collect();
            for chunk in snapshot.chunks(RESUBSCRIBE_CHUNK) {
                sink.subscribe(chunk).await?;
            }
            Ok::<_, RedisBackendError>((sink, stream, snapshot))
        };
        let (mut sink, stream, snapshot) = match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(RedisBackendError::Unavailable(format!(
                    "redis subscription connection timed out after {limit:?}"
                )))
            }
        };
        // Topics dropped while we resubscribed: subscribe refused new ones
        // (no sink yet), but unsubscribes only forgot theirs.
        let stale: Vec<String> = {
            let mut state = self.state();
            state.sink = Some(sink.clone());
            snapshot
                .into_iter()
                .filter(|t| !state.wanted.contains(t))
                .collect()
        };
        if !stale.is_empty() {
            if let Err(err) = sink.unsubscribe(&stale).await {
                return Err(err.into());
            }
        }
        Ok((sink, stream))
    }

    fn dispatch(&self, message: &Msg) {
        let counters = &self.counters;
        counters.received.fetch_add(1, Ordering::Relaxed);
        let channel = self
            .keys
            .channel_of(message.get_channel_name())
            .and_then(|name| ChannelName::new(name).ok());
        let Some(channel) = channel else {
            counters.undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic = message.get_channel_name(),
                "message on an unexpected redis topic"
            );
            return;
        };
        let Some(handler) = self.handler() else {
            return;
        };
        match wire::decode_message(message.get_payload_bytes()) {
            Ok(Message::Publication { publication, epoch }) => {
                counters.publications.fetch_add(1, Ordering::Relaxed);
                handler.handle_publication(Arc::new(EncodedPublication::new(
                    channel,
                    publication,
                    epoch,
                )));
            }
            Ok(Message::JoinLeave { kind, info }) => {
                counters.join_leaves.fetch_add(1, Ordering::Relaxed);
                handler.handle_join_leave(Arc::new(JoinLeave::new(kind, channel, info)));
            }
            Err(err) => {
                counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%channel, %err, "undecodable message from redis");
            }
        }
    }
}
