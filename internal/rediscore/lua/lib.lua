-- lib: helpers shared by the scripts. Each script gets the definitions it uses, placed before
-- its code or at its "--@helpers" line (see assemble.go). It defines functions and constants
-- only; nothing runs until a script calls one (hand_on works on the KEYS of the script that
-- calls it). Every definition a script carries above its mark builds a closure on each call, so
-- the uncontended paths of acquire.lua and release.lua use none of them and spell out the little
-- they need. Lua numbers are doubles, so fencing tokens, which may use all 63 bits, are handled
-- as decimal strings, exactly.

-- The largest fencing token: 2^63-1.
local FENCE_MAX = '9223372036854775807'

-- now_ms: the time of a TIME reply t in whole milliseconds (exact in a double).
local function now_ms(t)
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- fence_ok: s is a fencing token as the scripts write them: a decimal integer without sign or
-- leading zeros, at most FENCE_MAX.
local function fence_ok(s)
  if type(s) ~= 'string' then
    return false
  end
  if s == '0' then
    return true
  end
  if not string.match(s, '^[1-9]%d*$') then
    return false
  end
  return #s < 19 or (#s == 19 and s <= FENCE_MAX)
end

-- fence_less: a < b, for tokens that fence_ok accepts.
local function fence_less(a, b)
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

-- fence_next: s + 1 as a decimal string, for a token below FENCE_MAX.
local function fence_next(s)
  local i = #s
  while i > 0 and string.byte(s, i) == 57 do -- '9'
    i = i - 1
  end
  if i == 0 then
    return '1' .. string.rep('0', #s)
  end
  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) .. string.rep('0', #s - i)
end

-- settle_fence: finish issuing the next fencing token of a name, max(last + 1, now), after the
-- clock now (server TIME in µs, a decimal string) was written to the fence record key with
-- "SET key now PX retention GET" (through redis.pcall), which returned last. It returns the token
-- as a decimal string, or false, with the record as it was, when the record held no token below
-- FENCE_MAX (not a number, out of range, or not a string). The rare clash with the last token is
-- fixed by a second write. acquire.lua makes the write itself and settles the common cases (no
-- record, or an older token of the clock's length) before any helper is defined; it comes here
-- for the others.
local function settle_fence(key, retention, now, last)
  if type(last) == 'table' then
    return false -- an error reply (a key of another type): nothing was written
  end
  if not last then
    return now
  end
  if not fence_ok(last) or last == FENCE_MAX then
    redis.call('SET', key, last, 'PX', retention) -- put the record back as it was
    return false
  end
  if fence_less(last, now) then
    return now
  end
  local nf = fence_next(last)
  redis.call('SET', key, nf, 'PX', retention)
  return nf
end

-- issue_fence: issue the next fencing token of a name: max(last + 1, server TIME in µs), where
-- last is the token in the fence record key (kept retention ms after each issue), written back
-- there. t is a TIME reply. It returns the token as a decimal string, or false, with the record
-- as it was, when the record holds no token below FENCE_MAX (see settle_fence). The clock is
-- written first and read back in the same call.
local function issue_fence(key, retention, t)
  local now = t[1] .. string.sub('00000' .. t[2], -6)
  return settle_fence(key, retention, now, redis.pcall('SET', key, now, 'PX', retention, 'GET'))
end

-- read_fence: the token in the fence record key, or '0' when there is none or it is not one.
local function read_fence(key)
  local last = redis.pcall('GET', key)
  if fence_ok(last) then
    return last
  end
  return '0'
end

-- parse_lock: the fields of a lock string "<count>[w] <fence> <ticket> <owner>": the hold
-- count, "w" when someone waited for this holding (else ""), the fencing token, the ticket of the
-- latest acquisition and the owner; nil when it is not one. release.lua's uncontended path
-- matches the same pattern itself, so as to define no function (TestInlinedHelpersMatchLib).
local function parse_lock(v)
  return string.match(v, '^(%d+)(w?) (%d+) (%S+) (.*)$')
end

-- lock_string: the lock string of the fields parse_lock returns. The uncontended paths of
-- acquire.lua and release.lua build it themselves, so as to define no function.
local function lock_string(n, w, f, r, o)
  return n .. w .. ' ' .. f .. ' ' .. r .. ' ' .. o
end

-- parse_waiter: the fields of a waiter record "<heartbeat deadline ms> <waiter TTL ms> <grant
-- lease ms> <inbox> <owner>"; nil when it is not one.
local function parse_waiter(rec)
  if not rec then
    return nil
  end
  return string.match(rec, '^(%d+) (%d+) (%d+) (%S+) (.*)$')
end

-- publish: PUBLISH or SPUBLISH (cmd) msg on channel. A refused publish (for example an ACL
-- user without the channel) is ignored: the script has written its change already and must
-- not fail after that, and waiters re-check on their own.
local function publish(cmd, channel, msg)
  redis.pcall(cmd, channel, msg)
end

-- hand_on: pass on the lock of KEYS (the keys of a name, as acquire.lua takes them) whose last
-- hold just ended: to the first live waiter of the fair queue, which then holds it (fresh fence,
-- hold count 1, its ticket as the latest acquisition, lease = its grant lease) and is told by
-- the message "<ticket> <fence>" on its process's inbox channel; or, with no live waiter (or no
-- fencing token left to issue, which the waiter's own attempt then reports), the lock is freed
-- and "*" wakes every waiter. pub is the publish command, retention the fence retention in ms.
-- Waiters whose heartbeat lapsed are taken off the head on the way (at most 64).
-- A hand-off is ZPOPMIN, HGET, HDEL, TIME, SET ... GET, SET, PUBLISH.
-- first, when given, is the first of those steps as the caller already took it (release.lua
-- does, for its common case): {popped, rec, t, now, last}: the ZPOPMIN reply; the popped head's
-- record (the HGET reply; the HDEL is done); the TIME reply, false when there was no head or no
-- record of it was parsed; and, when the head was live, the clock as a token and the reply of the
-- SET ... GET that wrote it to the fence record, which settle_fence then finishes (both false
-- otherwise).
local function hand_on(pub, retention, first)
  local t = first and first[3] or false
  for i = 1, 64 do
    local popped, rec
    if i == 1 and first then
      popped, rec = first[1], first[2]
    else
      popped = redis.call('ZPOPMIN', KEYS[3])
    end
    local head = popped[1]
    if not head then
      break
    end
    if not (i == 1 and first) then
      -- The head is popped: nothing may fail now. A waiters hash of another type holds no
      -- record.
      rec = redis.pcall('HGET', KEYS[5], head)
      if type(rec) ~= 'string' then
        rec = false
      end
      redis.pcall('HDEL', KEYS[5], head)
    end
    local deadline, _, grant_lease, inbox, owner = parse_waiter(rec)
    if deadline then
      t = t or redis.call('TIME')
      if tonumber(deadline) > now_ms(t) then
        -- Hand over: the head holds the lock now, without another round trip.
        local fs
        if i == 1 and first and first[4] then
          fs = settle_fence(KEYS[2], retention, first[4], first[5])
        else
          fs = issue_fence(KEYS[2], retention, t)
        end
        if not fs then
          -- No token left to issue: keep the head queued and free the lock.
          redis.call('ZADD', KEYS[3], popped[2], head)
          redis.call('HSET', KEYS[5], head, rec)
          break
        end
        redis.call('SET', KEYS[1], lock_string(1, 'w', fs, head, owner), 'PX', grant_lease)
        if inbox == '-' then
          publish(pub, KEYS[4], head .. ' ' .. fs)
        else
          publish(pub, KEYS[4] .. ':' .. inbox, head .. ' ' .. fs)
        end
        return
      end
    end
  end
  redis.call('DEL', KEYS[1])
  publish(pub, KEYS[4], '*')
end
