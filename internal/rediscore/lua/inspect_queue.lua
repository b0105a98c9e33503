-- inspect_queue: read-only list of the fair queue of one lock, head first, for operators.
--
-- KEYS[1]..KEYS[5] as in acquire.lua (every key of the name, so that cluster routing sees them);
-- it reads only KEYS[3] queue zset and KEYS[5] waiters hash
-- ARGV: none
-- Reply: {ticket, owner, heartbeat ms, ...}, three elements per waiter in queue order: the owner of
--        the waiter record ("" when there is none or it cannot be read) and the time left until the
--        record's heartbeat deadline by the server clock (negative once it lapsed; -1 without a
--        record)
local out = {}
local tickets = redis.call('ZRANGE', KEYS[3], 0, -1)
if #tickets == 0 then
  return out
end
local now = now_ms(redis.call('TIME'))
for _, ticket in ipairs(tickets) do
  local deadline, _, _, owner = parse_waiter(redis.call('HGET', KEYS[5], ticket))
  local left = -1
  if deadline then
    left = tonumber(deadline) - now
  else
    owner = ''
  end
  out[#out + 1] = ticket
  out[#out + 1] = owner
  out[#out + 1] = left
end
return out
