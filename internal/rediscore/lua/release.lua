-- release: undo one acquisition; the last one hands the lock to the next waiter.
--
-- KEYS[1] lock hash, KEYS[2] fence string, KEYS[3] queue zset, KEYS[4] beat zset,
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
local h = redis.call('HMGET', KEYS[1], 'o', 'r')
if h[1] ~= ARGV[1] or (ARGV[2] ~= '' and h[2] ~= ARGV[2]) then
  return -1
end
local n = redis.call('HINCRBY', KEYS[1], 'n', -1)
if n > 0 then
  return n
end
redis.call('DEL', KEYS[1])

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
    local s1 = string.find(grant, ':', 1, true)
    local s2 = string.find(grant, ':', s1 + 1, true)
    local fence = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1,
      tonumber(t[1]) * 1000000 + tonumber(t[2]))
    local fs = string.format('%.0f', fence)
    redis.call('HSET', KEYS[1], 'o', string.sub(grant, s2 + 1), 'n', 1, 'f', fs, 'r', head)
    redis.call('PEXPIRE', KEYS[1], string.sub(grant, 1, s1 - 1))
    redis.call('SET', KEYS[2], fs, 'PX', string.sub(grant, s1 + 1, s2 - 1))
    redis.call('ZREM', KEYS[3], head)
    redis.call('ZREM', KEYS[4], head)
    redis.call('HDEL', KEYS[6], head)
    redis.call(ARGV[3], KEYS[5], head .. ' ' .. fs)
    return 0
  end
end
redis.call(ARGV[3], KEYS[5], head or '*')
return 0
