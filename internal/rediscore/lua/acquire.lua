-- acquire: take, re-enter, or (fair mode) queue for one lock, in one atomic step.
--
-- KEYS[1] lock string    "<n>[w] <fence> <ticket> <owner>": hold count, "w" once someone waited
--                        for this holding (an attempt found it taken, or it was handed over), fencing
--                        token, ticket of the latest acquisition, owner token (last, as it may
--                        contain spaces); the key's TTL is the lease
-- KEYS[2] fence string   last fencing token issued for the name (kept ARGV[6] ms after each issue)
-- KEYS[3] queue zset     ticket -> arrival sequence (fair mode waiting room)
-- KEYS[4] channel        shard channel of the name (declared as a key so that cluster routing sees it)
-- KEYS[5] waiters hash   ticket -> "<heartbeat deadline ms> <waiter TTL ms> <grant lease ms> <inbox>
--                        <owner>": when the waiter counts as dead (ms of server TIME), the TTL its
--                        latest heartbeat asked for (for inspection), and what release.lua needs
--                        to hand the lock straight to it and tell it
-- ARGV[1] owner token
-- ARGV[2] ticket (unique per acquiring call, no spaces; repeated attempts with it do not count the
--         hold twice, and an attempt by the ticket the lock was granted to claims the grant)
-- ARGV[3] lease, ms
-- ARGV[4] "1" fair (honour and join the queue), "0" barging (ignore the queue)
-- ARGV[5] waiter TTL, ms (fair mode); "0" = a single attempt that honours the queue but does not join it
-- ARGV[6] fence retention, ms
-- ARGV[7] publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[8] inbox of the waiter's process: its grant is published on KEYS[4] .. ":" .. inbox, a
--         channel only that process subscribes, rather than to every process waiting on the name;
--         "-" = none, the grant goes to KEYS[4]
-- Reply: {1, fence, count}            acquired, re-entered or claimed (fence kept, count after)
--        {0, pttl, position, fence}   not acquired: holder's remaining lease in ms (-2 when the
--                                     lock is free but another waiter is at the head, -1 when not
--                                     looked up: for a waiter behind the head), 0-based queue
--                                     position (-1 when not queued), and the newest fencing token
--                                     issued for the name (the holder's, else the fence record's;
--                                     0 when there is none): no grant made before this reply has a
--                                     newer one
--        {-1, 0, 0}                   no fencing token can be issued: the fence record holds no
--                                     token below 2^63-1 (nothing acquired, the record unchanged)
-- Fencing tokens are decimal strings in the script (exact to 63 bits); Redis sends them as bulk
-- strings, which the adapters parse as int64.
--
-- Redis runs scripts on its single thread, so every call here delays every other client. The
-- uncontended path is GET, ZRANGE (fair), TIME, SET ... GET, SET, and defines no function
-- (building the helpers' closures would cost more than its logic). Waiters whose heartbeat lapsed
-- are evicted when they reach the head of the queue, the only place where they could stall it.
-- The "w" mark tells release.lua whether anyone may wait: a waiter always makes an attempt that
-- finds the holding taken (and marks it) before it sleeps, so a release of an unmarked holding
-- wakes nobody and skips the queue and the publish.
local v = redis.call('GET', KEYS[1])
local lease = tonumber(ARGV[3])
local fair = ARGV[4] == '1'
local head = false
if fair and not v then
  -- Free: it is the turn of the head of the queue, if there is one.
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1] or false
end

local now, last = false, false
if not v and not head then
  -- Free, and nobody queued: take it with a fresh fencing token. This common case comes first
  -- and calls no helper, so that no closure is built for it: it writes the clock to the fence
  -- record as issue_fence does (see lib.lua) and takes the clock as the token when the record
  -- held none, or a valid token below it of the same length (now has fewer than 19 digits, so
  -- such a token is below FENCE_MAX). Any other record is settled below the mark.
  local t = redis.call('TIME')
  now = t[1] .. string.sub('00000' .. t[2], -6)
  last = redis.pcall('SET', KEYS[2], now, 'PX', ARGV[6], 'GET')
  if not last or (type(last) == 'string' and #last == #now and last < now
      and string.find(last, '^[1-9]%d*$')) then
    redis.call('SET', KEYS[1], '1 ' .. now .. ' ' .. ARGV[2] .. ' ' .. ARGV[1], 'PX', lease)
    return {1, now, 1}
  end
end

--@helpers
if now then
  -- The fence record written above held something else: a token not below the clock, one of
  -- another length, or no token at all (then nothing is acquired, the record is as it was).
  local fs = settle_fence(KEYS[2], ARGV[6], now, last)
  if not fs then
    return {-1, 0, 0}
  end
  redis.call('SET', KEYS[1], lock_string(1, '', fs, ARGV[2], ARGV[1]), 'PX', lease)
  return {1, fs, 1}
end

local n, w, f, r, o
if v then
  n, w, f, r, o = parse_lock(v)
  if o == ARGV[1] then
    -- Re-entry: count once per ticket, never shorten the lease. The ticket leaves the queue
    -- first, so that a queue of another type fails the script before anything is written.
    if fair and redis.call('ZREM', KEYS[3], ARGV[2]) == 1 then
      redis.pcall('HDEL', KEYS[5], ARGV[2]) -- a waiters hash of another type holds no record
    end
    n = tonumber(n)
    local pttl = redis.call('PTTL', KEYS[1])
    if r ~= ARGV[2] then
      n = n + 1
      redis.call('SET', KEYS[1], lock_string(n, w, f, ARGV[2], o), 'PX', math.max(pttl, lease))
    elseif pttl < lease then
      redis.call('PEXPIRE', KEYS[1], lease)
    end
    return {1, f, n}
  end
end

local t = false
if head and head ~= ARGV[2] then
  -- Free, but another waiter is at the head: its turn, unless its heartbeat lapsed.
  t = redis.call('TIME')
  local now = now_ms(t)
  for _ = 1, 64 do
    local deadline = parse_waiter(redis.call('HGET', KEYS[5], head))
    if deadline and tonumber(deadline) > now then
      break
    end
    redis.call('ZREM', KEYS[3], head)
    redis.call('HDEL', KEYS[5], head)
    head = redis.call('ZRANGE', KEYS[3], 0, 0)[1] or false
    if not head or head == ARGV[2] then
      break
    end
  end
end

if not v and (head == false or head == ARGV[2]) then
  -- Free, and it is our turn: take it with a fresh fencing token.
  t = t or redis.call('TIME')
  local fs = issue_fence(KEYS[2], ARGV[6], t)
  if not fs then
    return {-1, 0, 0}
  end
  -- Taken from the queue: others may wait behind, so mark it.
  redis.call('SET', KEYS[1], lock_string(1, head and 'w' or '', fs, ARGV[2], ARGV[1]), 'PX', lease)
  if head then
    redis.call('ZREM', KEYS[3], ARGV[2]) -- a zset: ZRANGE read it
    redis.pcall('HDEL', KEYS[5], ARGV[2]) -- a waiters hash of another type holds no record
  end
  return {1, fs, 1}
end

local pos = -1
local ttl = tonumber(ARGV[5])
if fair and ttl > 0 then
  -- Join the queue at the tail, or keep the place; either way renew the heartbeat.
  t = t or redis.call('TIME')
  local seq = false
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) == false then
    local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    seq = 1
    if tail[2] then seq = tonumber(tail[2]) + 1 end
  end
  -- A grant lasts no longer than the waiter's heartbeat TTL, so that a
  -- grant to a waiter that died runs out as soon as its place would have.
  -- The record comes before the queue entry and the "w" mark: a waiters hash
  -- of another type fails the script here, before anything is written (the
  -- queue was only read so far; an eviction above read the hash first).
  redis.call('HSET', KEYS[5], ARGV[2],
    (now_ms(t) + ttl) .. ' ' .. ttl .. ' ' .. math.min(lease, ttl) .. ' ' .. ARGV[8] .. ' ' .. ARGV[1])
  if seq then
    redis.call('ZADD', KEYS[3], seq, ARGV[2])
  end
  -- The queue keys vanish on their own within 2 * (TTL + 1s) after the last
  -- heartbeat: when less than TTL + 1s is left, a heartbeat sets twice that,
  -- so most heartbeats only look. Queue and records are written, removed
  -- and given their TTL together, so the queue's TTL stands for both.
  local keep = ttl + 1000
  if redis.call('PTTL', KEYS[3]) < keep then
    redis.call('PEXPIRE', KEYS[3], 2 * keep)
    redis.call('PEXPIRE', KEYS[5], 2 * keep)
  end
  pos = redis.call('ZRANK', KEYS[3], ARGV[2])
  if not v and head then
    -- Free, but a live waiter is ahead: make sure it knows.
    publish(ARGV[7], KEYS[4], head)
  end
end
if n and w == '' then
  -- Taken by another owner: whoever asked may wait for its release now. Marked after the
  -- queue was joined, which fails the script first if its keys are of another type.
  redis.call('SET', KEYS[1], lock_string(n, 'w', f, r, o), 'KEEPTTL')
end
if not v then
  return {0, -2, pos, read_fence(KEYS[2])}
end
if pos > 0 then
  -- Only the head is next when the holder's lease runs out.
  return {0, -1, pos, f or '0'}
end
return {0, redis.call('PTTL', KEYS[1]), pos, f or '0'}
