//! [`RedisStore`]: the hub's [`Store`] in Redis.
//!
//! Owns turning store calls into script calls and replies back into hub
//! types. Each publish is one `EVALSHA` of the publish script (see
//! [`crate::scripts`]), queued synchronously in call order (see
//! [`crate::conn`]), so offsets follow call order and a dropped future does
//! not cancel the write. With
//! [`fan_out_from_store`](crate::RedisConfig::fan_out_from_store) on, the
//! same script publishes to the channel's topic, and a publication without
//! history or idempotency key is a single `PUBLISH`: the store is the
//! fan-out, and [`RedisBroker::publish`](crate::RedisBroker) only resolves.

use std::sync::Arc;
use std::time::Duration;

use hub::{
    BoxFuture, ChannelName, Error, HistoryFilter, HistoryResult, Publication, PublishOptions,
    PublishResult, Result, Store, StreamPosition,
};
use rand::distr::{Alphanumeric, SampleString};
use redis::Value;

use crate::conn::Command;
use crate::error::RedisBackendError;
use crate::wire;
use crate::Core;

/// Longest TTL sent to Redis: about 30 years, "forever" here, and small
/// enough for Lua numbers and Redis's expiry arithmetic.
const FOREVER_MS: u128 = 30 * 365 * 86_400 * 1000;

/// Largest history size or read limit sent to Redis (exact in Lua numbers).
const MAX_COUNT: usize = 1 << 40;

/// `d` in whole milliseconds for Redis, at least 1 (a non-zero TTL below a
/// millisecond still keeps) and at most [`FOREVER_MS`].
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, FOREVER_MS) as u64
}

/// A fresh epoch for a stream the script may have to create.
fn new_epoch() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 8)
}

fn arg(s: impl Into<Vec<u8>>) -> Vec<u8> {
    s.into()
}

/// The Redis [`Store`]. Cheap to clone; get one from
/// [`RedisBackend::store`](crate::RedisBackend::store).
#[derive(Clone)]
pub struct RedisStore {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.core.config.prefix)
            .finish()
    }
}

impl RedisStore {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    fn publish_without_stream(
        &self,
        channel: &ChannelName,
        mut publication: Publication,
    ) -> BoxFuture<'static, Result<PublishResult>> {
        publication.offset = 0;
        let done = |publication| PublishResult {
            publication,
            position: StreamPosition::default(),
            duplicate: false,
        };
        if !self.core.config.fan_out_from_store {
            return hub::ready(Ok(done(publication)));
        }
        let message = wire::encode_publication_message(0, "", &wire::encode_body(&publication));
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.core.keys.topic(channel)).arg(message);
        let reply = self.core.commands.send(Command::Plain(cmd));
        Box::pin(async move {
            reply.await.map_err(Error::storage)?;
            Ok(done(publication))
        })
    }
}

impl Store for RedisStore {
    fn publish(
        &self,
        channel: &ChannelName,
        mut publication: Publication,
        opts: &PublishOptions,
    ) -> BoxFuture<'static, Result<PublishResult>> {
        let history = opts.history_enabled();
        if !history && opts.idempotency_key.is_none() {
            return self.publish_without_stream(channel, publication);
        }
        let core = &self.core;
        let keys = &core.keys;
        let idempotency_key = match &opts.idempotency_key {
            Some(key) => keys.idempotency(channel, key),
            None => keys.meta(channel).into_bytes(),
        };
        let topic = if core.config.fan_out_from_store {
            keys.topic(channel)
        } else {
            String::new()
        };
        let (size, ttl) = if history {
            (opts.history_size.min(MAX_COUNT), millis(opts.history_ttl))
        } else {
            (0, 0)
        };
        let meta_ttl = millis(
            opts.history_meta_ttl
                .unwrap_or(core.config.history_meta_ttl),
        );
        let idempotency_ttl = if opts.idempotency_key.is_some() {
            millis(core.config.idempotency_ttl)
        } else {
            0
        };
        let command = Command::script(
            &core.scripts.publish,
            vec![
                arg(keys.meta(channel)),
                arg(keys.history(channel)),
                idempotency_key,
            ],
            vec![
                arg(topic),
                wire::encode_body(&publication),
                arg(size.to_string()),
                arg(ttl.to_string()),
                arg(meta_ttl.to_string()),
                arg(new_epoch()),
                arg(idempotency_ttl.to_string()),
            ],
        );
        let reply = core.commands.send(command);
        Box::pin(async move {
            let reply = reply.await.map_err(Error::storage)?;
            let (duplicate, offset, epoch) = parse_publish(reply).map_err(Error::storage)?;
            publication.offset = offset;
            let position = if offset == 0 && epoch.is_empty() {
                StreamPosition::default()
            } else {
                StreamPosition::new(offset, epoch)
            };
            Ok(PublishResult {
                publication,
                position,
                duplicate,
            })
        })
    }

    fn history(
        &self,
        channel: &ChannelName,
        filter: HistoryFilter,
    ) -> BoxFuture<'static, Result<HistoryResult>> {
        let core = &self.core;
        let since = filter.since.as_ref().map(|s| s.offset);
        let mut limit = filter.limit.map_or(-1, |l| l.min(MAX_COUNT) as i64);
        let bound = match (since, filter.reverse) {
            (None, false) => "-".to_owned(),
            (None, true) => "+".to_owned(),
            (Some(offset), _) => format!("({offset}-0"),
        };
        if filter.reverse && since == Some(0) {
            // Nothing comes before offset 0 (and Redis rejects "(0-0" as an
            // upper bound): read the position only.
            limit = 0;
        }
        let command = Command::script(
            &core.scripts.history,
            vec![
                arg(core.keys.meta(channel)),
                arg(core.keys.history(channel)),
            ],
            vec![
                arg(new_epoch()),
                arg(millis(core.config.history_meta_ttl).to_string()),
                arg(bound),
                arg(limit.to_string()),
                arg(if filter.reverse { "1" } else { "0" }),
            ],
        );
        let reply = core.commands.send(command);
        Box::pin(async move {
            let reply = reply.await.map_err(Error::storage)?;
            parse_history(reply).map_err(Error::storage)
        })
    }

    fn remove_history(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.core.keys.history(channel));
        let reply = self.core.commands.send(Command::Plain(cmd));
        Box::pin(async move {
            reply.await.map_err(Error::storage)?;
            Ok(())
        })
    }
}

// ---- replies ----

fn bad(what: &str, value: &Value) -> RedisBackendError {
    RedisBackendError::Reply(format!("{what}: {value:?}"))
}

pub(crate) fn as_u64(value: &Value, what: &str) -> Result<u64, RedisBackendError> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| bad(what, value)),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(what, value)),
        _ => Err(bad(what, value)),
    }
}

pub(crate) fn as_bytes<'a>(value: &'a Value, what: &str) -> Result<&'a [u8], RedisBackendError> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        _ => Err(bad(what, value)),
    }
}

fn as_string(value: &Value, what: &str) -> Result<String, RedisBackendError> {
    String::from_utf8(as_bytes(value, what)?.to_vec()).map_err(|_| bad(what, value))
}

pub(crate) fn as_array(value: Value, what: &str) -> Result<Vec<Value>, RedisBackendError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad(what, &other)),
    }
}

fn parse_publish(reply: Value) -> Result<(bool, u64, String), RedisBackendError> {
    let items = as_array(reply, "publish reply")?;
    match items.as_slice() {
        [duplicate, offset, epoch] => Ok((
            as_u64(duplicate, "publish duplicate flag")? == 1,
            as_u64(offset, "publish offset")?,
            as_string(epoch, "publish epoch")?,
        )),
        _ => Err(RedisBackendError::Reply(format!(
            "publish reply of {} items",
            items.len()
        ))),
    }
}

/// The offset in a history entry ID, `<offset>-0`.
fn offset_of(id: &Value) -> Result<u64, RedisBackendError> {
    let id = as_bytes(id, "history entry id")?;
    std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.strip_suffix("-0"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RedisBackendError::Reply(format!(
                "history entry id {:?}",
                String::from_utf8_lossy(id)
            ))
        })
}

pub(crate) fn parse_history(reply: Value) -> Result<HistoryResult, RedisBackendError> {
    let items = as_array(reply, "history reply")?;
    let (head, entries) = items.split_at(items.len().min(2));
    let [top, epoch] = head else {
        return Err(RedisBackendError::Reply("history reply too short".into()));
    };
    if entries.len() % 2 != 0 {
        return Err(RedisBackendError::Reply(
            "history reply with an odd entry list".into(),
        ));
    }
    let position = StreamPosition::new(as_u64(top, "history top")?, as_string(epoch, "epoch")?);
    let publications = entries
        .chunks_exact(2)
        .map(|pair| {
            let offset = offset_of(&pair[0])?;
            let body = as_bytes(&pair[1], "history entry")?;
            Ok(wire::decode_body(body, offset)?)
        })
        .collect::<Result<Vec<_>, RedisBackendError>>()?;
    Ok(HistoryResult {
        publications,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_clamps() {
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(Duration::MAX), FOREVER_MS as u64);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(parse_publish(Value::Int(1)).is_err());
        assert!(parse_publish(Value::Array(vec![Value::Int(0)])).is_err());
        assert!(parse_history(Value::Array(vec![Value::Int(1)])).is_err());
        let odd = Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"e".to_vec()),
            Value::BulkString(b"1-0".to_vec()),
        ]);
        assert!(parse_history(odd).is_err());
        let bad_id = Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"e".to_vec()),
            Value::BulkString(b"1-1".to_vec()),
            Value::BulkString(wire::encode_body(&Publication::new("1"))),
        ]);
        assert!(parse_history(bad_id).is_err());
        let negative = Value::Array(vec![
            Value::Int(0),
            Value::Int(-1),
            Value::BulkString(b"e".to_vec()),
        ]);
        assert!(parse_publish(negative).is_err());
    }
}
