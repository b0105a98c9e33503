-- extend: set the remaining lease of a lock held by the owner.
--
-- KEYS[1] lock string (see acquire.lua)
-- ARGV[1] owner token
-- ARGV[2] lease, ms
-- Reply: 1 extended, 0 not held by this owner (nothing changed)
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^%d+w? %d+ %S+ (.*)$') ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
