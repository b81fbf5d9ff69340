//! The Lua scripts the shared store runs (docs/fleet.md): one request's admission (GCRA over
//! its rate buckets and its concurrency lease, in one call) and the leases' renewal. Each reads the clock once: Redis `TIME`
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

/// Admits one request: GCRA with governor's maths over its rate buckets, all or nothing,
/// then (optionally) a concurrency lease, in one call. `KEYS` are the buckets, then the
/// lease's sorted set when `ARGV[2]` (the lease's member) is not empty; `ARGV[3]` is the
/// cap, `ARGV[4]` the lease in ms; `ARGV[3 + 2i]`, `ARGV[4 + 2i]` are bucket i's emission
/// interval `t` and its tolerance `tau = t * (burst - 1)`, in microseconds.
///
/// A bucket denies when `now < tat - tau`: nothing is spent, the answer is
/// `{0, i, wait_us}`. Otherwise every bucket's `tat` becomes `max(tat, now) + t` (kept until
/// it is full again). Then the lease: leases older than one lease are dropped; when `cap`
/// are held the answer is `{2, held, 0}` (the rates stay spent, as on one replica), else the
/// member is added with the time in ms as its score, the set lives one lease longer, and the
/// answer is `{1, 0, 0}`.
pub(super) const ADMIT: &str = r"
local leased = ARGV[2] ~= ''
local buckets = #KEYS
if leased then buckets = buckets - 1 end
local tats = {}
for i = 1, buckets do
  local t = tonumber(ARGV[3 + 2 * i])
  local tau = tonumber(ARGV[4 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now_us
  if now_us < tat - tau then
    return {0, i, tat - tau - now_us}
  end
  tats[i] = math.max(tat, now_us) + t
end
for i = 1, buckets do
  local ttl = math.ceil((tats[i] - now_us) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', ttl)
end
if leased then
  local key = KEYS[buckets + 1]
  local now = math.floor(now_us / 1000)
  local lease = tonumber(ARGV[4])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - lease)
  local held = redis.call('ZCARD', key)
  if held >= tonumber(ARGV[3]) then
    return {2, held, 0}
  end
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, lease)
end
return {1, 0, 0}
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
