//! [`MemoryStore`]: the [`Store`] kept in process memory.
//!
//! Each channel has a stream (epoch, last offset, a deque of kept
//! publications with their expiry) and a small table of recent idempotency
//! keys. Everything happens under one short, sharded mutex section, so every
//! future it returns is already complete. Expiry is lazy (each access drops
//! what has expired) plus an optional periodic sweep
//! ([`MemoryStore::spawn_cleanup`]) that frees channels nobody touches.
//!
//! Nothing survives the process: a restarted store creates every stream
//! anew with a fresh epoch, which tells clients their old positions are void.
//! Times come from `tokio::time::Instant`, so tests can pause and advance them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{
    HistoryFilter, HistoryResult, PublishOptions, PublishResult, Store, DEFAULT_IDEMPOTENCY_TTL,
};
use crate::channel::ChannelName;
use crate::error::Result;
use crate::publication::{Publication, StreamPosition};
use crate::util::{lock, new_epoch, ready, BoxFuture, Shards};

/// Longest interval added to an `Instant`, so that huge configured TTLs do
/// not overflow: about 30 years is "never" here.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 86_400);

fn after(now: Instant, ttl: Duration) -> Instant {
    now + ttl.min(FOREVER)
}

/// Settings of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    /// How long an idempotency key is remembered (default 5 minutes).
    pub idempotency_ttl: Duration,
    /// How long a channel's stream (epoch and offset) is kept after its last
    /// use, unless a publish says otherwise (default 30 days).
    pub history_meta_ttl: Duration,
    /// How many mutexes the channel table is split over (default 64).
    pub shards: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            history_meta_ttl: Duration::from_secs(30 * 86_400),
            shards: 64,
        }
    }
}

/// The in-memory [`Store`]. Cheap to clone; clones share the data.
///
/// ```
/// # use std::time::Duration;
/// use hub::{ChannelName, MemoryStore, Publication, PublishOptions, Store};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let ch = ChannelName::new("news").unwrap();
/// let opts = PublishOptions::with_history(10, Duration::from_secs(60));
/// let first = store.publish(&ch, Publication::new("1"), &opts).await.unwrap();
/// let second = store.publish(&ch, Publication::new("2"), &opts).await.unwrap();
/// assert_eq!((first.position.offset, second.position.offset), (1, 2));
/// assert_eq!(first.position.epoch, second.position.epoch);
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: MemoryStoreConfig,
    channels: Shards<HashMap<ChannelName, ChannelState>>,
}

#[derive(Default)]
struct ChannelState {
    stream: Option<Stream>,
    /// Recent idempotency keys: key -> (expiry, offset, position).
    keys: HashMap<String, Remembered>,
    /// The same keys in insertion (= expiry) order, for pruning.
    key_order: VecDeque<(Instant, String)>,
}

struct Remembered {
    expires: Instant,
    offset: u64,
    position: StreamPosition,
}

struct Stream {
    epoch: String,
    top: u64,
    kept: VecDeque<Kept>,
    /// When the stream itself (epoch and offset) is forgotten.
    expires: Instant,
    meta_ttl: Duration,
}

struct Kept {
    expires: Instant,
    publication: Publication,
}

impl Stream {
    fn new(now: Instant, meta_ttl: Duration) -> Self {
        Self {
            epoch: new_epoch(),
            top: 0,
            kept: VecDeque::new(),
            expires: after(now, meta_ttl),
            meta_ttl,
        }
    }

    /// Drops expired publications from the front. TTLs may differ between
    /// publications (config changes); only a prefix is dropped, which keeps
    /// the retained offsets contiguous.
    fn expire(&mut self, now: Instant) {
        while self.kept.front().is_some_and(|k| k.expires <= now) {
            self.kept.pop_front();
        }
    }

    fn touch(&mut self, now: Instant) {
        self.expires = after(now, self.meta_ttl);
    }

    fn position(&self) -> StreamPosition {
        StreamPosition::new(self.top, self.epoch.clone())
    }
}

impl ChannelState {
    /// The live stream, replacing one whose meta data expired (a new epoch).
    fn stream(&mut self, now: Instant, meta_ttl: Duration) -> &mut Stream {
        if self.stream.as_ref().is_some_and(|s| s.expires <= now) {
            self.stream = None;
        }
        let stream = self
            .stream
            .get_or_insert_with(|| Stream::new(now, meta_ttl));
        stream.expire(now);
        stream
    }

    fn prune_keys(&mut self, now: Instant) {
        while self.key_order.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.key_order.pop_front() {
                // A key re-used after expiry has a newer entry: keep that one.
                if self.keys.get(&key).is_some_and(|r| r.expires <= now) {
                    self.keys.remove(&key);
                }
            }
        }
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.keys.is_empty() && self.stream.as_ref().is_none_or(|s| s.expires <= now)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("config", &self.inner.config)
            .field("channels", &self.num_channels())
            .finish()
    }
}

impl MemoryStore {
    /// A store with default settings.
    pub fn new() -> Self {
        Self::with_config(MemoryStoreConfig::default())
    }

    /// A store with `config`.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        let channels = Shards::new(config.shards);
        Self {
            inner: Arc::new(Inner { config, channels }),
        }
    }

    /// How many channels have state (a stream or idempotency keys).
    pub fn num_channels(&self) -> usize {
        self.inner.channels.iter().map(|s| lock(s).len()).sum()
    }

    /// Drops expired publications, idempotency keys and streams, and the
    /// channels left with nothing. Accesses do this lazily for the channel
    /// they touch; this sweeps the rest.
    pub fn cleanup(&self) {
        let now = Instant::now();
        for shard in self.inner.channels.iter() {
            lock(shard).retain(|_, state| {
                state.prune_keys(now);
                if let Some(stream) = &mut state.stream {
                    stream.expire(now);
                }
                !state.is_idle(now)
            });
        }
    }

    /// Runs [`cleanup`](Self::cleanup) every `interval` on the current tokio
    /// runtime until the store is dropped. Must be called within a runtime.
    pub fn spawn_cleanup(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                match weak.upgrade() {
                    Some(inner) => MemoryStore { inner }.cleanup(),
                    None => return,
                }
            }
        })
    }

    fn publish_now(
        &self,
        channel: &ChannelName,
        mut publication: Publication,
        opts: &PublishOptions,
    ) -> PublishResult {
        if !opts.history_enabled() && opts.idempotency_key.is_none() {
            // Nothing to record: no offset, no key. Leave the table alone.
            publication.offset = 0;
            return PublishResult {
                publication,
                position: StreamPosition::default(),
                duplicate: false,
            };
        }
        let now = Instant::now();
        let config = &self.inner.config;
        let mut shard = self.inner.channels.lock(channel);
        let state = shard.entry(channel.clone()).or_default();
        state.prune_keys(now);
        if let Some(key) = &opts.idempotency_key {
            if let Some(seen) = state.keys.get(key) {
                // The first publish answers; the payload is the caller's own
                // (the same, by the meaning of an idempotency key).
                publication.offset = seen.offset;
                return PublishResult {
                    publication,
                    position: seen.position.clone(),
                    duplicate: true,
                };
            }
        }
        let position = if opts.history_enabled() {
            let meta_ttl = opts.history_meta_ttl.unwrap_or(config.history_meta_ttl);
            let stream = state.stream(now, meta_ttl);
            stream.meta_ttl = meta_ttl;
            stream.touch(now);
            stream.top += 1;
            publication.offset = stream.top;
            stream.kept.push_back(Kept {
                expires: after(now, opts.history_ttl),
                publication: publication.clone(),
            });
            while stream.kept.len() > opts.history_size {
                stream.kept.pop_front();
            }
            stream.position()
        } else {
            publication.offset = 0;
            StreamPosition::default()
        };
        if let Some(key) = &opts.idempotency_key {
            let expires = after(now, config.idempotency_ttl);
            state.keys.insert(
                key.clone(),
                Remembered {
                    expires,
                    offset: publication.offset,
                    position: position.clone(),
                },
            );
            state.key_order.push_back((expires, key.clone()));
        }
        PublishResult {
            publication,
            position,
            duplicate: false,
        }
    }

    fn history_now(&self, channel: &ChannelName, filter: &HistoryFilter) -> HistoryResult {
        let now = Instant::now();
        let mut shard = self.inner.channels.lock(channel);
        let state = shard.entry(channel.clone()).or_default();
        let meta_ttl = state
            .stream
            .as_ref()
            .map_or(self.inner.config.history_meta_ttl, |s| s.meta_ttl);
        let stream = state.stream(now, meta_ttl);
        stream.touch(now);
        let position = stream.position();
        let limit = filter.limit.unwrap_or(usize::MAX);
        let kept = &stream.kept;
        let publications: Vec<Publication> = match (&filter.since, filter.reverse) {
            (since, false) => {
                let start = since.as_ref().map_or(0, |s| {
                    kept.partition_point(|k| k.publication.offset <= s.offset)
                });
                kept.range(start..)
                    .take(limit)
                    .map(|k| k.publication.clone())
                    .collect()
            }
            (since, true) => {
                let end = since.as_ref().map_or(kept.len(), |s| {
                    kept.partition_point(|k| k.publication.offset < s.offset)
                });
                kept.range(..end)
                    .rev()
                    .take(limit)
                    .map(|k| k.publication.clone())
                    .collect()
            }
        };
        HistoryResult {
            publications,
            position,
        }
    }
}

impl Store for MemoryStore {
    fn publish(
        &self,
        channel: &ChannelName,
        publication: Publication,
        opts: &PublishOptions,
    ) -> BoxFuture<'static, Result<PublishResult>> {
        ready(Ok(self.publish_now(channel, publication, opts)))
    }

    fn history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> BoxFuture<'static, Result<HistoryResult>> {
        ready(Ok(self.history_now(channel, &filter)))
    }

    fn remove_history(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        if let Some(state) = self.inner.channels.lock(channel).get_mut(channel) {
            if let Some(stream) = &mut state.stream {
                stream.kept.clear();
            }
        }
        ready(Ok(()))
    }

    fn position(&self, channel: &ChannelName) -> BoxFuture<'static, Result<StreamPosition>> {
        let filter = HistoryFilter::position_only();
        ready(Ok(self.history_now(channel, &filter).position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::new(name).unwrap()
    }

    fn opts(size: usize, ttl_secs: u64) -> PublishOptions {
        PublishOptions::with_history(size, Duration::from_secs(ttl_secs))
    }

    async fn offsets(
        store: &MemoryStore,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> Vec<u64> {
        let r = store.history(channel, filter).await.unwrap();
        r.publications.iter().map(|p| p.offset).collect()
    }

    #[tokio::test]
    async fn offsets_increase_per_channel_with_one_epoch() {
        let store = MemoryStore::new();
        let (a, b) = (ch("a"), ch("b"));
        let mut epochs = Vec::new();
        for i in 1..=5u64 {
            let r = store
                .publish(&a, Publication::new("x"), &opts(10, 60))
                .await
                .unwrap();
            assert_eq!(r.publication.offset, i);
            assert_eq!(r.position.offset, i);
            assert!(!r.duplicate);
            epochs.push(r.position.epoch);
        }
        epochs.dedup();
        assert_eq!(epochs.len(), 1);
        let rb = store
            .publish(&b, Publication::new("y"), &opts(10, 60))
            .await
            .unwrap();
        assert_eq!(rb.position.offset, 1, "offsets are per channel");
        assert_ne!(rb.position.epoch, epochs[0], "epochs are per channel");
    }

    #[tokio::test]
    async fn no_history_means_no_offset() {
        let store = MemoryStore::new();
        let r = store
            .publish(&ch("a"), Publication::new("x"), &opts(0, 60))
            .await
            .unwrap();
        assert_eq!(r.publication.offset, 0);
        assert!(r.position.is_zero());
        let r = store
            .publish(&ch("a"), Publication::new("x"), &opts(10, 0))
            .await
            .unwrap();
        assert!(r.position.is_zero());
        assert_eq!(store.num_channels(), 0, "nothing recorded");
    }

    #[tokio::test]
    async fn trims_to_size() {
        let store = MemoryStore::new();
        let c = ch("c");
        for _ in 0..10 {
            store
                .publish(&c, Publication::new("x"), &opts(3, 60))
                .await
                .unwrap();
        }
        assert_eq!(
            offsets(&store, &c, HistoryFilter::default()).await,
            [8, 9, 10]
        );
    }

    #[tokio::test]
    async fn filters() {
        let store = MemoryStore::new();
        let c = ch("c");
        for _ in 0..6 {
            store
                .publish(&c, Publication::new("x"), &opts(10, 60))
                .await
                .unwrap();
        }
        let since = |offset| Some(StreamPosition::new(offset, "ignored-here"));
        let f = |since: Option<StreamPosition>, limit, reverse| HistoryFilter {
            since,
            limit,
            reverse,
        };
        assert_eq!(
            offsets(&store, &c, f(None, None, false)).await,
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(offsets(&store, &c, f(None, Some(2), false)).await, [1, 2]);
        assert_eq!(
            offsets(&store, &c, f(None, Some(0), false)).await,
            [] as [u64; 0]
        );
        assert_eq!(
            offsets(&store, &c, f(None, None, true)).await,
            [6, 5, 4, 3, 2, 1]
        );
        assert_eq!(offsets(&store, &c, f(None, Some(2), true)).await, [6, 5]);
        assert_eq!(
            offsets(&store, &c, f(since(3), None, false)).await,
            [4, 5, 6]
        );
        assert_eq!(offsets(&store, &c, f(since(3), Some(1), false)).await, [4]);
        assert_eq!(
            offsets(&store, &c, f(since(6), None, false)).await,
            [] as [u64; 0]
        );
        assert_eq!(
            offsets(&store, &c, f(since(0), None, false)).await,
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            offsets(&store, &c, f(since(4), None, true)).await,
            [3, 2, 1]
        );
        assert_eq!(
            offsets(&store, &c, f(since(4), Some(2), true)).await,
            [3, 2]
        );
        assert_eq!(
            offsets(&store, &c, f(since(99), None, true)).await,
            [6, 5, 4, 3, 2, 1]
        );
        let r = store.history(&c, HistoryFilter::default()).await.unwrap();
        assert_eq!(r.position.offset, 6);
        assert_eq!(&r.publications[0].data[..], b"x");
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expiry_is_lazy_and_keeps_the_epoch() {
        let store = MemoryStore::new();
        let c = ch("c");
        let first = store
            .publish(&c, Publication::new("1"), &opts(10, 10))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        store
            .publish(&c, Publication::new("2"), &opts(10, 10))
            .await
            .unwrap();
        assert_eq!(offsets(&store, &c, HistoryFilter::default()).await, [1, 2]);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(offsets(&store, &c, HistoryFilter::default()).await, [2]);
        tokio::time::advance(Duration::from_secs(5)).await;
        let r = store.history(&c, HistoryFilter::default()).await.unwrap();
        assert!(r.publications.is_empty());
        assert_eq!(
            r.position,
            StreamPosition::new(2, first.position.epoch.clone())
        );
        let third = store
            .publish(&c, Publication::new("3"), &opts(10, 10))
            .await
            .unwrap();
        assert_eq!(third.position, StreamPosition::new(3, first.position.epoch));
    }

    #[tokio::test(start_paused = true)]
    async fn meta_expiry_starts_a_new_epoch() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            history_meta_ttl: Duration::from_secs(100),
            ..Default::default()
        });
        let c = ch("c");
        let first = store
            .publish(&c, Publication::new("1"), &opts(10, 10))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        // A read keeps the stream alive.
        assert_eq!(store.position(&c).await.unwrap(), first.position);
        tokio::time::advance(Duration::from_secs(99)).await;
        assert_eq!(store.position(&c).await.unwrap(), first.position);
        tokio::time::advance(Duration::from_secs(101)).await;
        let again = store
            .publish(&c, Publication::new("2"), &opts(10, 10))
            .await
            .unwrap();
        assert_eq!(again.position.offset, 1);
        assert_ne!(again.position.epoch, first.position.epoch);
    }

    #[tokio::test]
    async fn position_creates_the_stream_and_keeps_its_epoch() {
        let store = MemoryStore::new();
        let c = ch("c");
        let pos = store.position(&c).await.unwrap();
        assert_eq!(pos.offset, 0);
        assert_eq!(pos.epoch.len(), 8);
        let r = store
            .publish(&c, Publication::new("1"), &opts(10, 10))
            .await
            .unwrap();
        assert_eq!(r.position, StreamPosition::new(1, pos.epoch));
    }

    #[tokio::test]
    async fn a_new_store_has_new_epochs() {
        let c = ch("c");
        let a = MemoryStore::new()
            .publish(&c, Publication::new("1"), &opts(1, 1))
            .await
            .unwrap();
        let b = MemoryStore::new()
            .publish(&c, Publication::new("1"), &opts(1, 1))
            .await
            .unwrap();
        assert_eq!(a.position.offset, b.position.offset);
        assert_ne!(a.position.epoch, b.position.epoch);
    }

    #[tokio::test]
    async fn remove_history_keeps_offset_and_epoch() {
        let store = MemoryStore::new();
        let c = ch("c");
        let first = store
            .publish(&c, Publication::new("1"), &opts(10, 60))
            .await
            .unwrap();
        store
            .publish(&c, Publication::new("2"), &opts(10, 60))
            .await
            .unwrap();
        store.remove_history(&c).await.unwrap();
        let r = store.history(&c, HistoryFilter::default()).await.unwrap();
        assert!(r.publications.is_empty());
        assert_eq!(
            r.position,
            StreamPosition::new(2, first.position.epoch.clone())
        );
        let third = store
            .publish(&c, Publication::new("3"), &opts(10, 60))
            .await
            .unwrap();
        assert_eq!(third.position, StreamPosition::new(3, first.position.epoch));
        store.remove_history(&ch("never-used")).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idempotency_window() {
        let store = MemoryStore::new();
        let c = ch("c");
        let keyed = |key: &str| PublishOptions {
            idempotency_key: Some(key.into()),
            ..opts(10, 600)
        };
        let first = store
            .publish(&c, Publication::new("1"), &keyed("k"))
            .await
            .unwrap();
        assert!(!first.duplicate);
        tokio::time::advance(Duration::from_secs(299)).await;
        let again = store
            .publish(&c, Publication::new("1"), &keyed("k"))
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.position, first.position);
        assert_eq!(again.publication.offset, 1);
        assert_eq!(offsets(&store, &c, HistoryFilter::default()).await, [1]);
        // Keys are per channel.
        let other = store
            .publish(&ch("d"), Publication::new("1"), &keyed("k"))
            .await
            .unwrap();
        assert!(!other.duplicate);
        // After the window the key publishes again.
        tokio::time::advance(Duration::from_secs(2)).await;
        let later = store
            .publish(&c, Publication::new("1"), &keyed("k"))
            .await
            .unwrap();
        assert!(!later.duplicate);
        assert_eq!(later.position.offset, 2);
        // And is remembered anew.
        let dup = store
            .publish(&c, Publication::new("1"), &keyed("k"))
            .await
            .unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.position.offset, 2);
    }

    #[tokio::test]
    async fn idempotency_without_history() {
        let store = MemoryStore::new();
        let c = ch("c");
        let keyed = PublishOptions {
            idempotency_key: Some("k".into()),
            ..Default::default()
        };
        let first = store
            .publish(&c, Publication::new("1"), &keyed)
            .await
            .unwrap();
        let again = store
            .publish(&c, Publication::new("1"), &keyed)
            .await
            .unwrap();
        assert!(!first.duplicate && again.duplicate);
        assert!(again.position.is_zero());
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_frees_idle_channels() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            history_meta_ttl: Duration::from_secs(100),
            idempotency_ttl: Duration::from_secs(10),
            ..Default::default()
        });
        let keyed = PublishOptions {
            idempotency_key: Some("k".into()),
            ..Default::default()
        };
        store
            .publish(&ch("a"), Publication::new("1"), &opts(10, 10))
            .await
            .unwrap();
        store
            .publish(&ch("b"), Publication::new("1"), &keyed)
            .await
            .unwrap();
        assert_eq!(store.num_channels(), 2);
        tokio::time::advance(Duration::from_secs(11)).await;
        store.cleanup();
        assert_eq!(store.num_channels(), 1, "b had only an expired key");
        tokio::time::advance(Duration::from_secs(90)).await;
        store.cleanup();
        assert_eq!(store.num_channels(), 0, "a's stream expired");
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_cleanup_runs_and_stops_with_the_store() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            history_meta_ttl: Duration::from_secs(5),
            ..Default::default()
        });
        let task = store.spawn_cleanup(Duration::from_secs(1));
        store
            .publish(&ch("a"), Publication::new("1"), &opts(1, 1))
            .await
            .unwrap();
        assert_eq!(store.num_channels(), 1);
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(store.num_channels(), 0);
        drop(store);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(task.is_finished());
    }

    #[tokio::test]
    async fn huge_ttls_do_not_overflow() {
        let store = MemoryStore::new();
        let o = PublishOptions {
            history_meta_ttl: Some(Duration::MAX),
            ..PublishOptions::with_history(1, Duration::MAX)
        };
        let r = store
            .publish(&ch("c"), Publication::new("1"), &o)
            .await
            .unwrap();
        assert_eq!(r.position.offset, 1);
    }
}
