-- inspect: read-only snapshot of one lock.
--
-- KEYS[1] lock string, KEYS[2] fence string, KEYS[3] queue zset (see acquire.lua)
-- ARGV: none
-- Reply: {owner or "", count, fence (a decimal string, "0" when free), pttl ms (-2 when free),
--        queued tickets}
local v = redis.call('GET', KEYS[1])
local n, f, o = '0', '0', ''
if v then
  local pn, _, pf, _, po = parse_lock(v)
  if pn then
    n, f, o = pn, pf, po
  end
end
return {o, tonumber(n), f, redis.call('PTTL', KEYS[1]), redis.call('ZCARD', KEYS[3])}
