-- kindlib: helpers of the read-write lock and semaphore scripts (kind_*.lua), which get the
-- definitions they use of lib.lua and of this file (see assemble.go). It defines functions and
-- constants only.
--
-- The keys of one name of a kind (rediscore.Layout.KindKeys; all with the name's hash tag; the
-- suffixes start with "rw." for read-write locks and "sem." for semaphores):
--
-- KEYS[1] holders hash   holding id -> "<count> <fence> <ticket> <weight>": hold count, fencing
--                        token, ticket of the latest acquisition, and the permits the holding takes;
--                        plus the fields "used" (the weights of the holdings, summed), "limit" (a
--                        semaphore's recorded limit) and "wait" ("b": a barging attempt found the
--                        name full since the last broadcast, "q": the fair queue may hold waiters).
--                        A holding id is "<kind> <owner>": "r" a read hold, "w" a write hold, "s" a
--                        semaphore holding; the special fields have no space at index 2, so they
--                        never clash with one.
-- KEYS[2] fence string   last fencing token issued for the name (as for a mutex, see acquire.lua)
-- KEYS[3] queue zset     ticket -> arrival sequence (fair mode, one FIFO queue of every kind)
-- KEYS[4] channel        shard channel of the name ("*" broadcasts; grants go to KEYS[4]:<inbox>)
-- KEYS[5] waiters hash   ticket -> "<heartbeat deadline ms> <waiter TTL ms> <grant lease ms> <inbox>
--                        <kind> <permits> <limit> <owner>"
-- KEYS[6] revoked zset   holding id -> lease deadline ms of a holding an operator forced out
--                        (kept a second beyond it)
-- KEYS[7] leases zset    holding id -> lease deadline, ms of server TIME
--
-- Holders hash and leases zset are written together, and their key TTL covers the latest lease
-- deadline, so that they vanish when every holding lapsed and nobody came by. A read hold weighs
-- 1 and a write hold RW_WEIGHT, against the fixed limit RW_WEIGHT: so a read hold fits while no
-- write hold is held, a write hold while nothing is. A semaphore holding weighs its permits, against
-- the recorded limit.

-- The weight of a write hold, and the limit of a read-write lock: 2^40 (exact in a double).
local RW_WEIGHT = 1099511627776

-- The most holdings (or waiters) one call takes off the name when their lease (heartbeat) lapsed.
local KIND_EVICT_MAX = 64

local function weight(kind, permits)
  if kind == 'w' then
    return RW_WEIGHT
  elseif kind == 'r' then
    return 1
  end
  return permits
end

local function holding_id(kind, owner)
  return kind .. ' ' .. owner
end

-- parse_holding: count, fence, ticket and weight of a holding record; nil when it is not one.
local function parse_holding(v)
  if not v then
    return nil
  end
  return string.match(v, '^(%d+) (%d+) (%S+) (%d+)$')
end

local function holding_string(n, f, r, k)
  return n .. ' ' .. f .. ' ' .. r .. ' ' .. k
end

-- parse_kwaiter: deadline, waiter TTL, grant lease, inbox, kind, permits, limit and owner of a
-- waiter record; nil when it is not one.
local function parse_kwaiter(rec)
  if not rec then
    return nil
  end
  return string.match(rec, '^(%d+) (%d+) (%d+) (%S+) ([rws]) (%d+) (%d+) (.*)$')
end

-- try: redis.pcall that answers nil for an error reply (a key of the wrong type), for the reads
-- made after a script wrote: it must not fail then.
local function try(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    return nil
  end
  return r
end

-- unqueue: take ticket off the queue, and its record off the waiters hash. Callers know the queue
-- is a zset (they read it); a waiters key of another type holds no record, so that this never fails
-- after the script wrote.
local function unqueue(ticket)
  redis.call('ZREM', KEYS[3], ticket)
  redis.pcall('HDEL', KEYS[5], ticket)
end

-- check_leases: make sure, before the first write, that the leases zset is one or is absent, where
-- nothing read it yet: with no holders' record (st.exists false), eviction does not read it, and a
-- key of another type would otherwise fail the script at the first holding's ZADD, after the fence
-- was written.
local function check_leases(st)
  if not st.exists then
    redis.call('ZCARD', KEYS[7])
  end
end

-- kind_state: the state of a name from the HMGET of "used", "limit" and "wait". fixed is the
-- limit of the kind (RW_WEIGHT) or nil for a semaphore.
local function kind_state(used, limit, wait, fixed)
  local st = {
    exists = used ~= false, used = tonumber(used) or 0, wait = wait or '',
    set = {}, del = {}, dels = {}, pending = {}, gone = {}, maxdl = 0, freed = false, fixed = fixed,
  }
  st.limit = fixed or tonumber(limit)
  st.used0, st.wait0, st.limit0 = st.used, st.wait, st.limit
  return st
end

local function has_flag(st, c)
  return string.find(st.wait, c, 1, true) ~= nil
end

local function set_flag(st, c)
  if not has_flag(st, c) then
    st.wait = st.wait .. c
  end
end

local function clear_flag(st, c)
  st.wait = (string.gsub(st.wait, c, ''))
end

-- put: write the holding id (its record at save, its lease deadline dl at once).
local function put(st, id, rec, dl)
  st.pending[id] = rec
  st.del[id] = nil
  st.set[#st.set + 1] = id
  st.set[#st.set + 1] = rec
  redis.call('ZADD', KEYS[7], dl, id)
  if dl > st.maxdl then
    st.maxdl = dl
  end
end

-- drop: end the holding id of weight k (removed at save).
local function drop(st, id, k)
  st.pending[id] = nil
  if not st.del[id] then
    st.del[id] = true
    st.dels[#st.dels + 1] = id
  end
  st.used = st.used - k
  st.freed = true
end

-- evict: take the holdings whose lease ended off the name (at most KIND_EVICT_MAX), giving their
-- weight back.
local function evict(st, now)
  if not st.exists then
    return
  end
  local gone = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, KIND_EVICT_MAX)
  st.capped = #gone == KIND_EVICT_MAX
  if #gone == 0 then
    return
  end
  local recs = redis.call('HMGET', KEYS[1], unpack(gone))
  for i, id in ipairs(gone) do
    local _, _, _, k = parse_holding(recs[i])
    if k then
      st.used = st.used - tonumber(k)
    end
    st.gone[id] = true
  end
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[7], unpack(gone))
  if st.used < 0 then
    st.used = 0
  end
  st.freed = true
end

-- held: whether the name has the holding id (written in this call, or stored and not ended).
local function held(st, id)
  if st.pending[id] then
    return true
  end
  if st.del[id] or st.gone[id] or st.used <= 0 or not st.exists then
    return false
  end
  return try('HGET', KEYS[1], id) and true or false
end

-- owns: whether owner holds a holding of the name that a grant of kind would clash with.
local function owns(st, kind, owner)
  if kind == 's' then
    return held(st, holding_id('s', owner))
  end
  local r, w = holding_id('r', owner), holding_id('w', owner)
  if st.pending[r] or st.pending[w] then
    return true
  end
  if st.used <= 0 or not st.exists then
    return false
  end
  local v = try('HMGET', KEYS[1], r, w)
  if not v then
    return false
  end
  return (v[1] and not st.del[r] and not st.gone[r]) or (v[2] and not st.del[w] and not st.gone[w]) or false
end

-- tell: publish msg on the inbox channel inbox of the name (or its channel for "-").
local function tell(pub, inbox, msg)
  if not inbox or inbox == '-' then
    publish(pub, KEYS[4], msg)
  else
    publish(pub, KEYS[4] .. ':' .. inbox, msg)
  end
end

-- grant: hand holdings to the head of the queue and on, as long as they fit, each told by the
-- message "<ticket> <fence>" on its process's inbox channel (lease: the waiter's grant lease).
-- Waiters whose heartbeat lapsed are taken off the head on the way. A head that does not fit
-- blocks those behind it; so does a head whose owner holds a clashing holding already (it is
-- woken: its own attempt re-enters, or fails with an error, and it leaves). self, when not nil,
-- is the calling attempt ({ticket, owner, kind, k, lease, limit}): when it comes up it is
-- granted with its own lease and not told (self.granted = fence). At most KIND_EVICT_MAX steps.
-- st.top, when set, is the queue's head (a ZRANGE reply) as the caller read it, before it wrote
-- anything; it stands for the first look at the queue.
local function grant(st, t, pub, retention, self)
  local now = now_ms(t)
  st.qempty = false
  for _ = 1, KIND_EVICT_MAX do
    local top = st.top or try('ZRANGE', KEYS[3], 0, 0)
    st.top = nil
    local head = top and top[1]
    if not head then
      st.qempty = true
      clear_flag(st, 'q')
      return
    end
    local kind, k, lease, inbox, owner, lim
    if self and head == self.ticket then
      kind, k, lease, owner, lim = self.kind, self.k, self.lease, self.owner, self.limit
    else
      local deadline, _, gl, ib, kd, permits, l, o = parse_kwaiter(try('HGET', KEYS[5], head))
      if deadline and tonumber(deadline) > now then
        kind, k, lease, inbox, owner, lim = kd, weight(kd, tonumber(permits)), tonumber(gl), ib, o, tonumber(l)
        if lim == 0 then
          lim = nil
        end
      else
        unqueue(head)
      end
    end
    if kind then
      set_flag(st, 'q')
      st.limit = st.limit or st.fixed or lim
      if not st.limit then
        return
      end
      if st.used + k > st.limit then
        -- It does not fit. When what is in its way may be its owner's own holding (a writer's
        -- read hold, a semaphore holding), it is woken all the same: its own attempt re-enters,
        -- or fails with an error and leaves, so that the queue does not wait for its heartbeat.
        if ((kind == 'w' and st.used < st.limit) or kind == 's') and owns(st, kind, owner)
            and not (self and head == self.ticket) then
          tell(pub, inbox, head)
        end
        return
      end
      if owns(st, kind, owner) then
        if not self or head ~= self.ticket then
          tell(pub, inbox, head)
        end
        return
      end
      local fs = issue_fence(KEYS[2], retention, t)
      if not fs then
        return
      end
      unqueue(head)
      put(st, holding_id(kind, owner), holding_string(1, fs, head, k), now + lease)
      st.used = st.used + k
      if self and head == self.ticket then
        self.granted = fs
      else
        tell(pub, inbox, head .. ' ' .. fs)
      end
    end
  end
end

-- pass_on: after holdings ended (st.freed) or the queue changed: grant to the queue, and
-- broadcast "*" to barging waiters when permits came back.
local function pass_on(st, t, pub, retention, queue_changed)
  if queue_changed or (st.freed and has_flag(st, 'q')) then
    grant(st, t, pub, retention, nil)
  end
  if st.freed and has_flag(st, 'b') then
    clear_flag(st, 'b')
    publish(pub, KEYS[4], '*')
  end
end

-- save: write the state of the name back: nothing held deletes holders and leases; otherwise the
-- ended holdings go, the written ones and the counters are set, and the keys' TTL is raised to
-- cover the latest lease deadline written.
local function save(st, t)
  if st.used <= 0 then
    if st.exists or #st.set > 0 then
      redis.call('DEL', KEYS[1], KEYS[7])
    end
    return
  end
  local dels = {}
  for _, id in ipairs(st.dels) do
    if st.del[id] then
      dels[#dels + 1] = id
    end
  end
  if #dels > 0 then
    redis.call('HDEL', KEYS[1], unpack(dels))
    redis.call('ZREM', KEYS[7], unpack(dels))
  end
  local set = st.set
  if st.used ~= st.used0 or not st.exists then
    set[#set + 1] = 'used'
    set[#set + 1] = st.used
  end
  if not st.fixed and st.limit and (st.limit ~= st.limit0 or not st.exists) then
    set[#set + 1] = 'limit'
    set[#set + 1] = st.limit
  end
  if st.wait ~= st.wait0 then
    set[#set + 1] = 'wait'
    set[#set + 1] = st.wait
  end
  if #set > 0 then
    redis.call('HSET', KEYS[1], unpack(set))
  end
  local left = st.maxdl - now_ms(t)
  if left > 0 and (not st.exists or redis.call('PTTL', KEYS[1]) < left) then
    redis.call('PEXPIRE', KEYS[1], left)
    redis.call('PEXPIRE', KEYS[7], left)
  end
end
