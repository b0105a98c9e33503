-- release: undo one acquisition; the last one hands the lock to the next waiter.
--
-- KEYS[1] lock string, KEYS[2] fence string, KEYS[3] queue zset, KEYS[4] channel,
-- KEYS[5] waiters hash (see acquire.lua)
-- ARGV[1] owner token
-- ARGV[2] ticket: "" releases any acquisition of the owner; otherwise act only if the latest
--         acquisition carried this ticket (undo of an attempt whose reply was lost, or of a grant
--         to a waiter that gave up)
-- ARGV[3] publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[4] fence retention, ms (see acquire.lua)
-- Reply: -1   not held by this owner (or not this ticket): nothing changed
--        n>=0 hold count left. At 0 the lock was handed on: to the first live waiter of the fair
--             queue, which now holds it (fresh fence, hold count 1, its ticket as latest
--             acquisition, lease = its grant lease) and is told by the message "<ticket> <fence>"
--             on its process's inbox channel (see acquire.lua); or, with no live waiter (or no
--             fencing token left to issue, which the waiter's own attempt then reports), freed
--             with the message "*" to every waiter. A refused publish does not fail the script.
--
-- The uncontended path is GET, DEL: a holding without the "w" mark had nobody waiting (see
-- acquire.lua). It and the release of a re-entered hold define no function: they parse and build
-- the lock string themselves (as parse_lock and lock_string of lib.lua do). A hand-off is GET,
-- ZPOPMIN, HGET, HDEL, TIME, SET ... GET, SET, PUBLISH.
local v = redis.call('GET', KEYS[1])
if not v then
  return -1
end
local n, w, f, r, o = string.match(v, '^(%d+)(w?) (%d+) (%S+) (.*)$')
if o ~= ARGV[1] or (ARGV[2] ~= '' and r ~= ARGV[2]) then
  return -1
end
n = tonumber(n) - 1
if n > 0 then
  redis.call('SET', KEYS[1], n .. w .. ' ' .. f .. ' ' .. r .. ' ' .. o, 'KEEPTTL')
  return n
end
if w == '' then
  -- Nobody waited for this holding: nobody to hand it to or to wake.
  redis.call('DEL', KEYS[1])
  return 0
end

-- The helpers of the hand-off are defined only on the way to it.
--@helpers
hand_on(ARGV[3], ARGV[4])
return 0
