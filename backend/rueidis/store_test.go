package rueidisbackend

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/disgolock/disgo/locker"
)

// TestNewRejectsANilClient: the options are checked for both adapters in
// internal/redisstore (TestNewResolvesOptions).
func TestNewRejectsANilClient(t *testing.T) {
	s, err := New(nil, Options{})
	assert.ErrorIs(t, err, locker.ErrInvalidArgument)
	assert.Nil(t, s)
}
