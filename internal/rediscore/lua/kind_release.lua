-- kind_release: undo one acquisition of a read hold, write hold or semaphore holding; the last
-- one gives its permits back, to the queue and to barging waiters.
--
-- KEYS[1..7] the keys of the name of the kind (see kindlib.lua)
-- ARGV[1] owner token
-- ARGV[2] ticket: "" releases any acquisition of the owner's holding; otherwise act only if its
--         latest acquisition carried this ticket (as for release.lua)
-- ARGV[3] publish command: "SPUBLISH" or "PUBLISH"
-- ARGV[4] fence retention, ms
-- ARGV[5] kind: "r", "w" or "s"
-- Reply: -1   not held by this owner (or not this ticket, or its lease ended): nothing of it changed
--        n>=0 hold count left. At 0 the holding ended: the queue is granted holdings from its head
--             on while they fit, each told "<ticket> <fence>" on its inbox channel, and "*" wakes
--             barging waiters if one found the name full. A refused publish does not fail the script.
-- Holdings whose lease ended are evicted first (and passed on the same way).
-- The uncontended path is TIME, HMGET, ZRANGEBYSCORE, DEL. It runs before any helper is defined
-- (see assemble.go), with now_ms, holding_id and parse_holding spelled out
-- (TestInlinedHelpersMatchLib).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[5] .. ' ' .. ARGV[1]
local v = redis.call('HMGET', KEYS[1], id, 'used', 'limit', 'wait')
if v[2] == false then
  return -1
end
if v[1] and (v[4] == false or v[4] == '') then
  -- The common case: the last acquisition of the name's only holding ends, nobody waits (no flag)
  -- and no holding lapsed. Everything goes, as the general path below would do it.
  local n, _, r, k = string.match(v[1], '^(%d+) (%d+) (%S+) (%d+)$')
  if n == '1' and (ARGV[2] == '' or r == ARGV[2]) and tonumber(k) == tonumber(v[2]) and
      #redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 1) == 0 then
    redis.call('DEL', KEYS[1], KEYS[7])
    return 0
  end
end
--@helpers
local fixed = nil
if ARGV[5] ~= 's' then
  fixed = RW_WEIGHT
end
local st = kind_state(v[2], v[3], v[4], fixed)
evict(st, now)
local n, f, r, k = parse_holding(v[1])
if n and st.capped then
  -- Eviction stopped at its bound: the holding's lease may have ended too.
  local dl = tonumber(redis.call('ZSCORE', KEYS[7], id))
  if not dl or dl <= now then
    n = nil
  end
end
local left = -1
if n and not st.gone[id] and (ARGV[2] == '' or r == ARGV[2]) then
  left = tonumber(n) - 1
  if left > 0 then
    st.set[#st.set + 1] = id
    st.set[#st.set + 1] = holding_string(left, f, r, k)
  else
    left = 0
    drop(st, id, tonumber(k))
  end
end
pass_on(st, t, ARGV[3], ARGV[4], false)
save(st, t)
return left
