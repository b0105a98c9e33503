-- leave: remove a waiter from the fair queue at once; wake the new head if the lock is free.
--
-- KEYS[1] lock string, KEYS[2] fence string (unused), KEYS[3] queue zset, KEYS[4] channel,
-- KEYS[5] waiters hash (see acquire.lua)
-- ARGV[1] ticket
-- ARGV[2] publish command: "SPUBLISH" or "PUBLISH"
-- Reply: 1 the ticket was queued and is gone, 0 it was not queued (a grant made to it before is
--        undone by release.lua with the ticket). A refused publish does not fail the script.
local was_head = redis.call('ZRANGE', KEYS[3], 0, 0)[1] == ARGV[1]
-- The record first: a waiters hash of another type fails the script before anything is written.
redis.call('HDEL', KEYS[5], ARGV[1])
local removed = redis.call('ZREM', KEYS[3], ARGV[1])
if removed == 1 and was_head and redis.call('EXISTS', KEYS[1]) == 0 then
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if head then
    publish(ARGV[2], KEYS[4], head)
  end
end
return removed
