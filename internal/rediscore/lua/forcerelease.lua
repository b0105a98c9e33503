-- forcerelease: an operator frees a lock whoever holds it; it passes on as after a release.
--
-- KEYS[1..5] the keys of the name, as for acquire.lua; KEYS[6] revoked marker string
--            "<owner> <fence>": the holding that was forced out, kept for the rest of its lease
--            (plus a second) so that the former holder's next renewal learns it was revoked
--            (see extend.lua) rather than only that it no longer holds the lock
-- ARGV[1] publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[2] fence retention, ms (see acquire.lua)
-- Reply: {"0"}               the lock was free: nothing changed
--        {"1", fence, owner} freed: the fencing token (a decimal string) and owner of the holding
--                            that ended, whatever its hold count; the lock went to the first live
--                            waiter of the fair queue, or every waiter was woken (as release.lua
--                            does at a hold count of 0). A refused publish does not fail the script.
local v = redis.call('GET', KEYS[1])
if not v then
  return {'0'}
end
local _, _, f, _, o = parse_lock(v)
-- hand_on replaces or deletes the lock string on every path. It runs before
-- the marker is written, so that a command of it that fails (a key of the
-- wrong type) fails the script before anything was written.
if not f then
  -- Not a lock string: pass the name on, so that it works again.
  hand_on(ARGV[1], ARGV[2])
  return {'1', '0', ''}
end
local pttl = redis.call('PTTL', KEYS[1])
hand_on(ARGV[1], ARGV[2])
redis.call('SET', KEYS[6], o .. ' ' .. f, 'PX', math.max(pttl, 0) + 1000)
return {'1', f, o}
