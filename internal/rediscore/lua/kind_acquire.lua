-- kind_acquire: take, re-enter, or (fair mode) queue for one read hold, write hold or semaphore
-- holding, in one atomic step.
--
-- KEYS[1..7] the keys of the name of the kind (see kindlib.lua): holders hash, fence, queue zset,
--            channel, waiters hash, revoked zset, leases zset
-- ARGV[1]  owner token
-- ARGV[2]  ticket (unique per acquiring call, no spaces; as for acquire.lua)
-- ARGV[3]  lease, ms
-- ARGV[4]  "1" fair (honour and join the queue), "0" barging (ignore the queue)
-- ARGV[5]  waiter TTL, ms (fair mode); "0" = a single attempt that honours the queue but does not join it
-- ARGV[6]  fence retention, ms
-- ARGV[7]  publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[8]  inbox of the waiter's process (as for acquire.lua); "-" = none
-- ARGV[9]  kind: "r" read hold, "w" write hold, "s" semaphore holding
-- ARGV[10] permits of a semaphore holding (1 to limit; ignored otherwise)
-- ARGV[11] limit of the semaphore as the caller declares it (ignored otherwise)
-- Reply: {1, fence, count}            acquired, re-entered or claimed (fence kept, count after)
--        {0, pttl, position, fence}   not acquired: ms until the first holding's lease ends (-2
--                                     when nothing is held but the queue is ahead, -1 when not
--                                     looked up: for a waiter behind the head), 0-based queue
--                                     position (-1 when not queued), and the newest fencing token
--                                     issued for the name (0 when there is none)
--        {-1, 0, 0}                   no fencing token can be issued (as for acquire.lua)
--        error "DISGO_MISMATCH ..."   (semaphore) the limit differs from the name's recorded one,
--                                     or the owner holds with another number of permits
--        error "DISGO_UPGRADE ..."    (write) the owner holds a read hold and no write hold
--        Both errors come before anything was written.
--
-- Rules: a re-entry counts once per ticket and never shortens the lease, whatever waits; a write
-- holder takes its read hold at once; otherwise a fresh holding is taken when it fits (see
-- kindlib.lua) and, in fair mode, the queue is empty or the holding is granted in queue order.
-- Holdings whose lease ended are evicted first, their permits go back and on to the queue.
-- The uncontended first holding is TIME, HMGET, ZCARD (of the leases: see check_leases), SET ...
-- GET, ZADD, HSET, PEXPIRE, PEXPIRE (fair, or a semaphore, which looks for a limit its waiters
-- keep: and ZRANGE of the queue after HMGET).
-- A key of another type (foreign data under the prefix) fails the script before anything is
-- written, or counts as empty where it is read after a write.
--
-- The first holding of a name (no holders' record) with nobody queued ahead runs before any
-- helper is defined (see assemble.go), with now_ms, weight, holding_id, issue_fence's write,
-- fence_ok's digits and holding_string spelled out (TestInlinedHelpersMatchLib).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner, ticket, kind = ARGV[1], ARGV[2], ARGV[9]
local lease = tonumber(ARGV[3])
local fair = ARGV[4] == '1'
local wttl = tonumber(ARGV[5])
local pub, retention = ARGV[7], ARGV[6]
local k, id, other
if kind == 'w' then
  k, id, other = 1099511627776, 'w ' .. owner, 'r ' .. owner
elseif kind == 'r' then
  k, id, other = 1, 'r ' .. owner, 'w ' .. owner
else
  k, id = tonumber(ARGV[10]), kind .. ' ' .. owner
  other = id
end
local v = redis.call('HMGET', KEYS[1], id, other, 'used', 'limit', 'wait')
-- head0: the queue's head (a ZRANGE reply) once read; leases_read: the leases zset was read;
-- fnow, flast: the clock as a token and the reply of the SET ... GET that wrote it to the fence
-- record, when that write was made here and left for take to settle.
local head0, leases_read, fnow, flast = nil, false, false, false
if not (v[1] or v[2] or v[3] or v[4] or v[5]) then
  -- No holders' record: the first holding, when it fits and nobody is queued ahead (barging
  -- read-write locks do not look); a lease or weight of 0, which the adapters never send, goes
  -- the general way. Every key written is read first, as below (the fence by its pcall'd write).
  if fair or kind == 's' then
    head0 = redis.call('ZRANGE', KEYS[3], 0, 0)
  end
  local limit = 1099511627776
  if kind == 's' then
    limit = tonumber(ARGV[11])
  end
  if not (head0 and head0[1]) and k > 0 and k <= limit and lease > 0 then
    redis.call('ZCARD', KEYS[7])
    leases_read = true
    fnow = t[1] .. string.sub('00000' .. t[2], -6)
    flast = redis.pcall('SET', KEYS[2], fnow, 'PX', retention, 'GET')
    if not flast or (type(flast) == 'string' and #flast == #fnow and flast < fnow
        and string.find(flast, '^[1-9]%d*$')) then
      redis.call('ZADD', KEYS[7], now + lease, id)
      if kind == 's' then
        redis.call('HSET', KEYS[1], id, '1 ' .. fnow .. ' ' .. ticket .. ' ' .. k, 'used', k, 'limit', limit)
      else
        redis.call('HSET', KEYS[1], id, '1 ' .. fnow .. ' ' .. ticket .. ' ' .. k, 'used', k)
      end
      redis.call('PEXPIRE', KEYS[1], lease)
      redis.call('PEXPIRE', KEYS[7], lease)
      return {1, fnow, 1}
    end
    -- The fence record held something else: take settles it (see settle_fence).
  end
end
--@helpers
local fixed = nil
if kind ~= 's' then
  fixed = RW_WEIGHT
end
local st = kind_state(v[3], v[4], v[5], fixed)

-- The owner's holdings and whether they are live, read before anything is written.
local own_dl, other_live = nil, false
if v[1] then
  own_dl = tonumber(redis.call('ZSCORE', KEYS[7], id))
  if not own_dl or own_dl <= now then
    own_dl = nil
  end
end
if kind ~= 's' and v[2] then
  local dl = tonumber(redis.call('ZSCORE', KEYS[7], other))
  other_live = dl ~= nil and dl > now
end

-- The queue's head, read before anything is written (so that a queue key of another type fails
-- the script with nothing written): in fair mode the grant below takes it as its first look.
if not head0 and (fair or (kind == 's' and not st.limit)) then
  head0 = redis.call('ZRANGE', KEYS[3], 0, 0)
end

if kind == 's' then
  local limit = tonumber(ARGV[11])
  if not st.limit then
    -- No record of holders (the last ones lapsed, and their hash with them): the waiters still
    -- queued keep the limit they declared, in their records.
    local head = head0[1]
    if head then
      local _, _, _, _, _, _, wl = parse_kwaiter(redis.call('HGET', KEYS[5], head))
      wl = tonumber(wl)
      if wl and wl > 0 then
        st.limit = wl
      end
    end
  end
  if st.limit and st.limit ~= limit then
    -- Recorded while the name has holders or waiters; a stale record is replaced.
    local top = redis.call('ZRANGE', KEYS[7], -1, -1, 'WITHSCORES')
    if (top[2] and tonumber(top[2]) > now) or redis.call('ZCARD', KEYS[3]) > 0 then
      return redis.error_reply('DISGO_MISMATCH the semaphore was declared with limit ' .. st.limit)
    end
    st.limit = limit
  end
  if own_dl then
    local _, _, _, ok = parse_holding(v[1])
    if ok and tonumber(ok) ~= k then
      return redis.error_reply('DISGO_MISMATCH the owner holds ' .. ok .. ' permits')
    end
  end
  st.limit = st.limit or limit
  if k > st.limit then
    return redis.error_reply('DISGO_MISMATCH more permits than the limit')
  end
elseif kind == 'w' and other_live and not own_dl then
  return redis.error_reply('DISGO_UPGRADE a read hold cannot be upgraded to a write hold')
end

-- The other keys this call may write with redis.call are read before the first write too: the
-- waiter records when the attempt may join the queue (a name that is free with nobody queued is
-- taken), and the leases where eviction does not read them.
if fair and wttl > 0 and (st.exists or head0[1]) then
  redis.call('HGET', KEYS[5], ticket)
end
if not leases_read then
  check_leases(st)
end
evict(st, now)

local function leave_queue()
  if fair and redis.call('ZREM', KEYS[3], ticket) == 1 then
    redis.pcall('HDEL', KEYS[5], ticket) -- a waiters hash of another type holds no record
    return true
  end
  return false
end

local n, f, r, rec_k = parse_holding(v[1])
if own_dl and n then
  -- Re-entry: count once per ticket, never shorten the lease.
  n = tonumber(n)
  if r ~= ticket then
    n = n + 1
  end
  put(st, id, holding_string(n, f, ticket, rec_k), math.max(own_dl, now + lease))
  pass_on(st, t, pub, retention, leave_queue())
  save(st, t)
  return {1, f, n}
end

local function take()
  local fs
  if fnow then
    -- The common case above wrote the clock to the fence record (nothing since issued a token:
    -- with no holders' record and nobody queued ahead, no grant comes before this take).
    fs = settle_fence(KEYS[2], retention, fnow, flast)
  else
    fs = issue_fence(KEYS[2], retention, t)
  end
  if not fs then
    return nil
  end
  if rec_k and not st.gone[id] then
    -- A lapsed record of the owner that eviction did not reach yet: its weight goes back.
    st.used = math.max(st.used - tonumber(rec_k), 0)
  end
  put(st, id, holding_string(1, fs, ticket, k), now + lease)
  st.used = st.used + k
  return fs
end

if kind == 'r' and other_live then
  -- A write holder takes its read hold at once, whatever waits.
  local fs = take()
  local left = leave_queue()
  pass_on(st, t, pub, retention, left)
  save(st, t)
  if not fs then
    return {-1, 0, 0}
  end
  return {1, fs, 1}
end

local self = nil
if fair then
  self = {ticket = ticket, owner = owner, kind = kind, k = k, lease = lease, limit = st.limit}
  st.top = head0 -- eviction did not change the queue
  grant(st, t, pub, retention, self)
elseif st.freed and has_flag(st, 'q') then
  grant(st, t, pub, retention, nil)
end
if st.freed and has_flag(st, 'b') then
  clear_flag(st, 'b')
  publish(pub, KEYS[4], '*')
end

if self and self.granted then
  save(st, t)
  return {1, self.granted, 1}
end
if (not fair or st.qempty) and st.used + k <= st.limit then
  local fs = take()
  save(st, t)
  if not fs then
    return {-1, 0, 0}
  end
  return {1, fs, 1}
end

-- Not acquired: whoever asked may wait for permits to come back.
local pos = -1
if fair and wttl > 0 then
  -- Join the queue at the tail, or keep the place; either way renew the heartbeat (as acquire.lua).
  if redis.call('ZSCORE', KEYS[3], ticket) == false then
    local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    local seq = 1
    if tail[2] then seq = tonumber(tail[2]) + 1 end
    redis.call('ZADD', KEYS[3], seq, ticket)
  end
  local permits = 0
  if kind == 's' then
    permits = k
  end
  redis.call('HSET', KEYS[5], ticket, (now + wttl) .. ' ' .. wttl .. ' ' .. math.min(lease, wttl) .. ' ' ..
    ARGV[8] .. ' ' .. kind .. ' ' .. permits .. ' ' .. (st.fixed and 0 or st.limit) .. ' ' .. owner)
  local keep = wttl + 1000
  if redis.call('PTTL', KEYS[3]) < keep then
    redis.call('PEXPIRE', KEYS[3], 2 * keep)
    redis.call('PEXPIRE', KEYS[5], 2 * keep)
  end
  pos = redis.call('ZRANK', KEYS[3], ticket)
  set_flag(st, 'q')
else
  set_flag(st, 'b')
end
save(st, t)
local pttl = -1
if pos <= 0 then
  if st.used <= 0 then
    pttl = -2
  else
    local first = redis.call('ZRANGE', KEYS[7], 0, 0, 'WITHSCORES')
    if first[2] then
      pttl = math.max(tonumber(first[2]) - now, 0)
    end
  end
end
return {0, pttl, pos, read_fence(KEYS[2])}
