-- kind_forcerelease: an operator ends every holding of a read-write lock (read and write) or
-- semaphore; the permits pass on as after a release.
--
-- KEYS[1..7] the keys of the name of the kind (see kindlib.lua); KEYS[6] revoked zset gets every
--            holding forced out, with its lease deadline, so that its holder's next renewal
--            learns it was revoked (see kind_extend.lua) for the rest of its lease plus a second
-- ARGV[1] publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[2] fence retention, ms
-- ARGV[3] kind: "r", "w" or "s"
-- Reply: {"0"}      nothing was held (holdings whose lease ended do not count): nothing changed
--        {"1", n}   n holdings ended; the queue was granted holdings from its head on while they
--                   fit, and "*" woke barging waiters. A refused publish does not fail the script.
local t = redis.call('TIME')
local now = now_ms(t)
local v = redis.call('HMGET', KEYS[1], 'used', 'limit', 'wait')
if v[1] == false then
  return {'0'}
end
local live = redis.call('ZCOUNT', KEYS[7], '(' .. now, '+inf')
if live == 0 then
  return {'0'}
end
-- The first write: if it is refused (a key of another type), nothing was written.
redis.call('ZUNIONSTORE', KEYS[6], 2, KEYS[6], KEYS[7], 'AGGREGATE', 'MAX')
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 1000)
local top = redis.call('ZRANGE', KEYS[6], -1, -1, 'WITHSCORES')
if top[2] then
  redis.call('PEXPIRE', KEYS[6], math.max(tonumber(top[2]) - now, 0) + 1000)
end
redis.call('DEL', KEYS[1], KEYS[7])
local fixed = nil
if ARGV[3] ~= 's' then
  fixed = RW_WEIGHT
end
local st = kind_state(v[1], v[2], v[3], fixed)
-- Everything ended: the name starts afresh (its keys are gone), keeping its recorded limit for
-- the grants.
st.exists, st.used, st.used0, st.wait0, st.limit0, st.freed = false, 0, 0, '', nil, true
pass_on(st, t, ARGV[1], ARGV[2], true)
save(st, t)
return {'1', tostring(live)}
