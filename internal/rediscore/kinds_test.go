package rediscore

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

func TestKindKeysShareTheNameTagApartFromTheMutex(t *testing.T) {
	l := Layout{Prefix: DefaultPrefix}
	for _, name := range []string{"a", "}", "{", "a}b{c", "%7B", "%", "ns:x:y", "鍵{0}", "\x00w", strings.Repeat("z", 1024)} {
		seen := map[string]string{}
		for _, k := range l.Keys(name) {
			seen[k] = "mutex"
		}
		tag := hashTag(l.Keys(name)[0])
		for _, kind := range []Kind{RW, Semaphore} {
			keys := l.KindKeys(kind, name)
			require.Len(t, keys, NumKindKeys)
			for _, k := range keys {
				assert.Equal(t, tag, hashTag(k), "name %q: key %q hashes apart from the mutex", name, k)
				assert.Empty(t, seen[k], "name %q: key %q is a key of the %s too", name, k, seen[k])
				seen[k] = "kind"
			}
			assert.Equal(t, keys[KindKeyChannel], l.KindChannel(kind, name))
		}
	}
	assert.Equal(t, []string{"p:{a%7Bb}:rw.h", "p:{a%7Bb}:rw.f", "p:{a%7Bb}:rw.q", "p:{a%7Bb}:rw.ch", "p:{a%7Bb}:rw.qw", "p:{a%7Bb}:rw.rv", "p:{a%7Bb}:rw.e"},
		Layout{Prefix: "p"}.KindKeys(RW, "a{b"))
	assert.Equal(t, "p:{x}:sem.ch", Layout{Prefix: "p"}.KindChannel(Semaphore, "x"))
	assert.LessOrEqual(t, testing.AllocsPerRun(100, func() { _ = l.KindKeys(Semaphore, "orders:42") }), 3.0)
}

func TestKindArgsMatchScriptHeaders(t *testing.T) {
	req := driver.AcquireRequest{Name: "n", Owner: "o w", Ticket: "t", Lease: 1500 * time.Microsecond, Permits: 2, Limit: 5}
	assert.Equal(t, []string{"o w", "t", "2", "1", "3000", "60000", Sharded, "in", "s", "2", "5"},
		KindAcquireArgs('s', req, true, 3*time.Second, time.Minute, Sharded, "in"))
	assert.Equal(t, []string{"o w", "t", "2", "0", "0", "60000", Classic, NoInbox, "r", "0", "0"},
		KindAcquireArgs('r', req, false, 0, time.Minute, Classic, NoInbox))
	assert.Equal(t, []string{"o", "t", Sharded, "60000", "w"}, KindReleaseArgs('w', "o", "t", Sharded, time.Minute))
	assert.Equal(t, []string{"o", "1000", "r"}, KindExtendArgs('r', "o", time.Second))
	assert.Equal(t, []string{"t", Sharded, "60000", "s"}, KindLeaveArgs('s', "t", Sharded, time.Minute))
	assert.Equal(t, []string{Classic, "60000", "w"}, KindForceReleaseArgs('w', Classic, time.Minute))

	argv := regexp.MustCompile(`ARGV\[(\d+)\]`)
	keys := regexp.MustCompile(`KEYS\[(\d+)\]`)
	for src, nargs := range map[string]int{
		kindAcquireLua: 11, kindReleaseLua: 5, kindExtendLua: 3, kindLeaveLua: 4, kindForceReleaseLua: 3, kindInspectLua: 0,
	} {
		head := src[:strings.Index(src, "\nlocal ")]
		assert.Contains(t, head, "KEYS[1")
		assert.Contains(t, head, "Reply:")
		for _, m := range argv.FindAllStringSubmatch(src, -1) {
			n, _ := strconv.Atoi(m[1])
			assert.LessOrEqual(t, n, nargs, "a script reads ARGV[%d] of %d", n, nargs)
			assert.Contains(t, head, "ARGV["+m[1]+"]", "ARGV[%s] is not in the script's header", m[1])
		}
	}
	for _, src := range []string{KindAcquireLua, KindReleaseLua, KindExtendLua, KindLeaveLua, KindForceReleaseLua, KindInspectLua} {
		for _, m := range keys.FindAllStringSubmatch(src, -1) {
			n, _ := strconv.Atoi(m[1])
			assert.True(t, n >= 1 && n <= NumKindKeys, "KEYS[%d]", n)
		}
	}
}

// TestScriptsTouchOnlyTheirKeys: every command a script calls names a key
// of KEYS (or the key parameter of a helper that is called with one), so
// that cluster routing and ACL key patterns see every key.
func TestScriptsTouchOnlyTheirKeys(t *testing.T) {
	call := regexp.MustCompile(`(?:redis\.p?call|try)\(\s*('[A-Z]+'|[a-z]+)\s*(?:,\s*([^,)]+))?`)
	for name, src := range map[string]string{"kindlib": kindLibLua, "lib": libLua, "kind_acquire": kindAcquireLua,
		"kind_release": kindReleaseLua, "kind_extend": kindExtendLua, "kind_leave": kindLeaveLua,
		"kind_forcerelease": kindForceReleaseLua, "kind_inspect": kindInspectLua} {
		found := 0
		for _, m := range call.FindAllStringSubmatch(src, -1) {
			if m[1] == "" {
				continue
			}
			found++
			switch {
			case m[1] == "'TIME'":
				assert.Empty(t, m[2], "%s: TIME with arguments", name)
			case strings.HasPrefix(m[2], "KEYS["):
			case m[2] == "key" || m[2] == "channel": // lib.lua's helpers, called with KEYS
			default:
				t.Errorf("%s: %s on %q, not a key of KEYS", name, m[1], m[2])
			}
		}
		assert.Positive(t, found, name)
	}
}

func TestKindError(t *testing.T) {
	err := KindError("DISGO_MISMATCH the semaphore was declared with limit 3")
	require.ErrorIs(t, err, driver.ErrMismatch)
	require.ErrorIs(t, err, ErrMismatch)
	assert.Contains(t, err.Error(), "limit 3")
	err = KindError("DISGO_UPGRADE no")
	require.ErrorIs(t, err, driver.ErrUpgrade)
	assert.NotErrorIs(t, err, driver.ErrMismatch)
	assert.NoError(t, KindError("NOSCRIPT No matching script"))
	assert.NoError(t, KindError(""))
}

func TestParseHoldingRecord(t *testing.T) {
	r := HoldingRecord{Count: 2, Fence: 1796185191295782, Ticket: "tk", Weight: RWWeight}
	got, err := ParseHoldingRecord(r.String())
	require.NoError(t, err)
	assert.Equal(t, r, got)
	for _, bad := range []string{"", "1 2 t", "1 2 t 3 4", "0 2 t 1", "1 0 t 1", "1 2  1", "01 2 t 1", "1 2 t -1", "1 99999999999999999999 t 1", "4294967296 1 t 1"} {
		_, err := ParseHoldingRecord(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestParseKindInspect(t *testing.T) {
	now := int64(1_000_000)
	dl := func(ms int64) string { return strconv.FormatInt(now+ms, 10) }
	st, err := ParseKindInspect(RW, []string{strconv.FormatInt(now, 10), "2", "",
		"r a b", dl(1500), "1 7 t1 1",
		"w w", dl(3000), "2 9 t2 1099511627776",
		"r lapsed", dl(0), "1 5 t3 1"})
	require.NoError(t, err)
	assert.Equal(t, driver.State{Owner: "w", Count: 2, Fence: 9, TTL: 3 * time.Second, Waiters: 2, Holders: []driver.Holding{
		{Owner: "a b", Count: 1, Fence: 7, TTL: 1500 * time.Millisecond},
		{Owner: "w", Write: true, Count: 2, Fence: 9, TTL: 3 * time.Second},
	}}, st)

	st, err = ParseKindInspect(Semaphore, []string{strconv.FormatInt(now, 10), "0", "5", "s x", "1.001e+06", "1 3 t 2"})
	require.NoError(t, err)
	assert.Equal(t, driver.State{Limit: 5, Used: 2, Holders: []driver.Holding{{Owner: "x", Count: 1, Permits: 2, Fence: 3, TTL: time.Second}}}, st)

	// A limit with only lapsed holdings and nobody waiting is not recorded.
	st, err = ParseKindInspect(Semaphore, []string{strconv.FormatInt(now, 10), "0", "5", "s x", dl(-1), "1 3 t 2"})
	require.NoError(t, err)
	assert.Zero(t, st)
	st, err = ParseKindInspect(Semaphore, []string{"1", "0", ""})
	require.NoError(t, err)
	assert.Zero(t, st)

	for _, bad := range [][]string{nil, {"1", "0"}, {"x", "0", ""}, {"1", "-1", ""}, {"1", "0", "", "s x"},
		{"1", "0", "", "sx", "5", "1 1 t 1"}, {"1", "0", "", "s x", "zz", "1 1 t 1"}, {"1", "0", "", "s x", "5", "garbage"},
		{"1", "0", "", "q x", "5", "1 1 t 1"}, {"1", "1", "0", "s x", "5", "1 1 t 1"}, {"1", "0", "", "w x", "5", "1 1 t 1"}} {
		_, err := ParseKindInspect(Semaphore, bad)
		assert.Error(t, err, "%q", bad)
	}
	_, err = ParseKindInspect(RW, []string{"1", "0", "", "s x", "5", "1 1 t 1"})
	assert.Error(t, err, "a semaphore holding in a read-write lock")
}

func TestParseKindForceReleaseAndQueue(t *testing.T) {
	held, err := ParseKindForceRelease([]string{"0"})
	require.NoError(t, err)
	assert.False(t, held)
	held, err = ParseKindForceRelease([]string{"1", "3"})
	require.NoError(t, err)
	assert.True(t, held)
	for _, bad := range [][]string{nil, {"1"}, {"1", "0"}, {"1", "x"}, {"2", "1"}, {"1", "fence", "owner"}} {
		_, err := ParseKindForceRelease(bad)
		assert.Error(t, err, "%q", bad)
	}

	q, err := ParseKindQueue([]string{"1000", "t1", "3000 5000 5000 in w 0 0 owner with spaces", "t2", "", "t3", "bad"})
	require.NoError(t, err)
	assert.Equal(t, []driver.Waiter{
		{Position: 0, Ticket: "t1", Owner: "owner with spaces", Heartbeat: 2 * time.Second, TTL: 5 * time.Second},
		{Position: 1, Ticket: "t2"}, {Position: 2, Ticket: "t3"},
	}, q)
	_, err = ParseKindQueue([]string{"1000", "t1"})
	assert.Error(t, err)
}

// FuzzParseKindInspect: any reply decodes to a state or an error, never
// panics, and never to a holding without a positive count and fence.
func FuzzParseKindInspect(f *testing.F) {
	f.Add("1000", "1", "5", "s x", "2000", "1 3 t 2", true)
	f.Add("1000", "0", "", "w x", "2000", "1 3 t 1099511627776", false)
	f.Add("1000", "0", "", "r ", "1e300", "1 3 t 1", false)
	f.Fuzz(func(t *testing.T, now, waiters, limit, id, dl, rec string, sem bool) {
		k := RW
		if sem {
			k = Semaphore
		}
		st, err := ParseKindInspect(k, []string{now, waiters, limit, id, dl, rec})
		if err != nil {
			return
		}
		for _, h := range st.Holders {
			if h.Count <= 0 || h.Fence <= 0 || h.TTL <= 0 || h.Permits < 0 {
				t.Fatalf("holding %+v", h)
			}
		}
		if st.Used < 0 || st.Limit < 0 || st.Waiters < 0 {
			t.Fatalf("state %+v", st)
		}
	})
}
