//! The Lua scripts: the recovery log's append and the session restore, each
//! atomic in Redis.

/// Appends one event to a namespace's recovery log.
///
/// KEYS: log stream, offset index (sorted set offset → sequence), sequence
/// counter. ARGV: offset, payload, max entries, TTL in ms, `1` to write a
/// gap marker first (events may have been lost before this one).
///
/// Entry ids are `<seq>-0` with `seq` from the counter, so "every entry
/// after the client's" is one `XRANGE`. Everything expires together when
/// the namespace has been quiet for the TTL.
pub(crate) const LOG: &str = r"
local maxlen = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if ARGV[5] == '1' then
  local g = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, string.format('%d-0', g), 'gap', '1')
end
local s = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, string.format('%d-0', s), 'o', ARGV[1], 'd', ARGV[2])
redis.call('ZADD', KEYS[2], s, ARGV[1])
if s > maxlen then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', s - maxlen)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return s
";

/// Takes a saved session and the log entries after the client's offset.
///
/// KEYS: saved session, log stream, offset index. ARGV: offset.
/// Returns nil (no such session), `{session}` (the session, but the
/// client's offset is no longer in the log: not recoverable), or
/// `{session, entries}` (every entry after the offset).
pub(crate) const RESTORE: &str = r"
local saved = redis.call('GET', KEYS[1])
if not saved then
  return false
end
redis.call('DEL', KEYS[1])
local seq = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not seq then
  return {saved}
end
local id = string.format('%d-0', tonumber(seq))
local here = redis.call('XRANGE', KEYS[2], id, id)
if #here == 0 then
  return {saved}
end
return {saved, redis.call('XRANGE', KEYS[2], '(' .. id, '+')}
";

/// Every script, loaded on each connect.
pub(crate) fn all() -> Vec<&'static str> {
    vec![LOG, RESTORE]
}

/// The SHA1 Redis knows `source` by.
pub(crate) fn sha(source: &str) -> String {
    redis::Script::new(source).get_hash().to_owned()
}
