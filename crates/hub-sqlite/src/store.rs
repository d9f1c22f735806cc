//! [`SqliteStore`]: the [`Store`] trait on a SQLite file, and the state its
//! handles share with the writer thread.
//!
//! A call does its ordering work synchronously, under the channel's cache
//! shard lock: it loads the channel from the database if it is not cached,
//! assigns the offset (or finds the idempotency key), and queues a command
//! for the writer, numbered in queue order. The future it returns only waits
//! for the writer's answer, so dropping it cancels nothing. History reads
//! wait until the writer has processed the channel's last queued command and
//! then go to a reader thread. The SQL itself lives in [`crate::writer`],
//! [`crate::reader`] and [`crate::schema`].

use std::collections::hash_map::Entry as MapEntry;
use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hub::{
    ready, BoxFuture, ChannelName, HistoryFilter, HistoryResult, Publication, PublishOptions,
    PublishResult, Store, StreamPosition,
};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{oneshot, watch};

use crate::cache::{lock, Cache, Entry, Remembered, Shard, Stream};
use crate::config::{after, ms_duration, SqliteStoreConfig};
use crate::error::{OpenError, StoreError};
use crate::reader::{self, ReadJob};
use crate::schema::{self, from_offset, to_offset, PubRow};
use crate::writer::{
    push_failed, CleanupStats, Command, HistoryPart, KeyPart, PublishCmd, Queued, Writer,
};

/// How many mutexes the channel cache is split over.
const CACHE_SHARDS: usize = 64;

/// The state store handles share with the writer thread.
pub(crate) struct Shared {
    pub(crate) config: SqliteStoreConfig,
    pub(crate) cache: Cache,
    queue: Mutex<Queue>,
    /// The highest command number the writer has processed (committed or
    /// failed).
    processed: watch::Receiver<u64>,
    /// Command numbers whose writes failed (recent ones only).
    failed: Mutex<VecDeque<(u64, u64)>>,
}

struct Queue {
    /// The number the next command gets (from 1; 0 means "none").
    next_seq: u64,
    /// `None` once the last store handle is gone.
    tx: Option<Sender<Queued>>,
}

impl Shared {
    /// Numbers `cmd` and queues it for the writer.
    pub(crate) fn enqueue(&self, cmd: Command) -> Result<u64, StoreError> {
        let mut queue = lock(&self.queue);
        let seq = queue.next_seq;
        let tx = queue.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(Queued { seq, cmd })
            .map_err(|_| StoreError::Closed)?;
        queue.next_seq += 1;
        Ok(seq)
    }

    /// The number the next command will get.
    pub(crate) fn next_seq(&self) -> u64 {
        lock(&self.queue).next_seq
    }

    pub(crate) fn record_failed(&self, first: u64, last: u64) {
        push_failed(&mut lock(&self.failed), first, last);
    }

    fn failed(&self, seq: u64) -> bool {
        lock(&self.failed)
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&seq))
    }

    fn processed(&self) -> u64 {
        *self.processed.borrow()
    }

    /// Waits until the writer has processed command `seq`.
    async fn wait_processed(&self, seq: u64) -> Result<(), StoreError> {
        if self.processed() >= seq {
            return Ok(());
        }
        let mut rx = self.processed.clone();
        rx.wait_for(|p| *p >= seq)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Closed)
    }
}

/// A [`Store`] kept in a SQLite file: streams, epochs, offsets, history
/// and idempotency keys survive a restart. Cheap to clone; clones share the
/// database, the cache and the threads.
///
/// Publishing is fast because it does not wait for SQLite to assign
/// anything: offsets come from an in-memory cache of each channel's stream
/// (loaded from the file on first use), and one writer thread commits the
/// queued writes in batches, one transaction per batch. A publish's future
/// completes once its batch is committed. History reads see every publish
/// accepted before them.
///
/// One process should open a file once: two stores on one file would each
/// believe their own offsets.
///
/// ```
/// # use std::time::Duration;
/// use hub::{ChannelName, Publication, PublishOptions, Store};
/// use hub_sqlite::{SqliteStore, SqliteStoreConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("data/history.db");
/// let ch = ChannelName::new("news").unwrap();
/// let opts = PublishOptions::with_history(10, Duration::from_secs(60));
///
/// let store = SqliteStore::open(&path, SqliteStoreConfig::default()).unwrap();
/// let first = store.publish(&ch, Publication::new("1"), &opts).await.unwrap();
/// drop(store); // waits for the writer to finish
///
/// // After a restart the stream continues: same epoch, next offset.
/// let store = SqliteStore::open(&path, SqliteStoreConfig::default()).unwrap();
/// let second = store.publish(&ch, Publication::new("2"), &opts).await.unwrap();
/// assert_eq!(second.position.offset, 2);
/// assert_eq!(second.position.epoch, first.position.epoch);
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    reads: Sender<ReadJob>,
    /// For loading a channel on first use, from the calling thread.
    lookup: Mutex<Connection>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl Drop for Inner {
    /// Closes the queue and waits for the writer to commit what it holds.
    fn drop(&mut self) {
        lock(&self.shared.queue).tx = None;
        if let Some(writer) = lock(&self.writer).take() {
            if writer.join().is_err() {
                tracing::error!("sqlite store: the writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("cached_channels", &self.cached_channels())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if missing) the database at
    /// `path` and starts the writer and reader threads.
    ///
    /// Fails on an unusable configuration, a file that cannot be opened, is
    /// not a database, cannot use WAL mode, or has a newer schema.
    pub fn open(path: impl AsRef<Path>, config: SqliteStoreConfig) -> Result<Self, OpenError> {
        if let Some(problem) = config.invalid() {
            return Err(OpenError::InvalidConfig(problem));
        }
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Published data is private: folders we create are the owner's
            // only (an existing folder keeps its mode).
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir).map_err(|source| OpenError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let writer_conn = schema::open_writer(&path, &config)?;
        let lookup = schema::open_reader(&path, &config)?;
        let readers = (0..config.readers)
            .map(|_| schema::open_reader(&path, &config))
            .collect::<Result<Vec<_>, _>>()?;
        let reads = reader::spawn(readers, config.clock.clone())?;
        let (tx, rx) = mpsc::channel();
        let (processed_tx, processed) = watch::channel(0);
        let shared = Arc::new(Shared {
            config,
            cache: Cache::new(CACHE_SHARDS),
            queue: Mutex::new(Queue {
                next_seq: 1,
                tx: Some(tx),
            }),
            processed,
            failed: Mutex::new(VecDeque::new()),
        });
        let writer = Writer::new(writer_conn, shared.clone(), rx, processed_tx);
        let writer = std::thread::Builder::new()
            .name("hub-sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| OpenError::Thread {
                what: "writer",
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                reads,
                lookup: Mutex::new(lookup),
                writer: Mutex::new(Some(writer)),
                path,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &SqliteStoreConfig {
        &self.inner.shared.config
    }

    /// How many channels the in-memory cache holds.
    pub fn cached_channels(&self) -> usize {
        self.inner.shared.cache.len()
    }

    /// Commits what is queued, then deletes expired publications, streams
    /// and idempotency keys and drops idle channels from the cache. The
    /// writer also does this every
    /// [`cleanup_interval`](SqliteStoreConfig::cleanup_interval).
    pub fn cleanup(&self) -> BoxFuture<'static, hub::Result<CleanupStats>> {
        let (done, answer) = oneshot::channel();
        if let Err(err) = self.inner.shared.enqueue(Command::Cleanup { done }) {
            return ready(Err(err.into()));
        }
        Box::pin(async move { Ok(answer.await.map_err(|_| StoreError::Closed)??) })
    }

    /// The cached entry of `channel`, loaded from the database if missing.
    fn entry<'a>(
        &self,
        shard: &'a mut Shard,
        channel: &ChannelName,
        now: i64,
    ) -> Result<&'a mut Entry, StoreError> {
        Ok(match shard.entry(channel.clone()) {
            MapEntry::Occupied(found) => found.into_mut(),
            MapEntry::Vacant(missing) => missing.insert(self.load(channel, now)?),
        })
    }

    /// Reads `channel`'s stream and live idempotency keys. Runs under the
    /// channel's shard lock, so no command for it can be queued meanwhile;
    /// commands queued earlier for a channel not in the cache cannot change
    /// what is read here (see the writer's eviction rule).
    fn load(&self, channel: &ChannelName, now: i64) -> Result<Entry, StoreError> {
        let shared = &self.inner.shared;
        // Reads of this channel wait for anything queued before it appeared.
        let mut entry = Entry::new(now, shared.next_seq().saturating_sub(1));
        let conn = lock(&self.inner.lookup);
        let stream: Option<(String, i64, i64, i64)> = conn
            .prepare_cached(
                "SELECT epoch, top, meta_expires, meta_ttl FROM streams WHERE channel = ?1",
            )?
            .query_row([channel.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        if let Some((epoch, top, expires, meta_ttl)) = stream {
            entry.stream = Some(Stream {
                epoch,
                top: to_offset(top)?,
                expires,
                meta_ttl: ms_duration(meta_ttl),
                persisted_expires: expires,
            });
        }
        let mut stmt = conn.prepare_cached(
            "SELECT key, expires, stream_offset, epoch FROM idempotency
             WHERE channel = ?1 AND expires > ?2 ORDER BY expires",
        )?;
        let mut rows = stmt.query(params![channel.as_str(), now])?;
        while let Some(row) = rows.next()? {
            let offset = to_offset(row.get(2)?)?;
            let epoch: String = row.get(3)?;
            let remembered = Remembered {
                expires: row.get(1)?,
                offset,
                position: StreamPosition::new(offset, epoch),
                seq: 0,
            };
            entry.remember(row.get(0)?, remembered);
        }
        Ok(entry)
    }

    fn start_publish(
        &self,
        channel: &ChannelName,
        mut publication: Publication,
        opts: &PublishOptions,
    ) -> Result<BoxFuture<'static, hub::Result<PublishResult>>, StoreError> {
        let history = opts.history_enabled();
        if !history && opts.idempotency_key.is_none() {
            // Nothing to record: no offset, no key.
            publication.offset = 0;
            return Ok(ready(Ok(PublishResult {
                publication,
                position: StreamPosition::default(),
                duplicate: false,
            })));
        }
        let shared = &self.inner.shared;
        let config = &shared.config;
        // Encode before locking: a failure here changes nothing.
        let row = if history {
            Some(PubRow::encode(&publication)?)
        } else {
            None
        };
        let now = config.clock.now_ms();
        let mut shard = shared.cache.lock(channel);
        let entry = self.entry(&mut shard, channel, now)?;
        entry.last_used = now;
        entry.prune_keys(now);
        if let Some(key) = &opts.idempotency_key {
            if let Some(seen) = entry.keys.get(key) {
                // The first publish answers; the payload is the caller's own
                // (the same, by the meaning of an idempotency key).
                publication.offset = seen.offset;
                let result = PublishResult {
                    publication,
                    position: seen.position.clone(),
                    duplicate: true,
                };
                let seq = seen.seq;
                drop(shard);
                return Ok(self.answer_duplicate(seq, result));
            }
        }
        let (position, history_part) = match row {
            Some(mut row) => {
                let meta_ttl = opts.history_meta_ttl.unwrap_or(config.history_meta_ttl);
                let stream = live_stream(shared, channel, entry, now, meta_ttl)?;
                let offset = stream.top + 1;
                row.offset = from_offset(offset)?;
                row.expires = after(now, opts.history_ttl);
                stream.top = offset;
                stream.meta_ttl = meta_ttl;
                stream.expires = after(now, meta_ttl);
                stream.persisted_expires = stream.expires;
                publication.offset = offset;
                let size = u64::try_from(opts.history_size).unwrap_or(u64::MAX);
                let part = HistoryPart {
                    epoch: stream.epoch.clone(),
                    meta_expires: stream.expires,
                    meta_ttl,
                    keep_from: offset.saturating_add(1).saturating_sub(size),
                    row,
                };
                (stream.position(), Some(part))
            }
            None => {
                publication.offset = 0;
                (StreamPosition::default(), None)
            }
        };
        let key = match &opts.idempotency_key {
            Some(key) => Some(KeyPart {
                key: key.clone(),
                expires: after(now, config.idempotency_ttl),
                offset: from_offset(publication.offset)?,
                epoch: position.epoch.clone(),
            }),
            None => None,
        };
        let key_expires = key.as_ref().map(|k| k.expires);
        let (done, answer) = oneshot::channel();
        let seq = shared.enqueue(Command::Publish(Box::new(PublishCmd {
            channel: channel.clone(),
            history: history_part,
            key,
            done,
        })))?;
        entry.last_seq = seq;
        if let (Some(key), Some(expires)) = (&opts.idempotency_key, key_expires) {
            entry.remember(
                key.clone(),
                Remembered {
                    expires,
                    offset: publication.offset,
                    position: position.clone(),
                    seq,
                },
            );
        }
        drop(shard);
        let result = PublishResult {
            publication,
            position,
            duplicate: false,
        };
        Ok(Box::pin(async move {
            match answer.await {
                Ok(Ok(())) => Ok(result),
                Ok(Err(err)) => Err(err.into()),
                Err(_) => Err(StoreError::Closed.into()),
            }
        }))
    }

    /// Answers a repeated idempotency key once the first publish with it is
    /// committed (or fails if that publish failed).
    fn answer_duplicate(
        &self,
        seq: u64,
        result: PublishResult,
    ) -> BoxFuture<'static, hub::Result<PublishResult>> {
        let shared = self.inner.shared.clone();
        if shared.processed() >= seq && !shared.failed(seq) {
            return ready(Ok(result));
        }
        Box::pin(async move {
            shared.wait_processed(seq).await?;
            if shared.failed(seq) {
                return Err(StoreError::FirstPublishFailed.into());
            }
            Ok(result)
        })
    }

    fn start_history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> Result<BoxFuture<'static, hub::Result<HistoryResult>>, StoreError> {
        let shared = &self.inner.shared;
        let now = shared.config.clock.now_ms();
        let mut shard = shared.cache.lock(channel);
        let entry = self.entry(&mut shard, channel, now)?;
        entry.last_used = now;
        let meta_ttl = entry
            .stream
            .as_ref()
            .map_or(shared.config.history_meta_ttl, |s| s.meta_ttl);
        let stream = live_stream(shared, channel, entry, now, meta_ttl)?;
        let touch = stream
            .touch(now)
            .map(|expires| (stream.epoch.clone(), expires));
        let position = stream.position();
        if let Some((epoch, expires)) = touch {
            // Not a reason for reads to wait: not recorded in last_seq.
            shared.enqueue(Command::Touch {
                channel: channel.clone(),
                epoch,
                expires,
            })?;
        }
        let wait = entry.last_seq;
        drop(shard);
        if filter.limit == Some(0) {
            // The cache is the truth for the position: no database needed.
            return Ok(ready(Ok(HistoryResult {
                publications: Vec::new(),
                position,
            })));
        }
        let shared = shared.clone();
        let reads = self.inner.reads.clone();
        let channel = channel.clone();
        Ok(Box::pin(async move {
            shared.wait_processed(wait).await?;
            let (reply, answer) = oneshot::channel();
            reads
                .send(ReadJob {
                    channel,
                    filter,
                    position,
                    reply,
                })
                .map_err(|_| StoreError::Closed)?;
            Ok(answer.await.map_err(|_| StoreError::Closed)??)
        }))
    }

    fn start_remove_history(
        &self,
        channel: &ChannelName,
    ) -> Result<BoxFuture<'static, hub::Result<()>>, StoreError> {
        let shared = &self.inner.shared;
        let (done, answer) = oneshot::channel();
        let mut shard = shared.cache.lock(channel);
        let seq = shared.enqueue(Command::RemoveHistory {
            channel: channel.clone(),
            done,
        })?;
        if let Some(entry) = shard.get_mut(channel.as_str()) {
            entry.last_seq = seq;
        }
        drop(shard);
        Ok(wait_done(answer))
    }
}

/// The channel's live stream, creating one (new epoch, offset 0) if it has
/// none or it expired, and queueing its creation.
fn live_stream<'e>(
    shared: &Shared,
    channel: &ChannelName,
    entry: &'e mut Entry,
    now: i64,
    meta_ttl: Duration,
) -> Result<&'e mut Stream, StoreError> {
    let stream = match entry.stream.take() {
        Some(stream) if stream.alive(now) => stream,
        _ => {
            let stream = Stream::new(now, meta_ttl);
            entry.last_seq = shared.enqueue(Command::Reset {
                channel: channel.clone(),
                epoch: stream.epoch.clone(),
                expires: stream.expires,
                meta_ttl,
            })?;
            stream
        }
    };
    Ok(entry.stream.insert(stream))
}

fn wait_done(
    answer: oneshot::Receiver<Result<(), StoreError>>,
) -> BoxFuture<'static, hub::Result<()>> {
    Box::pin(async move { Ok(answer.await.map_err(|_| StoreError::Closed)??) })
}

impl Store for SqliteStore {
    fn publish(
        &self,
        channel: &ChannelName,
        publication: Publication,
        opts: &PublishOptions,
    ) -> BoxFuture<'static, hub::Result<PublishResult>> {
        self.start_publish(channel, publication, opts)
            .unwrap_or_else(|err| ready(Err(err.into())))
    }

    fn history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> BoxFuture<'static, hub::Result<HistoryResult>> {
        self.start_history(channel, filter)
            .unwrap_or_else(|err| ready(Err(err.into())))
    }

    fn remove_history(&self, channel: &ChannelName) -> BoxFuture<'static, hub::Result<()>> {
        self.start_remove_history(channel)
            .unwrap_or_else(|err| ready(Err(err.into())))
    }

    fn flush(&self) -> BoxFuture<'static, hub::Result<()>> {
        let (done, answer) = oneshot::channel();
        match self.inner.shared.enqueue(Command::Flush { done }) {
            Ok(_) => wait_done(answer),
            Err(err) => ready(Err(err.into())),
        }
    }
}
