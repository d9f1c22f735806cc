//! A SQLite [`Store`](hub::Store) for the duplex hub: channel streams
//! (epochs, offsets, history, idempotency keys) in one database file that
//! survives restarts.
//!
//! [`SqliteStore`] keeps the [`Store`](hub::Store) contract of the in-memory
//! store, with one difference by design: after a restart a channel keeps
//! its epoch and continues its offsets, and its history is still there, so
//! clients recover across a server restart. A stream still gets a new epoch
//! when its meta data expires after a long idle time, or when a write to it
//! failed (then the offsets handed out for the failed writes never existed).
//!
//! - [`store`](SqliteStore): assigns offsets in memory before a call returns,
//!   queues the write, and answers when it is committed.
//! - writer thread: commits queued writes in batches (one transaction per
//!   batch), trims history by size and TTL in the same transaction, and
//!   periodically deletes what expired.
//! - reader threads: serve history reads on their own connections (WAL mode
//!   lets them read while the writer writes).
//!
//! This crate does no fan-out and no recovery checks (that is the
//! [`hub`] crate), and knows nothing of transports or configuration files.
//!
//! # Where it differs from the memory store
//!
//! - Streams survive a restart (above). Dropping the last store handle
//!   waits for the writer to commit what was queued.
//! - A publish's future completes when its batch is committed, not at once.
//!   Positions (and a position-only history read) come from the cache, so
//!   they include publishes accepted but not yet committed, just as the
//!   memory store's include every publish made. Should such a write fail,
//!   its channel gets a new epoch: a client holding that position then
//!   fails to recover instead of silently missing a publication.
//! - A repeated idempotency key answers once the first publish is committed,
//!   and fails with [`StoreError::FirstPublishFailed`] if it failed.
//! - Reads extend a stream's meta expiry in memory and write it only when
//!   it moved by more than an eighth of the meta TTL (at most a minute), so
//!   after a restart a stream that was only read may expire that much
//!   earlier.
//! - Expiry uses wall-clock milliseconds (they must survive restarts), not
//!   tokio's clock: tokio's paused time does not move it; [`Clock::manual`]
//!   does.
//! - The write queue is unbounded: a writer that cannot keep up makes the
//!   queue grow rather than slowing publishers down.
//! - One process should open a file once (the offsets live in its cache).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cache;
mod config;
mod error;
mod reader;
mod schema;
mod store;
mod writer;

pub use config::{
    Clock, SqliteStoreConfig, Synchronous, DEFAULT_BATCH_MAX_SIZE, DEFAULT_HISTORY_META_TTL,
};
pub use error::{OpenError, StoreError};
pub use store::SqliteStore;
pub use writer::CleanupStats;

/// The schema version this build writes (SQLite's `user_version` pragma).
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;
