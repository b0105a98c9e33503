-- inspect: read-only snapshot of one lock.
--
-- KEYS[1] lock hash, KEYS[2] fence string, KEYS[3] queue zset, KEYS[4] beat zset (see acquire.lua)
-- ARGV: none
-- Reply: {owner or "", count, fence, pttl ms (-2 when free), queued tickets}
local h = redis.call('HMGET', KEYS[1], 'o', 'n', 'f')
return {h[1] or '', tonumber(h[2] or '0'), tonumber(h[3] or '0'), redis.call('PTTL', KEYS[1]),
  redis.call('ZCARD', KEYS[3])}
