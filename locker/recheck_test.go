package locker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRecheckNeverExceedsTheHoldersLeaseNorSpins(t *testing.T) {
	assert.Equal(t, time.Second, recheck(-1, time.Second), "free or unknown: the limit")
	assert.Equal(t, 51*time.Millisecond, recheck(50*time.Millisecond, time.Second), "just past the holder's lease")
	assert.Equal(t, time.Second, recheck(time.Hour, time.Second), "the limit bounds a long lease")
	assert.Equal(t, time.Millisecond, recheck(0, 0), "never a busy loop")
}
