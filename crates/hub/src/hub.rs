//! The [`Hub`]: this node's channels and subscribers, and the publish path.
//!
//! Publishing goes store → broker → subscribers. The [`Store`] assigns the
//! offset; the [`Broker`] carries the publication to every subscribed node,
//! this one included; the hub hands what comes back to its local
//! [`Subscriber`]s, the same `Arc` to each, so transports encode once.
//!
//! # Order
//!
//! Per channel, publications reach subscribers in offset order. The hub
//! does not hold a lock across a store write for that (a batching SQLite
//! store would then commit one publication per channel per batch). Instead
//! each publish takes a ticket under a short per-channel lock while calling
//! [`Store::publish`], whose contract fixes offsets in call order; when
//! writes complete, out of order or not, a per-channel sequencer passes them
//! to the broker in ticket order. A write that has not completed when its
//! caller stops waiting finishes on a spawned task, so a dropped request
//! never stalls the channel or loses a fan-out.
//!
//! # Subscribing
//!
//! [`Hub::subscribe`] registers the subscriber first (subscribing the broker
//! to the channel if it is new here), then reads the stream position or
//! recovers, and returns an [`Activation`]. Until it is activated the
//! subscriber's deliveries are held back, so the transport can send the
//! subscribe reply first; activation delivers what was held back, minus
//! publications at or before the position in the reply. Each subscriber
//! also drops publications at or before the last offset it got, so a
//! publication is never delivered twice.
//!
//! A subscriber whose [`Subscriber::deliver`] returns `false` is removed at
//! once, as if unsubscribed (presence, leave event, broker); the transport,
//! which returned `false`, closes the connection.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::broker::{Broker, BrokerHandler, LocalBroker};
use crate::channel::ChannelName;
use crate::error::{Error, Result};
use crate::namespace::{NamespaceOptions, Namespaces};
use crate::presence::{MemoryPresence, PresenceStats, PresenceStore};
use crate::publication::{
    ClientInfo, EncodedPublication, JoinLeave, JoinLeaveKind, Publication, StreamPosition,
};
use crate::recovery::{self, Recovery};
use crate::store::{
    HistoryFilter, HistoryResult, MemoryStore, PublishOptions, PublishResult, Store,
};
use crate::util::{lock, poll_once, BoxFuture, Shards};

/// A receiver of a channel's publications on this node: a client
/// connection's subscription.
///
/// Methods are called synchronously on the fan-out path, one event at a
/// time per channel; they must only queue (never block or wait on the hub).
/// Returning `false` means "this subscriber cannot take more" (closed, or
/// its queue is full): the hub removes it from the channel.
pub trait Subscriber: Send + Sync + 'static {
    /// A publication, shared with every other subscriber of the channel.
    fn deliver(&self, publication: &Arc<EncodedPublication>) -> bool;

    /// A join or leave; called only for subscriptions that receive them.
    fn deliver_join_leave(&self, event: &Arc<JoinLeave>) -> bool {
        let _ = event;
        true
    }

    /// Publications of the channel were lost before they reached this node
    /// (its broker connection was cut, and more were published meanwhile
    /// than the channel's history keeps): `publication`, the next to
    /// arrive, does not follow the last one this subscriber got (same
    /// epoch, offset further on than the next). Returning `true` means the
    /// subscriber ends the subscription itself (a client is told
    /// "insufficient state" and subscribes again, recovering what history
    /// still has, or learning that it cannot); the hub then removes it as
    /// one that refused delivery, and `publication` is not delivered. The
    /// default, `false`, delivers it: the subscriber lives with the hole.
    fn insufficient_state(&self, publication: &Arc<EncodedPublication>) -> bool {
        let _ = publication;
        false
    }
}

/// Settings of a [`Hub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// A subscriber that missed more publications than this cannot recover
    /// (`None`: no limit). Default 300.
    pub recovery_max_publications: Option<usize>,
    /// How many events are held back for a subscriber between subscribe and
    /// activation before it is dropped as too slow. Default 10 000.
    pub max_pending_events: usize,
    /// How many mutexes the channel tables are split over. Default 64.
    pub shards: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            recovery_max_publications: Some(300),
            max_pending_events: 10_000,
            shards: 64,
        }
    }
}

/// A publication to make.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// The payload: raw JSON.
    pub data: Bytes,
    /// The publishing client, when a client publishes.
    pub info: Option<ClientInfo>,
    /// Tags to attach.
    pub tags: BTreeMap<String, String>,
    /// Publish at most once per key within the store's idempotency window.
    pub idempotency_key: Option<String>,
    /// Do not keep it in history (and give it no offset).
    pub skip_history: bool,
}

impl PublishRequest {
    /// A request to publish `data` with nothing else set.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self {
            data: data.into(),
            ..Default::default()
        }
    }
}

/// How to subscribe.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// Who subscribes; `info.client` identifies the subscription in the channel.
    pub info: ClientInfo,
    /// The subscriber wants join/leave events (when the namespace has
    /// `join_leave`; `force_push_join_leave` sends them regardless).
    pub join_leave: bool,
    /// Recover from this position. Ignored when the namespace keeps no history.
    pub recover_since: Option<StreamPosition>,
}

/// What [`Hub::subscribe`] found out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscribeResult {
    /// The stream position the subscription starts from, when the namespace
    /// keeps history.
    pub position: Option<StreamPosition>,
    /// The recovery outcome, when recovery was asked for and history is on.
    pub recovery: Option<Recovery>,
}

/// A subscription made by [`Hub::subscribe`]: its result, and the
/// activation that starts live delivery.
#[derive(Debug)]
pub struct Subscribed {
    /// Position and recovery, for the subscribe reply.
    pub result: SubscribeResult,
    /// Activate after sending the reply.
    pub activation: Activation,
}

/// Starts live delivery of a new subscription. Until then the hub holds the
/// subscriber's events back. Activate after queueing the subscribe reply;
/// dropping it activates too, so a forgotten activation does not leave the
/// subscriber muted.
#[must_use = "a subscription receives nothing until activated (or this is dropped)"]
pub struct Activation {
    hub: Weak<Inner>,
    channel: ChannelName,
    client: Arc<str>,
    position: Option<StreamPosition>,
    done: bool,
}

impl fmt::Debug for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activation")
            .field("channel", &self.channel)
            .field("client", &self.client)
            .field("done", &self.done)
            .finish()
    }
}

impl Activation {
    /// Delivers the held-back events and switches to live delivery.
    pub fn activate(mut self) {
        self.run();
    }

    fn run(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(inner) = self.hub.upgrade() {
            inner.activate(&self.channel, &self.client, self.position.take());
        }
    }
}

impl Drop for Activation {
    fn drop(&mut self) {
        self.run();
    }
}

/// Counts for this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HubStats {
    /// Channels with at least one local subscriber.
    pub num_channels: usize,
    /// Local subscriptions over all channels.
    pub num_subscriptions: usize,
}

/// This node's channels, subscribers and publish path. Cheap to clone; clones
/// share everything. Needs a tokio runtime.
///
/// ```
/// use std::sync::Arc;
/// use hub::{ClientInfo, EncodedPublication, Hub, Namespaces, PublishRequest, SubscribeOptions, Subscriber};
///
/// struct Print;
/// impl Subscriber for Print {
///     fn deliver(&self, p: &Arc<EncodedPublication>) -> bool {
///         println!("{} {}", p.channel(), p.offset());
///         true
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let hub = Hub::builder(Namespaces::default()).build();
/// let channel = "news".parse().unwrap();
/// let opts = SubscribeOptions { info: ClientInfo::new("42", "client-1"), ..Default::default() };
/// let subscribed = hub.subscribe(&channel, Arc::new(Print), opts).await.unwrap();
/// // ... send the subscribe reply built from `subscribed.result`, then:
/// subscribed.activation.activate();
/// hub.publish(&channel, PublishRequest::new(r#"{"text":"hi"}"#)).await.unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

/// Builds a [`Hub`]; backends default to the in-memory ones.
pub struct HubBuilder {
    config: HubConfig,
    namespaces: Namespaces,
    store: Option<Arc<dyn Store>>,
    presence: Option<Arc<dyn PresenceStore>>,
    broker: Option<Arc<dyn Broker>>,
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HubBuilder {
    /// Sets the hub's settings.
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets the presence store (default: a new [`MemoryPresence`]).
    pub fn presence(mut self, presence: Arc<dyn PresenceStore>) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Sets the broker (default: a new [`LocalBroker`]). The hub registers
    /// itself as the broker's handler.
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Builds the hub.
    pub fn build(self) -> Hub {
        let shards = self.config.shards;
        let inner = Arc::new(Inner {
            namespaces: self.namespaces,
            store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
            presence: self
                .presence
                .unwrap_or_else(|| Arc::new(MemoryPresence::new())),
            broker: self.broker.unwrap_or_else(|| Arc::new(LocalBroker::new())),
            sequencers: Shards::new(shards),
            channels: Shards::new(shards),
            sub_locks: (0..shards.max(1))
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            config: self.config,
        });
        inner
            .broker
            .register(Arc::new(HubHandler(Arc::downgrade(&inner))));
        Hub { inner }
    }
}

struct Inner {
    config: HubConfig,
    namespaces: Namespaces,
    store: Arc<dyn Store>,
    presence: Arc<dyn PresenceStore>,
    broker: Arc<dyn Broker>,
    /// Per-channel publish sequencers, present while publishes are in flight.
    sequencers: Shards<HashMap<ChannelName, Arc<Mutex<Sequencer>>>>,
    /// Channels with local subscribers.
    channels: Shards<HashMap<ChannelName, Arc<LocalChannel>>>,
    /// Serialise subscribe/unsubscribe bookkeeping per channel (sharded), so
    /// that broker subscribe and unsubscribe calls for a channel never race.
    sub_locks: Box<[tokio::sync::Mutex<()>]>,
}

/// Hands finished publishes to the broker in ticket (= offset) order.
#[derive(Default)]
struct Sequencer {
    next_ticket: u64,
    next_fanout: u64,
    done: BTreeMap<u64, Finished>,
}

/// The broker's answer to one publish, handed to the publisher.
type BrokerAnswer = BoxFuture<'static, Result<()>>;

struct Finished {
    publication: Option<Arc<EncodedPublication>>,
    /// Where to send the broker's answer for this publication.
    reply: Option<oneshot::Sender<BrokerAnswer>>,
}

impl Sequencer {
    fn is_idle(&self) -> bool {
        self.next_fanout == self.next_ticket && self.done.is_empty()
    }
}

#[derive(Default)]
struct LocalChannel {
    subscribers: Mutex<HashMap<Arc<str>, Entry>>,
}

/// One local subscription. Kept small: a channel's table holds one per
/// subscriber and, with 10,000 subscribers, is walked for every
/// publication (what is rarely set is boxed; the client id is the table's
/// key, not repeated here).
struct Entry {
    subscriber: Arc<dyn Subscriber>,
    /// The subscriber's user id ([`ClientInfo::user`]).
    user: Arc<str>,
    /// The JSON attached to the connection and to the subscription
    /// ([`ClientInfo::conn_info`], [`ClientInfo::chan_info`]), if any.
    attached: Option<Box<(Option<Bytes>, Option<Bytes>)>>,
    /// Receives join/leave events.
    join_leave: bool,
    /// Is in presence (remove on unsubscribe).
    presence: bool,
    /// Its leave is announced on unsubscribe.
    announce: bool,
    /// Events held back until activation; `None` once live.
    pending: Option<Vec<Event>>,
    /// Epoch and offset of the last publication delivered (channels with
    /// history only).
    last: Option<Box<(Arc<str>, u64)>>,
}

#[derive(Clone)]
enum Event {
    Publication(Arc<EncodedPublication>),
    JoinLeave(Arc<JoinLeave>),
}

impl Event {
    fn channel(&self) -> &ChannelName {
        match self {
            Event::Publication(p) => p.channel(),
            Event::JoinLeave(e) => e.channel(),
        }
    }
}

impl Entry {
    fn new(subscriber: Arc<dyn Subscriber>, info: &ClientInfo) -> Self {
        let attached = (info.conn_info.is_some() || info.chan_info.is_some())
            .then(|| Box::new((info.conn_info.clone(), info.chan_info.clone())));
        Self {
            subscriber,
            user: info.user.clone(),
            attached,
            join_leave: false,
            presence: false,
            announce: false,
            pending: Some(Vec::new()),
            last: None,
        }
    }

    /// The subscriber's [`ClientInfo`]; `client` is its key in the table.
    fn info(&self, client: &Arc<str>) -> ClientInfo {
        let (conn_info, chan_info) = self.attached.as_deref().cloned().unwrap_or_default();
        ClientInfo {
            user: self.user.clone(),
            client: client.clone(),
            conn_info,
            chan_info,
        }
    }

    /// Delivers now, or holds back while pending. `false`: drop this subscriber.
    fn offer(&mut self, event: &Event, max_pending: usize) -> bool {
        if matches!(event, Event::JoinLeave(_)) && !self.join_leave {
            return true;
        }
        match &mut self.pending {
            Some(held) if held.len() >= max_pending => false,
            Some(held) => {
                held.push(event.clone());
                true
            }
            None => self.send(event),
        }
    }

    fn send(&mut self, event: &Event) -> bool {
        match event {
            Event::Publication(p) => {
                if p.offset() != 0 {
                    if let Some(last) = &mut self.last {
                        let (epoch, offset) = &mut **last;
                        let same_epoch = Arc::ptr_eq(epoch, p.epoch_arc()) || **epoch == *p.epoch();
                        if same_epoch && p.offset() <= *offset {
                            return true;
                        }
                        if same_epoch
                            && p.offset() > offset.saturating_add(1)
                            && self.subscriber.insufficient_state(p)
                        {
                            return false;
                        }
                        if !Arc::ptr_eq(epoch, p.epoch_arc()) {
                            *epoch = p.epoch_arc().clone();
                        }
                        *offset = p.offset();
                    } else {
                        self.last = Some(Box::new((p.epoch_arc().clone(), p.offset())));
                    }
                }
                self.subscriber.deliver(p)
            }
            Event::JoinLeave(e) => self.subscriber.deliver_join_leave(e),
        }
    }
}

/// The hub as the broker sees it. Weak, so that a broker holding its
/// handler does not keep the hub alive.
struct HubHandler(Weak<Inner>);

impl BrokerHandler for HubHandler {
    fn handle_publication(&self, publication: Arc<EncodedPublication>) {
        if let Some(inner) = self.0.upgrade() {
            inner.deliver_local(&Event::Publication(publication));
        }
    }

    fn handle_join_leave(&self, event: Arc<JoinLeave>) {
        if let Some(inner) = self.0.upgrade() {
            inner.deliver_local(&Event::JoinLeave(event));
        }
    }
}

/// Runs `fut` on the current runtime if there is one; otherwise drops it
/// with a warning (memory backends never get here: their futures are ready).
fn spawn_detached(what: &'static str, fut: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(fut);
        }
        Err(_) => tracing::warn!(what, "no tokio runtime: background hub work skipped"),
    }
}

impl Inner {
    fn sub_lock(&self, channel: &ChannelName) -> &tokio::sync::Mutex<()> {
        &self.sub_locks[self.channels.index(channel) % self.sub_locks.len()]
    }

    fn local(&self, channel: &ChannelName) -> Option<Arc<LocalChannel>> {
        self.channels.lock(channel).get(channel).cloned()
    }

    // ---- publish path ----

    /// Takes a ticket and starts the store write, both under the channel's
    /// sequencer lock, so ticket order is offset order.
    fn begin_publish(
        &self,
        channel: &ChannelName,
        publication: Publication,
        opts: &PublishOptions,
    ) -> (
        Arc<Mutex<Sequencer>>,
        u64,
        BoxFuture<'static, Result<PublishResult>>,
    ) {
        let seq = self
            .sequencers
            .lock(channel)
            .entry(channel.clone())
            .or_default()
            .clone();
        let mut s = lock(&seq);
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        let write = self.store.publish(channel, publication, opts);
        drop(s);
        (seq, ticket, write)
    }

    /// Records a finished write and fans out every publication whose turn has
    /// come. Returns the write's result and, for a publication that is to be
    /// fanned out, where its broker answer will arrive.
    fn finish_publish(
        &self,
        channel: &ChannelName,
        seq: Arc<Mutex<Sequencer>>,
        ticket: u64,
        result: Result<PublishResult>,
    ) -> (
        Result<PublishResult>,
        Option<oneshot::Receiver<BrokerAnswer>>,
    ) {
        let publication = match &result {
            Ok(r) if !r.duplicate => Some(Arc::new(EncodedPublication::new(
                channel.clone(),
                r.publication.clone(),
                r.position.epoch.as_str(),
            ))),
            _ => None,
        };
        let (reply, answer) = match publication {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        {
            let mut s = lock(&seq);
            s.done.insert(ticket, Finished { publication, reply });
            loop {
                let next = s.next_fanout;
                let Some(finished) = s.done.remove(&next) else {
                    break;
                };
                s.next_fanout += 1;
                if let Some(publication) = finished.publication {
                    let sent = self.broker.publish(&publication);
                    if let Some(reply) = finished.reply {
                        // The publisher may be gone; the broker's answer then
                        // only goes unread (dropping it does not cancel).
                        let _ = reply.send(sent);
                    }
                }
            }
        }
        drop(seq);
        self.release_sequencer(channel);
        (result, answer)
    }

    /// Forgets an idle sequencer that nobody else holds.
    fn release_sequencer(&self, channel: &ChannelName) {
        let mut shard = self.sequencers.lock(channel);
        let idle = shard
            .get(channel)
            .is_some_and(|seq| Arc::strong_count(seq) == 1 && lock(seq).is_idle());
        if idle {
            shard.remove(channel);
        }
    }

    // ---- local fan-out ----

    fn deliver_local(self: &Arc<Self>, event: &Event) {
        let channel = event.channel();
        let Some(local) = self.local(channel) else {
            return;
        };
        let mut dropped = Vec::new();
        {
            let mut subscribers = lock(&local.subscribers);
            let max_pending = self.config.max_pending_events;
            let failed: Vec<Arc<str>> = subscribers
                .iter_mut()
                .filter_map(|(client, entry)| {
                    (!entry.offer(event, max_pending)).then(|| client.clone())
                })
                .collect();
            for client in failed {
                if let Some(removed) = subscribers.remove_entry(&client) {
                    dropped.push(removed);
                }
            }
        }
        for (client, entry) in dropped {
            self.spawn_after_removal(channel.clone(), client, entry);
        }
    }

    fn activate(
        self: &Arc<Self>,
        channel: &ChannelName,
        client: &Arc<str>,
        position: Option<StreamPosition>,
    ) {
        let Some(local) = self.local(channel) else {
            return;
        };
        let mut subscribers = lock(&local.subscribers);
        let Some(entry) = subscribers.get_mut(client) else {
            return;
        };
        let Some(held) = entry.pending.take() else {
            return;
        };
        if let Some(position) = position.filter(|p| !p.is_zero()) {
            entry.last = Some(Box::new((Arc::from(position.epoch), position.offset)));
        }
        if held.iter().all(|event| entry.send(event)) {
            return;
        }
        if let Some((client, entry)) = subscribers.remove_entry(client) {
            drop(subscribers);
            self.spawn_after_removal(channel.clone(), client, entry);
        }
    }

    // ---- removal ----

    fn spawn_after_removal(self: &Arc<Self>, channel: ChannelName, client: Arc<str>, entry: Entry) {
        tracing::debug!(%channel, %client, "subscriber refused delivery; removed");
        let inner = self.clone();
        spawn_detached("subscriber cleanup", async move {
            inner.after_removal(&channel, &client, entry, true).await;
        });
    }

    /// Removes `client` from `channel` and cleans up after it. `false` if it
    /// was not subscribed.
    async fn remove(&self, channel: &ChannelName, client: &str, announce: bool) -> bool {
        let entry = self
            .local(channel)
            .and_then(|local| lock(&local.subscribers).remove_entry(client));
        match entry {
            Some((client, entry)) => {
                self.after_removal(channel, &client, entry, announce).await;
                true
            }
            None => false,
        }
    }

    /// Presence, leave event and broker bookkeeping for a removed entry.
    /// Backend failures are logged: the subscriber is gone either way.
    async fn after_removal(
        &self,
        channel: &ChannelName,
        client: &Arc<str>,
        entry: Entry,
        announce: bool,
    ) {
        if entry.presence {
            if let Err(err) = self.presence.remove(channel, client).await {
                tracing::warn!(%channel, %err, "presence remove failed");
            }
        }
        if announce && entry.announce {
            let leave = Arc::new(JoinLeave::new(
                JoinLeaveKind::Leave,
                channel.clone(),
                entry.info(client),
            ));
            if let Err(err) = self.broker.publish_join_leave(&leave).await {
                tracing::warn!(%channel, %err, "leave publish failed");
            }
        }
        self.release_channel(channel).await;
    }

    /// Drops the channel and unsubscribes the broker if nobody is left.
    async fn release_channel(&self, channel: &ChannelName) {
        let _guard = self.sub_lock(channel).lock().await;
        let emptied = {
            let mut shard = self.channels.lock(channel);
            let empty = shard
                .get(channel)
                .is_some_and(|local| lock(&local.subscribers).is_empty());
            if empty {
                shard.remove(channel);
            }
            empty
        };
        if emptied {
            if let Err(err) = self.broker.unsubscribe(channel).await {
                tracing::warn!(%channel, %err, "broker unsubscribe failed");
            }
        }
    }
}

/// Undoes a half-made subscription if `Hub::subscribe` is dropped midway.
struct Rollback {
    inner: Arc<Inner>,
    channel: ChannelName,
    client: Arc<str>,
    armed: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.armed {
            let inner = self.inner.clone();
            let channel = self.channel.clone();
            let client = self.client.clone();
            spawn_detached("subscribe rollback", async move {
                inner.remove(&channel, &client, true).await;
            });
        }
    }
}

impl Hub {
    /// Starts building a hub for channels configured by `namespaces`.
    pub fn builder(namespaces: Namespaces) -> HubBuilder {
        HubBuilder {
            config: HubConfig::default(),
            namespaces,
            store: None,
            presence: None,
            broker: None,
        }
    }

    /// The namespace configuration.
    pub fn namespaces(&self) -> &Namespaces {
        &self.inner.namespaces
    }

    /// The options for `channel` (error 102 for an unknown namespace).
    pub fn options(&self, channel: &ChannelName) -> Result<&NamespaceOptions> {
        self.inner.namespaces.resolve(channel)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The presence store.
    pub fn presence_store(&self) -> &Arc<dyn PresenceStore> {
        &self.inner.presence
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// Publishes into `channel`: stores it (with the namespace's history
    /// settings) and fans it out through the broker. Resolves once the
    /// publication has been handed to the broker, after every earlier
    /// publication of the channel from this node.
    ///
    /// A repeated idempotency key returns the first result with
    /// `duplicate: true` and fans nothing out.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        request: PublishRequest,
    ) -> Result<PublishResult> {
        let ns = self.inner.namespaces.resolve(channel)?;
        let keep = !request.skip_history && ns.history_enabled();
        let opts = PublishOptions {
            history_size: if keep { ns.history_size } else { 0 },
            history_ttl: if keep {
                ns.history_ttl
            } else {
                Default::default()
            },
            history_meta_ttl: ns.history_meta_ttl,
            idempotency_key: request.idempotency_key,
        };
        let publication = Publication {
            offset: 0,
            data: request.data,
            info: request.info,
            tags: request.tags,
            time: SystemTime::now(),
        };
        let inner = &self.inner;
        let (seq, ticket, mut write) = inner.begin_publish(channel, publication, &opts);
        let (result, answer) = match poll_once(&mut write) {
            Poll::Ready(result) => inner.finish_publish(channel, seq, ticket, result),
            Poll::Pending => {
                // Finish on a task of its own: if our caller stops waiting,
                // the ticket still completes and later publishes still flow.
                let task_inner = inner.clone();
                let task_channel = channel.clone();
                tokio::spawn(async move {
                    let result = write.await;
                    task_inner.finish_publish(&task_channel, seq, ticket, result)
                })
                .await
                .map_err(|err| Error::Internal(format!("publish task failed: {err}")))?
            }
        };
        let result = result?;
        if let Some(answer) = answer {
            let sent = answer
                .await
                .map_err(|_| Error::Internal("publish sequencer dropped".into()))?;
            sent.await?;
        }
        Ok(result)
    }

    /// Subscribes `subscriber` to `channel` as `opts.info.client`.
    ///
    /// Adds presence and announces a join when the namespace says so, and
    /// reads the position (or recovers) when it keeps history. Events are
    /// held back until the returned [`Activation`] is used. Fails with
    /// [`Error::AlreadySubscribed`] for a client already in the channel, and
    /// with backend errors (after undoing what it did).
    pub async fn subscribe(
        &self,
        channel: &ChannelName,
        subscriber: Arc<dyn Subscriber>,
        opts: SubscribeOptions,
    ) -> Result<Subscribed> {
        let inner = &self.inner;
        let ns = inner.namespaces.resolve(channel)?;
        let client = opts.info.client.clone();
        let entry = Entry {
            join_leave: ns.join_leave && (opts.join_leave || ns.force_push_join_leave),
            presence: ns.presence,
            announce: ns.join_leave,
            ..Entry::new(subscriber, &opts.info)
        };
        {
            let _guard = inner.sub_lock(channel).lock().await;
            let local = match inner.local(channel) {
                Some(local) => local,
                None => {
                    inner.broker.subscribe(channel).await?;
                    let local = Arc::new(LocalChannel::default());
                    inner
                        .channels
                        .lock(channel)
                        .insert(channel.clone(), local.clone());
                    local
                }
            };
            let mut subscribers = lock(&local.subscribers);
            if subscribers.contains_key(&client) {
                return Err(Error::AlreadySubscribed {
                    channel: channel.to_string(),
                });
            }
            subscribers.insert(client.clone(), entry);
        }
        let mut rollback = Rollback {
            inner: inner.clone(),
            channel: channel.clone(),
            client: client.clone(),
            armed: true,
        };
        match self.setup_subscription(channel, ns, &opts).await {
            Ok(result) => {
                rollback.armed = false;
                let activation = Activation {
                    hub: Arc::downgrade(inner),
                    channel: channel.clone(),
                    client,
                    position: result.position.clone(),
                    done: false,
                };
                Ok(Subscribed { result, activation })
            }
            Err(err) => {
                rollback.armed = false;
                inner.remove(channel, &client, false).await;
                Err(err)
            }
        }
    }

    async fn setup_subscription(
        &self,
        channel: &ChannelName,
        ns: &NamespaceOptions,
        opts: &SubscribeOptions,
    ) -> Result<SubscribeResult> {
        let inner = &self.inner;
        if ns.presence {
            inner.presence.add(channel, &opts.info).await?;
        }
        let mut result = SubscribeResult::default();
        if ns.history_enabled() {
            match &opts.recover_since {
                Some(since) => {
                    let recovery = recovery::recover(
                        &*inner.store,
                        channel,
                        since,
                        inner.config.recovery_max_publications,
                    )
                    .await?;
                    result.position = Some(recovery.position.clone());
                    result.recovery = Some(recovery);
                }
                None => result.position = Some(inner.store.position(channel).await?),
            }
        }
        if ns.join_leave {
            let join = Arc::new(JoinLeave::new(
                JoinLeaveKind::Join,
                channel.clone(),
                opts.info.clone(),
            ));
            if let Err(err) = inner.broker.publish_join_leave(&join).await {
                tracing::warn!(%channel, %err, "join publish failed");
            }
        }
        Ok(result)
    }

    /// Unsubscribes `client` from `channel`: removes it from presence,
    /// announces its leave when the namespace has join/leave, and
    /// unsubscribes the broker after the channel's last local subscriber.
    /// Returns whether it was subscribed. Backend failures are logged.
    pub async fn unsubscribe(&self, channel: &ChannelName, client: &str) -> bool {
        self.inner.remove(channel, client, true).await
    }

    /// Reads `channel`'s history (error 108 when the namespace keeps none).
    /// A read continuing from `filter.since` fails with
    /// [`Error::UnrecoverablePosition`] when the position's epoch is stale
    /// or publications after it are gone.
    pub async fn history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> Result<HistoryResult> {
        let ns = self.inner.namespaces.resolve(channel)?;
        if !ns.history_enabled() {
            return Err(Error::NotAvailable { what: "history" });
        }
        let result = self.inner.store.history(channel, filter.clone()).await?;
        recovery::check_continuation(&filter, &result)?;
        Ok(result)
    }

    /// Drops `channel`'s kept publications (offset and epoch stay).
    pub async fn remove_history(&self, channel: &ChannelName) -> Result<()> {
        self.inner.namespaces.resolve(channel)?;
        self.inner.store.remove_history(channel).await
    }

    /// `channel`'s current stream position (error 108 without history).
    pub async fn position(&self, channel: &ChannelName) -> Result<StreamPosition> {
        let ns = self.inner.namespaces.resolve(channel)?;
        if !ns.history_enabled() {
            return Err(Error::NotAvailable { what: "history" });
        }
        self.inner.store.position(channel).await
    }

    /// Recovers `channel` from `since` with the configured publication limit
    /// (error 108 without history).
    pub async fn recover(&self, channel: &ChannelName, since: &StreamPosition) -> Result<Recovery> {
        let ns = self.inner.namespaces.resolve(channel)?;
        if !ns.history_enabled() {
            return Err(Error::NotAvailable { what: "history" });
        }
        recovery::recover(
            &*self.inner.store,
            channel,
            since,
            self.inner.config.recovery_max_publications,
        )
        .await
    }

    /// Who is in `channel` (error 108 when the namespace has no presence).
    pub async fn presence(&self, channel: &ChannelName) -> Result<Vec<ClientInfo>> {
        let ns = self.inner.namespaces.resolve(channel)?;
        if !ns.presence {
            return Err(Error::NotAvailable { what: "presence" });
        }
        self.inner.presence.list(channel).await
    }

    /// How many are in `channel` (error 108 when the namespace has no presence).
    pub async fn presence_stats(&self, channel: &ChannelName) -> Result<PresenceStats> {
        let ns = self.inner.namespaces.resolve(channel)?;
        if !ns.presence {
            return Err(Error::NotAvailable { what: "presence" });
        }
        self.inner.presence.stats(channel).await
    }

    /// Re-adds this node's presence entries, for presence stores that expire
    /// entries which are not refreshed. Call it periodically with such a store.
    pub async fn refresh_presence(&self) -> Result<()> {
        let mut entries = Vec::new();
        for shard in self.inner.channels.iter() {
            for (channel, local) in lock(shard).iter() {
                entries.extend(
                    lock(&local.subscribers)
                        .iter()
                        .filter(|(_, e)| e.presence)
                        .map(|(client, e)| (channel.clone(), e.info(client))),
                );
            }
        }
        for (channel, info) in entries {
            self.inner.presence.add(&channel, &info).await?;
        }
        Ok(())
    }

    /// Channels with local subscribers and how many each has, sorted by name.
    pub fn channels(&self) -> Vec<(ChannelName, usize)> {
        let mut channels: Vec<(ChannelName, usize)> = self
            .inner
            .channels
            .iter()
            .flat_map(|shard| {
                lock(shard)
                    .iter()
                    .map(|(c, local)| (c.clone(), lock(&local.subscribers).len()))
                    .collect::<Vec<_>>()
            })
            .collect();
        channels.sort();
        channels
    }

    /// How many local subscribers `channel` has.
    pub fn num_subscribers(&self, channel: &ChannelName) -> usize {
        self.inner
            .local(channel)
            .map_or(0, |local| lock(&local.subscribers).len())
    }

    /// Whether `client` is subscribed to `channel` on this node.
    pub fn is_subscribed(&self, channel: &ChannelName, client: &str) -> bool {
        self.inner
            .local(channel)
            .is_some_and(|local| lock(&local.subscribers).contains_key(client))
    }

    /// Counts for this node.
    pub fn stats(&self) -> HubStats {
        let mut stats = HubStats::default();
        for shard in self.inner.channels.iter() {
            for local in lock(shard).values() {
                stats.num_channels += 1;
                stats.num_subscriptions += lock(&local.subscribers).len();
            }
        }
        stats
    }

    /// Makes the store durable; call at shutdown.
    pub async fn flush(&self) -> Result<()> {
        self.inner.store.flush().await
    }
}
