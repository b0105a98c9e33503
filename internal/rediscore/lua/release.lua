-- release: undo one acquisition; the last one frees the lock and wakes the next waiter.
--
-- KEYS[1] lock hash, KEYS[2] fence string (unused), KEYS[3] queue zset, KEYS[4] beat zset,
-- KEYS[5] channel (see acquire.lua)
-- ARGV[1] owner token
-- ARGV[2] ticket: "" releases any acquisition of the owner; otherwise act only if the latest
--         acquisition carried this ticket (undo of an attempt whose reply was lost)
-- ARGV[3] publish command: "SPUBLISH" or "PUBLISH"
-- Reply: -1   not held by this owner (or not this ticket): nothing changed
--        n>=0 hold count left; 0 means the lock is free and the head waiter (or, with an
--             empty queue, every waiter) was woken: the message is the head's ticket, or "*"
local h = redis.call('HMGET', KEYS[1], 'o', 'r')
if h[1] ~= ARGV[1] or (ARGV[2] ~= '' and h[2] ~= ARGV[2]) then
  return -1
end
local n = redis.call('HINCRBY', KEYS[1], 'n', -1)
if n > 0 then
  return n
end
redis.call('DEL', KEYS[1])

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms, 'LIMIT', 0, 64)
if #dead > 0 then
  redis.call('ZREM', KEYS[3], unpack(dead))
  redis.call('ZREM', KEYS[4], unpack(dead))
end
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
redis.call(ARGV[3], KEYS[5], head or '*')
return 0
