-- kind_extend: set the remaining lease of a read hold, write hold or semaphore holding.
--
-- KEYS[1..7] the keys of the name of the kind (see kindlib.lua); it touches KEYS[1] holders hash,
--            KEYS[6] revoked zset and KEYS[7] leases zset
-- ARGV[1] owner token
-- ARGV[2] lease, ms
-- ARGV[3] kind: "r", "w" or "s"
-- Reply: 1 extended, 0 not held by this owner (or its lease ended; nothing changed), -1 not held
--        because an operator forced the holding out (kind_forcerelease.lua; nothing changed)
-- It runs without the helper libraries, for every renewal: TIME, ZSCORE, ZADD, PTTL.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[3] .. ' ' .. ARGV[1]
local lease = tonumber(ARGV[2])
local dl = tonumber(redis.call('ZSCORE', KEYS[7], id))
if dl and dl > now then
  redis.call('ZADD', KEYS[7], now + lease, id)
  if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
    redis.call('PEXPIRE', KEYS[7], lease)
  end
  return 1
end
local rv = tonumber(redis.call('ZSCORE', KEYS[6], id))
if rv and rv + 1000 > now then
  return -1
end
return 0
