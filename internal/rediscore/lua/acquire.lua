-- acquire: take, re-enter, or (fair mode) queue for one lock, in one atomic step.
--
-- KEYS[1] lock hash     {o = owner, n = hold count, f = fencing token, r = ticket of the latest acquisition}
-- KEYS[2] fence string  last fencing token issued for the name (kept FENCE_RETENTION after each issue)
-- KEYS[3] queue zset    ticket -> arrival sequence (fair mode waiting room)
-- KEYS[4] beat zset     ticket -> heartbeat deadline, ms of server TIME
-- KEYS[5] channel       shard channel of the name (declared as a key so that cluster routing sees it)
-- KEYS[6] grant hash    ticket -> "<grant lease ms>:<fence retention ms>:<owner>", what
--                       release.lua needs to hand the lock straight to a queued ticket
-- ARGV[1] owner token
-- ARGV[2] ticket (unique per acquiring call; repeated attempts with it do not count the hold twice,
--         and an attempt by the ticket the lock was granted to claims the grant)
-- ARGV[3] lease, ms
-- ARGV[4] "1" fair (honour and join the queue), "0" barging (ignore the queue)
-- ARGV[5] waiter TTL, ms (fair mode); "0" = a single attempt that honours the queue but does not join it
-- ARGV[6] fence retention, ms
-- ARGV[7] publish command: "SPUBLISH" or "PUBLISH"
-- Reply: {1, fence, count}     acquired, re-entered or claimed (fence kept, count after)
--        {0, pttl, position}   not acquired: holder's remaining lease in ms (-2 when the lock is
--                              free but another waiter is at the head), 0-based queue position
--                              (-1 when not queued)
local fair = ARGV[4] == '1'
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
  if fair and redis.call('ZREM', KEYS[3], ARGV[2]) == 1 then
    redis.call('ZREM', KEYS[4], ARGV[2])
    redis.call('HDEL', KEYS[6], ARGV[2])
  end
  return {1, tonumber(h[3]), n}
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local head = false
if fair then
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1] or false
  if head then
    -- Evict waiters whose heartbeat lapsed (a bounded batch per call).
    local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms, 'LIMIT', 0, 64)
    if #dead > 0 then
      redis.call('ZREM', KEYS[3], unpack(dead))
      redis.call('ZREM', KEYS[4], unpack(dead))
      redis.call('HDEL', KEYS[6], unpack(dead))
      head = redis.call('ZRANGE', KEYS[3], 0, 0)[1] or false
    end
  end
end

if h[1] == false and (head == false or head == ARGV[2]) then
  -- Free, and it is our turn: take it with a fresh fencing token that is
  -- greater than the stored last token and not below the server clock in
  -- microseconds (which keeps it increasing if the fence key was evicted).
  local fence = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1,
    tonumber(t[1]) * 1000000 + tonumber(t[2]))
  local fs = string.format('%.0f', fence)
  redis.call('HSET', KEYS[1], 'o', ARGV[1], 'n', 1, 'f', fs, 'r', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], lease)
  redis.call('SET', KEYS[2], fs, 'PX', ARGV[6])
  if head ~= false then
    redis.call('ZREM', KEYS[3], ARGV[2])
    redis.call('ZREM', KEYS[4], ARGV[2])
    redis.call('HDEL', KEYS[6], ARGV[2])
  end
  return {1, fence, 1}
end

local pos = -1
local ttl = tonumber(ARGV[5])
if fair and ttl > 0 then
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) == false then
    local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    local seq = 1
    if tail[2] then seq = tonumber(tail[2]) + 1 end
    redis.call('ZADD', KEYS[3], seq, ARGV[2])
    -- A grant lasts no longer than the waiter's heartbeat TTL, so that a
    -- grant to a waiter that died runs out as soon as its place would have.
    redis.call('HSET', KEYS[6], ARGV[2], math.min(lease, ttl) .. ':' .. ARGV[6] .. ':' .. ARGV[1])
  end
  redis.call('ZADD', KEYS[4], now_ms + ttl, ARGV[2])
  -- The queue keys vanish on their own when the last heartbeat lapses.
  local last_beat = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
  local expire_at = tonumber(last_beat[2]) + 1000
  redis.call('PEXPIREAT', KEYS[3], expire_at)
  redis.call('PEXPIREAT', KEYS[4], expire_at)
  redis.call('PEXPIREAT', KEYS[6], expire_at)
  pos = redis.call('ZRANK', KEYS[3], ARGV[2])
  if h[1] == false and head ~= false then
    -- Free, but another waiter is ahead: make sure it knows.
    redis.call(ARGV[7], KEYS[5], head)
  end
end
return {0, redis.call('PTTL', KEYS[1]), pos}
