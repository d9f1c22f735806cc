//! The in-memory side of the store: per channel, the stream's epoch and top
//! offset and the recent idempotency keys, in a sharded map.
//!
//! This cache is what lets [`Store::publish`](hub::Store::publish) assign
//! offsets before its future is returned: it is the truth for every channel
//! it holds, ahead of the database by the writes still queued. A channel is
//! loaded from the database on first use and dropped again when idle with
//! nothing queued (see the writer's cleanup), so for a channel not in the
//! cache the database is the truth. Publications themselves are never
//! cached; reads go to the database.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hub::{ChannelName, StreamPosition};

use crate::config::after;

/// Locks `m`, ignoring poisoning: every critical section here leaves its
/// data consistent at each step.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh random epoch: 8 alphanumeric characters, like the memory store's.
pub(crate) fn new_epoch() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 8)
}

/// One shard of the cache.
pub(crate) type Shard = HashMap<ChannelName, Entry>;

/// The channel map, split over mutexes by name hash.
pub(crate) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Cache {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// Locks the shard holding `channel`.
    pub(crate) fn lock(&self, channel: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(channel) as usize) % self.shards.len();
        lock(&self.shards[index])
    }

    pub(crate) fn shards(&self) -> impl Iterator<Item = &Mutex<Shard>> {
        self.shards.iter()
    }

    /// How many channels are cached.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

/// A cached channel.
pub(crate) struct Entry {
    /// The stream, if one exists (it may have expired: check before use).
    pub(crate) stream: Option<Stream>,
    /// Recent idempotency keys.
    pub(crate) keys: HashMap<String, Remembered>,
    /// The same keys in insertion (= expiry) order, for pruning.
    pub(crate) key_order: VecDeque<(i64, String)>,
    /// The last queued command touching this channel: reads wait until the
    /// writer has processed it, and the entry is not evicted before.
    pub(crate) last_seq: u64,
    /// When it was last used (ms), for idle eviction.
    pub(crate) last_used: i64,
}

/// A channel's stream as this process sees it.
pub(crate) struct Stream {
    pub(crate) epoch: String,
    pub(crate) top: u64,
    /// When the stream's meta data expires (ms).
    pub(crate) expires: i64,
    pub(crate) meta_ttl: Duration,
    /// The expiry last sent to the writer: reads move `expires` without
    /// writing each time (see [`Stream::touch`]).
    pub(crate) persisted_expires: i64,
}

/// What an idempotency key answered with.
pub(crate) struct Remembered {
    pub(crate) expires: i64,
    pub(crate) offset: u64,
    pub(crate) position: StreamPosition,
    /// The command that writes the first publish (0 when loaded from the
    /// database, i.e. already committed).
    pub(crate) seq: u64,
}

impl Entry {
    pub(crate) fn new(now: i64, last_seq: u64) -> Self {
        Self {
            stream: None,
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            last_seq,
            last_used: now,
        }
    }

    /// Forgets keys whose window has passed.
    pub(crate) fn prune_keys(&mut self, now: i64) {
        while self.key_order.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.key_order.pop_front() {
                // A key re-used after expiry has a newer entry: keep that one.
                if self.keys.get(&key).is_some_and(|r| r.expires <= now) {
                    self.keys.remove(&key);
                }
            }
        }
    }

    pub(crate) fn remember(&mut self, key: String, remembered: Remembered) {
        self.key_order.push_back((remembered.expires, key.clone()));
        self.keys.insert(key, remembered);
    }

    /// Forgets every key (after a failed write reset the stream).
    pub(crate) fn clear_keys(&mut self) {
        self.keys.clear();
        self.key_order.clear();
    }
}

impl Stream {
    /// A new, empty stream with a fresh epoch.
    pub(crate) fn new(now: i64, meta_ttl: Duration) -> Self {
        let expires = after(now, meta_ttl);
        Self {
            epoch: new_epoch(),
            top: 0,
            expires,
            meta_ttl,
            persisted_expires: expires,
        }
    }

    pub(crate) fn alive(&self, now: i64) -> bool {
        self.expires > now
    }

    /// Extends the meta expiry from `now`. Returns the new expiry when it
    /// has moved far enough past the persisted one to be worth writing: a
    /// read-only channel then costs one small write per slack period, not
    /// one per read.
    pub(crate) fn touch(&mut self, now: i64) -> Option<i64> {
        self.expires = after(now, self.meta_ttl);
        let slack = (self.meta_ttl / 8).min(Duration::from_secs(60));
        let slack_ms = i64::try_from(slack.as_millis()).unwrap_or(i64::MAX);
        if self.expires.saturating_sub(self.persisted_expires) > slack_ms {
            self.persisted_expires = self.expires;
            Some(self.expires)
        } else {
            None
        }
    }

    pub(crate) fn position(&self) -> StreamPosition {
        StreamPosition::new(self.top, self.epoch.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_prune_in_expiry_order() {
        let mut e = Entry::new(0, 0);
        let r = |expires| Remembered {
            expires,
            offset: 1,
            position: StreamPosition::default(),
            seq: 0,
        };
        e.remember("a".into(), r(10));
        e.remember("b".into(), r(20));
        e.remember("a".into(), r(30));
        e.prune_keys(15);
        assert!(e.keys.contains_key("a"), "a was re-used and lives on");
        e.prune_keys(25);
        assert!(!e.keys.contains_key("b"));
        e.prune_keys(30);
        assert!(e.keys.is_empty());
    }

    #[test]
    fn touches_are_written_after_a_slack() {
        let mut s = Stream::new(0, Duration::from_secs(80));
        assert_eq!(s.touch(1_000), None, "slack is 10 s here");
        assert_eq!(s.touch(10_001), Some(90_001));
        assert_eq!(s.persisted_expires, 90_001);
        assert_eq!(s.epoch.len(), 8);
    }
}
