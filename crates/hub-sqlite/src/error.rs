//! The crate's errors: [`OpenError`] for opening a database, [`StoreError`]
//! for what goes wrong afterwards.
//!
//! Store operations return [`hub::Error`]; a [`StoreError`] travels inside
//! it as the cause of [`hub::Error::Storage`] (reply code 108, temporary),
//! so that logs show what SQLite said. Mapping to client replies is the
//! hub's business, not this crate's.

use std::path::PathBuf;
use std::sync::Arc;

/// Why [`SqliteStore::open`](crate::SqliteStore::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration cannot work (a zero batch size or reader count).
    #[error("invalid sqlite store configuration: {0}")]
    InvalidConfig(&'static str),
    /// The database's directory could not be created.
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open (or create) the file.
    #[error("cannot open the database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database refused WAL mode (for instance on a file system without
    /// shared memory support).
    #[error("the database {} cannot use WAL mode (journal mode is {mode:?})", path.display())]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// Setting up the connection or the schema failed, for instance because
    /// the file is not a database or belongs to another program.
    #[error("cannot set up the database {}: {source}", path.display())]
    Setup {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer version of this crate.
    #[error(
        "the database {} has schema version {found}; this build knows versions up to {supported}",
        path.display()
    )]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The writer or a reader thread could not be started.
    #[error("cannot start the sqlite store's {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What went wrong in an open store; the cause inside
/// [`hub::Error::Storage`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value cannot be read back (the file was changed by hand, or
    /// an offset outgrew SQLite's 64-bit integers).
    #[error("malformed stored value: {0}")]
    Corrupt(String),
    /// The batch this write was committed in failed and was rolled back.
    /// The channels it touched got new epochs (their streams count as lost).
    #[error("the write's batch failed: {0}")]
    WriteFailed(#[source] Arc<StoreError>),
    /// An earlier write to this channel failed, so the stream this write
    /// belonged to was replaced by one with a new epoch; it was not written.
    #[error("the channel's stream was reset after a failed write")]
    StreamReset,
    /// The publish that first used this idempotency key failed; its
    /// duplicate cannot answer for it. Retrying publishes anew.
    #[error("the first publish with this idempotency key failed")]
    FirstPublishFailed,
    /// The store's writer or reader threads are gone (the store was dropped
    /// or a thread panicked).
    #[error("the sqlite store is closed")]
    Closed,
}

impl From<StoreError> for hub::Error {
    fn from(err: StoreError) -> Self {
        hub::Error::storage(err)
    }
}
