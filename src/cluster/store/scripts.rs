//! The Lua scripts the shared store runs (docs/fleet.md): GCRA over several buckets in one
//! call, and the concurrency leases (acquire, renew). Each reads the clock once: Redis `TIME`
//! (one clock for the whole fleet), or the caller's time in microseconds when
//! `clock = "client"` (`ARGV[1]`, empty for the server's clock).
//!
//! Owns: the scripts' text and their argument order. Does not own: connecting, timeouts and
//! the breaker (`store.rs`), nor what a refusal means on the wire (`policy/rate_limit.rs`).

/// Reads the clock in microseconds into `now_us`: `ARGV[1]` when set, else Redis `TIME`.
const NOW: &str = r"
local now_us
if ARGV[1] ~= '' then
  now_us = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
";

/// GCRA with governor's maths over every bucket of one request, all or nothing: `KEYS` are
/// the buckets; `ARGV[2i]`, `ARGV[2i+1]` are bucket i's emission interval `t` and its
/// tolerance `tau = t * (burst - 1)`, in microseconds. A bucket denies when `now < tat - tau`;
/// then nothing is spent and the answer is `{0, i, wait_us}`. Otherwise every bucket's
/// `tat` becomes `max(tat, now) + t` (kept until it is full again) and the answer is
/// `{1, 0, 0}`.
pub(super) const GCRA: &str = r"
local tats = {}
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key)) or now_us
  if now_us < tat - tau then
    return {0, i, tat - tau - now_us}
  end
  tats[i] = math.max(tat, now_us) + t
end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((tats[i] - now_us) / 1000) + 1
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', ttl)
end
return {1, 0, 0}
";

/// One lease among at most `ARGV[3]` in the sorted set `KEYS[1]`: leases older than
/// `ARGV[4]` ms are dropped, then member `ARGV[2]` is added with the time in ms as its score
/// when there is room, and the set lives one lease longer. `{1, held}` or `{0, held}`.
pub(super) const ACQUIRE: &str = r"
local now = math.floor(now_us / 1000)
local lease = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[3]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
return {1, held + 1}
";

/// Renews held leases: member `ARGV[i + 2]` of `KEYS[i]` gets the current time as its score
/// (only if it is still there: an expired lease is not brought back) and the set lives one
/// lease (`ARGV[2]` ms) longer. Answers how many were still held.
pub(super) const RENEW: &str = r"
local now = math.floor(now_us / 1000)
local lease = tonumber(ARGV[2])
local kept = 0
for i, key in ipairs(KEYS) do
  kept = kept + redis.call('ZADD', key, 'XX', 'CH', now, ARGV[i + 2])
  redis.call('PEXPIRE', key, lease)
end
return kept
";

/// A script with the clock prologue.
pub(super) fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{NOW}{body}"))
}
