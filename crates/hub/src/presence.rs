//! Presence: who is subscribed to a channel, across all nodes.
//!
//! The [`PresenceStore`] trait keeps one [`ClientInfo`] per client per
//! channel. The hub adds an entry when a client subscribes to a channel
//! whose namespace has `presence` on and removes it on unsubscribe.
//! Shared stores (Redis) expire entries that are not refreshed, so that a
//! crashed node's clients disappear; for them `add` doubles as refresh and
//! [`Hub::refresh_presence`](crate::Hub::refresh_presence) re-adds this
//! node's entries. [`MemoryPresence`] is the single-node store; its entries
//! live until removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::channel::ChannelName;
use crate::error::Result;
use crate::publication::ClientInfo;
use crate::util::{lock, ready, BoxFuture, Shards};

/// How many are present in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PresenceStats {
    /// Subscribed connections.
    pub num_clients: usize,
    /// Distinct users among them (the anonymous user counts once).
    pub num_users: usize,
}

/// Where presence is kept. Object safe; futures are `'static` and not
/// cancellation points (dropping one does not undo the operation).
pub trait PresenceStore: Send + Sync + 'static {
    /// Adds (or refreshes) `info.client` in `channel`.
    fn add(&self, channel: &ChannelName, info: &ClientInfo) -> BoxFuture<'static, Result<()>>;

    /// Removes `client` from `channel`; no error if it was not there.
    fn remove(&self, channel: &ChannelName, client: &str) -> BoxFuture<'static, Result<()>>;

    /// Everyone in `channel`, sorted by client id.
    fn list(&self, channel: &ChannelName) -> BoxFuture<'static, Result<Vec<ClientInfo>>>;

    /// Counts for `channel`.
    fn stats(&self, channel: &ChannelName) -> BoxFuture<'static, Result<PresenceStats>>;
}

/// Presence in process memory, for a single node. Cheap to clone; clones
/// share the data.
#[derive(Clone)]
pub struct MemoryPresence {
    channels: Arc<Shards<HashMap<ChannelName, Clients>>>,
}

/// One channel's present clients by client id.
type Clients = HashMap<Arc<str>, ClientInfo>;

impl Default for MemoryPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPresence")
            .field("channels", &self.num_channels())
            .finish()
    }
}

impl MemoryPresence {
    /// An empty presence store.
    pub fn new() -> Self {
        Self {
            channels: Arc::new(Shards::new(64)),
        }
    }

    /// How many channels have someone present.
    pub fn num_channels(&self) -> usize {
        self.channels.iter().map(|s| lock(s).len()).sum()
    }

    fn stats_now(&self, channel: &ChannelName) -> PresenceStats {
        let shard = self.channels.lock(channel);
        let Some(clients) = shard.get(channel) else {
            return PresenceStats::default();
        };
        let users: HashSet<&str> = clients.values().map(|i| &*i.user).collect();
        PresenceStats {
            num_clients: clients.len(),
            num_users: users.len(),
        }
    }
}

impl PresenceStore for MemoryPresence {
    fn add(&self, channel: &ChannelName, info: &ClientInfo) -> BoxFuture<'static, Result<()>> {
        self.channels
            .lock(channel)
            .entry(channel.clone())
            .or_default()
            .insert(info.client.clone(), info.clone());
        ready(Ok(()))
    }

    fn remove(&self, channel: &ChannelName, client: &str) -> BoxFuture<'static, Result<()>> {
        let mut shard = self.channels.lock(channel);
        if let Some(clients) = shard.get_mut(channel) {
            clients.remove(client);
            if clients.is_empty() {
                shard.remove(channel);
            }
        }
        ready(Ok(()))
    }

    fn list(&self, channel: &ChannelName) -> BoxFuture<'static, Result<Vec<ClientInfo>>> {
        let mut list: Vec<ClientInfo> = self
            .channels
            .lock(channel)
            .get(channel)
            .map(|clients| clients.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by(|a, b| a.client.cmp(&b.client));
        ready(Ok(list))
    }

    fn stats(&self, channel: &ChannelName) -> BoxFuture<'static, Result<PresenceStats>> {
        ready(Ok(self.stats_now(channel)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stats_count_clients_and_distinct_users() {
        let p = MemoryPresence::new();
        let c = ChannelName::new("room").unwrap();
        assert_eq!(p.stats(&c).await.unwrap(), PresenceStats::default());
        p.add(&c, &ClientInfo::new("u1", "c1")).await.unwrap();
        p.add(&c, &ClientInfo::new("u1", "c2")).await.unwrap();
        p.add(&c, &ClientInfo::new("u2", "c3")).await.unwrap();
        p.add(&c, &ClientInfo::new("", "c4")).await.unwrap();
        p.add(&c, &ClientInfo::new("", "c5")).await.unwrap();
        // Re-adding refreshes, it does not duplicate.
        p.add(&c, &ClientInfo::new("u2", "c3")).await.unwrap();
        assert_eq!(
            p.stats(&c).await.unwrap(),
            PresenceStats {
                num_clients: 5,
                num_users: 3
            }
        );
        let clients: Vec<String> = p
            .list(&c)
            .await
            .unwrap()
            .iter()
            .map(|i| i.client.to_string())
            .collect();
        assert_eq!(clients, ["c1", "c2", "c3", "c4", "c5"]);
        p.remove(&c, "c1").await.unwrap();
        p.remove(&c, "nobody").await.unwrap();
        assert_eq!(
            p.stats(&c).await.unwrap(),
            PresenceStats {
                num_clients: 4,
                num_users: 3
            }
        );
        for client in ["c2", "c3", "c4", "c5"] {
            p.remove(&c, client).await.unwrap();
        }
        assert_eq!(p.num_channels(), 0);
        assert!(p.list(&c).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn channels_are_separate() {
        let p = MemoryPresence::new();
        let (a, b) = (
            ChannelName::new("a").unwrap(),
            ChannelName::new("b").unwrap(),
        );
        p.add(&a, &ClientInfo::new("u", "c")).await.unwrap();
        assert_eq!(p.stats(&b).await.unwrap().num_clients, 0);
        assert_eq!(p.stats(&a).await.unwrap().num_clients, 1);
        let mut info = ClientInfo::new("u", "c");
        info.conn_info = Some(bytes::Bytes::from_static(b"{\"name\":\"x\"}"));
        p.add(&a, &info).await.unwrap();
        assert_eq!(p.list(&a).await.unwrap(), [info]);
    }
}
