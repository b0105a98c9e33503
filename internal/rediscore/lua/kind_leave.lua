-- kind_leave: remove a waiter from the fair queue of a read-write lock or semaphore at once; the
-- queue is then granted holdings from its head on while they fit (see kindlib.lua).
--
-- KEYS[1..7] the keys of the name of the kind (see kindlib.lua)
-- ARGV[1] ticket
-- ARGV[2] publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[3] fence retention, ms
-- ARGV[4] kind: "r", "w" or "s"
-- Reply: 1 the ticket was queued and is gone, 0 it was not queued (a grant made to it before is
--        undone by kind_release.lua with the ticket). Holdings whose lease ended are evicted
--        first. A refused publish does not fail the script.
local t = redis.call('TIME')
local v = redis.call('HMGET', KEYS[1], 'used', 'limit', 'wait')
local fixed = nil
if ARGV[4] ~= 's' then
  fixed = RW_WEIGHT
end
local st = kind_state(v[1], v[2], v[3], fixed)
-- Every key written with redis.call is read before the first write, so that a key of another type
-- fails the script with nothing written: the queue here, the leases by eviction or, for the grant
-- that follows the removal, check_leases.
local removed = 0
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  removed = 1
  check_leases(st)
end
evict(st, now_ms(t))
if removed == 1 then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.pcall('HDEL', KEYS[5], ARGV[1]) -- a waiters hash of another type holds no record
pass_on(st, t, ARGV[2], ARGV[3], removed == 1)
save(st, t)
return removed
