package rediscore

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

func TestAcquireAllArgsAndReplies(t *testing.T) {
	reqs := []driver.AcquireRequest{
		{Name: "a", Owner: "o", Ticket: "t1", Lease: 1500 * time.Microsecond},
		{Name: "b", Owner: "o", Ticket: "t2", Lease: 1500 * time.Microsecond},
	}
	assert.Equal(t, []string{"o", "2", "1", "60000", "t1", "t2"}, AcquireAllArgs(reqs, true, time.Minute))
	assert.Equal(t, "0", AcquireAllArgs(reqs, false, time.Minute)[2])
	assert.Contains(t, AcquireAllLua, "KEYS")
	assert.Contains(t, AcquireAllLua, "Reply:")

	res, err := ParseAcquireAll([]int64{1, 7, 1, 9, 2}, 2)
	require.NoError(t, err)
	assert.Equal(t, []driver.AcquireResult{
		{Acquired: true, Fence: 7, Count: 1, Position: -1},
		{Acquired: true, Fence: 9, Count: 2, Position: -1},
	}, res)

	res, err = ParseAcquireAll([]int64{0, 2, 1500, 11}, 2)
	require.NoError(t, err)
	assert.False(t, res[0].Acquired || res[1].Acquired)
	assert.Equal(t, driver.AcquireResult{TTL: 1500 * time.Millisecond, Position: -1, Fence: 11}, res[1])

	res, err = ParseAcquireAll([]int64{0, 1, -2, 11}, 2)
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), res[0].TTL, "free with waiters: no lease to wait for")

	_, err = ParseAcquireAll([]int64{-1, 2}, 2)
	assert.True(t, errors.Is(err, driver.ErrFence))

	for _, bad := range [][]int64{{1, 7, 1}, {1, 0, 1, 9, 2}, {0, 3, 0, 1}, {0, 0, 0, 1}, {0, 1, 0, -1}, {-1, 5}, {2}, nil} {
		_, err := ParseAcquireAll(bad, 2)
		assert.Error(t, err, "%v", bad)
	}
}
