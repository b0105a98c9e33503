-- extend: set the remaining lease of a lock held by the owner.
--
-- KEYS[1] lock string (see acquire.lua); KEYS[6] revoked marker (see forcerelease.lua); the
--         other keys of the name are passed too, unused
-- ARGV[1] owner token
-- ARGV[2] lease, ms
-- Reply: 1 extended, 0 not held by this owner (nothing changed), -1 not held because an
--        operator forced the owner's holding out (forcerelease.lua; nothing changed)
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^%d+w? %d+ %S+ (.*)$') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
local rv = redis.call('GET', KEYS[6])
if rv and string.match(rv, '^(.*) %d+$') == ARGV[1] then
  return -1
end
return 0
