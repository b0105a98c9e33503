-- acquire: take, re-enter, or (fair mode) queue for one lock, in one atomic step.
--
-- KEYS[1] lock hash     {o = owner, n = hold count, f = fencing token, r = ticket of the latest acquisition}
-- KEYS[2] fence string  last fencing token issued for the name (kept FENCE_RETENTION after each issue)
-- KEYS[3] queue zset    ticket -> arrival sequence (fair mode waiting room)
-- KEYS[4] beat zset     ticket -> heartbeat deadline, ms of server TIME
-- KEYS[5] channel       shard channel of the name (declared as a key so that cluster routing sees it)
-- ARGV[1] owner token
-- ARGV[2] ticket (unique per acquiring call; repeated attempts with it do not count the hold twice)
-- ARGV[3] lease, ms
-- ARGV[4] "1" fair (honour and join the queue), "0" barging (ignore the queue)
-- ARGV[5] waiter TTL, ms (fair mode); "0" = a single attempt that honours the queue but does not join it
-- ARGV[6] fence retention, ms
-- ARGV[7] publish command: "SPUBLISH" or "PUBLISH"
-- Reply: {1, fence, count}     acquired, or re-entered (fence kept, count after)
--        {0, pttl, position}   not acquired: holder's remaining lease in ms (-2 when the lock is
--                              free but another waiter is at the head), 0-based queue position
--                              (-1 when not queued)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fair = ARGV[4] == '1'

-- Evict waiters whose heartbeat lapsed (a bounded batch per call).
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms, 'LIMIT', 0, 64)
if #dead > 0 then
  redis.call('ZREM', KEYS[3], unpack(dead))
  redis.call('ZREM', KEYS[4], unpack(dead))
end

local h = redis.call('HMGET', KEYS[1], 'o', 'n', 'f', 'r')
local lease = tonumber(ARGV[3])

if h[1] == ARGV[1] then
  -- Re-entry: count once per ticket, never shorten the lease.
  local n = tonumber(h[2])
  if h[4] ~= ARGV[2] then
    n = redis.call('HINCRBY', KEYS[1], 'n', 1)
    redis.call('HSET', KEYS[1], 'r', ARGV[2])
  end
  if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
  end
  if fair then
    redis.call('ZREM', KEYS[3], ARGV[2])
    redis.call('ZREM', KEYS[4], ARGV[2])
  end
  return {1, tonumber(h[3]), n}
end

local head = false
if fair then
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1] or false
end

if h[1] == false and (head == false or head == ARGV[2]) then
  -- Free, and it is our turn: take it with a fresh fencing token that is
  -- greater than the stored last token and not below the server clock in
  -- microseconds (which keeps it increasing if the fence key was evicted).
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  local fence = math.max(last + 1, us)
  local fs = string.format('%.0f', fence)
  redis.call('HSET', KEYS[1], 'o', ARGV[1], 'n', 1, 'f', fs, 'r', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], lease)
  redis.call('SET', KEYS[2], fs, 'PX', ARGV[6])
  if head ~= false then
    redis.call('ZREM', KEYS[3], ARGV[2])
    redis.call('ZREM', KEYS[4], ARGV[2])
  end
  return {1, fence, 1}
end

local pos = -1
if fair and tonumber(ARGV[5]) > 0 then
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) == false then
    local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    local seq = 1
    if tail[2] then seq = tonumber(tail[2]) + 1 end
    redis.call('ZADD', KEYS[3], seq, ARGV[2])
  end
  redis.call('ZADD', KEYS[4], now_ms + tonumber(ARGV[5]), ARGV[2])
  -- Both zsets vanish on their own when the last heartbeat lapses.
  local last_beat = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
  local expire_at = tonumber(last_beat[2]) + 1000
  redis.call('PEXPIREAT', KEYS[3], expire_at)
  redis.call('PEXPIREAT', KEYS[4], expire_at)
  pos = redis.call('ZRANK', KEYS[3], ARGV[2])
  if h[1] == false and head ~= false then
    -- Free, but another waiter is ahead: make sure it knows.
    redis.call(ARGV[7], KEYS[5], head)
  end
end
return {0, redis.call('PTTL', KEYS[1]), pos}
