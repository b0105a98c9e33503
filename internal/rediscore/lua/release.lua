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
-- acquire.lua). A hand-off is GET, ZPOPMIN, HGET, HDEL, TIME, SET ... GET, SET, PUBLISH. These
-- paths, and the release of a re-entered hold, define no function: they parse and build the
-- strings themselves, as parse_lock, lock_string, parse_waiter, now_ms, fence_ok and issue_fence
-- of lib.lua do (TestInlinedHelpersMatchLib), since building the helpers' closures would cost
-- more server time than the hand-off's logic. Every other case goes on below the mark, in
-- hand_on.
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

-- Hand the lock to the head of the queue. The common case, spelled out here, is a live head and a
-- fence record that held an older token of the clock's length (as in acquire.lua's uncontended
-- path). Whatever else was found, hand_on goes on from what was read and written here: the head
-- was popped and its record removed, and when the head was live the clock was written to the
-- fence record.
local popped = redis.call('ZPOPMIN', KEYS[3])
local head = popped[1]
local rec, t, now, last = false, false, false, false
if head then
  -- The head is popped: nothing may fail now. A waiters hash of another type holds no record.
  rec = redis.pcall('HGET', KEYS[5], head)
  if type(rec) ~= 'string' then
    rec = false
  end
  redis.pcall('HDEL', KEYS[5], head)
  local deadline, _, grant_lease, inbox, owner =
    string.match(rec or '', '^(%d+) (%d+) (%d+) (%S+) (.*)$')
  if deadline then
    t = redis.call('TIME')
    if tonumber(deadline) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
      now = t[1] .. string.sub('00000' .. t[2], -6)
      last = redis.pcall('SET', KEYS[2], now, 'PX', ARGV[4], 'GET')
      if not last or (type(last) == 'string' and #last == #now and last < now
          and string.find(last, '^[1-9]%d*$')) then
        redis.call('SET', KEYS[1], '1w ' .. now .. ' ' .. head .. ' ' .. owner, 'PX', grant_lease)
        if inbox == '-' then
          redis.pcall(ARGV[3], KEYS[4], head .. ' ' .. now)
        else
          redis.pcall(ARGV[3], KEYS[4] .. ':' .. inbox, head .. ' ' .. now)
        end
        return 0
      end
    end
  end
end

-- The helpers are defined only for the other cases.
--@helpers
hand_on(ARGV[3], ARGV[4], {popped, rec, t, now, last})
return 0
