//! The Lua scripts that make each store and presence operation one atomic
//! round trip.
//!
//! Owns the script sources and their SHA1 digests. Keys come from
//! [`crate::keys`]; the scripts are sent by `conn` (as `EVALSHA`, falling
//! back to `EVAL` when Redis has forgotten them). Times are Redis's own
//! clock (`TIME`), so that nodes with skewed clocks agree on expiry.
//! Offsets pass through Lua numbers, exact up to 2^53.

use std::sync::Arc;

use redis::Script as RedisScript;

/// Helpers prepended to every script.
const COMMON: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drops the expired prefix of a history stream (entries whose field x,
-- their expiry, is not after now). Only a prefix goes, so what is kept
-- stays contiguous. Reads start with one entry and widen, so the common
-- case (nothing expired) reads a single entry.
local function trim_expired(stream, now)
  local start, batch, last = '-', 1, nil
  while true do
    local entries = redis.call('XRANGE', stream, start, '+', 'COUNT', batch)
    if #entries == 0 then
      if last then redis.call('DEL', stream) end
      return
    end
    for _, e in ipairs(entries) do
      if tonumber(e[2][2]) > now then
        if last then redis.call('XTRIM', stream, 'MINID', e[1]) end
        return
      end
      last = e[1]
    end
    start = '(' .. last
    if batch < 256 then batch = batch * 4 end
  end
end
"#;

/// Publish: idempotency check, offset, epoch, history append and trims,
/// TTLs, and the fan-out `PUBLISH`, in one call.
///
/// KEYS: meta, history, idempotency key (any key of the channel if none).
/// ARGV: topic ('' = do not publish), body, history size (0 = no history),
/// history TTL ms, meta TTL ms, epoch for a new stream, idempotency TTL ms
/// (0 = no key).
/// Returns {duplicate 0/1, offset, epoch}.
const PUBLISH: &str = r#"
local meta, stream, idem = KEYS[1], KEYS[2], KEYS[3]
local topic, body = ARGV[1], ARGV[2]
local size, ttl, meta_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local idem_ttl = tonumber(ARGV[7])
if idem_ttl > 0 then
  local seen = redis.call('GET', idem)
  if seen then
    local sep = string.find(seen, ':', 1, true)
    return {1, tonumber(string.sub(seen, 1, sep - 1)), string.sub(seen, sep + 1)}
  end
end
local offset, epoch = 0, ''
if size > 0 then
  local now = now_ms()
  epoch = redis.call('HGET', meta, 'e')
  if not epoch then
    epoch = ARGV[6]
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', epoch, 's', 0)
  end
  offset = redis.call('HINCRBY', meta, 's', 1)
  redis.call('HSET', meta, 't', ARGV[5])
  redis.call('PEXPIRE', meta, ARGV[5])
  trim_expired(stream, now)
  redis.call('XADD', stream, 'MAXLEN', ARGV[3], string.format('%d-0', offset),
    'x', string.format('%d', now + ttl), 'd', body)
  if redis.call('PTTL', stream) < ttl then
    redis.call('PEXPIRE', stream, ARGV[4])
  end
end
if idem_ttl > 0 then
  redis.call('SET', idem, string.format('%d', offset) .. ':' .. epoch, 'PX', idem_ttl)
end
if topic ~= '' then
  redis.call('PUBLISH', topic, 'p' .. string.format('%d', offset) .. ':' .. epoch .. ':' .. body)
end
return {0, offset, epoch}
"#;

/// History read (and position): creates the stream if missing, keeps its
/// meta data alive, drops expired entries, reads a range.
///
/// KEYS: meta, history.
/// ARGV: epoch for a new stream, default meta TTL ms, range bound ('-'/'+'
/// or an exclusive '(<offset>-0'), limit (-1 = all, 0 = position only),
/// reverse (0/1).
/// Returns {top offset, epoch, id1, body1, id2, body2, ...}.
const HISTORY: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local bound, limit, reverse = ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
local m = redis.call('HMGET', meta, 'e', 's', 't')
local epoch, top, meta_ttl = m[1], tonumber(m[2]), tonumber(m[3])
if not epoch then
  epoch, top, meta_ttl = ARGV[1], 0, tonumber(ARGV[2])
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 's', 0, 't', meta_ttl)
end
if not top then top = 0 end
if not meta_ttl then meta_ttl = tonumber(ARGV[2]) end
redis.call('PEXPIRE', meta, meta_ttl)
local out = {top, epoch}
if limit == 0 then return out end
trim_expired(stream, now_ms())
local entries
if reverse then
  if limit > 0 then
    entries = redis.call('XREVRANGE', stream, bound, '-', 'COUNT', limit)
  else
    entries = redis.call('XREVRANGE', stream, bound, '-')
  end
else
  if limit > 0 then
    entries = redis.call('XRANGE', stream, bound, '+', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', stream, bound, '+')
  end
end
for _, e in ipairs(entries) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][4]
end
return out
"#;

/// Presence add/refresh. KEYS: hash, expiry zset. ARGV: client, info, TTL ms.
const PRESENCE_ADD: &str = r#"
local now, ttl = now_ms(), tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"#;

/// Presence remove. KEYS: hash, expiry zset. ARGV: client.
const PRESENCE_REMOVE: &str = r#"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"#;

/// Presence read: drops expired entries, returns the rest as HGETALL does.
/// KEYS: hash, expiry zset.
const PRESENCE_READ: &str = r#"
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
return redis.call('HGETALL', KEYS[1])
"#;

/// One script: its source and digest.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) source: String,
    pub(crate) sha: String,
}

impl Script {
    fn new(name: &'static str, body: &str) -> Arc<Self> {
        let source = format!("{COMMON}{body}");
        let sha = RedisScript::new(&source).get_hash().to_owned();
        Arc::new(Self { name, source, sha })
    }
}

/// Every script this crate runs.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) publish: Arc<Script>,
    pub(crate) history: Arc<Script>,
    pub(crate) presence_add: Arc<Script>,
    pub(crate) presence_remove: Arc<Script>,
    pub(crate) presence_read: Arc<Script>,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new("publish", PUBLISH),
            history: Script::new("history", HISTORY),
            presence_add: Script::new("presence_add", PRESENCE_ADD),
            presence_remove: Script::new("presence_remove", PRESENCE_REMOVE),
            presence_read: Script::new("presence_read", PRESENCE_READ),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 5] {
        [
            &*self.publish,
            &*self.history,
            &*self.presence_add,
            &*self.presence_remove,
            &*self.presence_read,
        ]
    }
}
