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
//! After a reconnect every wanted topic is subscribed again, then the node
//! catches up, and only then does the connection count as up. Redis pub/sub
//! keeps nothing for a subscriber that was away, so catching up reads each
//! subscribed channel's history stream after the last publication this node
//! handed to the hub (one `EVALSHA` per channel, pipelined) and hands the
//! hub what it missed, in offset order, before anything newer. A
//! publication that arrives both ways is handed over once: per channel,
//! publications at or before the last one handed over (same epoch) are
//! dropped. What a channel's history no longer holds (more publications
//! than it keeps) cannot be caught up; that is counted and logged, and the
//! hub, seeing the hole in the offsets of what comes next, ends the local
//! subscriptions with "insufficient state" (`hub::Subscriber`). A
//! channel without history has no offsets: what it published meanwhile is
//! neither caught up nor counted. Joins and leaves are not kept, so those
//! sent while cut off are lost.
//!
//! Besides channel topics the connection carries the control topics (see
//! [`crate::control`]), whose messages go to the control handler instead of
//! the hub. While the connection is down, new subscribes fail at once;
//! unsubscribes just forget the topic.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use hub::{BrokerHandler, ChannelName, EncodedPublication, JoinLeave};
use redis::aio::{PubSubSink, PubSubStream};
use redis::Msg;
use tokio::sync::watch;

use crate::config::RedisConfig;
use crate::conn::{Command, Commands};
use crate::control::ControlHandler;
use crate::error::RedisBackendError;
use crate::health::{Backoff, Health, Link};
use crate::keys::Keys;
use crate::scripts::Scripts;
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
    /// Control messages handed to the control handler.
    pub control: u64,
    /// Publications handed to the hub by catching up after a reconnect
    /// (read from history, not received over pub/sub).
    pub caught_up: u64,
    /// Publications missed while cut off that history no longer held, so
    /// that catching up could not hand them over.
    pub missed: u64,
    /// Publications received twice (over pub/sub and by catching up) and
    /// handed over once.
    pub duplicates: u64,
    /// Topics this node is subscribed to (or will be, after a reconnect),
    /// control topics included.
    pub topics: usize,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    publications: AtomicU64,
    join_leaves: AtomicU64,
    undecodable: AtomicU64,
    control: AtomicU64,
    caught_up: AtomicU64,
    missed: AtomicU64,
    duplicates: AtomicU64,
}

/// The last publication handed to the hub for a channel.
struct Position {
    epoch: Arc<str>,
    offset: u64,
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
    /// For catching up after a reconnect.
    commands: Commands,
    scripts: Arc<Scripts>,
    state: Mutex<State>,
    handler: Mutex<Option<Arc<dyn BrokerHandler>>>,
    control: Mutex<Option<Arc<dyn ControlHandler>>>,
    /// Per subscribed channel, the last publication handed to the hub.
    positions: Mutex<HashMap<ChannelName, Position>>,
    counters: Counters,
}

/// Locks `m`, ignoring poisoning (the data stays consistent: every critical
/// section here is a plain update).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscriptions {
    /// Creates the shared state and starts the task, which runs until
    /// `shutdown`'s sender is dropped.
    pub(crate) fn spawn(
        client: redis::Client,
        keys: Keys,
        config: Arc<RedisConfig>,
        health: Arc<Health>,
        commands: Commands,
        scripts: Arc<Scripts>,
        shutdown: watch::Receiver<()>,
    ) -> Arc<Self> {
        let subs = Arc::new(Self {
            keys,
            config,
            health,
            commands,
            scripts,
            state: Mutex::default(),
            handler: Mutex::default(),
            control: Mutex::default(),
            positions: Mutex::default(),
            counters: Counters::default(),
        });
        tokio::spawn(subs.clone().run(client, shutdown));
        subs
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn set_handler(&self, handler: Arc<dyn BrokerHandler>) {
        *lock(&self.handler) = Some(handler);
    }

    fn handler(&self) -> Option<Arc<dyn BrokerHandler>> {
        lock(&self.handler).clone()
    }

    pub(crate) fn set_control_handler(&self, handler: Option<Arc<dyn ControlHandler>>) {
        *lock(&self.control) = handler;
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let c = &self.counters;
        BrokerStats {
            received: c.received.load(Ordering::Relaxed),
            publications: c.publications.load(Ordering::Relaxed),
            join_leaves: c.join_leaves.load(Ordering::Relaxed),
            undecodable: c.undecodable.load(Ordering::Relaxed),
            control: c.control.load(Ordering::Relaxed),
            caught_up: c.caught_up.load(Ordering::Relaxed),
            missed: c.missed.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            topics: self.state().wanted.len(),
        }
    }

    /// Subscribes this node to `channel`; resolves once Redis confirmed.
    pub(crate) async fn subscribe(&self, channel: &ChannelName) -> Result<(), RedisBackendError> {
        self.subscribe_topic(self.keys.topic(channel)).await
    }

    /// Subscribes this node to `topic`, which is kept across reconnects;
    /// resolves once Redis confirmed.
    async fn subscribe_topic(&self, topic: String) -> Result<(), RedisBackendError> {
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

    /// Adds `topic` to what this node listens to, now if connected (an
    /// error then is returned, but the topic stays wanted) or else as soon
    /// as the connection is up: unlike [`Self::subscribe_topic`], this does
    /// not fail while disconnected.
    pub(crate) async fn want_topic(&self, topic: String) -> Result<(), RedisBackendError> {
        let sink = {
            let mut state = self.state();
            state.wanted.insert(topic.clone());
            state.sink.clone()
        };
        let Some(mut sink) = sink else {
            return Ok(());
        };
        match tokio::time::timeout(self.config.command_timeout, sink.subscribe(&topic)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(RedisBackendError::Unavailable(
                "redis subscribe timed out".into(),
            )),
        }
    }

    /// Unsubscribes this node from `channel`. While disconnected there is
    /// nothing to undo in Redis: the topic is only forgotten.
    pub(crate) async fn unsubscribe(&self, channel: &ChannelName) -> Result<(), RedisBackendError> {
        lock(&self.positions).remove(channel);
        self.unsubscribe_topic(self.keys.topic(channel)).await
    }

    /// Unsubscribes this node from `topic` (see [`Self::unsubscribe`]).
    pub(crate) async fn unsubscribe_topic(&self, topic: String) -> Result<(), RedisBackendError> {
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
        let (mut sink, mut stream, topics) = match self.connect(client).await {
            Ok(parts) => parts,
            Err(err) => return Some(err),
        };
        // Messages that arrive meanwhile wait in the stream, and are
        // handed over after what is caught up, in order.
        if let Err(err) = self.catch_up(&topics).await {
            return Some(err);
        }
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
    /// published for new subscribes only after that. Returns the topics
    /// that were subscribed again.
    async fn connect(
        &self,
        client: &redis::Client,
    ) -> Result<(PubSubSink, PubSubStream, Vec<String>), RedisBackendError> {
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
        // Topics wanted meanwhile (see `want_topic`) are subscribed now.
        let (kept, stale, added) = {
            let mut state = self.state();
            state.sink = Some(sink.clone());
            let added: Vec<String> = state
                .wanted
                .iter()
                .filter(|t| !snapshot.contains(t))
                .cloned()
                .collect();
            let (kept, stale): (Vec<String>, Vec<String>) =
                snapshot.into_iter().partition(|t| state.wanted.contains(t));
            (kept, stale, added)
        };
        if !stale.is_empty() {
            if let Err(err) = sink.unsubscribe(&stale).await {
                return Err(err.into());
            }
        }
        if !added.is_empty() {
            if let Err(err) = sink.subscribe(&added).await {
                return Err(err.into());
            }
        }
        Ok((sink, stream, kept))
    }

    /// Hands the hub what `topics`' channels published while this node was
    /// not subscribed: one catch-up read per channel, pipelined, each from
    /// the last publication handed over (the whole kept stream when none
    /// was, or the epoch changed; the hub's subscribers drop what they
    /// already had).
    async fn catch_up(&self, topics: &[String]) -> Result<(), RedisBackendError> {
        let channels: Vec<ChannelName> = topics
            .iter()
            .filter_map(|t| self.keys.channel_of(t))
            .filter_map(|name| ChannelName::new(name).ok())
            .collect();
        if channels.is_empty() {
            return Ok(());
        }
        let wait = self.config.command_timeout;
        let (_, commands_up) = self.health.wait_for(wait, |h| h.commands).await;
        if !commands_up {
            return Err(self.health.unavailable());
        }
        let reads: Vec<_> = channels
            .into_iter()
            .map(|channel| {
                let (epoch, offset) = match lock(&self.positions).get(&channel) {
                    Some(p) => (p.epoch.to_string(), p.offset),
                    None => (String::new(), 0),
                };
                let command = Command::script(
                    &self.scripts.catch_up,
                    vec![
                        self.keys.meta(&channel).into_bytes(),
                        self.keys.history(&channel).into_bytes(),
                    ],
                    vec![epoch.clone().into_bytes(), offset.to_string().into_bytes()],
                );
                let reply = self.commands.send(command);
                (channel, epoch, offset, reply)
            })
            .collect();
        let mut caught_up = 0u64;
        for (channel, epoch, offset, reply) in reads {
            let reply = match tokio::time::timeout(wait, reply).await {
                Ok(reply) => reply?,
                Err(_) => {
                    return Err(RedisBackendError::Unavailable(
                        "redis catch-up read timed out".into(),
                    ))
                }
            };
            let history = crate::store::parse_history(reply)?;
            let position = &history.position;
            // What was published after our last one but is no longer kept.
            if !epoch.is_empty() && position.epoch == epoch && position.offset > offset {
                let first = history
                    .publications
                    .first()
                    .map_or(position.offset + 1, |p| p.offset);
                let missed = first.saturating_sub(offset + 1);
                if missed > 0 {
                    self.counters.missed.fetch_add(missed, Ordering::Relaxed);
                    tracing::warn!(
                        %channel,
                        missed,
                        "publications sent while this node was cut off are no longer in history"
                    );
                }
            }
            let Some(handler) = self.handler() else {
                continue;
            };
            let epoch: Arc<str> = Arc::from(position.epoch.as_str());
            for publication in history.publications {
                if self.accept(&channel, publication.offset, &epoch) {
                    caught_up += 1;
                    handler.handle_publication(Arc::new(EncodedPublication::new(
                        channel.clone(),
                        publication,
                        epoch.clone(),
                    )));
                }
            }
        }
        if caught_up > 0 {
            self.counters
                .caught_up
                .fetch_add(caught_up, Ordering::Relaxed);
            tracing::info!(
                publications = caught_up,
                "caught up with publications sent while the redis subscription was down"
            );
        }
        Ok(())
    }

    /// Whether a publication at `offset` of `epoch` is new for `channel`
    /// (and if so, remembers it as the last one). Publications without an
    /// offset are always new.
    fn accept(&self, channel: &ChannelName, offset: u64, epoch: &Arc<str>) -> bool {
        if offset == 0 {
            return true;
        }
        let mut positions = lock(&self.positions);
        match positions.get_mut(channel) {
            Some(last) if *last.epoch == **epoch => {
                if offset <= last.offset {
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                last.offset = offset;
            }
            Some(last) => {
                last.epoch = epoch.clone();
                last.offset = offset;
            }
            None => {
                positions.insert(
                    channel.clone(),
                    Position {
                        epoch: epoch.clone(),
                        offset,
                    },
                );
            }
        }
        true
    }

    fn dispatch(&self, message: &Msg) {
        let counters = &self.counters;
        counters.received.fetch_add(1, Ordering::Relaxed);
        if self.keys.is_control(message.get_channel_name()) {
            counters.control.fetch_add(1, Ordering::Relaxed);
            let handler = lock(&self.control).clone();
            if let Some(handler) = handler {
                handler.handle_control(message.get_payload_bytes());
            }
            return;
        }
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
                let epoch: Arc<str> = Arc::from(epoch);
                if self.accept(&channel, publication.offset, &epoch) {
                    handler.handle_publication(Arc::new(EncodedPublication::new(
                        channel,
                        publication,
                        epoch,
                    )));
                }
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
