//! The writer thread: the only connection that writes. It takes commands
//! from a queue in the order they were accepted, commits them in batches
//! (one transaction per batch), completes each command's answer, and runs
//! the periodic cleanup.
//!
//! Offsets, epochs and idempotency answers are decided before a command is
//! queued (see [`crate::cache`]); the writer only makes them durable. Per
//! batch it inserts each publication, then writes each touched channel's
//! stream row once and trims its history once. If a batch fails, it is
//! rolled back, every command in it fails, and each channel it published to
//! gets a new epoch (its stream is lost, as after a restart of the memory
//! store): the offsets handed out for the failed publications never existed,
//! and commands already queued for the old stream are refused, so retained
//! history stays contiguous.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub::ChannelName;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use crate::cache::{lock, Entry, Stream};
use crate::config::duration_ms;
use crate::error::StoreError;
use crate::schema::{insert_publication, PubRow};
use crate::store::Shared;

/// How a command's outcome is reported.
pub(crate) type Done = oneshot::Sender<Result<(), StoreError>>;

/// A command with its place in the queue.
pub(crate) struct Queued {
    pub(crate) seq: u64,
    pub(crate) cmd: Command,
}

/// What the writer is asked to do.
pub(crate) enum Command {
    /// Store a publication and/or an idempotency key.
    Publish(Box<PublishCmd>),
    /// A new stream replaced the channel's old one (or it had none): drop
    /// the old publications, write the new epoch with offset 0.
    Reset {
        channel: ChannelName,
        epoch: String,
        expires: i64,
        meta_ttl: Duration,
    },
    /// Extend a stream's meta expiry (after reads).
    Touch {
        channel: ChannelName,
        epoch: String,
        expires: i64,
    },
    /// Drop a channel's publications (offset and epoch stay).
    RemoveHistory { channel: ChannelName, done: Done },
    /// Answer once everything queued before is committed.
    Flush { done: Done },
    /// Commit what is queued, then run the cleanup.
    Cleanup {
        done: oneshot::Sender<Result<CleanupStats, StoreError>>,
    },
}

/// A publish, as decided at call time.
pub(crate) struct PublishCmd {
    pub(crate) channel: ChannelName,
    pub(crate) history: Option<HistoryPart>,
    pub(crate) key: Option<KeyPart>,
    pub(crate) done: Done,
}

/// The part of a publish that goes into history.
pub(crate) struct HistoryPart {
    pub(crate) epoch: String,
    pub(crate) meta_expires: i64,
    pub(crate) meta_ttl: Duration,
    /// Offsets below this fall out of history by size.
    pub(crate) keep_from: u64,
    pub(crate) row: PubRow,
}

/// An idempotency key and the answer it keeps.
pub(crate) struct KeyPart {
    pub(crate) key: String,
    pub(crate) expires: i64,
    pub(crate) offset: i64,
    pub(crate) epoch: String,
}

/// What a cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Expired idempotency keys deleted.
    pub keys: usize,
    /// Streams whose meta data expired, deleted with their publications.
    pub streams: usize,
    /// Publications deleted because their history TTL passed.
    pub publications: usize,
    /// Idle channels dropped from the in-memory cache.
    pub evicted: usize,
}

impl Command {
    /// The channel the command changes, if one.
    fn channel(&self) -> Option<&ChannelName> {
        match self {
            Command::Publish(p) => Some(&p.channel),
            Command::Reset { channel, .. }
            | Command::Touch { channel, .. }
            | Command::RemoveHistory { channel, .. } => Some(channel),
            Command::Flush { .. } | Command::Cleanup { .. } => None,
        }
    }

    /// Whether the batch should be committed right after this command.
    fn ends_batch(&self) -> bool {
        matches!(self, Command::Flush { .. } | Command::Cleanup { .. })
    }
}

/// A stream row to write at the end of a batch.
struct StreamRow<'a> {
    epoch: &'a str,
    top: i64,
    meta_expires: i64,
    meta_ttl: i64,
}

/// A stream reset still to be written (after a failed batch).
#[derive(Clone)]
struct ResetRow {
    epoch: String,
    expires: i64,
    meta_ttl: i64,
}

/// What a batch does to one channel, applied once at its end.
#[derive(Default)]
struct Touched<'a> {
    stream: Option<StreamRow<'a>>,
    keep_from: u64,
    trim_expired: bool,
}

/// How many failed command ranges are remembered for duplicate answers.
const FAILED_RANGES: usize = 4096;

/// How many expired streams or channels one cleanup pass handles.
const CLEANUP_CHUNK: i64 = 10_000;

pub(crate) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    rx: Receiver<Queued>,
    processed_tx: watch::Sender<u64>,
    processed: u64,
    /// Streams reset after a failed batch, not yet written.
    pending_resets: HashMap<ChannelName, ResetRow>,
    /// Channels whose stream was reset after a failed batch: their commands
    /// queued before the reset (seq below the value) are refused.
    lost: HashMap<ChannelName, u64>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        rx: Receiver<Queued>,
        processed_tx: watch::Sender<u64>,
    ) -> Self {
        Self {
            conn,
            shared,
            rx,
            processed_tx,
            processed: 0,
            pending_resets: HashMap::new(),
            lost: HashMap::new(),
        }
    }

    /// Runs until every store handle is gone and the queue is drained.
    pub(crate) fn run(mut self) {
        let interval = self.shared.config.cleanup_interval;
        let mut next_cleanup = (!interval.is_zero()).then(|| Instant::now() + interval);
        loop {
            let first = match next_cleanup {
                None => match self.rx.recv() {
                    Ok(q) => q,
                    Err(_) => break,
                },
                Some(at) => match self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                {
                    Ok(q) => q,
                    Err(RecvTimeoutError::Timeout) => {
                        self.cleanup_logged();
                        next_cleanup = Some(Instant::now() + interval);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let mut batch = vec![first];
            let closed = self.collect(&mut batch);
            let cleanups = self.process(batch);
            for done in cleanups {
                let _ = done.send(self.cleanup());
            }
            if closed {
                break;
            }
            if next_cleanup.is_some_and(|at| Instant::now() >= at) {
                self.cleanup_logged();
                next_cleanup = Some(Instant::now() + interval);
            }
        }
        // Leave a small WAL behind; failures here change nothing stored.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    /// Adds queued commands to `batch` until it is full, a command asks for
    /// a commit, or the queue stays empty for `batch_max_delay`. Returns
    /// true when every sender is gone.
    fn collect(&self, batch: &mut Vec<Queued>) -> bool {
        let max = self.shared.config.batch_max_size.max(1);
        let deadline = Instant::now() + self.shared.config.batch_max_delay;
        while batch.len() < max {
            if batch.last().is_some_and(|q| q.cmd.ends_batch()) {
                break;
            }
            match self.rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(q) => batch.push(q),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return true,
                    }
                }
            }
        }
        false
    }

    /// Commits `batch`, answers its commands, and returns the cleanup
    /// requests in it (answered by the caller after the cleanup ran).
    ///
    /// Every change of shared state (failed ranges, reset streams, the
    /// processed mark) is made before any command is answered, so a caller
    /// acting on an answer sees its consequences.
    fn process(
        &mut self,
        batch: Vec<Queued>,
    ) -> Vec<oneshot::Sender<Result<CleanupStats, StoreError>>> {
        let (Some(first), Some(last)) = (batch.first().map(|q| q.seq), batch.last().map(|q| q.seq))
        else {
            return Vec::new();
        };
        let now = self.shared.config.clock.now_ms();
        let outcome = self.apply(&batch, now);
        let mut cleanups = Vec::new();
        let mut replies: Vec<(Done, Result<(), StoreError>)> = Vec::with_capacity(batch.len());
        match outcome {
            Ok(refused) => {
                self.pending_resets.clear();
                for (q, refused) in batch.into_iter().zip(refused) {
                    if refused {
                        self.shared.record_failed(q.seq, q.seq);
                    }
                    match q.cmd {
                        Command::Publish(p) => {
                            let result = if refused {
                                Err(StoreError::StreamReset)
                            } else {
                                Ok(())
                            };
                            replies.push((p.done, result));
                        }
                        // A refused removal is done anyway: the reset
                        // dropped the channel's publications.
                        Command::RemoveHistory { done, .. } | Command::Flush { done } => {
                            replies.push((done, Ok(())));
                        }
                        Command::Cleanup { done } => cleanups.push(done),
                        Command::Reset { .. } | Command::Touch { .. } => {}
                    }
                }
            }
            Err(err) => {
                tracing::error!(
                    %err,
                    commands = batch.len(),
                    "sqlite store: a write batch failed; its channels get new epochs"
                );
                self.shared.record_failed(first, last);
                let err = Arc::new(err);
                let failed = || Err(StoreError::WriteFailed(err.clone()));
                let mut lose = HashSet::new();
                for q in batch {
                    match q.cmd {
                        Command::Publish(p) => {
                            if p.history.is_some() {
                                lose.insert(p.channel);
                            } else if let Some(key) = &p.key {
                                self.forget_key(&p.channel, &key.key, q.seq);
                            }
                            replies.push((p.done, failed()));
                        }
                        Command::Reset { channel, .. } => {
                            lose.insert(channel);
                        }
                        Command::RemoveHistory { done, .. } | Command::Flush { done } => {
                            replies.push((done, failed()));
                        }
                        Command::Cleanup { done } => cleanups.push(done),
                        Command::Touch { .. } => {}
                    }
                }
                for channel in lose {
                    self.lose(channel, now);
                }
                self.write_pending_resets();
            }
        }
        // A channel stays refused until every command queued before its
        // reset has been seen.
        self.lost.retain(|_, until| *until > last.saturating_add(1));
        self.processed = last;
        self.processed_tx.send_replace(last);
        for (done, result) in replies {
            // The caller may have dropped its future: the write stands.
            let _ = done.send(result);
        }
        cleanups
    }

    /// Writes `batch` in one transaction. Returns, per command, whether it
    /// was refused (queued for a stream that has since been reset).
    fn apply(&mut self, batch: &[Queued], now: i64) -> Result<Vec<bool>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (channel, reset) in &self.pending_resets {
            reset_stream(&tx, channel, reset, true)?;
        }
        let mut refused = vec![false; batch.len()];
        let mut touched: HashMap<&ChannelName, Touched<'_>> = HashMap::new();
        for (i, q) in batch.iter().enumerate() {
            if let Some(channel) = q.cmd.channel() {
                if self.lost.get(channel).is_some_and(|until| q.seq < *until) {
                    refused[i] = true;
                    continue;
                }
            }
            match &q.cmd {
                Command::Publish(p) => {
                    if let Some(h) = &p.history {
                        insert_publication(&tx, &p.channel, &h.row)?;
                        let t = touched.entry(&p.channel).or_default();
                        t.stream = Some(StreamRow {
                            epoch: &h.epoch,
                            top: h.row.offset,
                            meta_expires: h.meta_expires,
                            meta_ttl: duration_ms(h.meta_ttl),
                        });
                        t.keep_from = t.keep_from.max(h.keep_from);
                        t.trim_expired = true;
                    }
                    if let Some(k) = &p.key {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO idempotency
                                 (channel, key, expires, stream_offset, epoch)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![
                            p.channel.as_str(),
                            k.key,
                            k.expires,
                            k.offset,
                            k.epoch
                        ])?;
                    }
                }
                Command::Reset {
                    channel,
                    epoch,
                    expires,
                    meta_ttl,
                } => {
                    delete_publications(&tx, channel)?;
                    touched.insert(
                        channel,
                        Touched {
                            stream: Some(StreamRow {
                                epoch,
                                top: 0,
                                meta_expires: *expires,
                                meta_ttl: duration_ms(*meta_ttl),
                            }),
                            ..Default::default()
                        },
                    );
                }
                Command::Touch {
                    channel,
                    epoch,
                    expires,
                } => {
                    let pending = touched
                        .get_mut(channel)
                        .and_then(|t| t.stream.as_mut())
                        .filter(|s| s.epoch == epoch.as_str());
                    match pending {
                        Some(s) => s.meta_expires = s.meta_expires.max(*expires),
                        None => {
                            tx.prepare_cached(
                                "UPDATE streams SET meta_expires = max(meta_expires, ?3)
                                 WHERE channel = ?1 AND epoch = ?2",
                            )?
                            .execute(params![
                                channel.as_str(),
                                epoch,
                                expires
                            ])?;
                        }
                    }
                }
                Command::RemoveHistory { channel, .. } => {
                    delete_publications(&tx, channel)?;
                }
                Command::Flush { .. } | Command::Cleanup { .. } => {}
            }
        }
        for (channel, t) in touched {
            if let Some(s) = t.stream {
                tx.prepare_cached(
                    "INSERT INTO streams (channel, epoch, top, meta_expires, meta_ttl)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (channel) DO UPDATE SET
                         epoch = excluded.epoch, top = excluded.top,
                         meta_expires = excluded.meta_expires, meta_ttl = excluded.meta_ttl",
                )?
                .execute(params![
                    channel.as_str(),
                    s.epoch,
                    s.top,
                    s.meta_expires,
                    s.meta_ttl
                ])?;
            }
            if t.keep_from > 1 {
                tx.prepare_cached(
                    "DELETE FROM publications WHERE channel = ?1 AND stream_offset < ?2",
                )?
                .execute(params![
                    channel.as_str(),
                    i64::try_from(t.keep_from).unwrap_or(i64::MAX)
                ])?;
            }
            if t.trim_expired {
                trim_expired(&tx, channel, now)?;
            }
        }
        tx.commit()?;
        Ok(refused)
    }

    /// Replaces `channel`'s stream after a failed batch: a new epoch in the
    /// cache now, in the database with the next successful transaction.
    fn lose(&mut self, channel: ChannelName, now: i64) {
        let reset = {
            let mut shard = self.shared.cache.lock(&channel);
            let entry = shard
                .entry(channel.clone())
                .or_insert_with(|| Entry::new(now, 0));
            let meta_ttl = entry
                .stream
                .as_ref()
                .map_or(self.shared.config.history_meta_ttl, |s| s.meta_ttl);
            let stream = Stream::new(now, meta_ttl);
            let reset = ResetRow {
                epoch: stream.epoch.clone(),
                expires: stream.expires,
                meta_ttl: duration_ms(meta_ttl),
            };
            entry.stream = Some(stream);
            entry.clear_keys();
            // Commands for the old stream all have lower numbers: the shard
            // lock is held while a command is numbered and queued.
            let until = self.shared.next_seq();
            entry.last_seq = entry.last_seq.max(until.saturating_sub(1));
            self.lost.insert(channel.clone(), until);
            reset
        };
        self.pending_resets.insert(channel, reset);
    }

    /// Forgets a key whose publish failed, unless it was re-used since.
    fn forget_key(&self, channel: &ChannelName, key: &str, seq: u64) {
        let mut shard = self.shared.cache.lock(channel);
        if let Some(entry) = shard.get_mut(channel.as_str()) {
            if entry.keys.get(key).is_some_and(|r| r.seq == seq) {
                entry.keys.remove(key);
            }
        }
    }

    /// Tries to write the pending resets on their own, so that reads see
    /// the new epochs without waiting for the next batch.
    fn write_pending_resets(&mut self) {
        if self.pending_resets.is_empty() {
            return;
        }
        let result = (|| -> Result<(), StoreError> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (channel, reset) in &self.pending_resets {
                reset_stream(&tx, channel, reset, true)?;
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => self.pending_resets.clear(),
            Err(err) => {
                tracing::error!(%err, "sqlite store: resetting streams failed; retrying with the next batch")
            }
        }
    }

    fn cleanup_logged(&mut self) {
        match self.cleanup() {
            Ok(stats) if stats != CleanupStats::default() => {
                tracing::debug!(?stats, "sqlite store: cleanup")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "sqlite store: cleanup failed"),
        }
    }

    /// Deletes expired keys, streams and publications, and drops idle
    /// channels from the cache.
    fn cleanup(&mut self) -> Result<CleanupStats, StoreError> {
        let now = self.shared.config.clock.now_ms();
        let mut stats = CleanupStats::default();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (channel, reset) in &self.pending_resets {
            reset_stream(&tx, channel, reset, true)?;
        }
        stats.keys = tx
            .prepare_cached("DELETE FROM idempotency WHERE expires <= ?1")?
            .execute([now])?;

        // Streams whose meta data expired, unless this process has since
        // extended them in its cache without writing it yet.
        let expired: Vec<(String, String)> = tx
            .prepare_cached("SELECT channel, epoch FROM streams WHERE meta_expires <= ?1 LIMIT ?2")?
            .query_map(params![now, CLEANUP_CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (channel, epoch) in expired {
            let alive = lock_alive(&self.shared, &channel, now);
            if alive || self.pending_resets.contains_key(channel.as_str()) {
                continue;
            }
            tx.prepare_cached("DELETE FROM publications WHERE channel = ?1")?
                .execute([&channel])?;
            stats.streams += tx
                .prepare_cached("DELETE FROM streams WHERE channel = ?1 AND epoch = ?2")?
                .execute([&channel, &epoch])?;
        }

        // Publications past their TTL, per channel, so that what stays is
        // contiguous.
        let channels: Vec<String> = tx
            .prepare_cached(
                "SELECT DISTINCT channel FROM publications WHERE expires <= ?1 LIMIT ?2",
            )?
            .query_map(params![now, CLEANUP_CHUNK], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for channel in channels {
            stats.publications += trim_expired(&tx, &channel, now)?;
        }

        // Idle channels leave the cache once nothing of theirs is queued and
        // the database holds their meta expiry; a stale expiry is written
        // now and the channel leaves on the next pass.
        let idle_ms = duration_ms(self.shared.config.cache_idle_ttl);
        let mut touches = Vec::new();
        for shard in self.shared.cache.shards() {
            lock(shard).retain(|channel, entry| {
                entry.prune_keys(now);
                if entry.last_seq > self.processed
                    || self.pending_resets.contains_key(channel)
                    || entry.last_used.saturating_add(idle_ms) > now
                {
                    return true;
                }
                match &mut entry.stream {
                    Some(s) if s.alive(now) && s.persisted_expires != s.expires => {
                        s.persisted_expires = s.expires;
                        touches.push((channel.clone(), s.epoch.clone(), s.expires));
                        true
                    }
                    _ => {
                        stats.evicted += 1;
                        false
                    }
                }
            });
        }
        for (channel, epoch, expires) in touches {
            tx.prepare_cached(
                "UPDATE streams SET meta_expires = max(meta_expires, ?3)
                 WHERE channel = ?1 AND epoch = ?2",
            )?
            .execute(params![channel.as_str(), epoch, expires])?;
        }
        tx.commit()?;
        self.pending_resets.clear();
        Ok(stats)
    }
}

/// Whether the cache holds a live stream for `channel`.
fn lock_alive(shared: &Shared, channel: &str, now: i64) -> bool {
    shared
        .cache
        .lock(channel)
        .get(channel)
        .and_then(|e| e.stream.as_ref())
        .is_some_and(|s| s.alive(now))
}

fn delete_publications(conn: &Connection, channel: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM publications WHERE channel = ?1")?
        .execute([channel])
}

/// Writes a new, empty stream for `channel`; `clear_keys` also forgets its
/// idempotency keys (after a failure, whose keys the cache forgot too).
fn reset_stream(
    conn: &Connection,
    channel: &str,
    reset: &ResetRow,
    clear_keys: bool,
) -> rusqlite::Result<()> {
    delete_publications(conn, channel)?;
    if clear_keys {
        conn.prepare_cached("DELETE FROM idempotency WHERE channel = ?1")?
            .execute([channel])?;
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO streams (channel, epoch, top, meta_expires, meta_ttl)
         VALUES (?1, ?2, 0, ?3, ?4)",
    )?
    .execute(params![channel, reset.epoch, reset.expires, reset.meta_ttl])?;
    Ok(())
}

/// Drops `channel`'s expired publications from the front: everything before
/// the first one still alive (all of them if none is). TTLs may differ
/// between publications; dropping only a prefix keeps history contiguous.
fn trim_expired(conn: &Connection, channel: &str, now: i64) -> rusqlite::Result<usize> {
    let first_alive: Option<i64> = conn
        .prepare_cached(
            "SELECT stream_offset FROM publications
             WHERE channel = ?1 AND expires > ?2
             ORDER BY stream_offset LIMIT 1",
        )?
        .query_row(params![channel, now], |r| r.get(0))
        .optional()?;
    conn.prepare_cached("DELETE FROM publications WHERE channel = ?1 AND stream_offset < ?2")?
        .execute(params![channel, first_alive.unwrap_or(i64::MAX)])
}

/// Failed command ranges, newest last, bounded.
pub(crate) fn push_failed(ranges: &mut VecDeque<(u64, u64)>, first: u64, last: u64) {
    if ranges.len() >= FAILED_RANGES {
        ranges.pop_front();
    }
    ranges.push_back((first, last));
}
