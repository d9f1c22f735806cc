//! Test doubles shared by the integration tests: a recording subscriber and
//! stores that delay or fail.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub::{
    BoxFuture, ChannelName, EncodedPublication, Error, HistoryFilter, HistoryResult, JoinLeave,
    JoinLeaveKind, MemoryStore, Publication, PublishOptions, PublishResult, Result, Store,
    StreamPosition, Subscriber,
};

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Pub {
        channel: String,
        offset: u64,
        data: String,
    },
    Join {
        channel: String,
        client: String,
    },
    Leave {
        channel: String,
        client: String,
    },
}

/// A subscriber that records everything and can be told to refuse.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
    refuse: AtomicBool,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn offsets(&self) -> Vec<u64> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Pub { offset, .. } => Some(offset),
                _ => None,
            })
            .collect()
    }

    pub fn offsets_in(&self, channel: &str) -> Vec<u64> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Pub {
                    channel: c, offset, ..
                } if c == channel => Some(offset),
                _ => None,
            })
            .collect()
    }

    pub fn data(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Pub { data, .. } => Some(data),
                _ => None,
            })
            .collect()
    }

    pub fn join_leaves(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !matches!(s, Seen::Pub { .. }))
            .collect()
    }

    pub fn refuse(&self) {
        self.refuse.store(true, Ordering::SeqCst);
    }
}

impl Subscriber for Recorder {
    fn deliver(&self, p: &Arc<EncodedPublication>) -> bool {
        if self.refuse.load(Ordering::SeqCst) {
            return false;
        }
        self.seen.lock().unwrap().push(Seen::Pub {
            channel: p.channel().to_string(),
            offset: p.offset(),
            data: String::from_utf8_lossy(&p.publication().data).into_owned(),
        });
        true
    }

    fn deliver_join_leave(&self, e: &Arc<JoinLeave>) -> bool {
        if self.refuse.load(Ordering::SeqCst) {
            return false;
        }
        let channel = e.channel().to_string();
        let client = e.info().client.to_string();
        self.seen.lock().unwrap().push(match e.kind() {
            JoinLeaveKind::Join => Seen::Join { channel, client },
            JoinLeaveKind::Leave => Seen::Leave { channel, client },
        });
        true
    }
}

/// A store that assigns offsets at call time (through a [`MemoryStore`]) but
/// completes each publish after a delay chosen by `delay(call_number)`, so
/// that writes can complete out of order, as a batching store's may.
pub struct DelayedStore {
    pub inner: MemoryStore,
    calls: AtomicU64,
    delay: Box<dyn Fn(u64) -> Duration + Send + Sync>,
    /// Delay `position`/`history` reads too.
    pub read_delay: Mutex<Duration>,
}

impl DelayedStore {
    pub fn new(delay: impl Fn(u64) -> Duration + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            calls: AtomicU64::new(0),
            delay: Box::new(delay),
            read_delay: Mutex::new(Duration::ZERO),
        })
    }
}

impl Store for DelayedStore {
    fn publish(
        &self,
        channel: &ChannelName,
        publication: Publication,
        opts: &PublishOptions,
    ) -> BoxFuture<'static, Result<PublishResult>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = (self.delay)(call);
        let write = self.inner.publish(channel, publication, opts);
        Box::pin(async move {
            let result = write.await;
            tokio::time::sleep(delay).await;
            result
        })
    }

    fn history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> BoxFuture<'static, Result<HistoryResult>> {
        let delay = *self.read_delay.lock().unwrap();
        let read = self.inner.history(channel, filter);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            read.await
        })
    }

    fn remove_history(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        self.inner.remove_history(channel)
    }

    fn position(&self, channel: &ChannelName) -> BoxFuture<'static, Result<StreamPosition>> {
        let delay = *self.read_delay.lock().unwrap();
        let read = self.inner.position(channel);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            read.await
        })
    }
}

/// A store whose every operation fails.
pub struct BrokenStore;

impl Store for BrokenStore {
    fn publish(
        &self,
        _: &ChannelName,
        _: Publication,
        _: &PublishOptions,
    ) -> BoxFuture<'static, Result<PublishResult>> {
        hub::ready(Err(Error::storage("disk on fire")))
    }

    fn history(
        &self,
        _: &ChannelName,
        _: HistoryFilter,
    ) -> BoxFuture<'static, Result<HistoryResult>> {
        hub::ready(Err(Error::storage("disk on fire")))
    }

    fn remove_history(&self, _: &ChannelName) -> BoxFuture<'static, Result<()>> {
        hub::ready(Err(Error::storage("disk on fire")))
    }
}

pub fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// Lets spawned cleanup tasks run.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
