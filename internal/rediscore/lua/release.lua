-- release: undo one acquisition; the last one hands the lock to the next waiter.
--
-- KEYS[1] lock string, KEYS[2] fence string, KEYS[3] queue zset, KEYS[4] beat zset,
-- KEYS[5] channel, KEYS[6] grant hash (see acquire.lua)
-- ARGV[1] owner token
-- ARGV[2] ticket: "" releases any acquisition of the owner; otherwise act only if the latest
--         acquisition carried this ticket (undo of an attempt whose reply was lost, or of a grant
--         to a waiter that gave up)
-- ARGV[3] publish command: "SPUBLISH" or "PUBLISH"
-- Reply: -1   not held by this owner (or not this ticket): nothing changed
--        n>=0 hold count left. At 0 the lock was handed on: to the head of the fair queue, which
--             now holds it (fresh fence, hold count 1, its ticket as latest acquisition, lease
--             = its grant lease) and is told by the message "<ticket> <fence>"; or, with an
--             empty queue, freed with the message "*" to every waiter.
--
-- The uncontended path is GET, ZRANGE, DEL, PUBLISH.
local v = redis.call('GET', KEYS[1])
if not v then
  return -1
end
local n, f, r, o = string.match(v, '^(%d+) (%d+) (%S+) (.*)$')
if o ~= ARGV[1] or (ARGV[2] ~= '' and r ~= ARGV[2]) then
  return -1
end
n = tonumber(n) - 1
if n > 0 then
  redis.call('SET', KEYS[1], n .. ' ' .. f .. ' ' .. r .. ' ' .. o, 'KEEPTTL')
  return n
end

local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if head then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms, 'LIMIT', 0, 64)
  if #dead > 0 then
    redis.call('ZREM', KEYS[3], unpack(dead))
    redis.call('ZREM', KEYS[4], unpack(dead))
    redis.call('HDEL', KEYS[6], unpack(dead))
    head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  end
  local grant = head and redis.call('HGET', KEYS[6], head)
  if grant then
    -- Hand over: the head holds the lock now, without another round trip.
    -- The fence is made as in acquire.lua.
    local s1 = string.find(grant, ':', 1, true)
    local s2 = string.find(grant, ':', s1 + 1, true)
    local retention = string.sub(grant, s1 + 1, s2 - 1)
    local fs = t[1] .. string.sub('00000' .. t[2], -6)
    local last = redis.call('SET', KEYS[2], fs, 'PX', retention, 'GET')
    if last and tonumber(last) >= tonumber(fs) then
      fs = string.format('%.0f', tonumber(last) + 1)
      redis.call('SET', KEYS[2], fs, 'PX', retention)
    end
    redis.call('SET', KEYS[1], '1 ' .. fs .. ' ' .. head .. ' ' .. string.sub(grant, s2 + 1),
      'PX', string.sub(grant, 1, s1 - 1))
    redis.call('ZREM', KEYS[3], head)
    redis.call('ZREM', KEYS[4], head)
    redis.call('HDEL', KEYS[6], head)
    redis.call(ARGV[3], KEYS[5], head .. ' ' .. fs)
    return 0
  end
end
redis.call('DEL', KEYS[1])
redis.call(ARGV[3], KEYS[5], head or '*')
return 0
