-- release: undo one acquisition; the last one hands the lock to the next waiter.
--
-- KEYS[1] lock string, KEYS[2] fence string, KEYS[3] queue zset, KEYS[4] channel,
-- KEYS[5] waiters hash (see acquire.lua)
-- ARGV[1] owner token
-- ARGV[2] ticket: "" releases any acquisition of the owner; otherwise act only if the latest
--         acquisition carried this ticket (undo of an attempt whose reply was lost, or of a grant
--         to a waiter that gave up)
-- ARGV[3] publish command: "SPUBLISH" or "PUBLISH"
-- Reply: -1   not held by this owner (or not this ticket): nothing changed
--        n>=0 hold count left. At 0 the lock was handed on: to the first live waiter of the fair
--             queue, which now holds it (fresh fence, hold count 1, its ticket as latest
--             acquisition, lease = its grant lease) and is told by the message "<ticket> <fence>"
--             on its process's inbox channel (see acquire.lua); or, with no live waiter, freed with
--             the message "*" to every waiter.
--
-- The uncontended path is GET, ZPOPMIN, DEL, PUBLISH; a hand-off is GET, ZPOPMIN, HGET, HDEL,
-- TIME, SET ... GET, SET, PUBLISH.
local v = redis.call('GET', KEYS[1])
if not v then
  return -1
end
local n, f, r, o = string.match(v, '^(%d+) (%d+) (%S+) (.*)$')
if o ~= ARGV[1] or (ARGV[2] ~= '' and r ~= ARGV[2]) then
  return -1
end
n = tonumber(n) - 1
if n > 0 then
  redis.call('SET', KEYS[1], n .. ' ' .. f .. ' ' .. r .. ' ' .. o, 'KEEPTTL')
  return n
end

-- Take waiters off the head of the queue until a live one (bounded).
local t = false
for _ = 1, 64 do
  local head = redis.call('ZPOPMIN', KEYS[3])[1]
  if not head then
    break
  end
  local rec = redis.call('HGET', KEYS[5], head)
  redis.call('HDEL', KEYS[5], head)
  if rec then
    if not t then
      t = redis.call('TIME')
    end
    local s1 = string.find(rec, ' ', 1, true)
    if tonumber(string.sub(rec, 1, s1 - 1)) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
      -- Hand over: the head holds the lock now, without another round trip.
      -- The fence is made as in acquire.lua.
      local s2 = string.find(rec, ' ', s1 + 1, true)
      local s3 = string.find(rec, ' ', s2 + 1, true)
      local s4 = string.find(rec, ' ', s3 + 1, true)
      local retention = string.sub(rec, s2 + 1, s3 - 1)
      local inbox = string.sub(rec, s3 + 1, s4 - 1)
      local fs = t[1] .. string.sub('00000' .. t[2], -6)
      local last = redis.call('SET', KEYS[2], fs, 'PX', retention, 'GET')
      if last and tonumber(last) >= tonumber(fs) then
        fs = string.format('%.0f', tonumber(last) + 1)
        redis.call('SET', KEYS[2], fs, 'PX', retention)
      end
      redis.call('SET', KEYS[1], '1 ' .. fs .. ' ' .. head .. ' ' .. string.sub(rec, s4 + 1),
        'PX', string.sub(rec, s1 + 1, s2 - 1))
      if inbox == '-' then
        redis.call(ARGV[3], KEYS[4], head .. ' ' .. fs)
      else
        redis.call(ARGV[3], KEYS[4] .. ':' .. inbox, head .. ' ' .. fs)
      end
      return 0
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call(ARGV[3], KEYS[4], '*')
return 0
