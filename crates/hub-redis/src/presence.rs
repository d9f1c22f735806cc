//! [`RedisPresence`]: the hub's [`PresenceStore`] in Redis, shared by every
//! node.
//!
//! Owns the presence layout: per channel, a hash of client id to encoded
//! [`ClientInfo`] and beside it a sorted set of client id to expiry time
//! (Redis 7.0 has no per-field hash expiry). `add` writes both and pushes
//! the expiry `presence_ttl` ahead; readers skip expired entries; both keys
//! also expire as a whole `presence_ttl` after the last add, so a channel
//! whose nodes all died leaves nothing behind. The hub keeps this node's
//! entries alive with [`Hub::refresh_presence`](hub::Hub::refresh_presence);
//! an entry of a node that stopped is gone from answers at most
//! `presence_ttl` after its last refresh.
//!
//! Expired entries are removed by [`RedisPresence::expire`], which returns
//! what it removed, so that exactly one caller (of however many nodes
//! sweep) learns of each vanished client and can announce its leave. An
//! entry nobody swept is dropped by a later `add` once it has been expired
//! for another `presence_ttl`.

use std::collections::HashSet;
use std::sync::Arc;

use hub::{BoxFuture, ChannelName, ClientInfo, Error, PresenceStats, PresenceStore, Result};
use redis::Value;

use crate::conn::Command;
use crate::error::RedisBackendError;
use crate::store::{as_array, as_bytes, millis};
use crate::wire;
use crate::Core;

/// The Redis [`PresenceStore`]. Cheap to clone; get one from
/// [`RedisBackend::presence`](crate::RedisBackend::presence).
#[derive(Clone)]
pub struct RedisPresence {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.core.config.prefix)
            .field("ttl", &self.core.config.presence_ttl)
            .finish()
    }
}

impl RedisPresence {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    fn keys(&self, channel: &ChannelName) -> Vec<Vec<u8>> {
        let keys = &self.core.keys;
        vec![
            keys.presence(channel).into_bytes(),
            keys.presence_expiry(channel).into_bytes(),
        ]
    }

    /// Everyone present, unsorted.
    fn read(&self, channel: &ChannelName) -> BoxFuture<'static, Result<Vec<ClientInfo>>> {
        let command = Command::script(&self.core.scripts.presence_read, self.keys(channel), vec![]);
        let reply = self.core.commands.send(command);
        Box::pin(async move {
            let reply = reply.await.map_err(Error::presence)?;
            parse_entries(reply).map_err(Error::presence)
        })
    }
}

impl RedisPresence {
    /// Removes up to `limit` expired entries of `channel` and returns them:
    /// the clients of nodes that stopped refreshing (crashed, or cut off
    /// from Redis for longer than `presence_ttl`). Atomic: when several
    /// nodes sweep the same channel, each entry is returned to one of them.
    pub fn expire(
        &self,
        channel: &ChannelName,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<ClientInfo>>> {
        let command = Command::script(
            &self.core.scripts.presence_expire,
            self.keys(channel),
            vec![limit.max(1).to_string().into_bytes()],
        );
        let reply = self.core.commands.send(command);
        Box::pin(async move {
            let reply = reply.await.map_err(Error::presence)?;
            parse_entries(reply).map_err(Error::presence)
        })
    }
}

/// Decodes a flat (id, value, id, value...) reply as raw pairs.
pub(crate) fn parse_pairs(reply: Value) -> Result<Vec<(String, Vec<u8>)>, RedisBackendError> {
    let items = as_array(reply, "pair list")?;
    if items.len() % 2 != 0 {
        return Err(RedisBackendError::Reply(
            "reply with an odd field list".into(),
        ));
    }
    items
        .chunks_exact(2)
        .map(|pair| {
            let id = String::from_utf8_lossy(as_bytes(&pair[0], "id")?).into_owned();
            Ok((id, as_bytes(&pair[1], "value")?.to_vec()))
        })
        .collect()
}

fn parse_entries(reply: Value) -> Result<Vec<ClientInfo>, RedisBackendError> {
    let items = as_array(reply, "presence reply")?;
    if items.len() % 2 != 0 {
        return Err(RedisBackendError::Reply(
            "presence reply with an odd field list".into(),
        ));
    }
    items
        .chunks_exact(2)
        .map(|pair| Ok(wire::decode_info(as_bytes(&pair[1], "presence entry")?)?))
        .collect()
}

impl PresenceStore for RedisPresence {
    fn add(&self, channel: &ChannelName, info: &ClientInfo) -> BoxFuture<'static, Result<()>> {
        let ttl = millis(self.core.config.presence_ttl);
        let command = Command::script(
            &self.core.scripts.presence_add,
            self.keys(channel),
            vec![
                info.client.as_bytes().to_vec(),
                wire::encode_info(info),
                ttl.to_string().into_bytes(),
            ],
        );
        let reply = self.core.commands.send(command);
        Box::pin(async move {
            reply.await.map_err(Error::presence)?;
            Ok(())
        })
    }

    fn remove(&self, channel: &ChannelName, client: &str) -> BoxFuture<'static, Result<()>> {
        let command = Command::script(
            &self.core.scripts.presence_remove,
            self.keys(channel),
            vec![client.as_bytes().to_vec()],
        );
        let reply = self.core.commands.send(command);
        Box::pin(async move {
            reply.await.map_err(Error::presence)?;
            Ok(())
        })
    }

    fn list(&self, channel: &ChannelName) -> BoxFuture<'static, Result<Vec<ClientInfo>>> {
        let read = self.read(channel);
        Box::pin(async move {
            let mut list = read.await?;
            list.sort_by(|a, b| a.client.cmp(&b.client));
            Ok(list)
        })
    }

    fn stats(&self, channel: &ChannelName) -> BoxFuture<'static, Result<PresenceStats>> {
        let read = self.read(channel);
        Box::pin(async move {
            let list = read.await?;
            let users: HashSet<&str> = list.iter().map(|i| &*i.user).collect();
            Ok(PresenceStats {
                num_clients: list.len(),
                num_users: users.len(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_garbage_fails() {
        let info = ClientInfo::new("u", "c");
        let ok = Value::Array(vec![
            Value::BulkString(b"c".to_vec()),
            Value::BulkString(wire::encode_info(&info)),
        ]);
        assert_eq!(parse_entries(ok).unwrap(), [info]);
        assert!(parse_entries(Value::Array(vec![Value::Int(1)])).is_err());
        let garbage = Value::Array(vec![
            Value::BulkString(b"c".to_vec()),
            Value::BulkString(b"\x07junk".to_vec()),
        ]);
        assert!(parse_entries(garbage).is_err());
    }
}
