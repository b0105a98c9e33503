-- inspectqueue: read-only listing of one lock's fair queue, head first.
--
-- KEYS[1..6] every key of the name (rediscore.Layout.Keys), as for acquire.lua (so that cluster routing sees them);
--                  it reads only KEYS[3] queue zset and KEYS[5] waiters hash
-- ARGV: none
-- Reply: {now, ticket1, record1, ticket2, record2, ...}: the server TIME in ms, then each queued
--        ticket in queue order with its waiter record ("" when it has none), all as strings.
--        It changes nothing: lapsed waiters are listed until an operation evicts them.
local t = redis.call('TIME')
local reply = {tostring(now_ms(t))}
local tickets = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, ticket in ipairs(tickets) do
  reply[#reply + 1] = ticket
  reply[#reply + 1] = redis.call('HGET', KEYS[5], ticket) or ''
end
return reply
