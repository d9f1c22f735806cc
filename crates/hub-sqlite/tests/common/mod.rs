//! Helpers shared by the integration tests: a store in a temporary
//! directory with a manual clock, and short constructors.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hub::{ChannelName, HistoryFilter, PublishOptions, Store};
use hub_sqlite::{Clock, SqliteStore, SqliteStoreConfig};
use tempfile::TempDir;

/// A store on a fresh file, with a manual clock and no periodic cleanup.
pub struct Fixture {
    pub dir: TempDir,
    pub path: PathBuf,
    pub clock: Clock,
    pub store: SqliteStore,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(|c| c)
    }

    pub fn with(tune: impl Fn(SqliteStoreConfig) -> SqliteStoreConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let clock = Clock::manual(UNIX_EPOCH + Duration::from_secs(1_900_000_000));
        let store = SqliteStore::open(&path, tune(config(&clock))).unwrap();
        Self {
            dir,
            path,
            clock,
            store,
        }
    }

    /// Drops the store (waiting for its writer) and opens the file again
    /// with the same clock.
    pub fn reopen(&mut self) {
        self.reopen_with(|c| c);
    }

    pub fn reopen_with(&mut self, tune: impl Fn(SqliteStoreConfig) -> SqliteStoreConfig) {
        let fresh = SqliteStore::open(&self.path, tune(config(&self.clock))).unwrap();
        let old = std::mem::replace(&mut self.store, fresh);
        drop(old);
    }

    pub fn advance(&self, secs: u64) {
        assert!(self.clock.advance(Duration::from_secs(secs)));
    }

    /// A raw connection to the same file, for checking what is committed.
    pub fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.raw().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

pub fn config(clock: &Clock) -> SqliteStoreConfig {
    SqliteStoreConfig::default()
        .clock(clock.clone())
        .cleanup_interval(Duration::ZERO)
}

pub fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

pub fn opts(size: usize, ttl_secs: u64) -> PublishOptions {
    PublishOptions::with_history(size, Duration::from_secs(ttl_secs))
}

pub async fn offsets(store: &impl Store, channel: &ChannelName, filter: HistoryFilter) -> Vec<u64> {
    let r = store.history(channel, filter).await.unwrap();
    r.publications.iter().map(|p| p.offset).collect()
}

pub async fn datas(store: &impl Store, channel: &ChannelName) -> Vec<String> {
    let r = store
        .history(channel, HistoryFilter::default())
        .await
        .unwrap();
    r.publications
        .iter()
        .map(|p| String::from_utf8(p.data.to_vec()).unwrap())
        .collect()
}

pub fn now() -> SystemTime {
    SystemTime::now()
}
