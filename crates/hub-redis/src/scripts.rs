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
///
/// Entries that expired are left for [`PRESENCE_EXPIRE`], which announces
/// them; only those expired for a whole further TTL (nobody swept them) are
/// dropped here, so that the hash stays bounded without a sweeper.
const PRESENCE_ADD: &str = r#"
local now, ttl = now_ms(), tonumber(ARGV[3])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl, 'LIMIT', 0, 100)
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
  redis.call('ZREM', KEYS[2], unpack(stale))
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

/// Presence read: the entries that have not expired, as HGETALL returns
/// them (client, info, client, info...). Expired entries are skipped, not
/// dropped: [`PRESENCE_EXPIRE`] drops them and reports them once.
/// KEYS: hash, expiry zset.
const PRESENCE_READ: &str = r#"
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now_ms(), '+inf')
local out = {}
for i = 1, #live, 500 do
  local last = math.min(i + 499, #live)
  local infos = redis.call('HMGET', KEYS[1], unpack(live, i, last))
  for j = i, last do
    local info = infos[j - i + 1]
    if info then
      out[#out + 1] = live[j]
      out[#out + 1] = info
    end
  end
end
return out
"#;

/// Presence sweep: removes up to ARGV[1] expired entries and returns them
/// (client, info, ...), so that exactly one caller learns of each and can
/// announce its leave. KEYS: hash, expiry zset.
const PRESENCE_EXPIRE: &str = r#"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, client in ipairs(expired) do
  local info = redis.call('HGET', KEYS[1], client)
  redis.call('HDEL', KEYS[1], client)
  redis.call('ZREM', KEYS[2], client)
  if info then
    out[#out + 1] = client
    out[#out + 1] = info
  end
end
return out
"#;

/// Catch-up read after the subscription connection came back: what a
/// channel's stream holds after a position, without creating or touching
/// anything (a channel without a stream answers `{0, ''}`).
///
/// KEYS: meta, history. ARGV: epoch of the last publication seen ('' if
/// none), offset of it. When the epoch differs, the whole stream is read.
/// Returns {top offset, epoch, id1, body1, ...} like [`HISTORY`].
const CATCH_UP: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then return {0, ''} end
local out = {tonumber(m[2]) or 0, m[1]}
local bound = '-'
if m[1] == ARGV[1] then bound = '(' .. ARGV[2] .. '-0' end
local entries = redis.call('XRANGE', KEYS[2], bound, '+')
for _, e in ipairs(entries) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][4]
end
return out
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
    pub(crate) presence_expire: Arc<Script>,
    pub(crate) catch_up: Arc<Script>,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new("publish", PUBLISH),
            history: Script::new("history", HISTORY),
            presence_add: Script::new("presence_add", PRESENCE_ADD),
            presence_remove: Script::new("presence_remove", PRESENCE_REMOVE),
            presence_read: Script::new("presence_read", PRESENCE_READ),
            presence_expire: Script::new("presence_expire", PRESENCE_EXPIRE),
            catch_up: Script::new("catch_up", CATCH_UP),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 7] {
        [
            &*self.publish,
            &*self.history,
            &*self.presence_add,
            &*self.presence_remove,
            &*self.presence_read,
            &*self.presence_expire,
            &*self.catch_up,
        ]
    }
}
