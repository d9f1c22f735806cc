//! The [`Store`]: per-channel streams of publications with offsets, epochs,
//! history limits and idempotent publishing.
//!
//! A store owns the truth about a channel's stream: the last offset, the
//! epoch, and the publications still kept. It does no fan-out (that is the
//! [`Hub`](crate::Hub) and the [`Broker`](crate::Broker)) and no checks of
//! positions a client sent (that is [`crate::recovery`]). This module holds
//! the trait and its request/response types; [`MemoryStore`] is the
//! in-memory implementation. A SQLite or Redis store implements the same
//! trait in its own crate.
//!
//! # Contract
//!
//! - **Offsets.** Each publication that goes into history gets the channel's
//!   next offset (first 1, then +1 each), atomically. A publication with
//!   history off (`history_size == 0` or `history_ttl` zero) gets offset 0
//!   and a zero position, and changes nothing in the stream.
//! - **Order is fixed at call time.** For one channel, calls to
//!   [`Store::publish`] made one after another get increasing offsets in
//!   call order, even if their futures complete in another order. (Memory
//!   and SQLite stores assign the offset before returning the future; a
//!   Redis store sends commands in call order on one connection.) The hub
//!   relies on this to fan out in offset order without holding a lock
//!   across a write.
//! - **Futures are not cancellation points.** Dropping a returned future
//!   must not undo or abort the operation; it only drops the answer.
//! - **Epochs.** A channel's epoch is a random string fixed when its stream
//!   is created (by a publish, a history read or a position read) and
//!   replaced only when the stream is lost: a restart of an in-memory store,
//!   or the stream's meta data expiring after a long idle time. History that
//!   expires by TTL or is trimmed by size keeps the epoch; recovery then
//!   fails on the missing offsets instead.
//! - **Retained history is contiguous**: the kept publications are always
//!   the offsets `first..=top` with no holes.
//! - **Idempotency.** A publish with an `idempotency_key` already used on
//!   the same channel within the idempotency window (5 minutes by default)
//!   publishes nothing and returns the first result, marked `duplicate`.

mod memory;

use std::time::Duration;

pub use memory::{MemoryStore, MemoryStoreConfig};

use crate::channel::ChannelName;
use crate::error::Result;
use crate::publication::{Publication, StreamPosition};
use crate::util::BoxFuture;

/// How long a store remembers an idempotency key, unless configured otherwise.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(5 * 60);

/// How to store one publication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Keep at most this many publications in the channel's history; 0 keeps
    /// none and gives the publication no offset.
    pub history_size: usize,
    /// Keep the publication this long; zero keeps none and gives no offset.
    pub history_ttl: Duration,
    /// How long the channel's position outlives its last publication;
    /// `None` uses the store's default.
    pub history_meta_ttl: Option<Duration>,
    /// Publish at most once per key and channel within the idempotency window.
    pub idempotency_key: Option<String>,
}

impl PublishOptions {
    /// Options keeping `size` publications for `ttl`.
    pub fn with_history(size: usize, ttl: Duration) -> Self {
        Self {
            history_size: size,
            history_ttl: ttl,
            ..Default::default()
        }
    }

    /// Whether this publication goes into history (and gets an offset).
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

/// The outcome of [`Store::publish`].
#[derive(Debug, Clone, PartialEq)]
pub struct PublishResult {
    /// The publication as stored, with its offset (0 without history).
    pub publication: Publication,
    /// The stream position after it (zero without history).
    pub position: StreamPosition,
    /// True when an earlier publish with the same idempotency key answered:
    /// nothing was published this time, and nothing should be fanned out.
    pub duplicate: bool,
}

/// Which part of a channel's history to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Start after this position (or, when `reverse`, before it). The store
    /// filters by offset only; callers check the epoch (see
    /// [`crate::recovery`]).
    pub since: Option<StreamPosition>,
    /// At most this many publications; `None` for all, `Some(0)` for none
    /// (just the position).
    pub limit: Option<usize>,
    /// Newest first instead of oldest first.
    pub reverse: bool,
}

impl HistoryFilter {
    /// Everything after `since`, oldest first.
    pub fn since(since: StreamPosition) -> Self {
        Self {
            since: Some(since),
            ..Default::default()
        }
    }

    /// No publications, only the position.
    pub fn position_only() -> Self {
        Self {
            limit: Some(0),
            ..Default::default()
        }
    }
}

/// The outcome of [`Store::history`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryResult {
    /// The publications that matched, in the order asked for.
    pub publications: Vec<Publication>,
    /// The stream's current position.
    pub position: StreamPosition,
}

/// Per-channel publication streams. See the [module docs](self) for the
/// contract every implementation keeps.
///
/// Methods take `&self` and return `'static` boxed futures, so the trait is
/// object safe (`Arc<dyn Store>`) and implementations can do their ordering
/// work synchronously before the future is returned.
pub trait Store: Send + Sync + 'static {
    /// Appends `publication` to `channel`'s stream (assigning its offset;
    /// other fields are stored as given) and trims history to `opts`.
    fn publish(
        &self,
        channel: &ChannelName,
        publication: Publication,
        opts: &PublishOptions,
    ) -> BoxFuture<'static, Result<PublishResult>>;

    /// Reads publications kept for `channel` that match `filter`, with the
    /// current position. Creates the stream (and its epoch) if missing.
    fn history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> BoxFuture<'static, Result<HistoryResult>>;

    /// Drops every publication kept for `channel`. The offset and epoch stay,
    /// so later publications continue the numbering.
    fn remove_history(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>>;

    /// The current position of `channel`'s stream. Creates the stream (and
    /// its epoch) if missing, so the epoch handed to a subscriber stays valid.
    fn position(&self, channel: &ChannelName) -> BoxFuture<'static, Result<StreamPosition>> {
        let history = self.history(channel, HistoryFilter::position_only());
        Box::pin(async move { Ok(history.await?.position) })
    }

    /// Makes every accepted write durable; called at shutdown. Stores that
    /// write synchronously have nothing to do.
    fn flush(&self) -> BoxFuture<'static, Result<()>> {
        crate::util::ready(Ok(()))
    }
}
