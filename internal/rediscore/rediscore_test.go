package rediscore

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// hashTag returns what Redis Cluster hashes for key: the part between the
// first '{' and the next '}', if that is non-empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestKeysShareOneHashTag(t *testing.T) {
	l := Layout{Prefix: DefaultPrefix}
	for _, name := range []string{"a", "}", "{", "{}", "}{", "a}b{c", "%7B", "%", "ns:x:y", "ключ", "鍵{0}", strings.Repeat("z", 1024)} {
		keys := l.Keys(name)
		require.Len(t, keys, NumKeys)
		tag := hashTag(keys[0])
		assert.NotEqual(t, keys[0], tag, "name %q: the key has no effective hash tag", name)
		for _, k := range keys {
			assert.Equal(t, tag, hashTag(k), "name %q: key %q hashes differently", name, k)
		}
		assert.Equal(t, keys[KeyChannel], l.Channel(name))
		assert.Equal(t, tag, hashTag(l.Inbox(name, NewInbox())), "name %q: the inbox channel hashes differently", name)
		got, ok := l.NameOfChannel(l.Channel(name))
		assert.True(t, ok)
		assert.Equal(t, name, got)
	}
	// Distinct names never share keys, even when escaping is involved.
	assert.NotEqual(t, l.Keys("{")[0], l.Keys("%7B")[0])
}

func TestNameOfChannelRejectsForeignChannels(t *testing.T) {
	l := Layout{Prefix: "p"}
	for _, ch := range []string{"", "p:{a}:lock", "q:{a}:ch", "p:{a%zz}:ch", "p:a:ch"} {
		_, ok := l.NameOfChannel(ch)
		assert.False(t, ok, ch)
	}
}

func TestValidatePrefix(t *testing.T) {
	require.NoError(t, ValidatePrefix("disgo"))
	require.Error(t, ValidatePrefix("a{b"))
	require.Error(t, ValidatePrefix("a}"))
}

func TestMsRoundsUp(t *testing.T) {
	assert.Equal(t, "1", Ms(time.Microsecond))
	assert.Equal(t, "1", Ms(time.Millisecond))
	assert.Equal(t, "2", Ms(time.Millisecond+1))
	assert.Equal(t, "0", Ms(0))
}

func TestParse(t *testing.T) {
	r, err := ParseAcquire([]int64{1, 42, 2})
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: 42, Count: 2, Position: -1}, r)
	r, err = ParseAcquire([]int64{0, 1500, 3, 41})
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{TTL: 1500 * time.Millisecond, Position: 3, Fence: 41}, r)
	r, err = ParseAcquire([]int64{0, -2, -1, 0})
	require.NoError(t, err)
	assert.Negative(t, r.TTL)
	_, err = ParseAcquire([]int64{-1, 0, 0})
	require.ErrorIs(t, err, driver.ErrFence)
	require.ErrorIs(t, err, ErrFenceRecord)
	for _, bad := range [][]int64{{1}, {1, 0, 1}, {1, 5, 0}, {0, 1, 2}, {0, 1, 2, -3}, {0, 1, -2, 3}, {2, 0, 0}, {-1, 0}, nil} {
		_, err = ParseAcquire(bad)
		require.Error(t, err, "%v", bad)
	}

	held, n := ParseRelease(-1)
	assert.False(t, held)
	assert.Zero(t, n)
	held, n = ParseRelease(2)
	assert.True(t, held)
	assert.Equal(t, 2, n)

	assert.Equal(t, driver.State{Owner: "o", Count: 1, Fence: 9, TTL: time.Second, Waiters: 2}, ParseInspect("o", 1, 9, 1000, 2))
	assert.Equal(t, driver.State{}, ParseInspect("", 0, 0, -2, 0))
}

func TestArgsMatchScriptHeaders(t *testing.T) {
	req := driver.AcquireRequest{Name: "n", Owner: "o", Ticket: "t", Lease: 1500 * time.Microsecond}
	assert.Equal(t, []string{"o", "t", "2", "1", "3000", "60000", Sharded, "in"}, AcquireArgs(req, true, 3*time.Second, time.Minute, Sharded, "in"))
	assert.Equal(t, "0", AcquireArgs(req, false, 0, time.Minute, Classic, NoInbox)[3])
	for _, s := range []string{AcquireLua, ReleaseLua, ExtendLua, LeaveLua, InspectLua, InspectQueueLua} {
		assert.Contains(t, s, "KEYS[1")
		assert.Contains(t, s, "Reply:")
	}
}

func TestKeysLayout(t *testing.T) {
	l := Layout{Prefix: "p"}
	assert.Equal(t, []string{"p:{a%7Bb}:lock", "p:{a%7Bb}:fence", "p:{a%7Bb}:q", "p:{a%7Bb}:ch", "p:{a%7Bb}:qw", "p:{a%7Bb}:rv"}, l.Keys("a{b"))
	assert.Equal(t, "{a%25%7D}", Tag("a%}"))
	// Every lock operation builds the keys: one allocation for the strings,
	// one for the slice.
	assert.LessOrEqual(t, testing.AllocsPerRun(100, func() { _ = l.Keys("orders:42") }), 2.0)
}
