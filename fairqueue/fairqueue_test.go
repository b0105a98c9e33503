package fairqueue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPolicyDefaultsAndBounds(t *testing.T) {
	var p Policy
	assert.Equal(t, DefaultWaiterTTL, p.TTL())
	assert.Equal(t, time.Second, p.Heartbeat())
	assert.Equal(t, 4*time.Second, p.EvictionBound())
	p.WaiterTTL = 300 * time.Millisecond
	assert.Equal(t, 100*time.Millisecond, p.Heartbeat())
	assert.Equal(t, 400*time.Millisecond, p.EvictionBound())
}

func TestRoomOrderEvictionAndLeave(t *testing.T) {
	var r Room
	now := time.Unix(1000, 0)
	_, ok := r.Head()
	require.False(t, ok)

	assert.Equal(t, 0, r.Join("a", now.Add(time.Second)))
	assert.Equal(t, 1, r.Join("b", now.Add(2*time.Second)))
	assert.Equal(t, 2, r.Join("c", now.Add(3*time.Second)))
	// A heartbeat keeps the place.
	assert.Equal(t, 0, r.Join("a", now.Add(5*time.Second)))
	head, _ := r.Head()
	assert.Equal(t, "a", head)

	// b lapses; a and c stay in order.
	assert.Equal(t, 1, r.Evict(now.Add(2*time.Second)))
	assert.Equal(t, 2, r.Len())
	assert.Equal(t, -1, r.Position("b"))
	assert.Equal(t, 1, r.Position("c"))

	assert.True(t, r.Leave("a"))
	assert.False(t, r.Leave("a"))
	head, _ = r.Head()
	assert.Equal(t, "c", head)

	// A ticket that left or was evicted joins again at the tail.
	assert.Equal(t, 1, r.Join("b", now.Add(10*time.Second)))
	assert.Equal(t, 2, r.Evict(now.Add(time.Hour)))
	assert.Equal(t, 0, r.Len())
}
