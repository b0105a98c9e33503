-- kind_inspect: read-only snapshot of a read-write lock or semaphore.
--
-- KEYS[1..7] the keys of the name of the kind (see kindlib.lua); it reads KEYS[1] holders hash,
--            KEYS[3] queue zset and KEYS[7] leases zset
-- ARGV: none
-- Reply: {now, waiters, limit, id1, deadline1, record1, id2, ...}, all strings: the server TIME in
--        ms, the number of queued tickets, the recorded limit ("" when none), then every holding
--        by lease deadline: its id ("<kind> <owner>"), lease deadline (ms of server TIME) and record
--        ("" when it has none). Holdings whose lease ended are listed until an operation evicts
--        them. It changes nothing.
local t = redis.call('TIME')
local reply = {tostring(now_ms(t)), tostring(redis.call('ZCARD', KEYS[3])),
  redis.call('HGET', KEYS[1], 'limit') or ''}
local leases = redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES')
for i = 1, #leases, 2 do
  reply[#reply + 1] = leases[i]
  reply[#reply + 1] = leases[i + 1]
  reply[#reply + 1] = redis.call('HGET', KEYS[1], leases[i]) or ''
end
return reply
