-- acquireall: one attempt at the locks of several names, all or nothing, in one atomic step.
--
-- KEYS    the keys of each name in turn, 6 per name as acquire.lua takes them: KEYS[6*i+1] lock
--         string, KEYS[6*i+2] fence string, KEYS[6*i+3] queue zset, KEYS[6*i+4] channel,
--         KEYS[6*i+5] waiters hash, KEYS[6*i+6] revoked marker (unused here), for i = 0 .. n-1
-- ARGV[1] owner token (one for every name)
-- ARGV[2] lease, ms
-- ARGV[3] "1" fair: a name is taken only when nobody is queued for it; "0" barging
-- ARGV[4] fence retention, ms
-- ARGV[5 .. 4+n] the ticket of each name's attempt, in KEYS order
-- Reply: {1, fence_1, count_1, ..., fence_n, count_n}   every name acquired or re-entered
--        {0, i, pttl, fence}    none acquired, nothing written: name i (1-based) is held by another
--                               owner (pttl its remaining lease, ms) or, in fair mode, free with
--                               waiters queued (pttl -2); fence is the newest token of name i
--        {-1, i}                none acquired, nothing written: name i's fence record holds no token
--                               below 2^63-1
--
-- Every name is checked before anything is written, so the script never writes part of the set.
-- Nobody joins a queue and no holding is marked as waited for: a caller that goes on to wait does
-- so with acquire.lua, name by name.
local n = (#KEYS) / 6
local owner = ARGV[1]
local lease = tonumber(ARGV[2])
local fair = ARGV[3] == '1'
local vals = {}
for i = 1, n do
  local k = 6 * (i - 1)
  local v = redis.call('GET', KEYS[k + 1])
  if v then
    local _, _, f, _, o = parse_lock(v)
    if o ~= owner then
      return {0, i, redis.call('PTTL', KEYS[k + 1]), f or '0'}
    end
  else
    if fair and redis.call('ZCARD', KEYS[k + 3]) > 0 then
      return {0, i, -2, read_fence(KEYS[k + 2])}
    end
    local last = redis.pcall('GET', KEYS[k + 2])
    if type(last) == 'table' or (last and (not fence_ok(last) or last == FENCE_MAX)) then
      return {-1, i}
    end
  end
  vals[i] = v
end

local t = false
local reply = {1}
for i = 1, n do
  local k = 6 * (i - 1)
  local ticket = ARGV[4 + i]
  local v = vals[i]
  if v then
    -- Re-entry: count once per ticket, never shorten the lease.
    local c, w, f, r, o = parse_lock(v)
    c = tonumber(c)
    local pttl = redis.call('PTTL', KEYS[k + 1])
    if r ~= ticket then
      c = c + 1
      redis.call('SET', KEYS[k + 1], lock_string(c, w, f, ticket, o), 'PX', math.max(pttl, lease))
    elseif pttl < lease then
      redis.call('PEXPIRE', KEYS[k + 1], lease)
    end
    reply[#reply + 1] = f
    reply[#reply + 1] = c
  else
    t = t or redis.call('TIME')
    -- Checked above: the record holds a token below the maximum, or none.
    local fs = issue_fence(KEYS[k + 2], ARGV[4], t)
    redis.call('SET', KEYS[k + 1], lock_string(1, '', fs, ticket, owner), 'PX', lease)
    reply[#reply + 1] = fs
    reply[#reply + 1] = 1
  end
end
return reply
