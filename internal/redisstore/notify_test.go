package redisstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlot checks the slot computation against values of CLUSTER KEYSLOT.
func TestSlot(t *testing.T) {
	for key, want := range map[string]uint16{
		"":                     0,
		"foo":                  12182,
		"somekey":              11058,
		"{user1000}.following": 3443,
		"{user1000}.followers": 3443,
		"user1000":             3443,
		"{}x":                  Slot("{}x"), // an empty tag hashes the whole key
		"disgo:{a}:ch":         Slot("a"),
		"x{":                   Slot("x{"),
	} {
		assert.Equal(t, want, Slot(key), key)
	}
	assert.NotEqual(t, Slot("{}x"), Slot(""), "an empty hash tag")
}

func TestParseSlots(t *testing.T) {
	reply := []any{
		[]any{int64(5461), int64(10922), []any{"", int64(7001), "id2"}},
		[]any{int64(0), int64(5460), []any{"10.0.0.1", int64(7000), "id1"}, []any{"10.0.0.9", int64(7009), "r"}},
		[]any{int64(10923), int64(16383), []any{"?", int64(7002), "id3"}},
	}
	ranges, err := parseSlots(reply, "10.0.0.2:6379")
	require.NoError(t, err)
	assert.Equal(t, []slotRange{{0, 5460, "10.0.0.1:7000"}, {5461, 10922, "10.0.0.2:7001"}}, ranges)

	for _, bad := range []any{nil, "x", []any{[]any{int64(0), int64(1)}}, []any{[]any{int64(0), "x", []any{"h", int64(1)}}}, []any{[]any{int64(0), int64(1), []any{int64(3), int64(1)}}}} {
		_, err := parseSlots(bad, "a:1")
		assert.Error(t, err, "%v", bad)
	}
}
