package rediscore

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// assembled is every script as the adapters load it.
func assembled() map[string]string {
	return map[string]string{
		"acquire": AcquireLua, "release": ReleaseLua, "extend": ExtendLua, "leave": LeaveLua,
		"inspect": InspectLua, "inspectqueue": InspectQueueLua, "forcerelease": ForceReleaseLua,
		"acquireall": AcquireAllLua, "kind_acquire": KindAcquireLua, "kind_release": KindReleaseLua,
		"kind_extend": KindExtendLua, "kind_leave": KindLeaveLua, "kind_forcerelease": KindForceReleaseLua,
		"kind_inspect": KindInspectLua,
	}
}

// helperNames are the names the helper libraries define, read with a
// pattern of its own rather than with parseHelpers.
func helperNames(t *testing.T) []string {
	def := regexp.MustCompile(`(?m)^local (?:function )?([A-Za-z_]\w*)`)
	var out []string
	for _, lib := range []string{libLua, kindLibLua} {
		for _, m := range def.FindAllStringSubmatch(lib, -1) {
			out = append(out, m[1])
		}
	}
	require.Greater(t, len(out), 25)
	return out
}

// TestAssembledScriptsDefineHelpersBeforeUse: in every assembled script,
// each helper that the code names is defined exactly once, and its first
// mention is its definition. A helper left out, or defined below a use,
// would be a nil global that fails the script when that path runs.
func TestAssembledScriptsDefineHelpersBeforeUse(t *testing.T) {
	names := helperNames(t)
	for script, src := range assembled() {
		c := code(src)
		for _, name := range names {
			tok := regexp.MustCompile(`\b` + name + `\b`)
			uses := tok.FindAllStringIndex(c, -1)
			if len(uses) == 0 {
				continue
			}
			defs := regexp.MustCompile(`(?m)^local (?:function )?`+name+`\b`).FindAllStringIndex(c, -1)
			if assert.Len(t, defs, 1, "%s: %s is named but not defined once", script, name) {
				// The first mention is inside the definition line itself.
				line := c[defs[0][0]:]
				line = line[:strings.IndexByte(line, '\n')]
				first := uses[0][0]
				assert.True(t, first >= defs[0][0] && first < defs[0][0]+len(line), "%s: %s is named before its definition", script, name)
			}
		}
	}
}

// TestAssembledScriptsLeaveOutUnusedHelpers: a script carries only what it
// uses, and the uncontended paths of acquire and release, and release's
// common hand-off, build no closure.
func TestAssembledScriptsLeaveOutUnusedHelpers(t *testing.T) {
	defined := func(src string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`(?m)^local (?:function )?([A-Za-z_]\w*)`).FindAllStringSubmatch(src, -1) {
			out = append(out, m[1])
		}
		return out
	}
	above := func(src string) string {
		i := strings.Index(src, "\n"+HelpersMark+"\n")
		require.Positive(t, i, "no helpers mark")
		return src[:i]
	}
	assert.Equal(t, []string{"v", "lease", "fair", "head", "now"}, defined(above(AcquireLua)))
	assert.Equal(t, []string{"v", "n", "popped", "head", "rec"}, defined(above(ReleaseLua)))
	// Every function defined in the chunk run above the mark (a helper or
	// one of the script's own) would build a closure on each uncontended
	// call.
	fn := regexp.MustCompile(`\bfunction\b`)
	for script, src := range map[string]string{"acquire": AcquireLua, "release": ReleaseLua} {
		assert.Empty(t, fn.FindAllString(code(above(src)), -1), "%s: the code above the mark defines a function", script)
		assert.Contains(t, src[strings.Index(src, "\n"+HelpersMark+"\n"):], "local function ", "%s: the helpers are defined below the mark", script)
	}
	assert.Contains(t, ReleaseLua, "local function hand_on(")
	assert.NotContains(t, AcquireLua, "local function hand_on(", "acquire never hands on")
	assert.NotContains(t, InspectLua, "local function issue_fence(", "inspect issues no token")
	assert.NotContains(t, KindInspectLua, "local function parse_lock(", "a kind has no mutex lock string")
	for script, src := range assembled() {
		assert.True(t, strings.HasPrefix(src, "-- "), "%s: the assembled script starts with its own header", script)
		assert.Contains(t, src[:strings.Index(src, "\nlocal ")], "Reply", "%s: the header comes before the helpers", script)
	}
}

// TestInlinedHelpersMatchLib: the uncontended paths of acquire.lua and
// release.lua spell out what they take from lib.lua, so that they define no
// function; what they spell out is what lib.lua says.
func TestInlinedHelpersMatchLib(t *testing.T) {
	def := func(name string) string { return luaFunction(t, libLua, name) }
	kdef := func(name string) string { return luaFunction(t, kindLibLua, name) }
	// parse_lock's pattern, and lock_string's concatenation.
	assert.Contains(t, def("parse_lock"), "string.match(v, '^(%d+)(w?) (%d+) (%S+) (.*)$')")
	assert.Contains(t, releaseLua, "string.match(v, '^(%d+)(w?) (%d+) (%S+) (.*)$')")
	assert.Contains(t, def("lock_string"), "return n .. w .. ' ' .. f .. ' ' .. r .. ' ' .. o")
	assert.Contains(t, releaseLua, "n .. w .. ' ' .. f .. ' ' .. r .. ' ' .. o, 'KEEPTTL'")
	assert.Contains(t, acquireLua, "'1 ' .. now .. ' ' .. ARGV[2] .. ' ' .. ARGV[1], 'PX', lease") // lock_string(1, '', now, ...)
	// issue_fence's clock and write, and fence_ok's digits.
	assert.Contains(t, def("issue_fence"), "local now = t[1] .. string.sub('00000' .. t[2], -6)\n")
	assert.Contains(t, acquireLua, "now = t[1] .. string.sub('00000' .. t[2], -6)\n")
	assert.Contains(t, def("issue_fence"), "redis.pcall('SET', key, now, 'PX', retention, 'GET')")
	assert.Contains(t, acquireLua, "redis.pcall('SET', KEYS[2], now, 'PX', ARGV[6], 'GET')")
	assert.Contains(t, def("fence_ok"), "string.match(s, '^[1-9]%d*$')")
	assert.Contains(t, acquireLua, "string.find(last, '^[1-9]%d*$')")
	// release.lua's common hand-off: hand_on's first step, with parse_waiter's
	// pattern, now_ms's arithmetic, issue_fence's clock and write, fence_ok's
	// digits, lock_string(1, 'w', ...) and the publish of the grant.
	assert.Contains(t, def("parse_waiter"), "string.match(rec, '^(%d+) (%d+) (%d+) (%S+) (.*)$')")
	assert.Contains(t, releaseLua, "string.match(rec or '', '^(%d+) (%d+) (%d+) (%S+) (.*)$')")
	assert.Contains(t, def("now_ms"), "return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)")
	assert.Contains(t, releaseLua, "tonumber(deadline) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)")
	assert.Contains(t, def("hand_on"), "tonumber(deadline) > now_ms(t)")
	assert.Contains(t, releaseLua, "now = t[1] .. string.sub('00000' .. t[2], -6)\n")
	assert.Contains(t, releaseLua, "redis.pcall('SET', KEYS[2], now, 'PX', ARGV[4], 'GET')")
	assert.Contains(t, releaseLua, "string.find(last, '^[1-9]%d*$')")
	assert.Contains(t, def("hand_on"), "lock_string(1, 'w', fs, head, owner), 'PX', grant_lease)")
	assert.Contains(t, releaseLua, "'1w ' .. now .. ' ' .. head .. ' ' .. owner, 'PX', grant_lease)")
	assert.Contains(t, def("hand_on"), "publish(pub, KEYS[4] .. ':' .. inbox, head .. ' ' .. fs)")
	assert.Contains(t, releaseLua, "redis.pcall(ARGV[3], KEYS[4] .. ':' .. inbox, head .. ' ' .. now)")
	assert.Contains(t, def("hand_on"), "publish(pub, KEYS[4], head .. ' ' .. fs)")
	assert.Contains(t, releaseLua, "redis.pcall(ARGV[3], KEYS[4], head .. ' ' .. now)")
	// kind_release.lua's common case: now_ms's arithmetic, holding_id's
	// concatenation and parse_holding's pattern.
	assert.Contains(t, kindReleaseLua, "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n")
	assert.Contains(t, kdef("holding_id"), "return kind .. ' ' .. owner")
	assert.Contains(t, kindReleaseLua, "local id = ARGV[5] .. ' ' .. ARGV[1]\n")
	assert.Contains(t, kdef("parse_holding"), "string.match(v, '^(%d+) (%d+) (%S+) (%d+)$')")
	assert.Contains(t, kindReleaseLua, "string.match(v[1], '^(%d+) (%d+) (%S+) (%d+)$')")
	// kind_acquire.lua's first holding: weight's values, holding_id, now_ms,
	// issue_fence's clock and write, fence_ok's digits and holding_string.
	assert.Contains(t, kindLibLua, "\nlocal RW_WEIGHT = 1099511627776\n")
	assert.Contains(t, kdef("weight"), "if kind == 'w' then\n    return RW_WEIGHT\n  elseif kind == 'r' then\n    return 1\n  end\n  return permits")
	assert.Contains(t, kindAcquireLua, "k, id, other = 1099511627776, 'w ' .. owner, 'r ' .. owner\n")
	assert.Contains(t, kindAcquireLua, "k, id, other = 1, 'r ' .. owner, 'w ' .. owner\n")
	assert.Contains(t, kindAcquireLua, "k, id = tonumber(ARGV[10]), kind .. ' ' .. owner\n")
	assert.Contains(t, kindAcquireLua, "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n")
	assert.Contains(t, kindAcquireLua, "fnow = t[1] .. string.sub('00000' .. t[2], -6)\n")
	assert.Contains(t, kindAcquireLua, "redis.pcall('SET', KEYS[2], fnow, 'PX', retention, 'GET')")
	assert.Contains(t, kindAcquireLua, "string.find(flast, '^[1-9]%d*$')")
	assert.Contains(t, kdef("holding_string"), "return n .. ' ' .. f .. ' ' .. r .. ' ' .. k")
	assert.Contains(t, kindAcquireLua, "'1 ' .. fnow .. ' ' .. ticket .. ' ' .. k")
	// Above their marks, neither defines a helper.
	for name, src := range map[string]string{"kind_release": KindReleaseLua, "kind_acquire": KindAcquireLua} {
		assert.NotContains(t, src[:strings.Index(src, "local t = redis.call('TIME')")], "local function", name)
	}
}

// luaFunction returns the text of lib's top-level "local function name",
// up to its closing "end".
func luaFunction(t *testing.T, lib, name string) string {
	t.Helper()
	i := strings.Index(lib, "\nlocal function "+name+"(")
	require.Positive(t, i, name)
	j := strings.Index(lib[i:], "\nend\n")
	require.Positive(t, j, name)
	return lib[i : i+j]
}

func TestAssemble(t *testing.T) {
	lib := `-- lib header, left out

-- A doc.
local K = 3

-- b doubles.
local function b(x)
  return 2 * x
end

local function c(x)
  return b(x) + K
end

local function unused()
  return 0
end
`
	t.Run("NoMark", func(t *testing.T) {
		got := assemble("-- header\n-- Reply: n\nreturn c(1)\n", parseHelpers(lib))
		assert.Equal(t, "-- header\n-- Reply: n\n-- A doc.\nlocal K = 3\n-- b doubles.\nlocal function b(x)\n  return 2 * x\nend\nlocal function c(x)\n  return b(x) + K\nend\nreturn c(1)\n", got)
	})
	t.Run("Mark", func(t *testing.T) {
		got := assemble("-- header\nif ARGV[1] then\n  return b(1)\nend\n"+HelpersMark+"\nreturn c(2) -- not unused()\n", parseHelpers(lib))
		assert.Equal(t, "-- header\n-- b doubles.\nlocal function b(x)\n  return 2 * x\nend\nif ARGV[1] then\n  return b(1)\nend\n"+HelpersMark+"\n-- A doc.\nlocal K = 3\nlocal function c(x)\n  return b(x) + K\nend\nreturn c(2) -- not unused()\n", got)
	})
	t.Run("NothingUsed", func(t *testing.T) {
		assert.Equal(t, "-- h\nreturn 1\n", assemble("-- h\nreturn 1\n", parseHelpers(lib)))
	})
	t.Run("Uses", func(t *testing.T) {
		hs := parseHelpers(lib)
		require.Len(t, hs, 4)
		assert.Equal(t, []string{"K", "b", "c", "unused"}, []string{hs[0].name, hs[1].name, hs[2].name, hs[3].name})
		assert.Equal(t, []string{"K", "b"}, hs[2].uses)
		assert.Empty(t, hs[1].uses)
	})
}

// TestScriptsHaveNoDashesInStrings: "--" in a script's code always starts
// a comment, which code() relies on to find the helpers a script names.
func TestScriptsHaveNoDashesInStrings(t *testing.T) {
	srcs := map[string]string{"lib": libLua, "kindlib": kindLibLua}
	for name, src := range assembled() {
		srcs[name] = src
	}
	for name, src := range srcs {
		for i, line := range strings.Split(src, "\n") {
			j := strings.Index(line, "--")
			if j < 0 {
				continue
			}
			before := line[:j]
			assert.Zero(t, strings.Count(before, "'")%2, "%s:%d: -- inside a string: %s", name, i+1, line)
			assert.Zero(t, strings.Count(before, `"`)%2, "%s:%d: -- inside a string: %s", name, i+1, line)
			assert.NotContains(t, line[j:], "--[[", "%s:%d: block comments are not stripped by code()", name, i+1)
		}
	}
}
