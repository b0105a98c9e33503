-- extend: set the remaining lease of a lock held by the owner.
--
-- KEYS[1] lock hash (see acquire.lua)
-- ARGV[1] owner token
-- ARGV[2] lease, ms
-- Reply: 1 extended, 0 not held by this owner (nothing changed)
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
